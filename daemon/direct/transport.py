"""``DirectTransport``: the transfer protocol's ``MessageTransport`` over one proven TCP connection.

Every ``send`` is one sealed record (see :mod:`.records`), written with one ``sendmsg`` (length
prefix and ciphertext as two buffers: no join); every ``receive`` reads one record into a buffer of
exactly its size and returns its plaintext. The protocol decoder above is stream-based, so record
boundaries carry no meaning beyond bounding memory.

Errors: a connection that breaks (reset, EOF before the FINAL record, a record that does not open)
raises :class:`DirectPathBroken`, a ``TransferInterrupted``: the attempt fails like one over a
broken data channel, and the retry resumes from the durable offsets. A clean close (the peer's
FINAL record) makes ``receive`` raise ``trio.EndOfChannel``.
"""

from __future__ import annotations

import socket

import trio

from daemon.transfer.errors import TransferInterrupted

from .records import MAX_RECORD, TAG_SIZE, RecordError, RecordReader, RecordSealer

__all__ = ["DirectTransport", "DirectPathBroken", "tune_socket", "SOCKET_BUFFER", "LINGER"]

SOCKET_BUFFER: int | None = None
"""SO_SNDBUF/SO_RCVBUF to set, or None to keep Linux's autotuning (measured best on loopback)."""
THREAD_CRYPTO = 256 * 1024
"""Records at least this large are sealed and opened in a worker thread (libsodium releases the
GIL): the event loop reads, writes and hashes meanwhile."""
LINGER = 2.0
"""Seconds :meth:`DirectTransport.aclose` waits for the peer's FINAL record."""
_KEEPALIVE = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
_USER_TIMEOUT_MS = 30_000


class DirectPathBroken(TransferInterrupted):
    """The direct TCP connection broke, was cut short, or carried a record that did not open."""


def tune_socket(sock: trio.socket.SocketType, buffer: int | None = SOCKET_BUFFER) -> None:
    """No Nagle; keepalives and a user timeout so that a vanished peer is noticed within ~30 s;
    optional fixed buffer sizes. Options the platform lacks are skipped."""
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    options += [(socket.IPPROTO_TCP, getattr(socket, name), value) for name, value in _KEEPALIVE.items()
                if hasattr(socket, name)]
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, _USER_TIMEOUT_MS))
    if buffer is not None:
        options += [(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer), (socket.SOL_SOCKET, socket.SO_RCVBUF, buffer)]
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            pass


class DirectTransport:
    """Sealed records over ``stream``, sending under ``send_key`` and opening under ``receive_key``
    (the two per-direction keys of :meth:`ProofHandshake.stream_keys`).

    ``max_message_size``: :data:`MAX_RECORD`. ``bytes_sent``/``bytes_received`` count message
    (plaintext) bytes. ``route`` is ``"direct"``; ``route_detail`` names the two TCP endpoints.
    One task may send while another receives; :meth:`aclose` closes gracefully, :meth:`close` at once.
    """

    max_message_size = MAX_RECORD
    route = "direct"

    def __init__(self, stream: trio.SocketStream, *, send_key: bytes, receive_key: bytes) -> None:
        self._stream = stream
        self._sock = stream.socket
        tune_socket(self._sock)
        self._sealer = RecordSealer(send_key)
        self._reader = RecordReader(receive_key)
        self._pending_header: bytes | None = self._sealer.header
        self._send_lock = trio.Lock()
        self._gather = memoryview(bytearray(MAX_RECORD + TAG_SIZE))
        self._closed = False
        self.bytes_sent = 0
        self.bytes_received = 0
        local, remote = _endpoint(self._sock.getsockname()), _endpoint(self._sock.getpeername())
        self.route_detail = f"tcp {local} -> {remote}"

    # -- MessageTransport ------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Seal ``data`` as one record and write it. Raises ``ValueError`` over
        ``max_message_size``, :class:`DirectPathBroken` when the connection is gone."""
        if len(data) > self.max_message_size:
            raise ValueError(f"message of {len(data)} bytes exceeds {self.max_message_size}")
        async with self._send_lock:
            if self._closed or self._sealer.finished:
                raise DirectPathBroken("the direct connection is closed")
            if len(data) >= THREAD_CRYPTO:
                sealed = await trio.to_thread.run_sync(self._sealer.seal, data)
            else:
                sealed = self._sealer.seal(data)
            await self._write(*sealed)
        self.bytes_sent += len(data)

    async def receive(self) -> bytes:
        """The next non-empty record's plaintext. Raises ``trio.EndOfChannel`` after the peer's
        FINAL record, :class:`DirectPathBroken` if the stream broke or a record did not open."""
        while True:
            needed = self._reader.bytes_needed
            if needed == 0:
                raise trio.EndOfChannel
            data = await self._read_exactly(needed)
            try:
                if needed >= THREAD_CRYPTO:
                    record = await trio.to_thread.run_sync(self._reader.receive, data)
                else:
                    record = self._reader.receive(data)
            except RecordError as exc:
                raise DirectPathBroken(f"the direct connection carried a bad record: {exc}") from None
            if record is None:
                continue
            if record.final:
                raise trio.EndOfChannel
            if record.plaintext:
                self.bytes_received += len(record.plaintext)
                return record.plaintext

    # -- closing -----------------------------------------------------------------------------------

    async def aclose(self, linger: float = LINGER) -> None:
        """Send our FINAL record, half-close, and wait (up to ``linger`` s) for the peer's end of
        stream before closing: closing with unread bytes would reset the connection and could
        destroy the peer's last records in flight. Never raises for a broken connection."""
        if self._closed:
            return
        try:
            with trio.move_on_after(linger):
                async with self._send_lock:
                    if not self._sealer.finished:
                        await self._write(*self._sealer.seal(b"", final=True))
                self._sock.shutdown(socket.SHUT_WR)
                while True:
                    await self.receive()
        except (trio.EndOfChannel, DirectPathBroken, OSError, trio.ClosedResourceError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Close the socket now (a reset if bytes are unread)."""
        self._closed = True
        self._sock.close()

    # -- the socket --------------------------------------------------------------------------------

    async def _write(self, prefix: bytes, sealed: bytes) -> None:
        buffers = [memoryview(prefix), memoryview(sealed)]
        if self._pending_header is not None:
            buffers.insert(0, memoryview(self._pending_header))
            self._pending_header = None
        try:
            while buffers:
                sent = await self._sock.sendmsg(buffers)
                while sent and buffers:
                    if sent >= len(buffers[0]):
                        sent -= len(buffers.pop(0))
                    else:
                        buffers[0] = buffers[0][sent:]
                        sent = 0
        except OSError as exc:
            raise DirectPathBroken(f"the direct connection broke: {exc}") from None

    async def _read_exactly(self, size: int) -> bytes:
        """``size`` bytes from the socket. One ``recv`` usually brings a whole record (no copy);
        otherwise the pieces gather in a buffer reused for every record (no allocation)."""
        try:
            first = await self._sock.recv(size)
            if len(first) == size:
                return first
            if not first:
                raise DirectPathBroken("the direct connection was cut short (no clean end of stream)")
            view = self._gather[:size]
            view[: len(first)] = first
            got = len(first)
            while got < size:
                n = await self._sock.recv_into(view[got:])
                if n == 0:
                    raise DirectPathBroken("the direct connection was cut short (no clean end of stream)")
                got += n
        except OSError as exc:
            raise DirectPathBroken(f"the direct connection broke: {exc}") from None
        return bytes(view)


def _endpoint(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
