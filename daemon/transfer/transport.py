"""The seam between transfer drivers and whatever carries bytes (data channel now, TCP later)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["MessageTransport", "send_bytes"]


class MessageTransport(Protocol):
    """A reliable, ordered carrier of byte messages.

    ``max_message_size``: the largest message ``send`` accepts. ``receive`` returns the next message
    (any non-empty split of the peer's byte stream is fine: the protocol decoder is stream-based) and
    raises ``trio.EndOfChannel`` when the peer closed.
    """

    max_message_size: int

    async def send(self, data: bytes) -> None: ...

    async def receive(self) -> bytes: ...


async def send_bytes(transport: MessageTransport, data: bytes) -> None:
    """Send ``data``, split into messages no larger than the transport allows."""
    limit = transport.max_message_size
    view = memoryview(data)
    for start in range(0, len(view), limit):
        await transport.send(bytes(view[start : start + limit]))
