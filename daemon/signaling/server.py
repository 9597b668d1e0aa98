"""The signaling WebSocket server: ``ws://HOST:PORT/signal/v1``.

:func:`serve_signaling` (or :meth:`SignalingServer.serve`) listens with trio-websocket, rejects
any other path with HTTP 404 at the handshake, and runs one
:class:`~daemon.signaling.connection.ServerConnection` per accepted socket. Frames above
``MAX_FRAME_BYTES`` close the socket with 1009 (trio-websocket enforces the limit in characters
while reading, the message layer in UTF-8 bytes).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NoReturn

import trio
from trio_websocket import (
    ConnectionClosed,
    Endpoint,
    WebSocketRequest,
    WebSocketServer,
    serve_websocket,
)

from daemon.protocol.signaling import MAX_FRAME_BYTES, SIGNALING_PATH
from daemon.signaling.connection import ServerConnection
from daemon.signaling.store import SessionStore

__all__ = ["SignalingServer", "SignalingStatistics", "serve_signaling"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignalingStatistics:
    connections: int
    """Open sockets on this server instance."""
    shares: int
    codes: int
    sessions: int


class SignalingServer:
    """Signaling service over a :class:`~daemon.signaling.store.SessionStore`.

    Args:
        store: the shared state (a ``MemorySessionStore`` for a single instance).
        heartbeat_interval: seconds between WebSocket pings; ``None`` disables them.
        missed_heartbeats: unanswered pings in a row after which a socket is closed (4001).
        join_timeout: seconds a socket may stay open without hosting or joining (then 4000).
        clock: unix seconds; drives code expiry (``expires_at``) and failure budgets.
        handshake_timeout: seconds a client gets to finish the HTTP upgrade.
        close_timeout: seconds to wait for a closing handshake before dropping the TCP stream.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        heartbeat_interval: float | None = 30.0,
        missed_heartbeats: int = 3,
        join_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        handshake_timeout: float = 10.0,
        close_timeout: float = 5.0,
    ) -> None:
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be positive or None")
        if missed_heartbeats < 1 or join_timeout <= 0:
            raise ValueError("missed_heartbeats must be >= 1 and join_timeout positive")
        self.store = store
        self._heartbeat_interval = heartbeat_interval
        self._missed_heartbeats = missed_heartbeats
        self._join_timeout = join_timeout
        self._clock = clock
        self._handshake_timeout = handshake_timeout
        self._close_timeout = close_timeout
        self._connections = 0

    async def serve(
        self,
        host: str | None,
        port: int,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Listen on ``host``:``port`` (0 picks a free port) and serve until cancelled.

        Calls ``task_status.started(actual_port)`` once listening. Raises ``OSError`` if it cannot
        bind. Cancellation closes every socket (1001, bounded wait) after cleaning up its state.
        """
        async with trio.open_nursery() as nursery:
            ws_server: WebSocketServer = await nursery.start(
                partial(
                    serve_websocket,
                    self._handle_request,
                    host,
                    port,
                    None,
                    max_message_size=MAX_FRAME_BYTES,
                    connect_timeout=self._handshake_timeout,
                    disconnect_timeout=self._close_timeout,
                )
            )
            endpoints = [e for e in ws_server.listeners if isinstance(e, Endpoint)]
            logger.info("signaling listening on %s", ", ".join(e.url for e in endpoints))
            task_status.started(endpoints[0].port)
        raise AssertionError("serve_websocket returned")  # pragma: no cover

    async def statistics(self) -> SignalingStatistics:
        """Open sockets here, and shares, live codes and sessions in the store.

        Async because the store may be remote.
        """
        counts = await self.store.statistics(now=self._clock())
        return SignalingStatistics(
            connections=self._connections,
            shares=counts.shares,
            codes=counts.codes,
            sessions=counts.sessions,
        )

    async def _handle_request(self, request: WebSocketRequest) -> None:
        try:
            if request.path.partition("?")[0] != SIGNALING_PATH:
                await request.reject(404, body=b"not found\n")
                return
            ws = await request.accept()
        except ConnectionClosed:
            return
        ip = _client_ip(request.remote)
        connection = ServerConnection(
            ws,
            conn_id=secrets.token_urlsafe(12),
            ip=ip,
            store=self.store,
            clock=self._clock,
            heartbeat_interval=self._heartbeat_interval,
            missed_heartbeats=self._missed_heartbeats,
            join_timeout=self._join_timeout,
            close_timeout=self._close_timeout,
        )
        self._connections += 1
        try:
            await connection.run()
        finally:
            self._connections -= 1


def _client_ip(remote: Endpoint | str) -> str:
    """The address failure budgets are charged to (IPv4-mapped IPv6 counts as IPv4)."""
    if not isinstance(remote, Endpoint):
        return str(remote)
    address = remote.address
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped if mapped is not None else address)


async def serve_signaling(
    store: SessionStore,
    host: str | None,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    heartbeat_interval: float | None = 30.0,
    join_timeout: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> NoReturn:
    """Serve signaling v1 on ``host``:``port`` until cancelled; see :meth:`SignalingServer.serve`.

    ``task_status.started(actual_port)`` is called once listening (``port`` 0 is allowed).
    """
    server = SignalingServer(
        store, heartbeat_interval=heartbeat_interval, join_timeout=join_timeout, clock=clock
    )
    await server.serve(host, port, task_status=task_status)
