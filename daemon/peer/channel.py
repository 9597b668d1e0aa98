"""A trio view of one aiortc data channel: ``send`` with backpressure, bounded ``receive``.

Implements the ``MessageTransport`` contract the transfer drivers use: each ``send`` is one message,
each ``receive`` returns one whole message.
"""

from __future__ import annotations

import math

import trio
from aiortc import RTCDataChannel

from daemon.runtime.bridge import to_trio_soon

from .errors import PeerError

__all__ = ["DataChannelTransport"]

DEFAULT_MAX_MESSAGE = 65536  # what a peer that says nothing in its SDP accepts
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1 * 1024 * 1024


class DataChannelTransport:
    """Messages over an open ``RTCDataChannel``.

    ``max_message_size``: the largest message the remote accepts (from its SDP; set once the remote
    description is known). ``receive_limit`` bounds the bytes queued on our side: a peer that floods
    past it (ignoring the protocol's flow control) gets the channel closed and ``PeerError``.

    Create it the moment the ``RTCDataChannel`` exists (before it can deliver a message), from trio
    context or, with ``token``, from an asyncio callback: a message emitted before the handlers are
    attached would be lost.
    """

    def __init__(self, channel: RTCDataChannel, *, receive_limit: int,
                 token: trio.lowlevel.TrioToken | None = None) -> None:
        self._channel = channel
        self.max_message_size = DEFAULT_MAX_MESSAGE
        self.local_fingerprints = ""
        """Our DTLS certificate fingerprints as our SDP announced them (set once connected)."""
        self.remote_fingerprints = ""
        """The peer's DTLS certificate fingerprints as its SDP announced them (set once connected)."""
        self.route = "unknown"
        """How the connection goes, once connected: host, prflx, srflx or relay (the farthest
        of the selected pair's two candidate types)."""
        self.route_detail = "unknown"
        """The selected pair as ``local-type/remote-type``."""
        self._receive_limit = receive_limit
        self._queued_bytes = 0
        self._overflowed = False
        self._inbox_send, self._inbox = trio.open_memory_channel[bytes](math.inf)
        self._drained = trio.Event()
        self.bytes_sent = 0
        self.bytes_received = 0
        channel.bufferedAmountLowThreshold = LOW_WATER
        channel.on("message", to_trio_soon(self._on_message, token=token))
        channel.on("bufferedamountlow", to_trio_soon(self._on_drained, token=token))
        channel.on("close", to_trio_soon(self._on_close, token=token))
        if channel.readyState in ("closing", "closed"):
            self._inbox_send.close()

    def _on_message(self, message: bytes | str) -> None:
        if self._overflowed:
            return
        if isinstance(message, str):
            message = message.encode()
        self._queued_bytes += len(message)
        if self._queued_bytes > self._receive_limit:
            self._overflowed = True
            self._inbox_send.close()
            self._channel.close()
            return
        try:
            self._inbox_send.send_nowait(message)
        except trio.ClosedResourceError:
            pass

    def _on_drained(self) -> None:
        self._drained.set()

    def _on_close(self) -> None:
        self._inbox_send.close()
        self._drained.set()

    async def send(self, data: bytes) -> None:
        """Queue one message; waits while more than HIGH_WATER bytes are buffered.

        Raises PeerError if the channel is closed or the message is over ``max_message_size``.
        """
        if len(data) > self.max_message_size:
            raise PeerError(f"message of {len(data)} bytes exceeds the peer's limit {self.max_message_size}")
        while self._channel.bufferedAmount > HIGH_WATER and self._channel.readyState == "open":
            self._drained = trio.Event()
            await self._drained.wait()
        if self._channel.readyState != "open":
            raise PeerError("data channel closed")
        self._channel.send(data)
        self.bytes_sent += len(data)

    async def receive(self) -> bytes:
        """Next whole message. Raises trio.EndOfChannel when the channel closed, PeerError on overflow."""
        try:
            message = await self._inbox.receive()
        except trio.EndOfChannel:
            if self._overflowed:
                raise PeerError("peer ignored flow control; receive buffer limit exceeded") from None
            raise
        self._queued_bytes -= len(message)
        self.bytes_received += len(message)
        return message

    async def wait_flushed(self) -> None:
        """Wait until aiortc has handed every queued byte to SCTP (or the channel closed)."""
        while self._channel.bufferedAmount > 0 and self._channel.readyState == "open":
            await trio.sleep(0.01)

    @property
    def label(self) -> str:
        return self._channel.label

    @property
    def is_open(self) -> bool:
        return self._channel.readyState == "open"

    def close(self) -> None:
        self._channel.close()
