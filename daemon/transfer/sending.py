"""Drive a ``TransferSender`` over a transport, reading file bytes from storage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from daemon.crypto.sealing import SealingKey
from daemon.protocol import (
    Accepted, Acked, Cancelled, FileEntry, FileVerified, PeerFailed, ProtocolError, Rejected, RemoteProtocolError,
    TransferDone, TransferSender, data_payload_limit, error_reply,
)
from daemon.protocol.frames import sealed_payload_limit
from daemon.protocol.transfer_compression import Compression
from daemon.protocol.transfer_sealing import BAD_SEAL, SEALING_MISMATCH
from daemon.storage import SourceFile
from daemon.taskgroups import open_scoped

from .errors import SealingMismatch, TamperedData, TransferFailed, TransferInterrupted
from .transport import MessageTransport, send_bytes

__all__ = ["run_sender", "SendReport", "tell_peer", "peer_failure"]

log = logging.getLogger("doorstep.transfer")

# Called with (bytes acknowledged durable by the receiver, payload bytes put on the wire since last call).
SendReport = Callable[[int, int], None]


class _Sending:
    def __init__(self, transport: MessageTransport, sender: TransferSender,
                 open_source: Callable[[int], SourceFile], report: SendReport) -> None:
        self.transport = transport
        self.sender = sender
        self.open_source = open_source
        self.report = report
        self.sources: dict[int, SourceFile] = {}
        self.acked = 0
        self.unreported_wire = 0
        self.wake = trio.Event()
        self.done = False

    async def read_peer(self) -> None:
        while not self.done:
            try:
                data = await self.transport.receive()
            except trio.EndOfChannel:
                raise TransferInterrupted("the receiver closed the connection") from None
            self.sender.receive_data(data)
            while (event := self.sender.next_event()) is not None:
                self.handle(event)
            self.wake.set()

    def handle(self, event: object) -> None:
        match event:
            case Acked():
                self.acked = self.sender.statistics().acked
                self.report(self.acked, self.unreported_wire)
                self.unreported_wire = 0
            case Accepted() | FileVerified():
                pass
            case TransferDone():
                self.done = True
            case Rejected(reason=reason):
                raise TransferFailed(f"the receiver refused the transfer: {reason}")
            case Cancelled(reason=reason):
                raise TransferFailed(f"the receiver cancelled: {reason}")
            case PeerFailed(code=code, message=message):
                raise peer_failure("receiver", code, message)

    async def write_data(self) -> None:
        limit = sealed_payload_limit if self.sender.sealed else data_payload_limit
        payload = limit(self.transport.max_message_size)
        while not self.done:
            request = self.sender.next_chunk(payload)
            if request is None:
                self.wake = trio.Event()
                await self.wake.wait()
                continue
            if request.length == 0:  # a sealed empty file: only its FINAL chunk
                await self.transport.send(self.sender.send_chunk(request.file, request.offset, b""))
                continue
            source = self.sources.get(request.file)
            if source is None:
                self._close_sources()
                source = self.sources[request.file] = self.open_source(request.file)
            data = source.read_at(request.offset, request.length)
            if len(data) != request.length:
                raise TransferFailed(f"shared file {request.file} shrank while being sent")
            await self.transport.send(self.sender.send_chunk(request.file, request.offset, data))
            self.unreported_wire += len(data)

    def _close_sources(self) -> None:
        for source in self.sources.values():
            source.close()
        self.sources.clear()


async def run_sender(
    transport: MessageTransport,
    transfer_id: str,
    files: Sequence[FileEntry],
    open_source: Callable[[int], SourceFile],
    report: SendReport,
    *,
    seal_key: bytes | None = None,
    compression: Compression | None = None,
) -> None:
    """Send ``files`` until the receiver reports every one verified.

    ``open_source(index)`` opens a file's bytes. ``seal_key`` (32 bytes, the session's frame key):
    seal every DATA frame (app-layer encryption); the receiver must have the same key, ``None``
    sends plaintext and needs a receiver without one. Raises TransferInterrupted (retry may
    resume; TamperedData if the receiver could not open our frames) or TransferFailed (it will not
    succeed; SealingMismatch if one side seals and the other does not). A peer that breaks the
    protocol gets an ``error`` frame.

    ``compression``: a codec for this session only (a new ``ZstdCompression()`` per call), offered
    to the receiver; chunks that shrink go compressed when the receiver offers the same codec, and
    everything goes plain otherwise (not an error). Ignored with ``seal_key``. ``report`` counts
    file bytes either way.
    """
    sealing = None if seal_key is None else SealingKey(seal_key)
    sender = TransferSender(transfer_id, files, sealing=sealing, compression=compression)
    state = _Sending(transport, sender, open_source, report)
    try:
        await send_bytes(transport, sender.start())
        async with open_scoped() as nursery:
            nursery.start_soon(state.read_peer)
            await state.write_data()
            nursery.cancel_scope.cancel()
        _log_sent(sender)
    except ProtocolError as exc:
        await tell_peer(transport, exc)
        if exc.code == SEALING_MISMATCH:
            raise SealingMismatch(f"refused: {exc}") from exc
        raise TransferFailed(f"protocol violation: {exc}") from exc
    finally:
        state._close_sources()


def _log_sent(sender: TransferSender) -> None:
    stats = sender.statistics()
    if stats.sent:
        log.info("sent %d file bytes as %d bytes of frame payload (%.0f%%%s)", stats.sent, stats.wire,
                 100 * stats.wire / stats.sent, ", compressed" if stats.wire < stats.sent else "")


def peer_failure(peer: str, code: str, message: str) -> TransferInterrupted | TransferFailed:
    """The driver error for an ``error`` frame the peer (``"sender"``/``"receiver"``) sent."""
    text = f"the {peer} reported {code}: {message}"
    if code == SEALING_MISMATCH:
        return SealingMismatch(text)
    if code == BAD_SEAL:
        return TamperedData(text)
    return TransferInterrupted(text)


async def tell_peer(transport: MessageTransport, exc: ProtocolError) -> None:
    """Best effort: report a peer's protocol violation to it before closing."""
    if not isinstance(exc, RemoteProtocolError):
        return
    data = error_reply(exc)
    with trio.move_on_after(2):
        try:
            await send_bytes(transport, data)
        except Exception:  # the transport may already be gone; the error is being raised anyway
            pass
