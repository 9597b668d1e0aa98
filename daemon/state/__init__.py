"""Durable records in SQLite (shares, transfers, per-file offsets, paired devices, the outbox queue) and
immutable snapshots of them."""

from .db import StateDB as StateDB
from .db import TransferChange as TransferChange, TransferObserver as TransferObserver, PlacedFile as PlacedFile
from .records import new_share_id as new_share_id
from .records import FileRecord as FileRecord, ShareRecord as ShareRecord, TransferRecord as TransferRecord
from .records import Direction as Direction, TransferState as TransferState
from .records import DeviceRecord as DeviceRecord, DeviceStatus as DeviceStatus
from .outbox import OutboxQueue as OutboxQueue, OutboxItem as OutboxItem, OutboxState as OutboxState
from .outbox import Disposition as Disposition, Enqueued as Enqueued

__all__ = ["new_share_id", "StateDB", "TransferChange", "TransferObserver", "PlacedFile", "FileRecord", "ShareRecord", "TransferRecord", "Direction", "TransferState",
           "DeviceRecord", "DeviceStatus", "OutboxQueue", "OutboxItem", "OutboxState", "Disposition", "Enqueued"]
