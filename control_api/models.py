"""The control API's JSON bodies, as typed structs (so the OpenAPI schema says exactly what is sent),
and the functions that build them from the facade's snapshots. The event stream renders its
payloads with the same functions, so an event's ``data`` is the same JSON a GET answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct

from daemon import ApplianceAPI, ShareCreated, TransferRecord, TransferState
from daemon.facade import Arrival, DeviceChange, Event, InboxFile, ShareChange, TransferStatus
from daemon.state import DeviceStatus, Disposition, OutboxItem, OutboxState

__all__ = [
    "TransferOut", "TransferFileOut", "ShareOut", "ShareFileOut", "ShareEventOut", "DeviceOut", "DeviceGoneOut",
    "PairOffer", "HealthOut", "InboxFileOut", "OutboxItemOut", "ArrivalOut", "TextShareRequest", "SettingsPatch",
    "SettingsOut", "transfer_out", "share_out", "device_out", "inbox_file_out", "outbox_item_out", "event_data",
    "TRANSFER_STATES",
]

TRANSFER_STATES = tuple(state.value for state in TransferState)
TransferStateName = Literal[TRANSFER_STATES]  # type: ignore[valid-type]
DeviceStatusName = Literal[tuple(status.value for status in DeviceStatus)]  # type: ignore[valid-type]
OutboxStateName = Literal[tuple(state.value for state in OutboxState)]  # type: ignore[valid-type]
DispositionName = Literal[tuple(d.value for d in Disposition)]  # type: ignore[valid-type]


class TransferFileOut(Struct):
    path: str
    """The name the sender offered ('/'-separated)."""
    size: int
    sha256: str
    offset: int
    """Receiving: bytes durable on disk; sending: bytes the receiver acknowledged."""
    final_path: str | None
    """Receiving: where the file landed, relative to the inbox (once verified)."""


class TransferOut(Struct):
    id: str
    direction: Literal["send", "receive"]
    state: TransferStateName
    share_id: str | None
    """The share (the protocol's transfer id) this transfer moves."""
    device: str | None
    """The paired device at the other end, for pushes."""
    bytes_done: int
    bytes_total: int
    bytes_moved: int
    """Payload bytes that crossed the wire over every attempt."""
    speed: float
    """Bytes per second over the last few seconds; 0 when idle."""
    eta: float | None
    """Seconds to go at that speed; null unless bytes are moving."""
    error: str | None
    created_at: float
    updated_at: float
    files: list[TransferFileOut]
    route: str | None = None
    """How its latest session moved bytes: ``direct`` (TCP between native peers) or the data
    channel's ICE route (``host``, ``srflx``, ``prflx``, ``relay``); null before any session
    chose a path (or for uploads)."""


class ShareFileOut(Struct):
    path: str
    size: int
    sha256: str


class ShareOut(Struct):
    share_id: str
    name: str
    code: str | None
    """The 6-digit code while it is valid."""
    expires_at: float | None
    """When the code expires."""
    url: str | None
    """The share link (``<http>/r/<code>``) while the code is valid."""
    qr: str | None
    """The link as an SVG QR code (``data:`` URI)."""
    signal: str
    """The signaling URL receivers connect to."""
    size: int
    files: list[ShareFileOut]


class ShareEventOut(ShareOut):
    change: Literal["created", "retired"]


class PresenceOut(Struct):
    online: bool | None
    """True or False once checked; null when never checked or the answer is stale."""
    checked_at: float | None
    error: str | None


class DeviceOut(Struct, omit_defaults=True):
    id: str
    name: str
    status: DeviceStatusName
    paired_at: float
    last_seen: float | None
    signal_url: str | None
    public_key: str
    """Ed25519 public key, base64url without padding."""
    fingerprint: list[str]
    safety_words: list[str] | None = None
    """Words both devices show for this pair, to compare."""
    presence: PresenceOut | None = None
    """Whether the device is online (its inbox address hosted on its signaling server)."""


class DeviceGoneOut(Struct):
    id: str
    status: Literal["forgotten"]


class PairOffer(Struct):
    code: str
    expires_at: float
    signal: str
    device_id: str


class HealthOut(Struct):
    status: str
    version: str
    signal: str


class IdentityOut(Struct):
    """This appliance as a paired device sees it."""

    device_id: str
    """Stable: named after the first key, whatever rotations followed."""
    name: str
    public_key: str
    """The current Ed25519 key, base64url."""
    fingerprint: list[str]
    rotations: int


class InboxFileOut(Struct):
    path: str
    """Relative to the inbox, '/'-separated."""
    size: int
    mtime: float
    transfer: str | None
    """The transfer that brought it, when the journal placed it."""
    sha256: str | None
    """Its SHA-256 as received (while its size is unchanged)."""


class OutboxItemOut(Struct):
    id: int
    device: str
    folder: str
    """The device's folder in the outbox."""
    path: str
    """The file, relative to the outbox root (``<folder>/<path in the folder>``)."""
    size: int
    state: OutboxStateName
    attempts: int
    next_attempt_at: float | None
    """When a queued file is tried next; null otherwise."""
    error: str | None
    disposition: DispositionName | None
    """After it was sent: kept, moved (to ``sent/``), deleted, changed or gone."""
    share_id: str | None
    created_at: float
    updated_at: float
    priority: Literal["low", "normal", "high"] = "normal"
    """Waiting files of a device go highest priority first, then oldest first."""


class OutboxPriorityIn(Struct, forbid_unknown_fields=True):
    priority: Literal["low", "normal", "high"]


class ArrivalOut(Struct):
    transfer: str
    path: str
    size: int
    sha256: str


TextName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class TextShareRequest(Struct, forbid_unknown_fields=True):
    text: str
    """At most 1 MiB once encoded as UTF-8."""
    name: TextName = "note.txt"
    """The file's name; ``.txt`` is added if missing."""


Seconds = Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)]


class SettingsPatch(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Only these keys may change while the daemon runs; give at least one."""

    inbox_unpaired: Literal["hold", "refuse"] | None = msgspec.field(default=None, name="inbox.unpaired")
    inbox_per_device: bool | None = msgspec.field(default=None, name="inbox.per_device")
    transfer_encrypt: bool | None = msgspec.field(default=None, name="transfer.encrypt")
    outbox_after_send: Literal["move", "delete", "keep"] | None = msgspec.field(default=None, name="outbox.after_send")
    share_ttl: Seconds | None = msgspec.field(default=None, name="share.ttl")

    def changes(self) -> dict[str, Any]:
        """The keys given (dotted names) and their values."""
        out = {}
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.encode_name] = value
        return out


SettingsOut = dict[str, str | bool | float | list[str] | None]
"""Every configuration key (dotted, as in the TOML file) with its effective value."""


# -- building bodies ------------------------------------------------------------------------------


def transfer_out(status: TransferStatus) -> TransferOut:
    record: TransferRecord = status.record
    origin = record.signal_url or ""
    return TransferOut(
        id=record.id, direction=record.direction.value, state=record.state.value, share_id=record.share_id,
        device=origin.removeprefix("push:") if origin.startswith("push:") else None,
        bytes_done=record.bytes_done, bytes_total=record.bytes_total, bytes_moved=record.bytes_moved,
        speed=status.speed, eta=status.eta, error=record.error, created_at=record.created_at,
        updated_at=record.updated_at,
        files=[TransferFileOut(path=f.path, size=f.size, sha256=f.sha256, offset=f.offset, final_path=f.final_path)
               for f in record.files],
        route=status.route,
    )


def _share_fields(share: ShareCreated) -> dict[str, Any]:
    return dict(share_id=share.share_id, name=share.name, code=share.code, expires_at=share.expires_at, url=share.url,
                qr=share.qr, signal=share.signal, size=share.size,
                files=[ShareFileOut(path=f["path"], size=f["size"], sha256=f["sha256"]) for f in share.files])


def share_out(share: ShareCreated) -> ShareOut:
    return ShareOut(**_share_fields(share))


def device_out(description: dict[str, Any]) -> DeviceOut:
    """From :meth:`DeviceBookAPI.describe`."""
    return msgspec.convert(description, DeviceOut)


def inbox_file_out(entry: InboxFile) -> InboxFileOut:
    return InboxFileOut(path=entry.path, size=entry.size, mtime=entry.mtime, transfer=entry.transfer_id,
                        sha256=entry.sha256)


def outbox_item_out(item: OutboxItem) -> OutboxItemOut:
    return OutboxItemOut(
        id=item.id, device=item.device_id, folder=item.folder, path=item.relpath, size=item.size,
        state=item.state.value, attempts=item.attempts,
        next_attempt_at=item.next_attempt_at if item.state is OutboxState.QUEUED else None, error=item.error,
        disposition=item.disposition.value if item.disposition is not None else None, share_id=item.share_id,
        created_at=item.created_at, updated_at=item.updated_at,
        priority={-1: "low", 0: "normal", 1: "high"}[item.priority],
    )


def event_data(appliance: ApplianceAPI, event: Event) -> bytes:
    """The JSON ``data`` of an event (what the matching GET would answer)."""
    payload = event.payload
    body: Struct
    if isinstance(payload, TransferStatus):
        body = transfer_out(payload)
    elif isinstance(payload, Arrival):
        body = ArrivalOut(transfer=payload.transfer_id, path=payload.path, size=payload.size, sha256=payload.sha256)
    elif isinstance(payload, DeviceChange):
        body = (device_out(appliance.devices.describe(payload.record)) if payload.record is not None
                else DeviceGoneOut(id=payload.device_id, status="forgotten"))
    elif isinstance(payload, ShareChange):
        body = ShareEventOut(**_share_fields(payload.share), change=payload.change)
    else:
        raise TypeError(f"no JSON for a {type(payload).__name__} event")
    return msgspec.json.encode(body)
