"""Libraries: folders this device publishes to chosen paired devices, their catalogues, and (on
the browsing side) the index of received files by SHA-256.

Tables of the state database (created here if missing):

- ``libraries``: name, folder, the device ids it is published to.
- ``library_files``: the catalogue, one row per file: path (relative, '/'-joined), size, mtime
  (ns), inode and SHA-256. The row is also the hash cache: a file whose (size, mtime, inode) is
  unchanged keeps its hash, and a file renamed within the library is found by that version
  (:meth:`LibraryStore.find_version`), so neither is read again.
- ``library_have``: files of the inbox whose SHA-256 the browsing side checked, by inbox path
  and version, so that deciding what not to pull again reads each file once.

Calls are synchronous and short, like :class:`~daemon.state.db.StateDB`'s.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .connection import open_or_borrow

__all__ = ["LibraryRecord", "CatalogueEntry", "HaveRecord", "LibraryStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS libraries (
    name       TEXT PRIMARY KEY,
    path       TEXT NOT NULL,
    devices    TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS library_files (
    library    TEXT NOT NULL,
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (library, path)
);
CREATE INDEX IF NOT EXISTS library_files_by_version ON library_files(library, size, mtime_ns, inode);
CREATE TABLE IF NOT EXISTS library_have (
    inbox_path TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    inode      INTEGER NOT NULL,
    sha256     TEXT NOT NULL
);
"""


def _to_sql_int(value: int) -> int:
    """SQLite integers are signed 64-bit; inode numbers may use all 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _from_sql_int(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


@dataclass(frozen=True, slots=True, kw_only=True)
class LibraryRecord:
    name: str
    path: str
    """The published folder (absolute)."""
    devices: tuple[str, ...]
    """Ids of the paired devices that may browse and pull it."""
    created_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogueEntry:
    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True, slots=True, kw_only=True)
class HaveRecord:
    inbox_path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str


class LibraryStore:
    """Libraries and catalogues over a SQLite database: ``db`` is a path (a connection is opened
    and owned) or a ``sqlite3.Connection`` in autocommit mode, borrowed."""

    def __init__(self, db: sqlite3.Connection | Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self._db, self._owned = open_or_borrow(db, "LibraryStore")
        self._db.executescript(SCHEMA)
        self._clock = clock

    def close(self) -> None:
        if self._owned:
            self._db.close()

    # -- libraries --------------------------------------------------------------------------------

    def put_library(self, name: str, path: str, devices: Iterable[str]) -> LibraryRecord:
        """Publish (or re-publish) ``name``. A library whose folder changed loses its catalogue."""
        known = self.get_library(name)
        devices = tuple(dict.fromkeys(devices))
        created = known.created_at if known is not None else self._clock()
        with self._db:
            self._db.execute("BEGIN")
            if known is not None and known.path != path:
                self._db.execute("DELETE FROM library_files WHERE library = ?", (name,))
            self._db.execute("INSERT OR REPLACE INTO libraries VALUES (?, ?, ?, ?)",
                             (name, path, json.dumps(list(devices)), created))
        return LibraryRecord(name=name, path=path, devices=devices, created_at=created)

    def remove_library(self, name: str) -> bool:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM library_files WHERE library = ?", (name,))
            return self._db.execute("DELETE FROM libraries WHERE name = ?", (name,)).rowcount == 1

    def get_library(self, name: str) -> LibraryRecord | None:
        row = self._db.execute("SELECT name, path, devices, created_at FROM libraries WHERE name = ?",
                               (name,)).fetchone()
        return self._library(row) if row else None

    def list_libraries(self) -> list[LibraryRecord]:
        rows = self._db.execute("SELECT name, path, devices, created_at FROM libraries ORDER BY name")
        return [self._library(r) for r in rows]

    @staticmethod
    def _library(row: tuple[object, ...]) -> LibraryRecord:
        name, path, devices, created_at = row
        return LibraryRecord(name=name, path=path, devices=tuple(json.loads(devices)),  # type: ignore[arg-type]
                             created_at=created_at)  # type: ignore[arg-type]

    # -- catalogue --------------------------------------------------------------------------------

    def totals(self, library: str) -> tuple[int, int]:
        """(files, bytes) in the catalogue of ``library``."""
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM library_files WHERE library = ?",
                               (library,)).fetchone()
        return int(row[0]), int(row[1])

    def entry(self, library: str, path: str) -> CatalogueEntry | None:
        row = self._db.execute("SELECT path, size, mtime_ns, inode, sha256 FROM library_files"
                               " WHERE library = ? AND path = ?", (library, path)).fetchone()
        return self._entry(row) if row else None

    def entries(self, library: str, *, prefix: str = "", after: str = "", limit: int | None = None) -> list[CatalogueEntry]:
        """Entries at or below ``prefix`` ('' = all) whose path sorts after ``after``, by path."""
        query = "SELECT path, size, mtime_ns, inode, sha256 FROM library_files WHERE library = ? AND path > ?"
        args: list[object] = [library, after]
        if prefix:  # the prefix itself, or paths in [prefix + '/', prefix + '0'): '0' follows '/'
            query += " AND (path = ? OR (path >= ? AND path < ?))"
            args += [prefix, prefix + "/", prefix + "0"]
        query += " ORDER BY path"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        return [self._entry(r) for r in self._db.execute(query, args)]

    def versions(self, library: str) -> dict[str, tuple[int, int, int]]:
        """path -> (size, mtime_ns, inode) of every entry."""
        rows = self._db.execute("SELECT path, size, mtime_ns, inode FROM library_files WHERE library = ?", (library,))
        return {r[0]: (r[1], r[2], _from_sql_int(r[3])) for r in rows}

    def find_version(self, library: str, size: int, mtime_ns: int, inode: int) -> str | None:
        """The SHA-256 of an entry with exactly this version (a file renamed within the library)."""
        row = self._db.execute("SELECT sha256 FROM library_files WHERE library = ? AND size = ? AND mtime_ns = ?"
                               " AND inode = ? LIMIT 1", (library, size, mtime_ns, _to_sql_int(inode))).fetchone()
        return row[0] if row else None

    def put_entry(self, library: str, entry: CatalogueEntry) -> None:
        self._db.execute("INSERT OR REPLACE INTO library_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (library, entry.path, entry.size, entry.mtime_ns, _to_sql_int(entry.inode), entry.sha256,
                          self._clock()))

    def remove_entries(self, library: str, paths: Iterable[str]) -> int:
        """Forget ``paths`` (and, for a folder, everything below it). Returns how many rows went."""
        removed = 0
        with self._db:
            self._db.execute("BEGIN")
            for path in paths:
                removed += self._db.execute(
                    "DELETE FROM library_files WHERE library = ? AND (path = ? OR (path >= ? AND path < ?))",
                    (library, path, path + "/", path + "0")).rowcount
        return removed

    @staticmethod
    def _entry(row: tuple[object, ...]) -> CatalogueEntry:
        path, size, mtime_ns, inode, sha256 = row
        return CatalogueEntry(path=path, size=size, mtime_ns=mtime_ns, inode=_from_sql_int(inode),  # type: ignore[arg-type]
                              sha256=sha256)  # type: ignore[arg-type]

    # -- what the browsing side holds -------------------------------------------------------------

    def have(self, inbox_path: str) -> HaveRecord | None:
        row = self._db.execute("SELECT inbox_path, size, mtime_ns, inode, sha256 FROM library_have"
                               " WHERE inbox_path = ?", (inbox_path,)).fetchone()
        if row is None:
            return None
        return HaveRecord(inbox_path=row[0], size=row[1], mtime_ns=row[2], inode=_from_sql_int(row[3]), sha256=row[4])

    def put_have(self, record: HaveRecord) -> None:
        self._db.execute("INSERT OR REPLACE INTO library_have VALUES (?, ?, ?, ?, ?)",
                         (record.inbox_path, record.size, record.mtime_ns, _to_sql_int(record.inode), record.sha256))

    def forget_have(self, inbox_path: str) -> None:
        self._db.execute("DELETE FROM library_have WHERE inbox_path = ?", (inbox_path,))
