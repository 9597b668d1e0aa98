"""The direct path between two real daemons on loopback: a fetch by code goes over a sealed TCP
connection when both allow it, over the WebRTC data channel when either says no, and a direct
connection cut mid-transfer (the receiver SIGKILLed) resumes from the durable offsets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import Daemon, random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def share_and_fetch(a: Daemon, b: Daemon, source: Path) -> str:
    with source.open("rb") as body:
        share = a.api("PUT", f"/api/v1/shares/{source.name}", content=body).json()
    started = b.api("POST", "/api/v1/receive", json={"code": share["code"], "signal": a.signal_url})
    assert started.status_code == 202, started.text
    return started.json()["id"]


def routes(daemon: Daemon) -> dict[str, int]:
    """Sessions per route this daemon counted (``/api/v1/stats``)."""
    return daemon.api("GET", "/api/v1/stats").json()["transfers"]["sessions_total"]["route"]


def logged_routes(daemon: Daemon) -> list[str]:
    return [line.split("transfer route: ", 1)[1] for line in daemon.log_path.read_text().splitlines()
            if "transfer route: " in line]


def test_a_fetch_by_code_goes_direct(start_daemon, tmp_path: Path) -> None:
    a, b = start_daemon("a"), start_daemon("b")
    source = tmp_path / "direct.bin"
    digest = random_file(source, 24 * MiB + 12345)
    transfer_id = share_and_fetch(a, b, source)
    record = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=120)
    assert sha256_of(b.inbox / "direct.bin") == digest
    assert record["bytes_moved"] == source.stat().st_size
    assert record["route"] == "direct"
    assert routes(a) == {"direct": 1} and routes(b) == {"direct": 1}
    assert [r.split(" ")[0] for r in logged_routes(a)] == ["direct"]
    assert [r.split(" ")[0] for r in logged_routes(b)] == ["direct"]
    assert "tcp 127.0.0.1:" in logged_routes(b)[0]


@pytest.mark.parametrize("which", ["sharer", "receiver"])
def test_either_side_turning_direct_off_keeps_webrtc(start_daemon, tmp_path: Path, which: str) -> None:
    off = {"DOORSTEP_TRANSFER_DIRECT": "false"}
    a = start_daemon("a", **(off if which == "sharer" else {}))
    b = start_daemon("b", **(off if which == "receiver" else {}))
    source = tmp_path / "webrtc.bin"
    digest = random_file(source, 3 * MiB + 7)
    transfer_id = share_and_fetch(a, b, source)
    record = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=120)
    assert sha256_of(b.inbox / "webrtc.bin") == digest
    assert record["route"] == "host"
    assert routes(a) == {"host": 1} and routes(b) == {"host": 1}  # the ICE route on loopback
    assert "direct path disabled" in logged_routes(b)[0] and "direct path disabled" in logged_routes(a)[0]


def test_encrypted_transfers_go_direct_without_sealing_twice(start_daemon, tmp_path: Path) -> None:
    on = {"DOORSTEP_TRANSFER_ENCRYPT": "true"}
    a, b = start_daemon("a", **on), start_daemon("b", **on)
    source = tmp_path / "sealed.bin"
    digest = random_file(source, 5 * MiB + 3)
    transfer_id = share_and_fetch(a, b, source)
    b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=120)
    assert sha256_of(b.inbox / "sealed.bin") == digest
    assert routes(b) == {"direct": 1}
    assert "direct path, a sealed TCP stream" in b.log_path.read_text()


def test_a_direct_connection_cut_mid_transfer_resumes(start_daemon, tmp_path: Path) -> None:
    """SIGKILL the receiver past 30% of a direct transfer: the sender sees its TCP stream break (no
    FINAL record), the restarted receiver resumes by itself over a new direct connection, from
    its durable offsets, and the file lands verified."""
    size = 512 * MiB
    a, b = start_daemon("a"), start_daemon("b")
    source = tmp_path / "big.bin"
    digest = random_file(source, size)
    transfer_id = share_and_fetch(a, b, source)
    b.wait_transfer(transfer_id, lambda t: t["bytes_done"] >= 0.3 * size, timeout=180)
    b.kill()
    parts = list((b.inbox / ".doorstep" / "partial").rglob("*.part"))
    assert not (b.inbox / "big.bin").exists(), "killed before the end: the final name must not exist"
    assert len(parts) == 1
    durable = parts[0].stat().st_size
    assert 0.3 * size <= durable < size

    b.start()
    record = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=240)
    assert sha256_of(b.inbox / "big.bin") == digest
    sent = [t for t in a.api("GET", "/api/v1/transfers").json() if t["direction"] == "send"]
    assert len(sent) == 1 and sent[0]["state"] == "done"
    # From zero, the sender would have re-sent at least the durable 30%; resumed, it re-sent only
    # what was in flight and not yet durable when the receiver died.
    resent = sent[0]["bytes_moved"] - size
    print(f"direct resume: re-sent {resent / MiB:.1f} MiB of {size / MiB:.0f} MiB, {durable / MiB:.0f} MiB durable")
    assert resent < 0.2 * size, f"re-sent {resent / MiB:.1f} MiB: the retry did not resume"
    assert record["files"][0]["offset"] == size
    assert routes(b) == {"direct": 1}  # counted since the restart: the resumed session went direct
    assert routes(a) == {"direct": 2}
    log = a.log_path.read_text()
    assert "direct connection" in log, "the sender saw the direct connection break"
