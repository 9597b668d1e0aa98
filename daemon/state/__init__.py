"""Durable records in SQLite (shares, transfers, per-file offsets, paired devices) and immutable snapshots of them."""

from .db import StateDB as StateDB
from .records import FileRecord as FileRecord, ShareRecord as ShareRecord, TransferRecord as TransferRecord
from .records import Direction as Direction, TransferState as TransferState
from .records import DeviceRecord as DeviceRecord, DeviceStatus as DeviceStatus

__all__ = ["StateDB", "FileRecord", "ShareRecord", "TransferRecord", "Direction", "TransferState",
           "DeviceRecord", "DeviceStatus"]
