"""zstd compression between real daemons, on the WebRTC path and the direct path: offered by
default, used where both sides offer it, plain DATA where one side turned it off; the bytes that
land are always the bytes that were shared."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.integration.harness import sha256_of
from tests.integration.test_direct_path import share_and_fetch

pytestmark = pytest.mark.integration


def _log_lines(path: Path, size: int) -> None:
    """Text that compresses the way logs do: repeated structure, varying values."""
    rng = random.Random(7)
    with path.open("w") as f:
        while f.tell() < size:
            f.write(json.dumps({"t": rng.random() * 1e9, "level": rng.choice(["info", "warn"]),
                                "msg": f"request {rng.randrange(10**6)} took {rng.randrange(900)} ms"}) + "\n")


@pytest.mark.parametrize(("sharer", "receiver", "path"), [
    ({}, {}, "webrtc"), ({}, {"DOORSTEP_TRANSFER_COMPRESS": "false"}, "webrtc"), ({}, {}, "direct"),
])
def test_text_arrives_verified_with_compression_on_either_or_both_sides(
        start_daemon, tmp_path: Path, sharer: dict, receiver: dict, path: str) -> None:
    direct = {"DOORSTEP_TRANSFER_DIRECT": "false"} if path == "webrtc" else {}
    a = start_daemon("a", **sharer, **direct)
    b = start_daemon("b", **receiver, **direct)
    source = tmp_path / "server.log"
    _log_lines(source, 6 * 1024 * 1024)
    transfer_id = share_and_fetch(a, b, source)
    record = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=120)
    assert sha256_of(b.inbox / "server.log") == sha256_of(source)
    assert record["route"] == ("direct" if path == "direct" else "host")
    assert record["bytes_done"] == source.stat().st_size
    [sent] = [line for line in a.log_path.read_text().splitlines() if "file bytes as" in line]
    file_bytes, wire_bytes = (int(word) for word in sent.split() if word.isdigit())
    assert file_bytes == source.stat().st_size
    if receiver:  # the receiver did not offer a codec: plain DATA, every byte
        assert wire_bytes == file_bytes and "compressed" not in sent
    else:
        assert wire_bytes < file_bytes / 2, sent  # log lines shrink to well under half
