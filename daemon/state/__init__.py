"""Durable records in SQLite (shares, transfers, per-file offsets) and immutable snapshots of them."""

from .db import StateDB as StateDB
from .records import FileRecord as FileRecord, ShareRecord as ShareRecord, TransferRecord as TransferRecord
from .records import Direction as Direction, TransferState as TransferState

__all__ = ["StateDB", "FileRecord", "ShareRecord", "TransferRecord", "Direction", "TransferState"]
