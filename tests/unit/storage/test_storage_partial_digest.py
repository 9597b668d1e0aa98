"""``PartialFile.verify_written``: the digest kept while writing, and its fall-back to a re-read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.storage import Inbox, PartialFile

TID = "digest-test"
DATA = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(DATA).hexdigest()


def _never_reread(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: PartialFile, sha256_hex: str) -> bool:
        raise AssertionError("verify_written re-read the file")
    monkeypatch.setattr(PartialFile, "verify", fail)


def test_sequential_writes_verify_without_rereading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = Inbox(tmp_path)
    part = inbox.open_partial(TID, 0, len(DATA), 0)
    for start in range(0, len(DATA), 1 << 20):
        part.write_at(start, memoryview(DATA)[start:start + (1 << 20)])
    _never_reread(monkeypatch)
    assert part.verify_written(SHA) and part.verified and part.sha256 == SHA
    assert not part.verify_written(hashlib.sha256(b"other").hexdigest())
    part.close()


def test_resumed_prefix_is_read_back_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = Inbox(tmp_path)
    half = len(DATA) // 2
    part = inbox.open_partial(TID, 0, len(DATA), 0)
    part.write_at(0, DATA[:half])
    part.sync()
    part.close()
    part = inbox.open_partial(TID, 0, len(DATA), half)
    assert part.offset == half
    part.write_at(half, DATA[half:])
    _never_reread(monkeypatch)
    assert part.verify_written(SHA)
    part.close()


def test_a_changed_prefix_on_disk_is_caught(tmp_path: Path) -> None:
    """The resumed prefix is hashed from the disk, not assumed: a bit flipped in it fails."""
    inbox = Inbox(tmp_path)
    half = len(DATA) // 2
    part = inbox.open_partial(TID, 0, len(DATA), 0)
    part.write_at(0, DATA[:half])
    part.write_at(10, bytes([DATA[10] ^ 1]))  # a flipped bit inside the durable prefix
    part.close()
    part = inbox.open_partial(TID, 0, len(DATA), half)
    part.write_at(half, DATA[half:])
    assert part.verify_written(SHA) is False
    part.close()


def test_out_of_order_writes_fall_back_to_a_reread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = Inbox(tmp_path)
    part = inbox.open_partial(TID, 0, len(DATA), 0)
    mid = len(DATA) // 2
    part.write_at(mid, DATA[mid:])
    part.write_at(0, DATA[:mid])
    calls: list[str] = []
    original = PartialFile.verify
    monkeypatch.setattr(PartialFile, "verify", lambda self, h: calls.append(h) or original(self, h))
    assert part.verify_written(SHA) and calls == [SHA]
    part.close()


def test_a_short_file_fails(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path)
    part = inbox.open_partial(TID, 0, len(DATA), 0)
    part.write_at(0, DATA[:-1])
    assert not part.verify_written(SHA)
    part.close()
