"""What the daemon offers its clients (control API, web UI): a protocol plus the values it speaks.

The control API depends on this module and on ``daemon.state`` snapshots only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.state import TransferRecord

__all__ = ["ApplianceAPI", "ApplianceError", "ShareCreated", "Upload"]


class ApplianceError(Exception):
    """A request the appliance refuses; ``code`` is machine-readable, ``status`` the HTTP status to use."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


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


class ApplianceAPI(Protocol):
    def health(self) -> dict[str, Any]: ...

    async def create_share(self, uploads: Sequence[Upload], *, name: str) -> ShareCreated: ...

    async def stats(self) -> dict[str, dict[str, Any]]:
        """Named numeric statistics by section (``transfers``, ``shares``, ``signaling``)."""
        ...

    def shares(self) -> list[ShareCreated]: ...

    def transfers(self) -> list[TransferRecord]: ...

    def transfer(self, transfer_id: str) -> TransferRecord | None: ...

    async def receive(self, code: str, *, signal_url: str | None = None) -> TransferRecord: ...
