"""What the daemon offers its clients (control API, web UI): a protocol plus the values it speaks.

The control API depends on this module and on ``daemon.state`` snapshots only.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.state import DeviceRecord, TransferRecord

__all__ = ["ApplianceAPI", "ApplianceError", "ShareCreated", "Upload", "DeviceBookAPI", "UnknownDevice",
           "BadDeviceName"]


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

    async def create_share(self, uploads: Sequence[Upload], *, name: str) -> ShareCreated: ...

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Named numeric statistics by section (``transfers``, ``shares``, ``signaling``)."""
        ...

    def shares(self) -> list[ShareCreated]: ...

    def transfers(self) -> list[TransferRecord]: ...

    def transfer(self, transfer_id: str) -> TransferRecord | None: ...

    async def receive(self, code: str, *, signal_url: str | None = None) -> TransferRecord: ...

    async def offer_pairing(self) -> dict[str, Any]:
        """Host a one-time pairing offer: ``{code, expires_at, signal, device_id}``."""
        ...

    async def pair_with(self, code: str, signal_url: str) -> dict[str, Any]:
        """Join another appliance's pairing offer; pins its key; returns its description."""
        ...

    async def push_share(self, share_id: str, device_id: str) -> str:
        """Send a share to a paired device's inbox without a code; returns the transfer id."""
        ...
