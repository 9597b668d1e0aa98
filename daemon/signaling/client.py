"""trio client for signaling v1.

Usage::

    async with open_signaling("ws://pi:8081/signal/v1") as client:
        hosted = await client.host(share_id, host_key, code=True)   # hosted.code: "123456"
        async for session in client.incoming():                      # each joiner
            await session.send({"sdp": offer})
            answer = await session.receive()

    async with open_signaling(url) as client:
        session = await client.join(code="123456")                  # raises JoinFailed
        offer = await session.receive()

Structure: :func:`open_signaling` owns one nursery holding the WebSocket's reader task and this
client's reader task. The client's reader parses every server frame, resolves the waiting request
with the same ``id`` (requests carry increasing integer ids), routes ``relay``/``left`` to the
session's bounded channel and ``peer`` to the bounded incoming channel. It never blocks: a
session whose queue overflows is ended (``leave``), and a ``peer`` nobody collects in time is
turned away the same way; such follow-up sends run as short tasks in the same nursery.

When the socket closes (server gone, heartbeat, a protocol violation) every pending request
raises :class:`SignalingClosed`, every session's ``receive`` raises :class:`SessionClosed`, and
``incoming`` ends. Leaving the context closes the WebSocket and cancels both tasks; nothing
outlives it.

With ``open_signaling(url, resume=True)`` the client asks the server for a resume token
(``hello``). When the socket is then lost (no clean close), it reconnects with jittered
exponential backoff for up to the server's grace period and sends ``resume``: shares, sessions
and :class:`SignalSession` objects keep working, and frames relayed meanwhile arrive late but in
order. Sends wait while reconnecting; requests in flight when the socket dropped fail with
:class:`SignalingClosed` (their replies are lost) and may be retried. If the resume fails the
client closes as above.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import random
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from daemon.ice import IceServer
from daemon.protocol.signaling import (
    MAX_FRAME_BYTES,
    ClientMessage,
    CloseCode,
    Error,
    ErrorCode,
    Hello,
    Host,
    Join,
    Joined,
    Leave,
    Left,
    MessageError,
    Peer,
    Ping,
    Pong,
    Presence,
    PresenceReply,
    Relay,
    Resume,
    Resumed,
    ServerMessage,
    Unhost,
    Unhosted,
    Welcome,
    parse_server_message,
    serialize,
)
from daemon.protocol.signaling import Hosted as HostedMessage
from daemon.signaling.errors import (
    JoinFailed,
    SessionClosed,
    SignalingClosed,
    SignalingConnectError,
    SignalingError,
)

__all__ = ["Hosted", "SignalSession", "SignalingClient", "open_signaling"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hosted:
    """A share hosted on the signaling server. ``code`` (6 digits) and ``expires_at`` (unix
    seconds) are ``None`` when no code was asked for."""

    share: str
    code: str | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class _HostRegistration:
    host_key: str
    code: bool


class _Waiter:
    """One request's reply slot, filled by the reader task."""

    __slots__ = ("_event", "_value", "_error")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: object = None
        self._error: BaseException | None = None

    @property
    def value(self) -> object:
        return self._value

    def resolve(self, value: object) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> object:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


class SignalSession:
    """One end of a session: opaque JSON objects to and from the other end.

    ``ice_servers``: the STUN/TURN servers the signaling server handed out for this session
    (``joined``/``peer``), TURN credentials included; empty when it sent none.

    Usable as an async context manager that leaves on exit.
    """

    def __init__(
        self,
        client: SignalingClient,
        *,
        session: str,
        share: str,
        queue_size: int,
        ice_servers: tuple[IceServer, ...] = (),
    ) -> None:
        self.session = session
        self.share = share
        self.ice_servers = ice_servers
        self._client = client
        self._send_channel, self._receive_channel = trio.open_memory_channel[dict[str, Any]](
            queue_size
        )
        self._closed_reason: str | None = None

    def __repr__(self) -> str:
        return f"<SignalSession {self.session} closed={self._closed_reason is not None}>"

    @property
    def closed(self) -> bool:
        """Whether the session has ended (messages already queued can still be received)."""
        return self._closed_reason is not None

    async def send(self, data: dict[str, Any]) -> None:
        """Relay ``data`` (a JSON object) to the other end.

        Raises:
            SessionClosed: the session has ended.
            SignalingClosed: the signaling connection is closed.
            LocalProtocolError: ``data`` is not a JSON object, or too large for one frame.

        Delivery is not acknowledged. On cancellation the frame was either sent whole or not at all.
        """
        if self._closed_reason is not None:
            raise SessionClosed(self._closed_reason)
        await self._client._send(Relay(session=self.session, data=data))

    async def receive(self) -> dict[str, Any]:
        """The next object from the other end, in order.

        Raises:
            SessionClosed: the other end left, this end left, or the socket closed (after every
                object that arrived before that has been received).
        """
        try:
            return await self._receive_channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise SessionClosed(self._closed_reason or "session closed") from None

    async def leave(self) -> None:
        """End the session; the other end gets ``left``. Idempotent, never raises for a session
        that already ended or a closed connection. Cancellation may leave the server unaware
        until the socket closes (which also ends the session)."""
        if self._closed_reason is not None:
            return
        self._client._forget_session(self, "left")
        try:
            await self._client._request(Leave(session=self.session))
        except SignalingError:  # unknown_session: the other end left first; or socket closed
            pass

    async def __aenter__(self) -> SignalSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.leave()

    def _deliver(self, data: dict[str, Any]) -> bool:
        try:
            self._send_channel.send_nowait(data)
        except (trio.WouldBlock, trio.ClosedResourceError):
            return False
        return True

    def _close(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
            self._send_channel.close()


class _IncomingSessions:
    """The async iterator behind :meth:`SignalingClient.incoming`."""

    __slots__ = ("_client",)

    def __init__(self, client: SignalingClient) -> None:
        self._client = client

    def __aiter__(self) -> _IncomingSessions:
        return self

    async def __anext__(self) -> SignalSession:
        client = self._client
        try:
            session = await client._incoming_receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if client._closed is not None:
            raise StopAsyncIteration
        return session


class SignalingClient:
    """A connected signaling client; obtain one from :func:`open_signaling`."""

    def __init__(
        self,
        ws: WebSocketConnection,
        nursery: trio.Nursery,
        *,
        session_queue_size: int,
        incoming_queue_size: int,
    ) -> None:
        self._ws = ws
        self._nursery = nursery
        self._session_queue_size = session_queue_size
        self._ids = itertools.count(1)
        self._pending: dict[int, _Waiter] = {}
        self._sessions: dict[str, SignalSession] = {}
        self._incoming_send, self._incoming_receive = trio.open_memory_channel[SignalSession](
            incoming_queue_size
        )
        self._hosted: dict[str, _HostRegistration] = {}
        self._closed: tuple[str, int | None] | None = None
        self._token: str | None = None
        self._grace = 0.0
        self._online = trio.Event()
        self._online.set()
        self.resumes = 0
        """How many times this client resumed after losing its socket."""

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def online(self) -> bool:
        """False while the client is reconnecting to resume (sends wait meanwhile)."""
        return self._online.is_set() and self._closed is None

    @property
    def hosted_shares(self) -> frozenset[str]:
        """Shares this client hosts, as far as it knows."""
        return frozenset(self._hosted)

    # --- public requests --------------------------------------------------------------------

    async def host(self, share: str, host_key: str, *, code: bool) -> Hosted:
        """Host ``share`` on this socket, with a fresh 6-digit code if ``code``.

        Hosting a share again (from this or another socket) needs the same ``host_key`` and
        replaces the previous registration and its code.

        Raises:
            SignalingError: code ``host_key_mismatch`` or ``try_later`` (no free code).
            SignalingClosed: the connection is closed.
            LocalProtocolError: malformed ``share`` or ``host_key``.
        """
        reply = await self._request(Host(share=share, host_key=host_key, code=code))
        if not isinstance(reply, HostedMessage):
            raise _unexpected(reply)
        self._hosted[share] = _HostRegistration(host_key=host_key, code=code)
        return Hosted(share=reply.share, code=reply.code, expires_at=reply.expires_at)

    async def unhost(self, share: str) -> None:
        """Stop hosting ``share``; its live code dies, existing sessions go on.

        Raises:
            SignalingError: code ``unknown_share`` if this socket does not host it.
            SignalingClosed: the connection is closed.
        """
        self._hosted.pop(share, None)
        reply = await self._request(Unhost(share=share))
        if not isinstance(reply, Unhosted):
            raise _unexpected(reply)

    def incoming(self) -> AsyncIterator[SignalSession]:
        """Sessions joined to shares this client hosts, as they arrive: ``async for session in
        client.incoming()``, or ``await anext(client.incoming())`` for one.

        Iteration ends when the connection closes. A ``peer`` that finds the bounded queue full
        (nobody collecting) is refused by leaving its session. Not an async generator, so
        breaking out of the loop leaves nothing to finalize.
        """
        return _IncomingSessions(self)

    async def join(self, *, code: str | None = None, share: str | None = None) -> SignalSession:
        """Join a hosted share by ``code`` (consuming it) or by ``share`` id (exactly one).

        Raises:
            JoinFailed: no such code or share (expired, used, malformed, host gone: never which).
            SignalingClosed: the connection is closed.
            LocalProtocolError: not exactly one of ``code`` and ``share`` given.

        If cancelled after the server accepted the join, the session is left in the background.
        """
        reply = await self._request(Join(code=code, share=share))
        if not isinstance(reply, SignalSession):
            raise _unexpected(reply)
        return reply

    async def presence(self, shares: Iterable[str]) -> set[str]:
        """Which of ``shares`` (at most ``MAX_PRESENCE_SHARES``, 32, share ids) are hosted by
        some socket on the server right now.

        The server limits these requests per socket and per client address (by default 10 per
        socket and 60 per address in any minute).

        Raises:
            SignalingError: code ``rate_limited`` (too many presence requests; retry later), or
                ``bad_message`` from a server that does not know ``presence``.
            SignalingClosed: the connection is closed.
            LocalProtocolError: more than 32 shares, or a malformed share id.
        """
        asked = list(shares)
        reply = await self._request(Presence(shares=asked))
        if not isinstance(reply, PresenceReply):
            raise _unexpected(reply)
        return set(reply.online).intersection(asked)

    async def ping(self) -> None:
        """Round trip to the server. Raises SignalingClosed."""
        reply = await self._request(Ping())
        if not isinstance(reply, Pong):
            raise _unexpected(reply)

    # --- plumbing ---------------------------------------------------------------------------

    def _closed_error(self) -> SignalingClosed:
        reason, close_code = self._closed or ("closed", None)
        return SignalingClosed(reason, close_code=close_code)

    async def _send(self, message: ClientMessage) -> None:
        """Send one frame. Raises SignalingClosed, LocalProtocolError (unencodable message)."""
        frame = serialize(message)
        while True:
            await self._online.wait()  # reconnecting: wait (set again by resume or shutdown)
            if self._closed is not None:
                raise self._closed_error()
            ws = self._ws
            try:
                await ws.send_message(frame)
                return
            except ConnectionClosed as exc:
                if self._token is None or self._closed is not None:
                    raise self._closed_error() from exc
                if self._ws is ws and self._online.is_set():  # lost; the reader resumes
                    self._online = trio.Event()

    async def _request(self, message: ClientMessage) -> object:
        """Send ``message`` with a fresh id and wait for the reply with that id.

        Returns the reply (a session for ``joined``). Raises the typed error for an ``error``
        reply, SignalingClosed if the connection closes first. A session that arrives for a
        request abandoned by cancellation is left in the background.
        """
        request_id = next(self._ids)
        message = dataclasses.replace(message, id=request_id)
        waiter = _Waiter()
        self._pending[request_id] = waiter
        try:
            await self._send(message)
            reply = await waiter.wait()
        except BaseException:
            if isinstance(waiter.value, SignalSession):
                self._abandon(waiter.value)
            raise
        finally:
            self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            raise _error_from(reply)
        return reply

    def _open_session(
        self, *, session: str, share: str, ice: list[dict[str, Any]] | None
    ) -> SignalSession:
        signal_session = SignalSession(
            self,
            session=session,
            share=share,
            queue_size=self._session_queue_size,
            ice_servers=_ice_servers(ice),
        )
        self._sessions[session] = signal_session
        return signal_session

    def _forget_session(self, session: SignalSession, reason: str) -> None:
        if self._sessions.get(session.session) is session:
            del self._sessions[session.session]
        session._close(reason)

    def _abandon(self, session: SignalSession, reason: str = "abandoned") -> None:
        """End ``session`` locally and tell the server in a background task (never blocks)."""
        if session.closed:
            return
        self._forget_session(session, reason)
        if self._closed is None:
            self._nursery.start_soon(self._send_leave, session.session)

    async def _send_leave(self, session: str) -> None:
        try:
            await self._send(Leave(session=session))
        except SignalingError:
            pass

    def _shutdown(self, reason: str, close_code: int | None = None) -> None:
        """Mark the connection closed and wake everyone waiting on it (idempotent)."""
        if self._closed is not None:
            return
        self._closed = (reason, close_code)
        self._online.set()
        for waiter in self._pending.values():
            waiter.fail(self._closed_error())
        for session in list(self._sessions.values()):
            session._close("signaling connection closed")
        self._sessions.clear()
        self._incoming_send.close()

    async def _hello(self) -> None:
        """Ask for a resume token; an older server (``bad_message``) just means no resume."""
        try:
            reply = await self._request(Hello())
        except SignalingError as exc:
            if exc.code != ErrorCode.BAD_MESSAGE:
                raise
            return
        if not isinstance(reply, Welcome):
            raise _unexpected(reply)
        self._token, self._grace = reply.token, reply.grace

    async def _run(
        self, connect: Callable[[], AbstractAsyncContextManager[WebSocketConnection]]
    ) -> None:
        """The reader task: read the first socket, then reconnect and resume while possible."""
        lost = await self._read_loop()
        while lost:
            lost = await self._reconnect(connect)

    async def _reconnect(
        self, connect: Callable[[], AbstractAsyncContextManager[WebSocketConnection]]
    ) -> bool:
        """Reconnect with jittered exponential backoff within the grace period and resume.

        Returns whether the resumed socket was lost again (the caller tries again); shuts the
        client down when resuming is impossible.
        """
        if self._online.is_set():  # a failed send may have noticed the loss first
            self._online = trio.Event()
        for waiter in self._pending.values():  # their replies went down with the socket
            waiter.fail(SignalingClosed("signaling connection lost; retry the request"))
        deadline = trio.current_time() + self._grace
        delay = 0.05
        while trio.current_time() < deadline and self._closed is None:
            await trio.sleep(min(delay * random.uniform(0.5, 1.5), deadline - trio.current_time()))
            delay = min(delay * 2, 5.0)
            try:
                with trio.move_on_at(deadline):
                    async with connect() as ws:
                        reply = await self._resume_on(ws)
                        if not isinstance(reply, Resumed):
                            break
                        self._token = reply.token
                        self._ws = ws
                        self.resumes += 1
                        self._online.set()
                        if await self._read_loop():
                            return True
                        # Closed for good: keep this socket's reader (in this context) alive
                        # for the closing handshake; open_signaling cancels us when done.
                        await trio.sleep_forever()
            except SignalingConnectError as exc:
                logger.debug("signaling reconnect failed: %s", exc)
            except ConnectionClosed:
                pass
        self._shutdown("signaling connection lost and not resumed")
        return False

    async def _resume_on(self, ws: WebSocketConnection) -> ServerMessage | None:
        """Send ``resume`` on a fresh socket and read its reply (None if it is malformed)."""
        assert self._token is not None
        await ws.send_message(serialize(Resume(token=self._token)))
        frame = await ws.get_message()
        try:
            if isinstance(frame, bytes):
                return None
            return parse_server_message(frame)
        except MessageError:
            return None

    async def _read_loop(self) -> bool:
        """Read the current socket until it closes; never raises for server behaviour.

        Returns True when the socket was lost and may be resumed (the client has a token and
        the close was neither ours nor a deliberate one by the server).
        """
        while True:
            try:
                frame = await self._ws.get_message()
            except ConnectionClosed as exc:
                code = exc.reason.code if exc.reason is not None else None
                if self._token is not None and self._closed is None and code in _RESUMABLE:
                    logger.info("signaling connection lost (%s); resuming", code)
                    return True
                self._shutdown(f"signaling connection closed ({code})", code)
                return False
            try:
                if isinstance(frame, bytes):
                    raise MessageError("binary frame from the server")
                message = parse_server_message(frame)
            except MessageError as exc:
                logger.warning("signaling server violated the protocol: %s", exc)
                self._shutdown(f"server sent an invalid frame: {exc}", CloseCode.PROTOCOL_ERROR)
                with trio.move_on_after(1):
                    await self._ws.aclose(CloseCode.PROTOCOL_ERROR, "invalid frame")
                return False
            self._dispatch(message)

    def _waiter_for(self, request_id: object) -> _Waiter | None:
        if type(request_id) is not int:
            return None
        return self._pending.get(request_id)

    def _dispatch(self, message: ServerMessage) -> None:
        """Route one server message. Synchronous: the reader never blocks on a consumer."""
        if isinstance(message, Relay):
            session = self._sessions.get(message.session)
            if session is not None and not session._deliver(message.data):
                logger.warning("signaling session %s: receive queue overflowed", message.session)
                self._abandon(session, "receive queue overflowed")
        elif isinstance(message, Left):
            session = self._sessions.get(message.session)
            if session is not None:
                self._forget_session(session, "the other end left")
            waiter = self._waiter_for(message.id)
            if waiter is not None:
                waiter.resolve(message)
        elif isinstance(message, Peer):
            session = self._open_session(
                session=message.session, share=message.share, ice=message.ice
            )
            try:
                self._incoming_send.send_nowait(session)
            except (trio.WouldBlock, trio.ClosedResourceError):
                logger.warning(
                    "signaling: incoming queue full, refusing session %s", message.session
                )
                self._abandon(session, "refused: incoming queue full")
        elif isinstance(message, Joined):
            waiter = self._waiter_for(message.id)
            session = self._open_session(
                session=message.session, share=message.share, ice=message.ice
            )
            if waiter is None:  # the join was cancelled meanwhile
                self._abandon(session)
            else:
                waiter.resolve(session)
        else:
            if isinstance(message, Unhosted) and message.id is None:
                self._hosted.pop(message.share, None)  # re-hosted from another socket
                return
            waiter = self._waiter_for(message.id)
            if waiter is not None:
                waiter.resolve(message)
            elif isinstance(message, Error):
                logger.debug("signaling error without a waiting request: %s", message.code)


_RESUMABLE = frozenset({None, 1005, 1006, int(CloseCode.HEARTBEAT_TIMEOUT)})
"""Close codes after which the client tries to resume: no close frame (the TCP connection
died) or missed heartbeats. Every other code was a deliberate close."""


def _ice_servers(ice: list[dict[str, Any]] | None) -> tuple[IceServer, ...]:
    """The ``ice`` field of ``joined``/``peer`` (already validated by the message layer)."""
    return tuple(
        IceServer(
            urls=tuple(server["urls"]),
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in ice or ()
    )


def _error_from(reply: Error) -> SignalingError:
    if reply.code == ErrorCode.JOIN_FAILED:
        return JoinFailed(reply.code, reply.message)
    return SignalingError(reply.code, reply.message)


def _unexpected(reply: object) -> SignalingError:
    return SignalingError("unexpected_reply", f"unexpected reply {type(reply).__name__}")


def _raise_alone(exc: BaseException) -> NoReturn:
    """Re-raise ``exc`` (unwrapped from a group) keeping its own ``__context__``."""
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    non_cancelled = [leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)]
    if len(non_cancelled) == 1:
        return non_cancelled[0]
    if not non_cancelled and leaves:
        return leaves[0]
    return None


@dataclass(frozen=True, slots=True)
class _Target:
    host: str
    port: int
    tls: bool
    host_header: str
    resource: str


def _parse_url(url: str) -> _Target:
    """Split a ``ws://`` or ``wss://`` URL. Raises ValueError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a ws:// or wss:// URL: {url!r}")
    tls = parts.scheme == "wss"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(host=host, port=port, tls=tls, host_header=host_header, resource=resource)


async def _open_stream(target: _Target) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    if target.tls:
        return await trio.open_ssl_over_tcp_stream(
            target.host,
            target.port,
            ssl_context=ssl.create_default_context(),
            https_compatible=True,
        )
    return await trio.open_tcp_stream(target.host, target.port)


@asynccontextmanager
async def open_signaling(
    url: str,
    *,
    connect_timeout: float = 10.0,
    close_timeout: float = 5.0,
    session_queue_size: int = 256,
    incoming_queue_size: int = 16,
    resume: bool = False,
) -> AsyncIterator[SignalingClient]:
    """Connect to a signaling server (``ws://HOST:PORT/signal/v1``) for the duration of the block.

    Raises:
        SignalingConnectError: the connection or the WebSocket handshake failed (refused, HTTP
            rejection such as 404, TLS failure, or no handshake within ``connect_timeout``).
        ValueError: ``url`` is not a ``ws:``/``wss:`` URL.

    With ``resume`` the client asks for a resume token and, when its socket is lost, reconnects
    and resumes by itself (see the module docstring).

    Leaving the block closes the WebSocket (waiting at most ``close_timeout`` for the closing
    handshake; at once if cancelled), cancels the client's tasks and closes the TCP stream. An
    exception raised in the block propagates as itself, not wrapped in an ExceptionGroup.
    """
    target = _parse_url(url)
    async with _websocket(target, url, connect_timeout, close_timeout) as (ws, nursery):
        client = SignalingClient(
            ws,
            nursery,
            session_queue_size=session_queue_size,
            incoming_queue_size=incoming_queue_size,
        )
        nursery.start_soon(client._run, partial(_reconnection, target, url, connect_timeout))
        try:
            if resume:
                await client._hello()
            yield client
        finally:
            client._shutdown("signaling client closed", CloseCode.NORMAL)


@asynccontextmanager
async def _websocket(
    target: _Target, url: str, connect_timeout: float, close_timeout: float
) -> AsyncIterator[tuple[WebSocketConnection, trio.Nursery]]:
    """A WebSocket to ``target`` and the nursery its reader runs in, for the block; on exit the
    socket is closed (waiting at most ``close_timeout``), the nursery cancelled and the TCP stream
    closed. Raises SignalingConnectError when the connection or the handshake fails; an exception
    from the block propagates as itself."""
    try:
        with trio.fail_after(connect_timeout):
            stream = await _open_stream(target)
    except (OSError, trio.TooSlowError) as exc:
        raise SignalingConnectError(f"cannot connect to {url}: {exc!r}") from exc
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(connect_timeout):
                    ws = await wrap_client_stream(
                        nursery, stream, target.host_header, target.resource, max_message_size=MAX_FRAME_BYTES
                    )
            except trio.TooSlowError as exc:
                raise SignalingConnectError(f"no WebSocket handshake from {url}") from exc
            try:
                yield ws, nursery
            finally:
                with trio.move_on_after(close_timeout):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        if isinstance(leaf, (HandshakeError, trio.BrokenResourceError, ssl.SSLError)):
            # raised by trio-websocket's reader during the handshake, e.g. HTTP 404
            raise SignalingConnectError(f"cannot connect to {url}: {leaf!r}") from leaf
        _raise_alone(leaf)
    finally:
        await stream.aclose()  # trio-websocket leaves it open after a rejected handshake


@asynccontextmanager
async def _reconnection(
    target: _Target, url: str, connect_timeout: float
) -> AsyncIterator[WebSocketConnection]:
    """One more WebSocket to ``target`` for a resume, closed (briefly) on exit.

    Raises SignalingConnectError when the connection or the handshake fails.
    """
    try:
        async with _websocket(target, url, connect_timeout, 1.0) as (ws, _nursery):
            yield ws
    except OSError as exc:  # a socket error raised alone by the reader during the handshake
        raise SignalingConnectError(f"cannot connect to {url}: {exc!r}") from exc
