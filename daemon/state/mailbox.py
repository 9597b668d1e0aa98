"""The mailbox table: sealed bundles this daemon holds until it can hand them on (docs/mailbox.md).

One row per bundle, in the table ``mailbox`` of the state database (created here if missing), so
what is held survives restarts. A row is either

- ``outgoing``: a bundle made here (``POST /api/v1/mailbox``), waiting to be pushed to the
  appliance that will keep it (``next_hop``); its sealed files are in the outgoing spool; or
- ``held``: a bundle another device left here for ``recipient`` (``next_hop`` is the recipient);
  its sealed files are in the mailbox area, where ``files`` says.

A row goes away when its push succeeded (the next hop holds the bundle durably, verified), when
it expired, or when the owner deletes it. Nothing here knows what the files contain: names are
the bundle's own (``mailbox/<recipient>/<bundle>/<n>.sealed``).

Calls are synchronous and short, like :class:`~daemon.state.db.StateDB`'s.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .connection import open_or_borrow

__all__ = ["MailboxKind", "MailboxItem", "StoredFile", "MailboxUsage", "MailboxStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS mailbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    sender          TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    next_hop        TEXT NOT NULL,
    files           TEXT NOT NULL,
    size            INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    error           TEXT,
    transfer_id     TEXT,
    created_at      REAL NOT NULL,
    expires_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS mailbox_by_sender ON mailbox(sender);
"""

_COLUMNS = ("id, kind, sender, recipient, next_hop, files, size, attempts, next_attempt_at, error, transfer_id,"
            " created_at, expires_at")


class MailboxKind(enum.Enum):
    OUTGOING = "outgoing"  # made here, for the appliance ``next_hop`` to keep
    HELD = "held"  # left here by ``sender`` for ``recipient``


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One sealed file of a bundle: its name in the bundle (what goes on the wire), size, SHA-256
    (of the sealed bytes), and where this daemon keeps it (relative to its store)."""

    path: str
    size: int
    sha256: str
    stored: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxItem:
    id: str
    """Also the share id the bundle is pushed under (so an interrupted push resumes)."""
    kind: MailboxKind
    sender: str
    """The device id that left it here ('' for a bundle made here)."""
    recipient: str
    next_hop: str
    files: tuple[StoredFile, ...]
    size: int
    attempts: int
    next_attempt_at: float
    error: str | None
    transfer_id: str | None
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class MailboxUsage:
    count: int
    bytes: int
    sender_bytes: int


class MailboxStore:
    """The persisted mailbox over a SQLite database: a path (a connection is opened and owned),
    or a ``sqlite3.Connection`` in autocommit mode, borrowed. ``clock`` gives wall-clock seconds."""

    def __init__(self, db: sqlite3.Connection | Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db, self._owned = open_or_borrow(db, "MailboxStore")
        self._clock = clock
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def add(self, *, item_id: str, kind: MailboxKind, sender: str, recipient: str, next_hop: str,
            files: tuple[StoredFile, ...], expires_at: float, transfer_id: str | None = None) -> MailboxItem:
        """Record a bundle; it is due for a first attempt at once. Raises ``sqlite3.IntegrityError``
        if ``item_id`` is taken."""
        now = self._clock()
        self._db.execute(
            f"INSERT INTO mailbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, ?, ?, ?)",
            (item_id, kind.value, sender, recipient, next_hop,
             json.dumps([[f.path, f.size, f.sha256, f.stored] for f in files]), sum(f.size for f in files),
             now, transfer_id, now, expires_at),
        )
        item = self.get(item_id)
        assert item is not None
        return item

    def get(self, item_id: str) -> MailboxItem | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM mailbox WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row else None

    def items(self) -> list[MailboxItem]:
        """Every bundle held, oldest first."""
        return [_item(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM mailbox ORDER BY created_at, id")]

    def due(self, now: float | None = None) -> list[MailboxItem]:
        """Bundles whose next attempt is due (not expired), soonest first."""
        now = self._clock() if now is None else now
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM mailbox WHERE next_attempt_at <= ? AND expires_at > ?"
                                " ORDER BY next_attempt_at, id", (now, now))
        return [_item(r) for r in rows]

    def next_due_at(self) -> float | None:
        row = self._db.execute("SELECT MIN(next_attempt_at) FROM mailbox").fetchone()
        return row[0] if row else None

    def expired(self, now: float | None = None) -> list[MailboxItem]:
        now = self._clock() if now is None else now
        return [_item(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM mailbox WHERE expires_at <= ?", (now,))]

    def usage(self, sender: str) -> MailboxUsage:
        """How much the held bundles take: all of them, and those ``sender`` left."""
        count, total, mine = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(CASE WHEN sender = ? THEN size ELSE 0 END), 0)"
            " FROM mailbox WHERE kind = ?", (sender, MailboxKind.HELD.value)).fetchone()
        return MailboxUsage(count=count, bytes=total, sender_bytes=mine)

    def attempted(self, item_id: str, *, error: str, retry_at: float) -> None:
        """An attempt failed (``error``): count it and set the next one."""
        self._db.execute("UPDATE mailbox SET attempts = attempts + 1, error = ?, next_attempt_at = ? WHERE id = ?",
                         (error, retry_at, item_id))

    def set_transfer(self, item_id: str, transfer_id: str) -> None:
        """The send transfer that shows the pushes of this bundle."""
        self._db.execute("UPDATE mailbox SET transfer_id = ? WHERE id = ?", (transfer_id, item_id))

    def wake(self, next_hop: str, now: float | None = None) -> int:
        """Make every bundle for ``next_hop`` due now (it came online); returns how many."""
        now = self._clock() if now is None else now
        return self._db.execute("UPDATE mailbox SET next_attempt_at = ? WHERE next_hop = ? AND next_attempt_at > ?",
                                (now, next_hop, now)).rowcount

    def remove(self, item_id: str) -> bool:
        return self._db.execute("DELETE FROM mailbox WHERE id = ?", (item_id,)).rowcount > 0


def _item(row: tuple) -> MailboxItem:
    (item_id, kind, sender, recipient, next_hop, files, size, attempts, next_attempt_at, error, transfer_id,
     created_at, expires_at) = row
    return MailboxItem(
        id=item_id, kind=MailboxKind(kind), sender=sender, recipient=recipient, next_hop=next_hop,
        files=tuple(StoredFile(*f) for f in json.loads(files)), size=size, attempts=attempts,
        next_attempt_at=next_attempt_at, error=error, transfer_id=transfer_id, created_at=created_at,
        expires_at=expires_at,
    )
