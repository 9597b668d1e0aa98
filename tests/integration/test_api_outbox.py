"""The outbox queue as the API shows it, and a push to a paired device cancelled mid-way and retried:
it resumes from the receiver's durable offsets."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.harness import SLOW_PATH, Daemon, random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
OUTBOX_KEYS = {"id", "device", "folder", "path", "size", "state", "attempts", "next_attempt_at", "error", "disposition",
               "share_id", "created_at", "updated_at", "priority"}


def _wait(predicate: Callable[[], object], timeout: float, what: str, *daemons: Daemon) -> object:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}\n" + "\n".join(d.log_tail(40) for d in daemons))
        time.sleep(0.1)
    return result


def _pair(a: Daemon, b: Daemon) -> str:
    """Pair b with a (b joins a's offer); returns a's device id as b knows it."""
    offer = a.api("POST", "/api/v1/pair", json={}).json()
    joined = b.api("POST", "/api/v1/pair", json={"code": offer["code"], "signal": a.signal_url})
    assert joined.status_code == 200, joined.text
    return joined.json()["id"]


def test_outbox_rows_and_a_push_cancelled_then_retried(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a")
    # The data channel: a 48 MiB push over the direct path ends before it can be cancelled mid-way.
    b = start_daemon("b", DOORSTEP_OUTBOX_SETTLE="0.3", **SLOW_PATH)
    a_id = _pair(a, b)
    assert b.api("GET", "/api/v1/outbox").json() == []

    folder = _wait(lambda: next((p for p in (b.state_dir / "outbox").iterdir() if p.is_dir()), None), 10,
                   "outbox folder", b)
    digest = random_file(folder / "report.bin", 100_000)
    _wait(lambda: (a.inbox / "report.bin").exists(), 60, "arrival", a, b)
    row = _wait(lambda: next((r for r in b.api("GET", "/api/v1/outbox").json() if r["disposition"]), None), 20,
                "disposition", b)
    assert set(row) == OUTBOX_KEYS
    assert (row["device"], row["folder"], row["path"], row["size"]) == (a_id, folder.name, f"{folder.name}/report.bin",
                                                                        100_000)
    assert (row["state"], row["attempts"], row["next_attempt_at"], row["error"], row["disposition"]) == \
        ("sent", 0, None, None, "moved")
    assert sha256_of(a.inbox / "report.bin") == digest
    assert row["priority"] == "normal"
    raised = b.api("PATCH", f"/api/v1/outbox/{row['id']}", json={"priority": "high"})
    assert raised.status_code == 200 and raised.json()["priority"] == "high", raised.text
    assert [r["priority"] for r in b.api("GET", "/api/v1/outbox").json() if r["id"] == row["id"]] == ["high"]
    assert b.api("PATCH", f"/api/v1/outbox/{row['id']}", json={"priority": "urgent"}).status_code == 400
    assert b.api("PATCH", "/api/v1/outbox/999999", json={"priority": "low"}).status_code == 404

    # A push by hand, cancelled mid-way, then retried: it resumes.
    size = 48 * MiB
    source = tmp_path / "big.bin"
    big_digest = random_file(source, size)
    with source.open("rb") as body:
        share = b.api("PUT", "/api/v1/shares/big.bin", content=body).json()
    pushed = b.api("POST", f"/api/v1/shares/{share['share_id']}/push", json={"device": a_id})
    assert pushed.status_code == 202, pushed.text
    send_id = pushed.json()["id"]
    moving = b.wait_transfer(send_id, lambda t: t["bytes_done"] >= size // 4, timeout=120)
    assert moving["device"] == a_id and moving["direction"] == "send"
    cancelled = b.api("POST", f"/api/v1/transfers/{send_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled", cancelled.text
    time.sleep(1.0)
    assert b.api("GET", f"/api/v1/transfers/{send_id}").json()["state"] == "cancelled"
    assert not (a.inbox / "big.bin").exists()

    retried = b.api("POST", f"/api/v1/transfers/{send_id}/retry")
    assert retried.status_code == 202, retried.text
    b.wait_transfer(send_id, lambda t: t["state"] == "done", timeout=180)
    _wait(lambda: (a.inbox / "big.bin").exists(), 30, "big arrival", a, b)
    assert sha256_of(a.inbox / "big.bin") == big_digest
    received = [t for t in a.api("GET", "/api/v1/transfers").json() if t["bytes_total"] == size]
    assert [t["state"] for t in received] == ["done"], "one receive record: the push resumed"
    assert received[0]["bytes_moved"] < 1.6 * size, received[0]["bytes_moved"]
    assert received[0]["device"] is not None
