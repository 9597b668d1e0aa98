"""J4: two paired daemons; files dropped into B's outbox folder for A land in A's inbox, verified,
exactly once: a file renamed into place, one written slowly (only once complete), and a big one
whose sender is killed with SIGKILL mid-way (it resumes: the bytes moved stay close to its size)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, free_port, random_file, sha256_of

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def _inbox_files(daemon: Daemon) -> dict[str, str]:
    return {str(p.relative_to(daemon.inbox)): sha256_of(p) for p in daemon.inbox.rglob("*")
            if p.is_file() and ".doorstep" not in p.parts}


def wait(predicate, timeout: float, what: str, daemons=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out: {what}\n" + "\n".join(d.log_tail(80) for d in daemons))
        time.sleep(0.1)


def test_outbox_to_paired_device(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}")
    b = start_daemon("b", DOORSTEP_OUTBOX_SETTLE="0.5")
    offer = a.api("POST", "/api/v1/pair", json={}).json()
    joined = b.api("POST", "/api/v1/pair", json={"code": offer["code"], "signal": a.signal_url})
    assert joined.status_code == 200, joined.text
    a_id = joined.json()["id"]
    outbox = b.state_dir / "outbox"
    wait(lambda: (outbox / a_id).is_dir() or any(p.is_dir() for p in outbox.iterdir()), 10, "folder", (b,))
    folder = next(p for p in outbox.iterdir() if p.is_dir())

    tmp = folder / "big.bin.part"
    digest_big = random_file(tmp, 3 * MiB + 7)
    os.rename(tmp, folder / "big.bin")
    with (folder / "slow.txt").open("wb") as f:
        for i in range(24):
            f.write(bytes([65 + i % 26]) * 128)
            f.flush()
            time.sleep(0.125)
    digest_slow = sha256_of(folder / "slow.txt")
    wait(lambda: _inbox_files(a) == {"big.bin": digest_big, "slow.txt": digest_slow}, 60, "arrival", (a, b))
    wait(lambda: sorted(p.name for p in (folder / "sent").iterdir()) == ["big.bin", "slow.txt"], 10, "moved", (b,))
    assert not (folder / "big.bin").exists()

    # killed mid-way: it resumes and lands exactly once
    digest_huge = random_file(folder / "huge.bin", 60 * MiB)
    wait(lambda: "outbox: sending" in (b.log_path.read_text() if b.log_path.exists() else "")
         and "huge.bin" in b.log_path.read_text(), 20, "sending huge", (b,))
    time.sleep(2.0)
    b.kill()
    b.start()
    wait(lambda: _inbox_files(a).get("huge.bin") == digest_huge, 120, "huge arrival", (a, b))
    time.sleep(2)
    assert _inbox_files(a) == {"big.bin": digest_big, "slow.txt": digest_slow, "huge.bin": digest_huge}
    received = [t for t in a.api("GET", "/api/v1/transfers").json() if t["bytes_total"] == 60 * MiB]
    assert [t["state"] for t in received] == ["done"], "one receive record for the killed push: it resumed"
    moved = received[0]["bytes_moved"]
    assert moved < 1.6 * 60 * MiB, f"resumed, not restarted: {moved} bytes moved for 60 MiB"
    assert sorted(p.name for p in (folder / "sent").iterdir()) == ["big.bin", "huge.bin", "slow.txt"]
