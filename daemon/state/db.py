"""The state database: one SQLite file (WAL) under the state dir.

Calls are synchronous and short (no fsync per commit: ``synchronous=NORMAL``). Losing the last
commits in a power cut only makes a resume re-send more: offsets are written *after* the data they
describe was fsynced, so the database never claims more than the disk holds.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .records import DeviceRecord, DeviceStatus, Direction, FileRecord, ShareRecord, TransferRecord, TransferState

__all__ = ["StateDB", "TransferChange", "TransferObserver", "PlacedFile"]


class TransferChange(enum.Enum):
    """What a write did to a transfer (what :meth:`StateDB.observe` callbacks are told)."""

    ADDED = "added"
    STATE = "state"  # its state (or error) was set, or it was held
    PROGRESS = "progress"  # durable bytes / bytes moved
    MANIFEST = "manifest"  # its files (and total) became known
    FILE_PLACED = "file_placed"  # one file reached its final name in the inbox (``index`` says which)
    REMOVED = "removed"


TransferObserver = Callable[[str, TransferChange, "int | None"], None]
"""``observer(transfer_id, change, file_index)``; ``file_index`` only for ``FILE_PLACED``."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    share_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    host_key   TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    files      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS transfers (
    id          TEXT PRIMARY KEY,
    direction   TEXT NOT NULL,
    state       TEXT NOT NULL,
    share_id    TEXT,
    signal_url  TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    bytes_done  INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    bytes_moved INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);
CREATE TABLE IF NOT EXISTS transfer_files (
    transfer_id TEXT NOT NULL REFERENCES transfers(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    path        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    offset      INTEGER NOT NULL DEFAULT 0,
    final_path  TEXT,
    PRIMARY KEY (transfer_id, idx)
);
CREATE INDEX IF NOT EXISTS transfers_by_state ON transfers(state);
CREATE TABLE IF NOT EXISTS secrets (
    kind   TEXT NOT NULL,
    id     TEXT NOT NULL,
    secret BLOB NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS held (
    transfer_id TEXT PRIMARY KEY REFERENCES transfers(id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    device_id  TEXT PRIMARY KEY,
    public_key BLOB NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,
    paired_at  REAL NOT NULL,
    last_seen  REAL,
    signal_url TEXT
);
CREATE TABLE IF NOT EXISTS retired_keys (
    public_key BLOB PRIMARY KEY,
    device_id  TEXT NOT NULL,
    retired_at REAL NOT NULL
);
"""
# ``secrets`` holds resume secrets (kind "share" for shares we host, "transfer" for transfers we
# receive). They never appear in records, so nothing that renders a record can leak them.


@dataclass(frozen=True, slots=True)
class PlacedFile:
    """A received file at its final name in the inbox, as the journal remembers it."""

    transfer_id: str
    final_path: str
    size: int
    sha256: str


def _files_to_json(files: Iterable[FileRecord]) -> str:
    return json.dumps([{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files])


def _files_from_json(text: str) -> tuple[FileRecord, ...]:
    return tuple(FileRecord(index=i, **f) for i, f in enumerate(json.loads(text)))


class StateDB:
    """Typed access to the state database. ``path`` may be ``":memory:"`` (the standalone CLI)."""

    def __init__(self, path: Path | str) -> None:
        self._observers: list[TransferObserver] = []
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def observe(self, observer: TransferObserver) -> None:
        """Call ``observer(transfer_id, change, file_index)`` after every write to a transfer.

        It runs synchronously in the writer's thread (a worker thread, for writes made there), so
        it must be quick and must not raise; it may read the database.
        """
        self._observers.append(observer)

    def _changed(self, transfer_id: str, change: TransferChange, index: int | None = None) -> None:
        for observer in self._observers:
            observer(transfer_id, change, index)

    # -- shares ---------------------------------------------------------------------------------

    def add_share(self, share: ShareRecord) -> None:
        self._db.execute(
            "INSERT INTO shares VALUES (?, ?, ?, ?, ?, ?)",
            (share.share_id, share.name, share.host_key, share.created_at, share.expires_at,
             _files_to_json(share.files)),
        )

    def get_share(self, share_id: str) -> ShareRecord | None:
        row = self._db.execute("SELECT * FROM shares WHERE share_id = ?", (share_id,)).fetchone()
        return self._share(row) if row else None

    def list_shares(self) -> list[ShareRecord]:
        return [self._share(r) for r in self._db.execute("SELECT * FROM shares ORDER BY created_at")]

    def remove_share(self, share_id: str) -> None:
        """Forget the share and its resume secret."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM shares WHERE share_id = ?", (share_id,))
            self._db.execute("DELETE FROM secrets WHERE kind = 'share' AND id = ?", (share_id,))

    @staticmethod
    def _share(row: sqlite3.Row) -> ShareRecord:
        return ShareRecord(
            share_id=row["share_id"], name=row["name"], host_key=row["host_key"],
            created_at=row["created_at"], expires_at=row["expires_at"], files=_files_from_json(row["files"]),
        )

    # -- transfers ------------------------------------------------------------------------------

    def add_transfer(self, transfer_id: str, direction: Direction, *, share_id: str | None = None,
                     signal_url: str | None = None, files: Sequence[FileRecord] = ()) -> TransferRecord:
        now = time.time()
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO transfers (id, direction, state, share_id, signal_url, created_at, updated_at,"
                " bytes_total) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (transfer_id, direction.value, TransferState.CONNECTING.value, share_id, signal_url, now, now,
                 sum(f.size for f in files)),
            )
            self._insert_files(transfer_id, files)
        self._changed(transfer_id, TransferChange.ADDED)
        return self.get_transfer(transfer_id)  # type: ignore[return-value]

    def set_manifest(self, transfer_id: str, share_id: str, files: Sequence[FileRecord]) -> None:
        """Record what a transfer moves. Keeps existing offsets when the manifest is unchanged."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE transfers SET share_id = ?, bytes_total = ?, updated_at = ? WHERE id = ?",
                             (share_id, sum(f.size for f in files), time.time(), transfer_id))
            known = self.files(transfer_id)
            if [(f.path, f.size, f.sha256) for f in known] != [(f.path, f.size, f.sha256) for f in files]:
                self._db.execute("DELETE FROM transfer_files WHERE transfer_id = ?", (transfer_id,))
                self._insert_files(transfer_id, files)
        self._changed(transfer_id, TransferChange.MANIFEST)

    def _insert_files(self, transfer_id: str, files: Sequence[FileRecord]) -> None:
        self._db.executemany(
            "INSERT INTO transfer_files (transfer_id, idx, path, size, sha256) VALUES (?, ?, ?, ?, ?)",
            [(transfer_id, f.index, f.path, f.size, f.sha256) for f in files],
        )

    def files(self, transfer_id: str) -> tuple[FileRecord, ...]:
        rows = self._db.execute("SELECT * FROM transfer_files WHERE transfer_id = ? ORDER BY idx", (transfer_id,))
        return tuple(
            FileRecord(index=r["idx"], path=r["path"], size=r["size"], sha256=r["sha256"], offset=r["offset"],
                       final_path=r["final_path"])
            for r in rows
        )

    def set_offset(self, transfer_id: str, index: int, offset: int) -> None:
        self._db.execute("UPDATE transfer_files SET offset = ? WHERE transfer_id = ? AND idx = ?",
                         (offset, transfer_id, index))

    def set_final_path(self, transfer_id: str, index: int, final_path: str) -> None:
        self._db.execute("UPDATE transfer_files SET final_path = ? WHERE transfer_id = ? AND idx = ?",
                         (final_path, transfer_id, index))
        self._changed(transfer_id, TransferChange.FILE_PLACED, index)

    def set_progress(self, transfer_id: str, bytes_done: int, moved_delta: int = 0) -> None:
        """Set durable progress and add ``moved_delta`` payload bytes that crossed the wire."""
        self._db.execute(
            "UPDATE transfers SET bytes_done = ?, bytes_moved = bytes_moved + ?, updated_at = ? WHERE id = ?",
            (bytes_done, moved_delta, time.time(), transfer_id),
        )
        self._changed(transfer_id, TransferChange.PROGRESS)

    def set_state(self, transfer_id: str, state: TransferState, error: str | None = None) -> None:
        self._db.execute("UPDATE transfers SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                         (state.value, error, time.time(), transfer_id))
        self._changed(transfer_id, TransferChange.STATE)

    def get_transfer(self, transfer_id: str) -> TransferRecord | None:
        row = self._db.execute("SELECT * FROM transfers WHERE id = ?", (transfer_id,)).fetchone()
        return self._transfer(row) if row else None

    def list_transfers(self, *, unfinished_only: bool = False, states: Collection[TransferState] | None = None,
                       direction: Direction | None = None, limit: int | None = None) -> list[TransferRecord]:
        """Transfers, oldest first: only unfinished ones, only those in ``states``, only of
        ``direction``, as asked; ``limit`` keeps the newest ``limit`` of them."""
        where: list[str] = []
        args: list[object] = []
        if unfinished_only:
            done = [s.value for s in TransferState if s.finished]
            where.append(f"state NOT IN ({','.join('?' * len(done))})")
            args += done
        if states is not None:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += [s.value for s in states]
        if direction is not None:
            where.append("direction = ?")
            args.append(direction.value)
        query = "SELECT * FROM transfers" + (" WHERE " + " AND ".join(where) if where else "")
        if limit is not None:
            query = f"SELECT * FROM ({query} ORDER BY created_at DESC, id DESC LIMIT ?)"
            args.append(limit)
        rows = self._db.execute(query + " ORDER BY created_at, id", args)
        return [self._transfer(r) for r in rows]

    def placed_files(self, final_paths: Collection[str] | None = None) -> dict[str, PlacedFile]:
        """Files the journal placed in the inbox, by final path (the newest transfer's when a
        name was used twice), optionally only those at ``final_paths``."""
        query = ("SELECT f.transfer_id, f.final_path, f.size, f.sha256 FROM transfer_files f"
                 " JOIN transfers t ON t.id = f.transfer_id WHERE f.final_path IS NOT NULL")
        args: list[object] = []
        wanted = None if final_paths is None else set(final_paths)
        if wanted is not None:
            if not wanted:
                return {}
            if len(wanted) <= 500:  # else filtered below: SQLite caps the number of parameters
                query += f" AND f.final_path IN ({','.join('?' * len(wanted))})"
                args += sorted(wanted)
        out: dict[str, PlacedFile] = {}
        for row in self._db.execute(query + " ORDER BY t.updated_at, t.id", args):
            placed = PlacedFile(transfer_id=row[0], final_path=row[1], size=row[2], sha256=row[3])
            if wanted is None or placed.final_path in wanted:
                out[placed.final_path] = placed
        return out

    def find_transfer(self, share_id: str, direction: Direction) -> TransferRecord | None:
        """The newest transfer of ``direction`` for ``share_id``."""
        row = self._db.execute(
            "SELECT * FROM transfers WHERE share_id = ? AND direction = ? ORDER BY created_at DESC LIMIT 1",
            (share_id, direction.value),
        ).fetchone()
        return self._transfer(row) if row else None

    # -- secrets (resume passwords; never part of a record) --------------------------------------

    def set_secret(self, kind: str, key: str, secret: bytes) -> None:
        """Remember the resume secret of a share (``kind`` "share") or a received transfer ("transfer")."""
        self._db.execute("INSERT OR REPLACE INTO secrets VALUES (?, ?, ?)", (kind, key, secret))

    def secret(self, kind: str, key: str) -> bytes | None:
        row = self._db.execute("SELECT secret FROM secrets WHERE kind = ? AND id = ?", (kind, key)).fetchone()
        return bytes(row["secret"]) if row else None

    def forget_secret(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM secrets WHERE kind = ? AND id = ?", (kind, key))

    # -- transfers held for approval ------------------------------------------------------------

    def hold(self, transfer_id: str, device_id: str) -> None:
        """Mark a received transfer as held until ``device_id`` is approved (state HELD)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO held VALUES (?, ?)", (transfer_id, device_id))
            self._db.execute("UPDATE transfers SET state = ?, updated_at = ? WHERE id = ?",
                             (TransferState.HELD.value, time.time(), transfer_id))
        self._changed(transfer_id, TransferChange.STATE)

    def held_transfers(self, device_id: str) -> list[str]:
        rows = self._db.execute("SELECT transfer_id FROM held WHERE device_id = ?", (device_id,))
        return [r["transfer_id"] for r in rows]

    def unhold(self, transfer_id: str) -> None:
        self._db.execute("DELETE FROM held WHERE transfer_id = ?", (transfer_id,))

    def set_origin(self, transfer_id: str, origin: str) -> None:
        """Where a receive comes from: a signaling URL (we fetch), or ``push:<device id>``."""
        self._db.execute("UPDATE transfers SET signal_url = ? WHERE id = ?", (origin, transfer_id))

    def find_unfinished_receive(self, share_id: str, origin: str) -> TransferRecord | None:
        """The newest unfinished receive of ``share_id`` from ``origin`` (to resume it)."""
        done = tuple(s.value for s in TransferState if s.finished) + (TransferState.HELD.value,)
        row = self._db.execute(
            "SELECT * FROM transfers WHERE direction = ? AND share_id = ? AND signal_url = ?"
            f" AND state NOT IN ({','.join('?' * len(done))}) ORDER BY created_at DESC LIMIT 1",
            (Direction.RECEIVE.value, share_id, origin, *done),
        ).fetchone()
        return self._transfer(row) if row else None

    def remove_transfer(self, transfer_id: str) -> None:
        self._db.execute("DELETE FROM transfers WHERE id = ?", (transfer_id,))
        self._changed(transfer_id, TransferChange.REMOVED)

    def set_share_id(self, transfer_id: str, share_id: str) -> None:
        self._db.execute("UPDATE transfers SET share_id = ? WHERE id = ?", (share_id, transfer_id))

    def _transfer(self, row: sqlite3.Row) -> TransferRecord:
        return TransferRecord(
            id=row["id"], direction=Direction(row["direction"]), state=TransferState(row["state"]),
            share_id=row["share_id"], signal_url=row["signal_url"], created_at=row["created_at"],
            updated_at=row["updated_at"], bytes_done=row["bytes_done"], bytes_total=row["bytes_total"],
            bytes_moved=row["bytes_moved"], error=row["error"], files=self.files(row["id"]),
        )

    # -- devices (paired devices and their pinned public keys) ----------------------------------

    def add_device(self, *, device_id: str, public_key: bytes, name: str, status: DeviceStatus,
                   signal_url: str | None = None) -> DeviceRecord:
        """Pin ``public_key`` as ``device_id``. A key pinned already keeps its id and ``paired_at``;
        its name and status become the given ones (so re-pairing a revoked device approves it only
        when the caller says so), and its signal URL too unless ``signal_url`` is None.

        Raises :class:`sqlite3.IntegrityError` if ``device_id`` names a different key.
        """
        key = bytes(public_key)
        self._db.execute(
            "INSERT INTO devices (device_id, public_key, name, status, paired_at, signal_url)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (public_key) DO UPDATE SET name = excluded.name, status = excluded.status,"
            " signal_url = COALESCE(excluded.signal_url, devices.signal_url)",
            (device_id, key, name, status.value, time.time(), signal_url),
        )
        return self.device_by_key(key)  # type: ignore[return-value]

    def get_device(self, device_id: str) -> DeviceRecord | None:
        row = self._db.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return self._device(row) if row else None

    def device_by_key(self, public_key: bytes) -> DeviceRecord | None:
        row = self._db.execute("SELECT * FROM devices WHERE public_key = ?", (bytes(public_key),)).fetchone()
        return self._device(row) if row else None

    def list_devices(self) -> list[DeviceRecord]:
        """Every device, revoked ones included, oldest pairing first."""
        return [self._device(r) for r in self._db.execute("SELECT * FROM devices ORDER BY paired_at, device_id")]

    def rename_device(self, device_id: str, name: str) -> bool:
        """False if there is no such device."""
        return self._db.execute("UPDATE devices SET name = ? WHERE device_id = ?", (name, device_id)).rowcount > 0

    def set_device_status(self, device_id: str, status: DeviceStatus) -> bool:
        """False if there is no such device."""
        cursor = self._db.execute("UPDATE devices SET status = ? WHERE device_id = ?", (status.value, device_id))
        return cursor.rowcount > 0

    def touch_device(self, device_id: str, now: float | None = None) -> None:
        """Record that the device was just seen (authenticated)."""
        self._db.execute("UPDATE devices SET last_seen = ? WHERE device_id = ?",
                         (time.time() if now is None else now, device_id))

    def replace_device_key(self, old_key: bytes, new_key: bytes) -> bool:
        """Pin ``new_key`` in place of ``old_key`` for the same device (a key rotation it proved), and
        remember ``old_key`` as retired. False if no device has ``old_key``, or another device
        already has ``new_key``."""
        record = self.device_by_key(bytes(old_key))
        if record is None or self.device_by_key(bytes(new_key)) is not None:
            return False
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("UPDATE devices SET public_key = ? WHERE public_key = ?", (bytes(new_key), bytes(old_key)))
            self._db.execute("INSERT OR REPLACE INTO retired_keys VALUES (?, ?, ?)",
                             (bytes(old_key), record.device_id, time.time()))
        return True

    def key_retired(self, public_key: bytes) -> bool:
        """Whether a device rotated away from ``public_key`` (it must never be accepted again)."""
        row = self._db.execute("SELECT 1 FROM retired_keys WHERE public_key = ?", (bytes(public_key),)).fetchone()
        return row is not None

    def remove_device(self, device_id: str) -> bool:
        """Forget the device and its key entirely. False if there is no such device."""
        return self._db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,)).rowcount > 0

    @staticmethod
    def _device(row: sqlite3.Row) -> DeviceRecord:
        return DeviceRecord(
            device_id=row["device_id"], public_key=bytes(row["public_key"]), name=row["name"],
            status=DeviceStatus(row["status"]), paired_at=row["paired_at"], last_seen=row["last_seen"],
            signal_url=row["signal_url"],
        )
