"""The signaling WebSocket server: ``ws://HOST:PORT/signal/v1``.

:func:`serve_signaling` (or :meth:`SignalingServer.serve`) listens with trio-websocket, rejects
any other path with HTTP 404 at the handshake, refuses handshakes beyond the connection caps
(503 for the instance cap, 429 for the per-address cap) or from a browser ``Origin`` that is not
allowed (403), and runs one
:class:`~daemon.signaling.connection.ServerConnection` per accepted socket. Frames above
``MAX_FRAME_BYTES`` close the socket with 1009 (trio-websocket enforces the limit in characters
while reading, the message layer in UTF-8 bytes).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn

import trio
from trio_websocket import (
    ConnectionClosed,
    Endpoint,
    WebSocketConnection,
    WebSocketRequest,
    WebSocketServer,
    serve_websocket,
)

from daemon.protocol.signaling import MAX_FRAME_BYTES, SIGNALING_PATH
from daemon.signaling.connection import (
    Handoff,
    IceServers,
    Identity,
    Outcome,
    ResumeDesk,
    ServerConnection,
    cleanup_identity,
)
from daemon.signaling.counters import Counters, LimitKind
from daemon.signaling.limits import Limits
from daemon.signaling.passwords import PasswordHasher
from daemon.signaling.rates import PresenceRates
from daemon.signaling.store import SessionStore

_CLEANUP_TIMEOUT = 5.0

__all__ = ["SignalingServer", "SignalingStatistics", "serve_signaling"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SignalingStatistics:
    connections: int
    """Open sockets on this server instance."""
    shares: int
    codes: int
    sessions: int
    joins_ok: int = 0
    """Successful joins on this instance since it started (a counter, like all below)."""
    joins_failed: int = 0
    """``join_failed`` replies, whatever the reason (budget refusals included)."""
    connections_opened: int = 0
    connections_closed: int = 0
    connections_refused: int = 0
    """Handshakes refused by a connection cap or the Origin allowlist."""
    limit_hits: Mapping[LimitKind, int] = dataclasses.field(default_factory=dict)
    """Refusals per limit, every :class:`~daemon.signaling.counters.LimitKind` present."""
    rooms: int = 0
    """Live rooms in the store."""

    def report(self) -> dict[str, Any]:
        """The figures as a stats section: counters end in ``_total``, labelled ones are
        ``{label: {value: n}}`` (the shape :func:`daemon.metrics.render_prometheus` reads)."""
        return {
            "connections": self.connections,
            "shares": self.shares,
            "codes": self.codes,
            "sessions": self.sessions,
            "rooms": self.rooms,
            "joins_total": {"result": {"ok": self.joins_ok, "failed": self.joins_failed}},
            "connections_opened_total": self.connections_opened,
            "connections_closed_total": self.connections_closed,
            "connections_refused_total": self.connections_refused,
            "limit_hits_total": {"limit": {str(kind): n for kind, n in self.limit_hits.items()}},
        }


class SignalingServer:
    """Signaling service over a :class:`~daemon.signaling.store.SessionStore`.

    Args:
        store: the shared state (a ``MemorySessionStore`` for a single instance).
        limits: connection caps and allowed origins enforced here (the budgets and code limits
            are the store's; give both the same :class:`Limits`). Default: ``Limits()``.
        heartbeat_interval: seconds between WebSocket pings; ``None`` disables them.
        missed_heartbeats: unanswered pings in a row after which a socket is closed (4001).
        join_timeout: seconds a socket may stay open without hosting or joining (then 4000).
        clock: unix seconds; drives code expiry (``expires_at``) and failure budgets.
        handshake_timeout: seconds a client gets to finish the HTTP upgrade.
        close_timeout: seconds to wait for a closing handshake before dropping the TCP stream.
        resume_grace: seconds the state of a lost socket that asked for a resume token
            (``hello``) waits for a ``resume`` before it is dropped.
        ice_servers: given a session id, the STUN/TURN servers (``RTCIceServer``-shaped dicts,
            TURN credentials minted for that session) handed to both ends of a new session in
            ``joined`` and ``peer``; called once per session, synchronously. ``None`` or an
            empty list: no ``ice`` field.
    """

    def __init__(
        self,
        store: SessionStore,
        *,
        limits: Limits | None = None,
        heartbeat_interval: float | None = 30.0,
        missed_heartbeats: int = 3,
        join_timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        handshake_timeout: float = 10.0,
        close_timeout: float = 5.0,
        resume_grace: float = 30.0,
        ice_servers: IceServers | None = None,
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
        self.limits = limits or Limits()
        self._connections = 0
        self._slots = 0
        """Sockets open or being accepted: what the connection caps count."""
        self._slots_per_ip: dict[str, int] = {}
        self._counters = Counters()
        self._passwords = PasswordHasher(self.limits)
        self._presence_rates = PresenceRates(self.limits)
        if resume_grace <= 0:
            raise ValueError("resume_grace must be positive")
        self._resume = ResumeDesk(resume_grace)
        self._ice_servers = ice_servers

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
            rooms=counts.rooms,
            joins_ok=self._counters.joins_ok,
            joins_failed=self._counters.joins_failed,
            connections_opened=self._counters.connections_opened,
            connections_closed=self._counters.connections_closed,
            connections_refused=self._counters.connections_refused,
            limit_hits=self._counters.limit_hits_snapshot(),
        )

    def _admission(self, request: WebSocketRequest, ip: str) -> tuple[int, LimitKind] | None:
        """Why the handshake must be refused (HTTP status and limit), or None to accept."""
        origins = [value for name, value in request.headers if name.lower() == b"origin"]
        if origins:
            origin = origins[0].decode("latin-1").lower()
            if len(origins) > 1 or origin not in self.limits.allowed_origins:
                return 403, LimitKind.ORIGIN
        if self._slots >= self.limits.max_connections:
            return 503, LimitKind.CONNECTIONS
        if self._slots_per_ip.get(ip, 0) >= self.limits.max_connections_per_ip:
            return 429, LimitKind.CONNECTIONS_PER_IP
        return None

    async def _handle_request(self, request: WebSocketRequest) -> None:
        if request.path.partition("?")[0] != SIGNALING_PATH:
            with trio.move_on_after(self._close_timeout):
                try:
                    await request.reject(404, body=b"not found\n")
                except ConnectionClosed:
                    pass
            return
        ip = _client_ip(request.remote)
        refusal = self._admission(request, ip)
        if refusal is not None:
            status, kind = refusal
            self._counters.connections_refused += 1
            self._counters.hit(kind)
            logger.debug("signaling handshake refused: %s", kind.value)
            with trio.move_on_after(self._close_timeout):
                try:
                    await request.reject(status, body=f"refused: {kind.value}\n".encode())
                except ConnectionClosed:
                    pass
            return
        # Reserve the slot before the first checkpoint, so concurrent handshakes see it.
        self._slots += 1
        self._slots_per_ip[ip] = self._slots_per_ip.get(ip, 0) + 1
        try:
            await self._accept_and_run(request, ip)
        finally:
            self._slots -= 1
            remaining = self._slots_per_ip[ip] - 1
            if remaining:
                self._slots_per_ip[ip] = remaining
            else:
                del self._slots_per_ip[ip]

    async def _accept_and_run(self, request: WebSocketRequest, ip: str) -> None:
        """Accept the socket and own a fresh :class:`Identity` (mailbox and store state) until
        it is done: across resumes, each onto a socket handed over by another handler."""
        try:
            ws = await request.accept()
        except ConnectionClosed:
            return
        self._counters.connections_opened += 1
        identity = Identity(conn_id=secrets.token_urlsafe(12), ip=ip)
        handoff: Handoff | None = None
        sent: Handoff | None = None
        try:
            async with self.store.open_mailbox(
                identity.conn_id, on_overflow=identity.on_overflow
            ) as mailbox:
                try:
                    while True:
                        connection = self._connection(ws, identity, handoff)
                        self._connections += 1
                        try:
                            outcome = await connection.run(
                                mailbox, partial(cleanup_identity, self.store, identity)
                            )
                        finally:
                            self._connections -= 1
                            if handoff is not None:
                                handoff.done.set()
                        if outcome is Outcome.HANDED_OFF:
                            sent = connection.handed_off
                            break
                        if outcome is not Outcome.LOST or identity.overflowed:
                            break
                        handoff = await self._park(identity)
                        if handoff is None:
                            break
                        ws = handoff.ws
                finally:
                    self._resume.forget(identity)
                    with trio.CancelScope(
                        shield=True, deadline=trio.current_time() + _CLEANUP_TIMEOUT
                    ):
                        await cleanup_identity(self.store, identity)
            if sent is not None:
                await sent.done.wait()  # trio-websocket closes ``ws`` when this handler returns
        finally:
            self._counters.connections_closed += 1

    def _connection(
        self, ws: WebSocketConnection, identity: Identity, resumed: Handoff | None
    ) -> ServerConnection:
        return ServerConnection(
            ws,
            identity=identity,
            resume=self._resume,
            resumed=resumed,
            store=self.store,
            counters=self._counters,
            passwords=self._passwords,
            clock=self._clock,
            heartbeat_interval=self._heartbeat_interval,
            missed_heartbeats=self._missed_heartbeats,
            join_timeout=self._join_timeout,
            close_timeout=self._close_timeout,
            ice_servers=self._ice_servers,
            presence_rates=self._presence_rates,
        )

    async def _park(self, identity: Identity) -> Handoff | None:
        """Wait up to the resume grace for a socket resuming ``identity``; None if none came
        (or the identity has no token, or its queue overflowed meanwhile)."""
        receive = identity.handoffs[1]
        try:
            return receive.receive_nowait()  # resumed while the old socket looked alive
        except trio.WouldBlock:
            pass
        if identity.token_digest is None:
            return None
        with trio.move_on_after(self._resume.grace) as scope:
            identity.park_scope = scope
            try:
                return await receive.receive()
            finally:
                identity.park_scope = None
        self._resume.forget(identity)
        try:
            return receive.receive_nowait()  # claimed in the same instant the grace ended
        except trio.WouldBlock:
            return None


def _client_ip(remote: Endpoint | str) -> str:
    """The client address that budgets and connection caps are charged to.

    An IPv4 address as is (IPv4-mapped IPv6 counts as IPv4); an IPv6 address as its /64
    (``2001:db8:1:2::/64``), since one host commonly controls a whole /64.
    """
    if not isinstance(remote, Endpoint):
        return str(remote)
    address = remote.address
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return str(mapped)
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


async def serve_signaling(
    store: SessionStore,
    host: str | None,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    limits: Limits | None = None,
    heartbeat_interval: float | None = 30.0,
    join_timeout: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> NoReturn:
    """Serve signaling v1 on ``host``:``port`` until cancelled; see :meth:`SignalingServer.serve`.

    ``task_status.started(actual_port)`` is called once listening (``port`` 0 is allowed).
    """
    server = SignalingServer(
        store,
        limits=limits,
        heartbeat_interval=heartbeat_interval,
        join_timeout=join_timeout,
        clock=clock,
    )
    await server.serve(host, port, task_status=task_status)
