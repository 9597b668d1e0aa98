"""The outbox queue: files dropped into outbox folders, waiting to go to a paired device, and the
fingerprints of those already sent.

One row per (device, folder, path, version); a version is the file's size, mtime (ns) and inode.
Rows live in the table ``outbox_queue`` of the state database (created here if missing), so the
queue survives restarts. Life of a row::

    queued --> sending --> sent (+ disposition: kept | moved | deleted | changed | gone)
      ^           |
      +-----------+  retry later (peer offline), or after a restart
    queued/sending --> failed   (given up: the file vanished, the device was unpaired)

A row found ``sending`` at start-up (the daemon died mid-push) goes back to ``queued`` with its
share, so the push resumes. A ``sent`` row stays as the memory of what was sent: enqueueing the
same version again does nothing, so a kept file is never sent twice. A version that comes back
after it was moved or deleted (put back by hand) is queued again.

Calls are synchronous and short, like :class:`~daemon.state.db.StateDB`'s.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from .connection import open_or_borrow

__all__ = ["OutboxState", "Disposition", "OutboxItem", "Enqueued", "OutboxQueue", "PRIORITIES"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_queue (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id       TEXT NOT NULL,
    folder          TEXT NOT NULL,
    path            TEXT NOT NULL,
    size            INTEGER NOT NULL,
    mtime_ns        INTEGER NOT NULL,
    inode           INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    share_id        TEXT,
    error           TEXT,
    disposition     TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    UNIQUE (device_id, folder, path, size, mtime_ns, inode)
);
CREATE INDEX IF NOT EXISTS outbox_queue_by_state ON outbox_queue(state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_queue_by_path ON outbox_queue(device_id, folder, path);
"""

_COLUMNS = ("id, device_id, folder, path, size, mtime_ns, inode, state, attempts, next_attempt_at, share_id, error,"
            " disposition, created_at, updated_at, priority")

PRIORITIES = {"low": -1, "normal": 0, "high": 1}
"""The owner's order for a device's waiting files: higher first, then oldest first."""


class OutboxState(enum.Enum):
    QUEUED = "queued"  # waiting for its next attempt (``next_attempt_at``)
    SENDING = "sending"  # a push is under way
    SENT = "sent"  # delivered; ``disposition`` says what became of the file (None: not yet decided)
    FAILED = "failed"  # given up (``error`` says why)


class Disposition(enum.Enum):
    """What became of a file after it was sent (the folder's after-send policy, or why not)."""

    KEPT = "kept"  # left in place; never sent again
    MOVED = "moved"  # moved to the folder's ``sent/``
    DELETED = "deleted"
    CHANGED = "changed"  # it changed while being sent: left alone, the new version is queued on its own
    GONE = "gone"  # it was no longer there


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One version of one outbox file for one device. ``path`` is relative to the device's
    ``folder`` (itself relative to the outbox root), '/'-joined."""

    id: int
    device_id: str
    folder: str
    path: str
    size: int
    mtime_ns: int
    inode: int
    state: OutboxState
    attempts: int
    next_attempt_at: float
    share_id: str | None
    error: str | None
    disposition: Disposition | None
    created_at: float
    updated_at: float
    priority: int = 0
    """-1 low, 0 normal, 1 high (:data:`PRIORITIES`)."""

    @property
    def relpath(self) -> str:
        """Where the file is, relative to the outbox root."""
        return f"{self.folder}/{self.path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Enqueued:
    """What :meth:`OutboxQueue.enqueue` did: ``item`` is the row for that version, ``queued`` is
    True if this call queued it (new, or put back after a move or delete); ``superseded`` are rows
    of other versions of the same file that were waiting and are now dropped (their shares, if
    any, are stale)."""

    item: OutboxItem
    queued: bool
    superseded: tuple[OutboxItem, ...] = ()


def _to_sql_int(value: int) -> int:
    """SQLite integers are signed 64-bit; inode numbers may use all 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _from_sql_int(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class OutboxQueue:
    """The persisted outbox queue over a SQLite database.

    ``db`` is a path (a connection is opened and owned) or a ``sqlite3.Connection`` in autocommit
    mode (``isolation_level=None``, as :class:`StateDB` opens it), which is borrowed, not closed.
    ``clock`` gives wall-clock seconds (``time.time``): retry times are stored, so they must mean
    the same after a restart.
    """

    def __init__(self, db: sqlite3.Connection | Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db, self._owned = open_or_borrow(db, "OutboxQueue")
        self._clock = clock
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(outbox_queue)")}
        if "priority" not in columns:  # a queue made before priorities
            self._db.execute("ALTER TABLE outbox_queue ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        """Close the connection if this queue opened it."""
        if self._owned:
            self._db.close()

    # -- adding -----------------------------------------------------------------------------------

    def enqueue(self, *, device_id: str, folder: str, path: str, size: int, mtime_ns: int, inode: int) -> Enqueued:
        """Queue this version of ``folder/path`` for ``device_id``, unless it is known already.

        Idempotent: a version already queued, being sent, sent and kept (or failed) is left as it
        is. A version that was sent and then moved or deleted is queued again (someone put it
        back). Waiting rows (queued or failed) of *other* versions of the same file for the same
        device are dropped and returned as ``superseded``; a row being sent is left to finish.
        """
        now = self._clock()
        key = (device_id, folder, path, size, mtime_ns, _to_sql_int(inode))
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox_queue WHERE device_id = ? AND folder = ? AND path = ? AND size = ?"
                " AND mtime_ns = ? AND inode = ?", key).fetchone()
            if row is not None:
                item = self._item(row)
                put_back = item.state is OutboxState.SENT and item.disposition in (Disposition.MOVED, Disposition.DELETED)
                if not put_back:
                    return Enqueued(item=item, queued=False)
                self._db.execute(
                    "UPDATE outbox_queue SET state = ?, attempts = 0, next_attempt_at = ?, share_id = NULL, error = NULL,"
                    " disposition = NULL, updated_at = ? WHERE id = ?",
                    (OutboxState.QUEUED.value, now, now, item.id))
                item_id = item.id
            else:
                item_id = self._db.execute(
                    "INSERT INTO outbox_queue (device_id, folder, path, size, mtime_ns, inode, state, next_attempt_at,"
                    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, OutboxState.QUEUED.value, now, now, now)).lastrowid
            waiting = (OutboxState.QUEUED.value, OutboxState.FAILED.value)
            stale = [self._item(r) for r in self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox_queue WHERE device_id = ? AND folder = ? AND path = ? AND id != ?"
                " AND state IN (?, ?)", (device_id, folder, path, item_id, *waiting))]
            self._db.executemany("DELETE FROM outbox_queue WHERE id = ?", [(s.id,) for s in stale])
        item = self.get(item_id)
        assert item is not None
        return Enqueued(item=item, queued=True, superseded=tuple(stale))

    # -- start-up ---------------------------------------------------------------------------------

    def recover(self) -> int:
        """Put rows left ``sending`` by a previous run back in the queue, due now (their share, if
        any, is kept so the push resumes). Returns how many. Call once at start, before sending."""
        now = self._clock()
        return self._db.execute(
            "UPDATE outbox_queue SET state = ?, next_attempt_at = ?, updated_at = ? WHERE state = ?",
            (OutboxState.QUEUED.value, now, now, OutboxState.SENDING.value)).rowcount

    # -- what to do next --------------------------------------------------------------------------

    def next_due(self, device_id: str, now: float | None = None) -> OutboxItem | None:
        """The next row of ``device_id`` with work to do: sent but not yet tidied (disposition
        pending) first, then queued and due at ``now``, highest priority first, then oldest."""
        now = self._clock() if now is None else now
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM outbox_queue WHERE device_id = ? AND ((state = ? AND disposition IS NULL)"
            " OR (state = ? AND next_attempt_at <= ?)) ORDER BY (state = ?) DESC, priority DESC, id LIMIT 1",
            (device_id, OutboxState.SENT.value, OutboxState.QUEUED.value, now, OutboxState.SENT.value)).fetchone()
        return self._item(row) if row else None

    def devices_due(self, now: float | None = None) -> set[str]:
        """Devices that have a row with work to do at ``now`` (see :meth:`next_due`)."""
        now = self._clock() if now is None else now
        rows = self._db.execute(
            "SELECT DISTINCT device_id FROM outbox_queue WHERE (state = ? AND disposition IS NULL)"
            " OR (state = ? AND next_attempt_at <= ?)",
            (OutboxState.SENT.value, OutboxState.QUEUED.value, now))
        return {r[0] for r in rows}

    def set_priority(self, item_id: int, priority: int) -> OutboxItem | None:
        """Set a row's priority (-1, 0 or 1); None if there is no such row."""
        if priority not in PRIORITIES.values():
            raise ValueError(f"priority must be one of {sorted(PRIORITIES.values())}")
        if not 0 < item_id < 1 << 63:  # SQLite's integers: no row has such an id
            return None
        self._db.execute("UPDATE outbox_queue SET priority = ?, updated_at = ? WHERE id = ?",
                         (priority, self._clock(), item_id))
        return self.get(item_id)

    def next_attempt_after(self, now: float | None = None) -> float | None:
        """The earliest retry time later than ``now`` among queued rows (None: nothing waits)."""
        now = self._clock() if now is None else now
        row = self._db.execute("SELECT MIN(next_attempt_at) FROM outbox_queue WHERE state = ? AND next_attempt_at > ?",
                               (OutboxState.QUEUED.value, now)).fetchone()
        return row[0]

    # -- progress ---------------------------------------------------------------------------------

    def set_share(self, item_id: int, share_id: str | None) -> None:
        """Remember (or, with None, forget) the share that carries this row's file."""
        self._update(item_id, share_id=share_id)

    def mark_sending(self, item_id: int) -> bool:
        """Claim a queued row for a push (its share is made or reused next). False if the row is
        no longer queued (superseded by a newer version, or gone): leave it alone then. A row
        being sent is never superseded, so the claim holds until :meth:`mark_sent`,
        :meth:`retry_later` or :meth:`fail`."""
        now = self._clock()
        return self._db.execute("UPDATE outbox_queue SET state = ?, updated_at = ? WHERE id = ? AND state = ?",
                                (OutboxState.SENDING.value, now, item_id, OutboxState.QUEUED.value)).rowcount == 1

    def mark_sent(self, item_id: int) -> None:
        """Delivered. The row stays (its fingerprint is remembered); :meth:`set_disposition` next."""
        self._update(item_id, state=OutboxState.SENT.value, error=None)

    def set_disposition(self, item_id: int, disposition: Disposition, note: str | None = None) -> None:
        """Record what became of a sent file (``note``: why, when not what the policy said)."""
        self._update(item_id, disposition=disposition.value, error=note)

    def retry_later(self, item_id: int, delay: float, error: str) -> OutboxItem:
        """Back to queued, due in ``delay`` seconds, one more attempt counted; returns the row."""
        now = self._clock()
        self._db.execute(
            "UPDATE outbox_queue SET state = ?, attempts = attempts + 1, next_attempt_at = ?, error = ?, updated_at = ?"
            " WHERE id = ?", (OutboxState.QUEUED.value, now + delay, error, now, item_id))
        item = self.get(item_id)
        assert item is not None
        return item

    def defer_device(self, device_id: str, until: float) -> None:
        """Hold every queued row of ``device_id`` until ``until`` at least (the device is offline:
        trying its other files now would fail the same way)."""
        self._db.execute(
            "UPDATE outbox_queue SET next_attempt_at = ? WHERE device_id = ? AND state = ? AND next_attempt_at < ?",
            (until, device_id, OutboxState.QUEUED.value, until))

    def retry_now(self, device_id: str | None = None) -> int:
        """Make queued rows (of ``device_id``, or all) due now, e.g. when a device comes back.
        Returns how many."""
        now = self._clock()
        query = "UPDATE outbox_queue SET next_attempt_at = ? WHERE state = ? AND next_attempt_at > ?"
        args: tuple[object, ...] = (now, OutboxState.QUEUED.value, now)
        if device_id is not None:
            query += " AND device_id = ?"
            args += (device_id,)
        return self._db.execute(query, args).rowcount

    def fail(self, item_id: int, error: str) -> None:
        """Give up on this row for good (it stays listed, with ``error``)."""
        self._update(item_id, state=OutboxState.FAILED.value, error=error)

    def remove(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox_queue WHERE id = ?", (item_id,))

    def prune(self, before: float, *, dispositions: Collection[Disposition] = (
            Disposition.MOVED, Disposition.DELETED, Disposition.GONE, Disposition.CHANGED)) -> int:
        """Forget finished rows last updated before ``before``: sent rows with one of
        ``dispositions`` (not ``kept`` by default: those remember what must not be resent) and
        failed rows. Returns how many."""
        marks = ",".join("?" * len(dispositions))
        return self._db.execute(
            f"DELETE FROM outbox_queue WHERE updated_at < ? AND (state = ? OR (state = ? AND disposition IN ({marks})))",
            (before, OutboxState.FAILED.value, OutboxState.SENT.value, *(d.value for d in dispositions))).rowcount

    # -- reading ----------------------------------------------------------------------------------

    def get(self, item_id: int) -> OutboxItem | None:
        if not 0 < item_id < 1 << 63:
            return None
        row = self._db.execute(f"SELECT {_COLUMNS} FROM outbox_queue WHERE id = ?", (item_id,)).fetchone()
        return self._item(row) if row else None

    def items(self, *, device_id: str | None = None, states: Collection[OutboxState] | None = None) -> list[OutboxItem]:
        """Rows, oldest first, optionally only those of ``device_id`` and in ``states``."""
        query, args = f"SELECT {_COLUMNS} FROM outbox_queue WHERE 1", []
        if device_id is not None:
            query += " AND device_id = ?"
            args.append(device_id)
        if states is not None:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args += [s.value for s in states]
        return [self._item(r) for r in self._db.execute(query + " ORDER BY id", args)]

    def holds_share(self, share_id: str) -> bool:
        """True if a row that is not finished still needs ``share_id`` (a queued or sending push):
        such a share must not be expired like a share that waits for its code."""
        row = self._db.execute("SELECT 1 FROM outbox_queue WHERE share_id = ? AND state IN (?, ?) LIMIT 1",
                               (share_id, OutboxState.QUEUED.value, OutboxState.SENDING.value)).fetchone()
        return row is not None

    def statistics(self) -> dict[str, int]:
        """Rows per state (every state listed)."""
        counts = dict(self._db.execute("SELECT state, COUNT(*) FROM outbox_queue GROUP BY state").fetchall())
        return {state.value: counts.get(state.value, 0) for state in OutboxState}

    # -- helpers ----------------------------------------------------------------------------------

    def _update(self, item_id: int, **columns: object) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        self._db.execute(f"UPDATE outbox_queue SET {assignments}, updated_at = ? WHERE id = ?",
                         (*columns.values(), self._clock(), item_id))

    @staticmethod
    def _item(row: tuple[object, ...] | sqlite3.Row) -> OutboxItem:
        (item_id, device_id, folder, path, size, mtime_ns, inode, state, attempts, next_attempt_at, share_id, error,
         disposition, created_at, updated_at, priority) = tuple(row)
        return OutboxItem(
            id=item_id, device_id=device_id, folder=folder, path=path, size=size, mtime_ns=mtime_ns,  # type: ignore[arg-type]
            inode=_from_sql_int(inode), state=OutboxState(state),  # type: ignore[arg-type]
            attempts=attempts, next_attempt_at=next_attempt_at, share_id=share_id, error=error,  # type: ignore[arg-type]
            disposition=Disposition(disposition) if disposition is not None else None,
            created_at=created_at, updated_at=updated_at, priority=priority,  # type: ignore[arg-type]
        )
