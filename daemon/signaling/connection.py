"""One server-side signaling socket: read loop, request dispatch, delivery, liveness.

:class:`ServerConnection` serves one accepted WebSocket until it closes. Its tasks live in one
nursery: the read loop (parse, dispatch, reply), the pump that writes frames other connections
delivered to this one through the store, the heartbeat, and the join-timeout watchdog. Whichever
decides the socket must close does so with a :class:`~daemon.protocol.signaling.CloseCode` and
cancels the nursery; the store is then cleaned up under a shield and the other ends of the
socket's sessions are told ``left``.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from daemon.protocol.errors import LocalProtocolError
from daemon.protocol.signaling import (
    MAX_TEXT_CHARS,
    ClientMessage,
    CloseCode,
    Error,
    ErrorCode,
    Host,
    Hosted,
    Join,
    Joined,
    Leave,
    Left,
    MessageError,
    Peer,
    Ping,
    Pong,
    Relay,
    Unhost,
    Unhosted,
    is_code,
    is_share_id,
    parse_client_message,
    serialize,
)
from daemon.signaling.store import (
    CodesExhausted,
    ConnectionId,
    HostKeyMismatch,
    SessionStore,
    hash_host_key,
)

__all__ = ["ServerConnection", "JOIN_FAILED_MESSAGE"]

logger = logging.getLogger(__name__)

JOIN_FAILED_MESSAGE = "no such code or share"
"""The one reply text for every join failure."""

_CLEANUP_TIMEOUT = 5.0
_SHUTDOWN_GRACE = 0.25


class ServerConnection:
    """Serves one accepted signaling WebSocket; see the module docstring.

    ``clock`` returns unix seconds and drives code TTLs and budgets; the heartbeat and the join
    timeout use trio's clock.
    """

    def __init__(
        self,
        ws: WebSocketConnection,
        *,
        conn_id: ConnectionId,
        ip: str,
        store: SessionStore,
        clock: Callable[[], float],
        heartbeat_interval: float | None,
        missed_heartbeats: int,
        join_timeout: float,
        close_timeout: float,
    ) -> None:
        self.id = conn_id
        self.ip = ip
        self._ws = ws
        self._store = store
        self._clock = clock
        self._heartbeat_interval = heartbeat_interval
        self._missed_heartbeats = missed_heartbeats
        self._close_timeout = close_timeout
        self._join_scope = trio.CancelScope(deadline=trio.current_time() + join_timeout)
        self._nursery: trio.Nursery | None = None
        self._close_code = CloseCode.GOING_AWAY
        """The close code used if the socket is still open when serving stops."""
        self._handlers: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
            Host: self._on_host,
            Unhost: self._on_unhost,
            Join: self._on_join,
            Relay: self._on_relay,
            Leave: self._on_leave,
            Ping: self._on_ping,
        }

    async def run(self) -> None:
        """Serve until the socket closes or the caller cancels.

        Never raises for peer behaviour; an unexpected error is logged and the socket closed with
        1011. On cancellation (server shutdown) the socket is closed with 1001, on overflow of its
        outgoing queue with 4002. In every case the store is cleaned up first (shielded, bounded by
        a few seconds), then the closing handshake gets at most ``close_timeout``.
        """
        async with self._store.open_mailbox(self.id, on_overflow=self._on_overflow) as mailbox:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    if self._close_code == CloseCode.QUEUE_OVERFLOW:  # overflowed already
                        nursery.cancel_scope.cancel()
                    nursery.start_soon(self._pump, mailbox)
                    if self._heartbeat_interval is not None:
                        nursery.start_soon(self._heartbeat, self._heartbeat_interval)
                    nursery.start_soon(self._watch_join_timeout)
                    await self._read_loop()
                    nursery.cancel_scope.cancel()
            except Exception:
                logger.exception("signaling connection %s failed", self.id)
                self._close_code = CloseCode.INTERNAL_ERROR
            finally:
                # Cancelled from outside (shutdown): trio-websocket's reader task is cancelled too,
                # so no closing handshake can complete; send the close frame and drop the stream.
                shutting_down = trio.current_effective_deadline() == -math.inf
                with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLEANUP_TIMEOUT):
                    await self._cleanup()
                if self._ws.closed is None:
                    grace = self._close_timeout
                    if shutting_down:
                        grace = min(grace, _SHUTDOWN_GRACE)
                    with trio.CancelScope(shield=True, deadline=trio.current_time() + grace):
                        await self._ws.aclose(self._close_code)

    def _on_overflow(self) -> None:
        """The store gave up delivering to us: stop everything (the pump may be stuck writing)."""
        logger.debug("signaling connection %s: outgoing queue overflowed", self.id)
        self._close_code = CloseCode.QUEUE_OVERFLOW
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _cleanup(self) -> None:
        for record in await self._store.drop_connection(self.id):
            other = record.other(self.id)
            if other is not None:
                await self._store.deliver(other, serialize(Left(session=record.session)))

    async def _close(self, code: CloseCode, reason: str, *, timeout: float | None = None) -> None:
        """Close the socket with ``code`` (waiting a bounded time for the handshake) and stop."""
        logger.debug("closing signaling connection %s: %s %s", self.id, code.name, reason)
        with trio.move_on_after(self._close_timeout if timeout is None else timeout):
            await self._ws.aclose(code, reason)  # on timeout, aclose drops the TCP stream
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _send(self, message: Any) -> None:
        """Reply on this socket. Raises ConnectionClosed."""
        await self._ws.send_message(serialize(message))

    # --- tasks --------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                frame = await self._ws.get_message()
                if isinstance(frame, bytes):
                    await self._close(CloseCode.UNSUPPORTED_DATA, "binary frames are not supported")
                    return
                try:
                    message: ClientMessage = parse_client_message(frame)
                except MessageError as exc:
                    if exc.code == ErrorCode.MESSAGE_TOO_LARGE:
                        await self._close(CloseCode.MESSAGE_TOO_BIG, "frame too large")
                        return
                    await self._send(
                        Error(code=exc.code, message=str(exc)[:MAX_TEXT_CHARS], id=exc.request_id)
                    )
                    continue
                await self._handlers[type(message)](message)
        except ConnectionClosed:
            return

    async def _pump(self, mailbox: trio.abc.ReceiveChannel[str]) -> None:
        """Write the frames delivered to this connection, in order."""
        async for frame in mailbox:
            try:
                await self._ws.send_message(frame)
            except ConnectionClosed:
                return

    async def _heartbeat(self, interval: float) -> None:
        """Ping every ``interval``; close after ``missed_heartbeats`` unanswered pings in a row."""
        missed = 0
        await trio.sleep(interval)
        for counter in itertools.count():
            deadline = trio.current_time() + interval
            answered = False
            with trio.move_on_at(deadline):
                try:
                    await self._ws.ping(counter.to_bytes(8, "big"))
                except ConnectionClosed:
                    return
                answered = True
            if answered:
                missed = 0
                await trio.sleep_until(deadline)
                continue
            missed += 1
            if missed >= self._missed_heartbeats:
                await self._close(
                    CloseCode.HEARTBEAT_TIMEOUT, "missed heartbeats", timeout=interval
                )
                return

    async def _watch_join_timeout(self) -> None:
        with self._join_scope:
            await trio.sleep_forever()
        if self._join_scope.cancelled_caught:
            await self._close(CloseCode.JOIN_TIMEOUT, "nothing hosted or joined in time")

    def _engaged(self) -> None:
        """The socket did something useful: the join timeout no longer applies."""
        self._join_scope.deadline = math.inf

    # --- requests -----------------------------------------------------------------------------

    async def _on_host(self, message: Host) -> None:
        try:
            result = await self._store.host_share(
                message.share,
                self.id,
                hash_host_key(message.host_key),
                want_code=message.code,
                now=self._clock(),
            )
        except HostKeyMismatch:
            await self._send(
                Error(
                    code=ErrorCode.HOST_KEY_MISMATCH,
                    message="share is hosted with another host_key",
                    id=message.id,
                )
            )
            return
        except CodesExhausted:
            await self._send(
                Error(
                    code=ErrorCode.TRY_LATER,
                    message="no free code, try again later",
                    id=message.id,
                )
            )
            return
        self._engaged()
        if result.replaced is not None:
            await self._store.deliver(result.replaced, serialize(Unhosted(share=message.share)))
        await self._send(
            Hosted(
                share=result.share, code=result.code, expires_at=result.expires_at, id=message.id
            )
        )

    async def _on_unhost(self, message: Unhost) -> None:
        if await self._store.unhost_share(message.share, self.id):
            await self._send(Unhosted(share=message.share, id=message.id))
        else:
            await self._send(
                Error(
                    code=ErrorCode.UNKNOWN_SHARE,
                    message="this socket does not host that share",
                    id=message.id,
                )
            )

    async def _on_join(self, message: Join) -> None:
        now = self._clock()
        record = None
        if not await self._store.join_budget_ok(self.ip, now=now):
            if message.code is not None and is_code(message.code):
                await self._store.record_code_failure(message.code, now=now)
        elif message.code is not None:
            if is_code(message.code):
                record = await self._store.join_by_code(message.code, self.id, now=now)
        elif is_share_id(message.share):
            assert message.share is not None
            record = await self._store.join_by_share(message.share, self.id, now=now)
        if record is None:
            await self._store.record_failed_join(self.ip, now=now)
            await self._send(
                Error(code=ErrorCode.JOIN_FAILED, message=JOIN_FAILED_MESSAGE, id=message.id)
            )
            return
        self._engaged()
        # Reply before telling the host, so nothing the host relays can overtake ``joined``.
        await self._send(Joined(session=record.session, share=record.share, id=message.id))
        if not await self._store.deliver(
            record.host, serialize(Peer(session=record.session, share=record.share))
        ):
            if await self._store.end_session(record.session, self.id) is not None:
                await self._send(Left(session=record.session))

    async def _on_relay(self, message: Relay) -> None:
        record = await self._store.get_session(message.session)
        other = record.other(self.id) if record is not None else None
        if other is None:
            await self._send(
                Error(code=ErrorCode.UNKNOWN_SESSION, message="no such session", id=message.id)
            )
            return
        try:
            frame = serialize(Relay(session=message.session, data=message.data))
        except LocalProtocolError as exc:
            await self._send(Error(code=exc.code, message=str(exc)[:MAX_TEXT_CHARS], id=message.id))
            return
        await self._store.deliver(other, frame)

    async def _on_leave(self, message: Leave) -> None:
        record = await self._store.end_session(message.session, self.id)
        other = record.other(self.id) if record is not None else None
        if other is None:
            await self._send(
                Error(code=ErrorCode.UNKNOWN_SESSION, message="no such session", id=message.id)
            )
            return
        await self._store.deliver(other, serialize(Left(session=message.session)))
        await self._send(Left(session=message.session, id=message.id))

    async def _on_ping(self, message: Ping) -> None:
        await self._send(Pong(id=message.id))
