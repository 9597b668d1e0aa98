"""The one way the state stores get their SQLite connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["open_or_borrow"]


def open_or_borrow(db: sqlite3.Connection | Path | str, owner: str) -> tuple[sqlite3.Connection, bool]:
    """``(connection, owned)``: a path is opened (WAL, ``synchronous=NORMAL``, autocommit) and owned
    by the caller, who closes it; a connection is borrowed, and must be in autocommit mode
    (``isolation_level=None``, as :class:`StateDB` opens it) or ``ValueError`` names ``owner``."""
    if isinstance(db, sqlite3.Connection):
        if db.isolation_level is not None:
            raise ValueError(f"{owner} needs a connection in autocommit mode (isolation_level=None)")
        return db, False
    connection = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection, True
