"""Pause and resume by the owner, with real daemons over WebRTC (slow enough to catch mid-way):
bytes stop within a second, nothing is lost, and resume continues from the durable offset."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.harness import SLOW_PATH, Daemon, api_error, random_file, sha256_of
from tests.integration.test_direct_path import share_and_fetch

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SLOW = {**SLOW_PATH, "DOORSTEP_TRANSFER_COMPRESS": "false"}
"""About 10 MB/s here, so a 48 MiB transfer is caught in the middle."""


def _transfer(daemon: Daemon, transfer_id: str) -> dict:
    return daemon.api("GET", f"/api/v1/transfers/{transfer_id}").json()


def _wait_bytes(daemon: Daemon, transfer_id: str, at_least: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (record := _transfer(daemon, transfer_id))["bytes_done"] < at_least:
        assert record["state"] not in ("done", "failed"), record
        assert time.monotonic() < deadline, record
        time.sleep(0.05)
    return record


def _assert_still(daemon: Daemon, transfer_id: str, seconds: float) -> int:
    """bytes_done one second after the pause, and that it does not move for ``seconds`` more."""
    time.sleep(1.0)
    settled = _transfer(daemon, transfer_id)["bytes_done"]
    time.sleep(seconds)
    assert _transfer(daemon, transfer_id)["bytes_done"] == settled, "bytes still moved after the pause"
    return settled


def test_pausing_a_fetch_stops_its_bytes_and_resume_continues_from_the_offset(start_daemon, tmp_path: Path) -> None:
    a, b = start_daemon("a", **SLOW), start_daemon("b", **SLOW)
    source = tmp_path / "film.bin"
    digest = random_file(source, 48 * MiB)
    transfer_id = share_and_fetch(a, b, source)
    _wait_bytes(b, transfer_id, 8 * MiB)

    paused = b.api("POST", f"/api/v1/transfers/{transfer_id}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
    settled = _assert_still(b, transfer_id, 2.0)
    assert 8 * MiB <= settled < 48 * MiB
    assert _transfer(b, transfer_id)["state"] == "paused"
    assert api_error(b.api("POST", f"/api/v1/transfers/{transfer_id}/pause"), 409, "not_pausable")

    # A paused transfer stays paused across a restart of its daemon.
    assert b.stop() == 0, b.log_tail()
    b.start()
    time.sleep(1.0)
    assert _transfer(b, transfer_id)["state"] == "paused"

    resumed = b.api("POST", f"/api/v1/transfers/{transfer_id}/resume")
    assert resumed.status_code == 202, resumed.text
    done = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=120)
    assert sha256_of(b.inbox / "film.bin") == digest
    resent = done["bytes_moved"] - 48 * MiB
    assert resent < 8 * MiB, f"resume re-sent {resent} bytes: it did not continue from the offset"
    assert api_error(b.api("POST", f"/api/v1/transfers/{transfer_id}/resume"), 409, "not_paused")


def test_pausing_a_hosted_share_turns_its_receiver_away_until_resumed(start_daemon, tmp_path: Path) -> None:
    a, b = start_daemon("a", **SLOW), start_daemon("b", **SLOW)
    source = tmp_path / "album.bin"
    digest = random_file(source, 48 * MiB)
    receive_id = share_and_fetch(a, b, source)
    _wait_bytes(b, receive_id, 8 * MiB)
    [send] = [t for t in a.api("GET", "/api/v1/transfers").json() if t["direction"] == "send"]

    paused = a.api("POST", f"/api/v1/transfers/{send['id']}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
    _assert_still(b, receive_id, 3.0)  # the receiver keeps retrying and is turned away
    assert _transfer(b, receive_id)["state"] in ("retrying", "connecting")

    assert a.api("POST", f"/api/v1/transfers/{send['id']}/resume").status_code == 202
    b.wait_transfer(receive_id, lambda t: t["state"] == "done", timeout=180)
    assert sha256_of(b.inbox / "album.bin") == digest


def test_what_cannot_be_paused_says_why(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a")
    upload = a.api("PUT", "/api/v1/inbox/x.txt", content=b"hello")
    assert upload.status_code == 201, upload.text
    assert api_error(a.api("POST", f"/api/v1/transfers/{upload.json()['id']}/pause"), 409, "not_pausable")
    assert api_error(a.api("POST", "/api/v1/transfers/nope/pause"), 404, "unknown_transfer")
