"""The persisted outbox queue: idempotent enqueue per version, superseding, retries, restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.state import Disposition, OutboxQueue, OutboxState, StateDB


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def version(size: int = 10, mtime_ns: int = 1, inode: int = 5, path: str = "a.txt", device_id: str = "dev1",
            folder: str = "laptop") -> dict[str, object]:
    return dict(device_id=device_id, folder=folder, path=path, size=size, mtime_ns=mtime_ns, inode=inode)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> OutboxQueue:
    q = OutboxQueue(tmp_path / "state.db", clock=clock)
    yield q
    q.close()


def test_enqueue_is_idempotent_per_version(queue: OutboxQueue) -> None:
    first = queue.enqueue(**version())
    again = queue.enqueue(**version())
    assert first.queued and not again.queued
    assert again.item == first.item
    assert (first.item.state, first.item.attempts, first.item.relpath) == (OutboxState.QUEUED, 0, "laptop/a.txt")
    other_device = queue.enqueue(**version(device_id="dev2"))
    other_folder = queue.enqueue(**version(folder="dev1-id"))
    assert other_device.queued and other_folder.queued
    assert len(queue.items()) == 3


def test_a_new_version_supersedes_a_waiting_one_but_not_one_being_sent(queue: OutboxQueue) -> None:
    old = queue.enqueue(**version(size=1)).item
    queue.set_share(old.id, "share-old")
    newer = queue.enqueue(**version(size=2))
    assert [s.share_id for s in newer.superseded] == ["share-old"]
    assert [i.size for i in queue.items()] == [2]

    assert queue.mark_sending(newer.item.id)
    assert not queue.mark_sending(newer.item.id)  # claimed once
    assert not queue.mark_sending(old.id)  # superseded: gone
    newest = queue.enqueue(**version(size=3))
    assert newest.superseded == ()
    assert [(i.size, i.state) for i in queue.items()] == [(2, OutboxState.SENDING), (3, OutboxState.QUEUED)]


def test_a_sent_and_kept_version_is_never_queued_again(queue: OutboxQueue) -> None:
    item = queue.enqueue(**version()).item
    queue.mark_sent(item.id)
    queue.set_disposition(item.id, Disposition.KEPT)
    again = queue.enqueue(**version())
    assert not again.queued
    assert (again.item.state, again.item.disposition) == (OutboxState.SENT, Disposition.KEPT)
    # a new version of the kept file is new, and leaves the sent row alone
    newer = queue.enqueue(**version(size=11))
    assert newer.queued and newer.superseded == ()


@pytest.mark.parametrize("disposition", [Disposition.MOVED, Disposition.DELETED])
def test_a_version_put_back_after_move_or_delete_is_queued_again(queue: OutboxQueue, clock: Clock,
                                                                   disposition: Disposition) -> None:
    item = queue.enqueue(**version()).item
    queue.set_share(item.id, "s")
    queue.mark_sent(item.id)
    queue.set_disposition(item.id, disposition)
    clock.now += 50
    again = queue.enqueue(**version())
    assert again.queued and again.item.id == item.id
    assert (again.item.state, again.item.share_id, again.item.disposition, again.item.next_attempt_at) == (
        OutboxState.QUEUED, None, None, clock.now)


def test_restart_puts_sending_back_in_the_queue_with_its_share(tmp_path: Path, clock: Clock) -> None:
    queue = OutboxQueue(tmp_path / "state.db", clock=clock)
    a = queue.enqueue(**version(path="a")).item
    b = queue.enqueue(**version(path="b")).item
    queue.set_share(a.id, "share-a")
    queue.mark_sending(a.id)
    queue.retry_later(b.id, 100.0, "peer offline")
    queue.close()  # killed mid-push

    clock.now += 5
    queue = OutboxQueue(tmp_path / "state.db", clock=clock)
    assert queue.recover() == 1
    back = queue.get(a.id)
    assert back is not None
    assert (back.state, back.share_id, back.next_attempt_at) == (OutboxState.QUEUED, "share-a", clock.now)
    waiting = queue.get(b.id)
    assert waiting is not None and (waiting.attempts, waiting.error) == (1, "peer offline")
    assert queue.next_due("dev1") == back
    assert queue.recover() == 0
    queue.close()


def test_due_order_retries_and_device_deferral(queue: OutboxQueue, clock: Clock) -> None:
    a = queue.enqueue(**version(path="a")).item
    b = queue.enqueue(**version(path="b")).item
    c = queue.enqueue(**version(path="c", device_id="dev2")).item
    assert queue.devices_due() == {"dev1", "dev2"}
    assert queue.next_due("dev1").id == a.id  # type: ignore[union-attr]

    retried = queue.retry_later(a.id, 10.0, "offline")
    assert (retried.attempts, retried.next_attempt_at, retried.state) == (1, clock.now + 10, OutboxState.QUEUED)
    queue.defer_device("dev1", retried.next_attempt_at)
    assert queue.next_due("dev1") is None
    assert queue.devices_due() == {"dev2"}
    assert queue.next_attempt_after() == clock.now + 10

    queue.mark_sent(c.id)  # sent, disposition pending: work to do, first
    assert queue.next_due("dev2").id == c.id  # type: ignore[union-attr]
    queue.set_disposition(c.id, Disposition.MOVED)
    assert queue.devices_due() == set()

    clock.now += 10
    assert [queue.next_due("dev1").id] == [a.id]  # type: ignore[union-attr]
    queue.retry_later(a.id, 60.0, "offline")
    queue.defer_device("dev1", clock.now + 60)
    assert queue.retry_now("dev1") == 2
    assert queue.next_due("dev1").id == a.id  # type: ignore[union-attr]
    assert queue.get(b.id).next_attempt_at == clock.now  # type: ignore[union-attr]


def test_shares_still_needed_and_statistics(queue: OutboxQueue) -> None:
    a = queue.enqueue(**version(path="a")).item
    queue.set_share(a.id, "share-a")
    assert queue.holds_share("share-a") and not queue.holds_share("other")
    queue.mark_sending(a.id)
    assert queue.holds_share("share-a")
    queue.mark_sent(a.id)
    assert not queue.holds_share("share-a")
    b = queue.enqueue(**version(path="b")).item
    queue.fail(b.id, "gone")
    assert queue.statistics() == {"queued": 0, "sending": 0, "sent": 1, "failed": 1}
    assert queue.get(b.id).error == "gone"  # type: ignore[union-attr]


def test_prune_keeps_what_guards_against_resends(queue: OutboxQueue, clock: Clock) -> None:
    kept, moved, failed, waiting = (queue.enqueue(**version(path=p)).item for p in "kmfw")
    for item, disposition in ((kept, Disposition.KEPT), (moved, Disposition.MOVED)):
        queue.mark_sent(item.id)
        queue.set_disposition(item.id, disposition)
    queue.fail(failed.id, "gone")
    clock.now += 100
    assert queue.prune(clock.now) == 2
    assert sorted(i.path for i in queue.items()) == ["k", "w"]


def test_large_inode_numbers_round_trip(queue: OutboxQueue) -> None:
    big = (1 << 64) - 3
    item = queue.enqueue(**version(inode=big)).item
    assert item.inode == big
    assert not queue.enqueue(**version(inode=big)).queued


def test_borrows_an_autocommit_connection_to_the_state_db(tmp_path: Path) -> None:
    StateDB(tmp_path / "state.db").close()
    connection = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    queue = OutboxQueue(connection)
    queue.enqueue(**version())
    queue.close()
    assert connection.execute("SELECT COUNT(*) FROM outbox_queue").fetchone() == (1,)  # still open
    assert connection.execute("SELECT COUNT(*) FROM devices").fetchone() == (0,)  # same file as StateDB
    connection.close()
    with pytest.raises(ValueError):
        OutboxQueue(sqlite3.connect(tmp_path / "state.db"))


def test_higher_priority_goes_first_then_the_oldest(queue: OutboxQueue) -> None:
    first = queue.enqueue(**version(path="old.txt")).item
    second = queue.enqueue(**version(path="new.txt", inode=6)).item
    assert queue.next_due("dev1").id == first.id
    assert queue.set_priority(second.id, 1).priority == 1
    assert queue.next_due("dev1").id == second.id
    queue.set_priority(second.id, -1)
    assert queue.next_due("dev1").id == first.id
    assert queue.set_priority(9999, 1) is None
    with pytest.raises(ValueError):
        queue.set_priority(first.id, 5)


def test_a_queue_made_before_priorities_gains_the_column(tmp_path: Path) -> None:
    db = sqlite3.connect(str(tmp_path / "old.db"), isolation_level=None)
    db.executescript("""CREATE TABLE outbox_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, folder TEXT NOT NULL, path TEXT NOT NULL,
        size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, share_id TEXT, error TEXT,
        disposition TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        UNIQUE (device_id, folder, path, size, mtime_ns, inode));
        INSERT INTO outbox_queue (device_id, folder, path, size, mtime_ns, inode, state, next_attempt_at,
            created_at, updated_at) VALUES ('dev1', 'laptop', 'a.txt', 1, 1, 1, 'queued', 0, 0, 0);""")
    db.close()
    queue = OutboxQueue(tmp_path / "old.db")
    try:
        [item] = queue.items()
        assert item.priority == 0 and item.path == "a.txt"
    finally:
        queue.close()
