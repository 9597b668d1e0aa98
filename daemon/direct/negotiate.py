"""Negotiate the direct path over the authenticated data channel, race TCP connections, agree on one.

Right after authentication both sides run :func:`negotiate_direct` on the data channel (see
docs/protocol.md, "The direct path"):

1. listen on an ephemeral port on each allowed host address (:mod:`.addresses`), then send one
   ``direct_offer`` (``enabled`` false and no candidates when ``transfer.direct`` is off here);
2. read the peer's first frame. Not a direct message: the peer does not take part (an older
   peer); its frames are handed to the transfer protocol unchanged. Either side disabled, or no
   candidate on either side: no direct path, nothing more is said;
3. otherwise race for ``timeout`` seconds: dial every candidate of the peer we may dial
   (staggered), accept on our listeners, and run the proof-of-key handshake on each connection
   (:mod:`.handshake`; one that fails is closed without effect);
4. agree (the tie-break): the *offerer* picks the first connection proven on its side, whichever
   direction, and sends ``direct_select{id}`` (or ``{id: null}`` after the timeout); the answerer
   waits (up to ``timeout``) for that connection to be proven on its side too and replies with the
   same id, or null. Both then use that connection, or both stay on the data channel.

Listening sockets live only for the race; every connection not chosen is closed.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from daemon.crypto import SessionKey
from daemon.protocol.errors import RemoteProtocolError
from daemon.protocol.frames import ControlFrame, FrameDecoder
from daemon.transfer.errors import TransferFailed, TransferInterrupted
from daemon.taskgroups import open_scoped
from daemon.transfer.transport import MessageTransport

from .addresses import dial_plan, listen_addresses
from .handshake import DirectKeys, HandshakeFailed, ProofHandshake, Side
from .messages import Candidate, DirectOffer, DirectSelect, decode_direct, encode_direct, peek_direct
from .transport import DirectPathBroken, DirectTransport

__all__ = ["negotiate_direct", "DirectPath", "DIRECT_TIMEOUT", "ANSWER_TIMEOUT", "MAX_INBOUND"]

log = logging.getLogger("doorstep.direct")

DIRECT_TIMEOUT = 3.0
"""Seconds to reach the peer over TCP and prove the key; after that the data channel carries on."""
ANSWER_TIMEOUT = 10.0
"""Seconds (beyond the race) a peer may take to say its part on the data channel."""
STAGGER = 0.25
"""Seconds between starting dials to successive candidates (sooner when one fails)."""
MAX_INBOUND = 8
"""Handshakes in progress on our listeners at once; more connections are closed at once."""
MAX_MESSAGES = 64
"""Data-channel messages read while waiting for a direct message (bounds an older peer's replay)."""


@dataclass(slots=True)
class DirectPath:
    """The outcome: ``transport`` carries the transfer (``direct`` is it when the direct path won);
    ``reason`` says why not otherwise. Close with :meth:`aclose` when the transfer is over."""

    transport: Any
    direct: DirectTransport | None
    reason: str

    @property
    def route(self) -> str:
        return getattr(self.transport, "route", "unknown")

    @property
    def route_detail(self) -> str:
        return getattr(self.transport, "route_detail", "unknown")

    async def aclose(self) -> None:
        """The transfer is over: close the direct connection gracefully (nothing for the channel)."""
        if self.direct is not None:
            await self.direct.aclose()

    def close(self) -> None:
        """The transfer failed or was cancelled: close the direct connection at once."""
        if self.direct is not None:
            self.direct.close()


async def negotiate_direct(
    channel: MessageTransport, key: SessionKey, role: str, *, enabled: bool, addresses: tuple[str, ...] | None,
    timeout: float = DIRECT_TIMEOUT,
) -> DirectPath:
    """Run the negotiation on ``channel`` as ``role`` (offerer/answerer); see the module docstring.

    Returns the path to run the transfer on. Raises TransferInterrupted when the channel closes or
    the peer stays silent, TransferFailed when the peer breaks the negotiation's rules.
    """
    reader = _ChannelReader(channel)
    async with _Listeners(listen_addresses(addresses) if enabled else ()) as listeners:
        await channel.send(encode_direct(DirectOffer(enabled=enabled, candidates=listeners.candidates)))
        try:
            peer = await reader.first_offer()
            if peer is None:
                return DirectPath(_Replaying(channel, reader.consumed), None, "the peer does not offer a direct path")
            if not (enabled and peer.enabled):
                return DirectPath(channel, None, "direct path disabled " + ("here" if not enabled else "by the peer"))
            if not (listeners.candidates or peer.candidates):
                return DirectPath(channel, None, "no direct candidates on either side")
            race = _Race(DirectKeys.from_session(key), role, timeout)
            plan = dial_plan(peer.candidates, addresses)
            if role == "offerer":
                return await _offerer(channel, reader, race, listeners, plan, timeout)
            return await _answerer(channel, reader, race, listeners, plan, timeout)
        except RemoteProtocolError as exc:
            raise TransferFailed(f"the peer broke the direct-path negotiation: {exc}") from None


async def _offerer(channel: MessageTransport, reader: _ChannelReader, race: _Race, listeners: _Listeners,
                   plan: list[tuple[Candidate, str | None]], timeout: float) -> DirectPath:
    try:
        async with open_scoped() as nursery:
            race.start(nursery, listeners, plan)
            with trio.move_on_after(timeout):
                await race.wait_first(give_up_early=not listeners.candidates)
            nursery.cancel_scope.cancel()
        await listeners.aclose()
        chosen = race.first()
        race.close_all(keep=chosen)
        await channel.send(encode_direct(DirectSelect(id=chosen.id if chosen else None)))
        answer = await _answer(reader, timeout + ANSWER_TIMEOUT)  # always: its reply must not reach the transfer
        if chosen is None:
            return DirectPath(channel, None, f"no direct connection within {timeout:g} s")
        if answer.id is not None and answer.id != chosen.id:
            raise RemoteProtocolError("direct_select names another connection", code="bad_message")
        if answer.id is None:
            return DirectPath(channel, None, "the peer could not confirm the direct connection")
        return _direct(chosen)
    finally:
        race.close_all(keep=None)


async def _answerer(channel: MessageTransport, reader: _ChannelReader, race: _Race, listeners: _Listeners,
                    plan: list[tuple[Candidate, str | None]], timeout: float) -> DirectPath:
    chosen = None
    try:
        async with open_scoped() as nursery:
            race.start(nursery, listeners, plan)
            select = await _answer(reader, timeout + ANSWER_TIMEOUT)
            if select.id is not None:
                with trio.move_on_after(timeout):
                    chosen = await race.wait_for(select.id)
            nursery.cancel_scope.cancel()
        await listeners.aclose()
        race.close_all(keep=chosen)
        await channel.send(encode_direct(DirectSelect(id=chosen.id if chosen else None)))
        if chosen is None:
            why = "no direct connection" if select.id is None else "the chosen direct connection was not proven here"
            return DirectPath(channel, None, why)
        return _direct(chosen)
    finally:
        race.close_all(keep=None)


async def _answer(reader: _ChannelReader, timeout: float) -> DirectSelect:
    try:
        with trio.fail_after(timeout):
            return await reader.select()
    except trio.TooSlowError:
        raise TransferInterrupted("the peer did not finish the direct-path negotiation") from None


def _direct(proven: _Proven) -> DirectPath:
    """The path over ``proven``: its transport owns the socket from now on."""
    transport = proven.transport()
    return DirectPath(transport, transport, "")


# -- the data channel ------------------------------------------------------------------------------


class _ChannelReader:
    """CONTROL frames from the data channel, keeping every raw message read (for a replay)."""

    def __init__(self, channel: MessageTransport) -> None:
        self._channel = channel
        self._decoder = FrameDecoder()
        self.consumed: list[bytes] = []

    async def _frame(self) -> Any:
        while (frame := self._decoder.next_frame()) is None:
            if len(self.consumed) >= MAX_MESSAGES:
                raise RemoteProtocolError("no direct message where one was due", code="bad_message")
            try:
                message = await self._channel.receive()
            except trio.EndOfChannel:
                raise TransferInterrupted("the connection closed during the direct-path negotiation") from None
            self.consumed.append(message)
            self._decoder.receive_data(message)
        return frame

    async def first_offer(self) -> DirectOffer | None:
        """The peer's ``direct_offer``; None when its first frame is something else (it does not
        take part), or it speaks another version of the negotiation."""
        try:
            with trio.fail_after(ANSWER_TIMEOUT):
                frame = await self._frame()
        except trio.TooSlowError:
            raise TransferInterrupted("the peer said nothing after authentication") from None
        if not isinstance(frame, ControlFrame) or not peek_direct(frame.body):
            return None
        try:
            message = decode_direct(frame.body)
        except RemoteProtocolError as exc:
            if exc.code == "version":
                log.info("the peer speaks another direct-path version: %s", exc)
                return DirectOffer(enabled=False)
            raise
        if not isinstance(message, DirectOffer):
            raise RemoteProtocolError("the first direct message must be direct_offer", code="bad_message")
        return message

    async def select(self) -> DirectSelect:
        frame = await self._frame()
        if not isinstance(frame, ControlFrame):
            raise RemoteProtocolError("a DATA frame during the direct-path negotiation", code="bad_message")
        message = decode_direct(frame.body)
        if not isinstance(message, DirectSelect):
            raise RemoteProtocolError("expected direct_select", code="bad_message")
        return message


class _Replaying:
    """``channel``, but ``receive`` first returns the messages already read from it."""

    def __init__(self, channel: MessageTransport, pending: Sequence[bytes]) -> None:
        self._channel = channel
        self._pending = deque(pending)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._channel, name)

    @property
    def max_message_size(self) -> int:
        return self._channel.max_message_size

    async def send(self, data: bytes) -> None:
        await self._channel.send(data)

    async def receive(self) -> bytes:
        if self._pending:
            return self._pending.popleft()
        return await self._channel.receive()


# -- listening -------------------------------------------------------------------------------------


class _Listeners:
    """TCP listeners on an ephemeral port of each address, for the negotiation window only.
    An address we cannot listen on (gone, or not ours) is skipped."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = addresses
        self.listeners: list[trio.SocketListener] = []
        self.candidates: tuple[Candidate, ...] = ()

    async def __aenter__(self) -> _Listeners:
        found: list[Candidate] = []
        for address in self._addresses:
            if len(found) >= 8:
                break
            try:
                opened = await trio.open_tcp_listeners(0, host=address, backlog=MAX_INBOUND)
            except OSError as exc:
                log.debug("cannot listen on %s: %s", address, exc)
                continue
            for listener in opened:
                self.listeners.append(listener)
                found.append(Candidate(ip=address, port=listener.socket.getsockname()[1]))
        self.candidates = tuple(dict.fromkeys(found))[:8]
        return self

    async def aclose(self) -> None:
        for listener in self.listeners:
            listener.socket.close()
        self.listeners = []

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# -- the race --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Proven:
    id: str
    stream: trio.SocketStream
    send_key: bytes
    receive_key: bytes
    taken: bool = False

    def transport(self) -> DirectTransport:
        self.taken = True
        return DirectTransport(self.stream, send_key=self.send_key, receive_key=self.receive_key)


class _Race:
    """Connections being dialled and accepted, and those that proved the key (in that order)."""

    def __init__(self, keys: DirectKeys, role: str, timeout: float) -> None:
        self._keys = keys
        self._role = role
        self._timeout = timeout
        self.proven: dict[str, _Proven] = {}
        self._changed = trio.Event()
        self._dials_left = 0
        self._inbound = 0

    def start(self, nursery: trio.Nursery, listeners: _Listeners, plan: list[tuple[Candidate, str | None]]) -> None:
        for listener in listeners.listeners:
            nursery.start_soon(self._accept, nursery, listener)
        self._dials_left = len(plan)
        nursery.start_soon(self._dial_all, nursery, plan)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_first(self, *, give_up_early: bool) -> None:
        """Until a connection is proven (or, with ``give_up_early``, every dial failed)."""
        while not self.proven and not (give_up_early and self._dials_left == 0):
            await self._changed.wait()

    async def wait_for(self, connection_id: str) -> _Proven | None:
        while connection_id not in self.proven:
            await self._changed.wait()
        return self.proven[connection_id]

    def first(self) -> _Proven | None:
        """The first connection proven here (the offerer's pick)."""
        return next(iter(self.proven.values()), None)

    def close_all(self, *, keep: _Proven | None) -> None:
        """Close every proven connection but ``keep`` (and any handed to a transport)."""
        for proven in self.proven.values():
            if proven is not keep and not proven.taken:
                proven.stream.socket.close()
        self.proven = {} if keep is None else {keep.id: keep}

    async def _accept(self, nursery: trio.Nursery, listener: trio.SocketListener) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (OSError, trio.ClosedResourceError):
                return
            if self._inbound >= MAX_INBOUND:
                stream.socket.close()
                continue
            self._inbound += 1
            nursery.start_soon(self._prove, stream, Side.LISTENER)

    async def _dial_all(self, nursery: trio.Nursery, plan: list[tuple[Candidate, str | None]]) -> None:
        for candidate, source in plan:
            failed = trio.Event()
            nursery.start_soon(self._dial, candidate, source, failed)
            with trio.move_on_after(STAGGER):
                await failed.wait()

    async def _dial(self, candidate: Candidate, source: str | None, failed: trio.Event) -> None:
        try:
            try:
                stream = await trio.open_tcp_stream(candidate.ip, candidate.port, local_address=source)
            except OSError as exc:
                log.debug("direct: cannot reach %s:%d: %s", candidate.ip, candidate.port, exc)
                return
            await self._prove(stream, Side.DIALER)
        finally:
            self._dials_left -= 1
            failed.set()
            self._notify()

    async def _prove(self, stream: trio.SocketStream, side: Side) -> None:
        handshake = ProofHandshake(self._keys, side=side, role=self._role)
        try:
            with trio.fail_after(self._timeout):
                await _send_all(stream, handshake.start())
                while not handshake.done:
                    data = await _receive_exactly(stream, handshake.bytes_needed)
                    reply = handshake.receive(data)
                    if reply:
                        await _send_all(stream, reply)
        except (HandshakeFailed, DirectPathBroken, OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
            log.debug("direct: dropped a %s connection: %s", side.value, exc)
            stream.socket.close()
            return
        except BaseException:
            stream.socket.close()
            raise
        finally:
            if side is Side.LISTENER:
                self._inbound -= 1
        self.proven[handshake.connection_id] = _Proven(handshake.connection_id, stream, *handshake.stream_keys())
        self._notify()


async def _send_all(stream: trio.SocketStream, data: bytes) -> None:
    try:
        await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise DirectPathBroken(str(exc)) from None


async def _receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            data = await stream.receive_some(size - len(chunks))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise DirectPathBroken(str(exc)) from None
        if not data:
            raise DirectPathBroken("closed during the handshake")
        chunks += data
    return bytes(chunks)
