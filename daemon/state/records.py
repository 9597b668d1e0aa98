"""Immutable snapshots of what the state database holds; what the control API shows."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

__all__ = ["new_share_id", "Direction", "TransferState", "FileRecord", "ShareRecord", "TransferRecord", "DeviceStatus", "DeviceRecord"]


class Direction(enum.Enum):
    SEND = "send"
    RECEIVE = "receive"


class TransferState(enum.Enum):
    CONNECTING = "connecting"  # waiting for signaling / WebRTC
    ACTIVE = "active"  # bytes are moving
    RETRYING = "retrying"  # interrupted; will resume from durable offsets
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HELD = "held"  # received and verified from an unpaired device; waits for the owner's approval
    PAUSED = "paused"  # stopped by the owner; resuming continues from the durable offsets

    @property
    def finished(self) -> bool:
        return self in (TransferState.DONE, TransferState.FAILED, TransferState.CANCELLED)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRecord:
    """One file of a transfer or share: manifest entry plus receive progress."""

    index: int
    path: str
    size: int
    sha256: str
    offset: int = 0  # receive: bytes durable on disk; send: bytes acknowledged by the receiver
    final_path: str | None = None  # receive: where it landed, relative to the inbox


def new_share_id() -> str:
    """Return a fresh share id: 32 lower-case hex digits (128 random bits).

    Hex, not base64url: people type share ids as command-line arguments, and an id starting with
    ``-`` would be read as an option.
    """
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareRecord:
    """Files the daemon holds to send to whoever joins with the code (or resumes with the share id)."""

    share_id: str
    name: str
    host_key: str
    created_at: float
    expires_at: float
    files: tuple[FileRecord, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferRecord:
    """One transfer, either direction. ``share_id`` is the protocol's transfer id."""

    id: str
    direction: Direction
    state: TransferState
    share_id: str | None
    signal_url: str | None
    created_at: float
    updated_at: float
    bytes_done: int
    bytes_total: int
    bytes_moved: int  # payload bytes that crossed the wire, over every attempt (resume efficiency)
    error: str | None
    files: tuple[FileRecord, ...]


class DeviceStatus(enum.Enum):
    """Whether a paired device may connect: only ``APPROVED`` devices are trusted."""

    APPROVED = "approved"
    PENDING = "pending"  # paired, awaiting the owner's approval
    REVOKED = "revoked"  # kept (not forgotten) so that refusing it can be explained


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRecord:
    """One paired device: its pinned Ed25519 public key and what the owner calls it."""

    device_id: str
    public_key: bytes
    name: str
    status: DeviceStatus
    paired_at: float
    last_seen: float | None
    signal_url: str | None  # where its inbox address lives, if it told us
