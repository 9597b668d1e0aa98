"""What the daemon offers its clients (control API, web UI): a protocol plus the values it speaks.

The control API depends on this module and on ``daemon.state`` snapshots only.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.state import DeviceRecord, Direction, OutboxItem, TransferRecord, TransferState

__all__ = ["ApplianceAPI", "ApplianceError", "ShareCreated", "Upload", "DeviceBookAPI", "UnknownDevice",
           "BadDeviceName", "TransferStatus", "Arrival", "DeviceChange", "ShareChange", "Event", "EventStreamLost",
           "EventSubscription", "InboxFile", "InboxDownload", "SettingValue"]


class ApplianceError(Exception):
    """A request the appliance refuses; ``code`` is machine-readable, ``status`` the HTTP status to use."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class UnknownDevice(ApplianceError, KeyError):
    """No paired device has this id (HTTP 404)."""

    def __init__(self, device_id: str) -> None:
        super().__init__(f"no paired device {device_id[:64]!r}", code="unknown_device", status=404)
        self.device_id = device_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class BadDeviceName(ApplianceError, ValueError):
    """A device name the owner typed is unusable (HTTP 400); the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="bad_name", status=400)


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """One file arriving from a client: its relative path and its bytes as they stream in."""

    path: str
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareCreated:
    """The answer to a new share: what a person needs to hand to the receiver."""

    share_id: str
    name: str
    code: str | None
    expires_at: float | None
    url: str | None
    qr: str | None
    signal: str
    size: int
    files: list[dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferStatus:
    """A transfer as the journal has it, plus how fast it moves now."""

    record: TransferRecord
    speed: float
    """Bytes per second over the last few seconds; 0.0 when idle."""
    eta: float | None
    """Seconds until done at that speed; None unless bytes are moving."""
    route: str | None = None
    """How its latest session moved bytes, as far as this run of the daemon knows: ``direct``
    (the direct TCP path) or the data channel's ICE route (``host``, ``srflx``, ``prflx``,
    ``relay``); None before any session chose a path."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Arrival:
    """A file that landed in the inbox, verified: ``path`` is relative to the inbox."""

    transfer_id: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceChange:
    """A device was paired, renamed, approved or revoked (``record``), or forgotten (None)."""

    device_id: str
    record: DeviceRecord | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareChange:
    """A share was created or retired (expired, sent, revoked)."""

    change: str  # "created" | "retired"
    share: ShareCreated


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event of the daemon's event stream: ``kind`` is ``transfer`` (payload
    :class:`TransferStatus`), ``arrival`` (:class:`Arrival`), ``device`` (:class:`DeviceChange`) or
    ``share`` (:class:`ShareChange`); ``id`` increases by one per event."""

    id: int
    kind: str
    payload: Any


class EventStreamLost(Exception):
    """The event stream of this listener ended (it fell behind); reconnect with the last id seen."""


class EventSubscription(Protocol):
    async def receive(self, timeout: float) -> Event | None:
        """The next event; None if none came within ``timeout`` seconds. Raises
        :class:`EventStreamLost` when the stream ended."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxFile:
    """A file in the inbox: where (relative to it), size, mtime; and, when the journal placed it
    there, the transfer that brought it and its SHA-256 (None for files put there otherwise)."""

    path: str
    size: int
    mtime: float
    transfer_id: str | None
    sha256: str | None


class InboxDownload(Protocol):
    """An inbox file opened for reading; ``close()`` it."""

    path: str
    size: int
    mtime: float

    async def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer only at the end)."""
        ...

    def close(self) -> None: ...


SettingValue = str | bool | float | int


class DeviceBookAPI(Protocol):
    """The paired devices (:class:`daemon.runtime.devices.DeviceBook`). Methods taking a ``device_id``
    raise :class:`UnknownDevice` for an id nobody paired; names raise :class:`BadDeviceName`."""

    def list(self) -> builtins.list[DeviceRecord]: ...

    def get(self, device_id: str) -> DeviceRecord: ...

    def rename(self, device_id: str, name: str) -> DeviceRecord: ...

    def approve(self, device_id: str) -> DeviceRecord: ...

    def revoke(self, device_id: str) -> DeviceRecord: ...

    def forget(self, device_id: str) -> None: ...

    def describe(self, record: DeviceRecord) -> dict[str, Any]:
        """JSON-safe view: id, name, status, times, signal_url, public_key, fingerprint, safety_words."""
        ...


class ApplianceAPI(Protocol):
    @property
    def devices(self) -> DeviceBookAPI: ...

    def health(self) -> dict[str, Any]: ...

    def identity_info(self) -> dict[str, Any]:
        """This install's device: ``device_id`` (stable), ``name``, ``public_key`` (current,
        base64url), ``fingerprint`` (words), ``rotations`` (how many times the key was rotated)."""
        ...

    def rotate_identity(self) -> dict[str, Any]:
        """Rotate the device key (paired devices follow it); the new :meth:`identity_info`.
        Raises ApplianceError ``not_supported`` (501) or ``rotation_failed`` (500)."""
        ...

    async def create_share(self, uploads: Sequence[Upload], *, name: str) -> ShareCreated: ...

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Named numeric statistics by section (``transfers``, ``shares``, ``signaling``)."""
        ...

    def shares(self) -> list[ShareCreated]: ...

    async def create_text_share(self, text: str, *, name: str) -> ShareCreated:
        """Share ``text`` as one UTF-8 file ``name`` (a .txt). Raises ApplianceError: ``bad_name``,
        ``too_large`` (413) over 1 MiB."""
        ...

    async def revoke_share(self, share_id: str) -> None:
        """Stop hosting the share, delete its files; its transfer ends cancelled. Raises
        ApplianceError ``unknown_share`` (404)."""
        ...

    def share_qr_svg(self, share_id: str) -> str:
        """The share link as an SVG QR code. Raises ApplianceError ``unknown_share`` (404) for an
        unknown share or one without a live code."""
        ...

    def transfers(self, *, states: frozenset[TransferState] | None = None, direction: Direction | None = None,
                  limit: int | None = None) -> list[TransferStatus]:
        """Transfers, oldest first, filtered; ``limit`` keeps the newest ones."""
        ...

    def transfer(self, transfer_id: str) -> TransferStatus:
        """Raises ApplianceError ``unknown_transfer`` (404)."""
        ...

    async def cancel_transfer(self, transfer_id: str) -> TransferStatus:
        """Stop a transfer that is not finished (state ``cancelled``). Raises ApplianceError
        ``unknown_transfer`` (404), ``finished`` (409)."""
        ...

    async def retry_transfer(self, transfer_id: str) -> TransferStatus:
        """Start a failed or cancelled transfer again from its durable offsets: a receive fetched
        by share id, or a push. Raises ApplianceError ``unknown_transfer`` (404),
        ``not_retryable`` (409)."""
        ...

    async def pause_transfer(self, transfer_id: str) -> TransferStatus:
        """Stop moving bytes, keep everything for a resume (state ``paused``). Raises ApplianceError
        ``unknown_transfer`` (404), ``not_pausable`` (409: finished, held, an upload, a push we receive)."""
        ...

    async def resume_transfer(self, transfer_id: str) -> TransferStatus:
        """Continue a paused transfer from its durable offsets. Raises ApplianceError
        ``unknown_transfer`` (404), ``not_paused`` (409)."""
        ...

    async def receive(self, code: str, *, signal_url: str | None = None) -> TransferStatus: ...

    def subscribe(self, last_event_id: int | None = None) -> AbstractContextManager[EventSubscription]:
        """Listen to the event stream while the ``with`` block lasts; with ``last_event_id``, the
        buffered events after it come first."""
        ...

    async def inbox_files(self, prefix: str = "") -> list[InboxFile]:
        """Files in the inbox whose path starts with ``prefix``, sorted by path."""
        ...

    async def open_inbox_file(self, path: str) -> InboxDownload:
        """Raises ApplianceError ``bad_path`` (400), ``not_found`` (404)."""
        ...

    async def upload_to_inbox(self, upload: Upload, *, size: int, sha256: str | None = None) -> TransferStatus:
        """Store one file a client sends (``size`` bytes; ``sha256``: the client's digest, optional)
        in the inbox, verified, under a name that overwrites nothing; journaled as a receive
        transfer. Returns it once done. Raises ApplianceError ``bad_name``, ``bad_digest``,
        ``incomplete``, ``digest_mismatch`` (400), ``cancelled`` (409), ``too_large`` (413),
        ``insufficient_storage`` (507). See :mod:`daemon.runtime.uploads`."""
        ...

    async def delete_inbox_file(self, path: str) -> None:
        """Raises ApplianceError ``bad_path`` (400), ``not_found`` (404)."""
        ...

    def outbox_queue(self) -> list[OutboxItem]:
        """The outbox queue, oldest first (empty without an outbox)."""
        ...

    def set_outbox_priority(self, item_id: int, priority: str) -> OutboxItem:
        """``priority``: ``low``, ``normal`` or ``high``. Raises ApplianceError ``unknown_item`` (404)."""
        ...

    def settings(self) -> dict[str, Any]:
        """The effective configuration by dotted key, secrets and paths to secrets left out."""
        ...

    async def update_settings(self, changes: Mapping[str, SettingValue]) -> dict[str, Any]:
        """Apply and persist changes to the keys that may change live; returns :meth:`settings`.
        Raises ApplianceError ``bad_setting`` (400)."""
        ...

    async def offer_pairing(self) -> dict[str, Any]:
        """Host a one-time pairing offer: ``{code, expires_at, signal, device_id}``."""
        ...

    async def pair_with(self, code: str, signal_url: str) -> dict[str, Any]:
        """Join another appliance's pairing offer; pins its key; returns its description."""
        ...

    async def push_share(self, share_id: str, device_id: str) -> str:
        """Send a share to a paired device's inbox without a code; returns the transfer id."""
        ...
