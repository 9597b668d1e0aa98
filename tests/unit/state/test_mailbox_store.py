"""The mailbox table: bundles survive a reopen; usage, due times, expiry and removal."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.state.mailbox import MailboxKind, MailboxStore, StoredFile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _files(size: int) -> tuple[StoredFile, ...]:
    return (StoredFile("mailbox/r/b/manifest.sealed", 200, "a" * 64, "mailbox/r/b/manifest.sealed"),
            StoredFile("mailbox/r/b/0.sealed", size, "b" * 64, "mailbox/r/b (1)/0.sealed"))


def test_rows_survive_a_reopen(tmp_path: Path) -> None:
    clock = Clock()
    store = MailboxStore(tmp_path / "state.db", clock=clock)
    store.add(item_id="m1", kind=MailboxKind.HELD, sender="x", recipient="y", next_hop="y", files=_files(1000),
              expires_at=clock.now + 60)
    store.close()
    again = MailboxStore(tmp_path / "state.db", clock=clock)
    [item] = again.items()
    assert (item.id, item.kind, item.sender, item.recipient, item.size) == ("m1", MailboxKind.HELD, "x", "y", 1200)
    assert item.files == _files(1000) and item.expires_at == 1060 and item.attempts == 0
    assert again.get("nope") is None


def test_usage_counts_held_bundles_by_sender(tmp_path: Path) -> None:
    store = MailboxStore(tmp_path / "state.db")
    store.add(item_id="a", kind=MailboxKind.HELD, sender="x", recipient="y", next_hop="y", files=_files(800),
              expires_at=2e9)
    store.add(item_id="b", kind=MailboxKind.HELD, sender="z", recipient="y", next_hop="y", files=_files(1800),
              expires_at=2e9)
    store.add(item_id="c", kind=MailboxKind.OUTGOING, sender="", recipient="y", next_hop="a", files=_files(5),
              expires_at=2e9)
    usage = store.usage("x")
    assert (usage.count, usage.bytes, usage.sender_bytes) == (2, 3000, 1000)
    assert store.usage("nobody").sender_bytes == 0


def test_due_attempts_wake_and_expiry(tmp_path: Path) -> None:
    clock = Clock()
    store = MailboxStore(tmp_path / "state.db", clock=clock)
    store.add(item_id="a", kind=MailboxKind.HELD, sender="x", recipient="y", next_hop="y", files=_files(1),
              expires_at=clock.now + 100, transfer_id="t1")
    assert [i.id for i in store.due()] == ["a"]
    store.attempted("a", error="device y is offline", retry_at=clock.now + 30)
    assert store.due() == []
    item = store.get("a")
    assert item is not None and (item.attempts, item.error, item.transfer_id) == (1, "device y is offline", "t1")
    assert store.wake("other") == 0 and store.due() == []
    assert store.wake("y") == 1 and [i.id for i in store.due()] == ["a"]
    clock.now += 100
    assert store.due() == [], "an expired bundle is never due"
    assert [i.id for i in store.expired()] == ["a"]
    assert store.remove("a") and not store.remove("a")
    assert store.items() == []


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    import sqlite3

    store = MailboxStore(tmp_path / "state.db")
    store.add(item_id="a", kind=MailboxKind.HELD, sender="x", recipient="y", next_hop="y", files=_files(1),
              expires_at=2e9)
    with pytest.raises(sqlite3.IntegrityError):
        store.add(item_id="a", kind=MailboxKind.HELD, sender="x", recipient="y", next_hop="y", files=_files(1),
                  expires_at=2e9)
