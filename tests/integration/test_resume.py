"""Journey J4's core: a receiving daemon killed mid-transfer (SIGKILL, then SIGTERM) resumes by itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SIZE = 256 * MiB


def test_killed_and_stopped_receiver_resumes_from_durable_offsets(start_daemon, tmp_path: Path) -> None:
    a, b = start_daemon("a"), start_daemon("b")
    source = tmp_path / "big.iso"
    digest = random_file(source, SIZE)
    with source.open("rb") as body:
        share = a.api("PUT", "/api/v1/shares/big.iso", content=body).json()
    started = b.api("POST", "/api/v1/receive", json={"code": share["code"], "signal": a.signal_url})
    assert started.status_code == 202, started.text
    transfer_id = started.json()["id"]

    b.wait_transfer(transfer_id, lambda t: t["bytes_done"] >= 0.4 * SIZE, timeout=180)
    b.kill()
    final = b.inbox / "big.iso"
    assert not final.exists(), "the final name must never hold partial data"
    parts = list((b.inbox / ".doorstep" / "partial").rglob("*.part"))
    assert len(parts) == 1 and parts[0].stat().st_size >= 0.4 * SIZE

    b.start()
    b.wait_transfer(transfer_id, lambda t: t["bytes_done"] >= 0.7 * SIZE, timeout=180)
    assert b.stop() == 0, "SIGTERM mid-transfer must be a clean exit within 5 s"
    assert not final.exists()

    b.start()
    record = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=240)
    assert record["files"][0]["final_path"] == "big.iso"
    assert sha256_of(final) == digest
    assert list((b.inbox / ".doorstep" / "partial").iterdir()) == [], "the partial folder is cleaned up"

    sent = [t for t in a.api("GET", "/api/v1/transfers").json() if t["direction"] == "send"]
    assert len(sent) == 1 and sent[0]["state"] == "done"
    resent = sent[0]["bytes_moved"] - SIZE
    print(f"resume: re-sent {resent / MiB:.1f} MiB of {SIZE / MiB:.0f} MiB ({resent / SIZE:.1%})")
    assert resent < 0.6 * SIZE, f"re-sent {resent / MiB:.1f} MiB of {SIZE / MiB:.0f} MiB"
    received = record["bytes_moved"]
    assert received <= sent[0]["bytes_moved"]
