"""One server-side signaling socket: read loop, request dispatch, delivery, liveness.

:class:`ServerConnection` serves one accepted WebSocket until it closes. Its tasks live in one
nursery: the read loop (parse, dispatch, reply), the pump that writes frames other connections
delivered to this one through the store, the heartbeat, and the join-timeout watchdog. Whichever
decides the socket must close does so with a :class:`~daemon.protocol.signaling.CloseCode` and
cancels the nursery; the store is then cleaned up under a shield and the other ends of the
socket's sessions are told ``left``.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
    Hello,
    Host,
    Hosted,
    Join,
    Joined,
    Leave,
    Left,
    MemberJoined,
    MemberLeft,
    MessageError,
    Peer,
    Ping,
    Pong,
    Presence,
    PresenceReply,
    Relay,
    Resume,
    Resumed,
    RoomCreate,
    RoomCreated,
    RoomJoin,
    RoomJoined,
    RoomLeave,
    RoomLeft,
    RoomText,
    Text,
    Unhost,
    Unhosted,
    Welcome,
    is_code,
    is_room_id,
    is_share_id,
    parse_client_message,
    serialize,
)
from daemon.signaling.counters import Counters, LimitKind
from daemon.signaling.passwords import PasswordHasher
from daemon.signaling.rates import PresenceRates, SlidingWindow
from daemon.signaling.store import (
    CodesExhausted,
    ConnectionId,
    HostKeyMismatch,
    RoomMember,
    RoomsExhausted,
    SessionStore,
    hash_host_key,
)

__all__ = [
    "IceServers",
    "ServerConnection",
    "Identity",
    "Outcome",
    "ResumeDesk",
    "Handoff",
    "cleanup_identity",
    "JOIN_FAILED_MESSAGE",
]

logger = logging.getLogger(__name__)

JOIN_FAILED_MESSAGE = "no such code or share"
"""The one reply text for every join failure."""

_CLEANUP_TIMEOUT = 5.0
_SHUTDOWN_GRACE = 0.25

IceServers = Callable[[str], list[dict[str, Any]]]
"""Given a session id, the ICE servers (``{"urls": [...], "username"?, "credential"?}``) both of
its ends may use, with credentials minted for that session."""


class Outcome(enum.Enum):
    """How :meth:`ServerConnection.run` ended."""

    CLOSED = "closed"
    """The socket is done; its identity's state must be dropped."""
    LOST = "lost"
    """The socket was lost (no clean close by the client, or missed heartbeats); its identity
    may wait for a ``resume`` if it has a token."""
    HANDED_OFF = "handed_off"
    """This socket sent a valid ``resume``: it now serves another identity (see ``handoff``)."""


@dataclass(eq=False)
class Handoff:
    """A socket passed to the task that owns a resumed identity; ``done`` is set when that task
    no longer uses the socket (the socket's own handler must stay alive until then)."""

    ws: WebSocketConnection
    request_id: int | str | None
    done: trio.Event = field(default_factory=trio.Event)


@dataclass(eq=False)
class Identity:
    """What outlives one socket: the connection id the store knows, its mailbox owner's
    bookkeeping, and its resume token digest (if the client asked for one with ``hello``)."""

    conn_id: ConnectionId
    ip: str
    presence_window: SlidingWindow | None = None
    """This socket's ``presence`` rate window (survives resumes); made on first use."""
    token_digest: bytes | None = None
    used_rooms: bool = False
    overflowed: bool = False
    connection: ServerConnection | None = None
    park_scope: trio.CancelScope | None = None
    handoffs: tuple[trio.MemorySendChannel[Handoff], trio.MemoryReceiveChannel[Handoff]] = field(
        default_factory=lambda: trio.open_memory_channel[Handoff](1)
    )

    def on_overflow(self) -> None:
        """The store gave up delivering to this identity: end its socket or its parking."""
        self.overflowed = True
        if self.connection is not None:
            self.connection.overflowed()
        if self.park_scope is not None:
            self.park_scope.cancel()


class ResumeDesk:
    """Resume tokens of one server instance: digest -> :class:`Identity`.

    A token is 32 random bytes (``secrets.token_urlsafe(32)``), given to the client once; only
    its SHA-256 is kept. Claiming a token removes it (single use).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._identities: dict[bytes, Identity] = {}

    def issue(self, identity: Identity) -> str:
        """A fresh token for ``identity``, replacing its previous one."""
        self.forget(identity)
        token = secrets.token_urlsafe(32)
        identity.token_digest = hashlib.sha256(token.encode("ascii")).digest()
        self._identities[identity.token_digest] = identity
        return token

    def forget(self, identity: Identity) -> None:
        if identity.token_digest is not None:
            if self._identities.get(identity.token_digest) is identity:
                del self._identities[identity.token_digest]
            identity.token_digest = None

    def claim(self, token: str, handoff: Handoff) -> bool:
        """Hand ``handoff`` to the identity ``token`` belongs to; False if there is none.

        If the identity's old socket still looks alive, it is abandoned (as lost) first.
        """
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        identity = self._identities.pop(digest, None)
        if identity is None or identity.overflowed:
            return False
        identity.token_digest = None
        try:
            identity.handoffs[0].send_nowait(handoff)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        if identity.connection is not None:
            identity.connection.abandon()
        return True


async def cleanup_identity(store: SessionStore, identity: Identity) -> None:
    """Drop everything ``identity`` owns and tell the other ends (``member_left``, ``left``)."""
    if identity.used_rooms:  # spares sockets that never used rooms a store round trip
        for membership in await store.drop_room_memberships(identity.conn_id):
            left = serialize(MemberLeft(room=membership.room, member=membership.member))
            for member in membership.others:
                await store.deliver(member.conn, left)
    for record in await store.drop_connection(identity.conn_id):
        other = record.other(identity.conn_id)
        if other is not None:
            await store.deliver(other, serialize(Left(session=record.session)))


class ServerConnection:
    """Serves one accepted signaling WebSocket; see the module docstring.

    ``clock`` returns unix seconds and drives code TTLs and budgets; the heartbeat and the join
    timeout use trio's clock.
    """

    def __init__(
        self,
        ws: WebSocketConnection,
        *,
        identity: Identity,
        resume: ResumeDesk,
        resumed: Handoff | None,
        store: SessionStore,
        counters: Counters,
        passwords: PasswordHasher,
        clock: Callable[[], float],
        heartbeat_interval: float | None,
        missed_heartbeats: int,
        join_timeout: float,
        close_timeout: float,
        ice_servers: IceServers | None = None,
        presence_rates: PresenceRates | None = None,
    ) -> None:
        self.id = identity.conn_id
        self._presence_rates = presence_rates
        self._ice_servers = ice_servers
        self.ip = identity.ip
        self._identity = identity
        self._resume = resume
        self._resumed = resumed
        self._outcome = Outcome.CLOSED
        self.handed_off: Handoff | None = None
        """Set with outcome HANDED_OFF: this socket, as passed to the identity it resumed."""
        self._ws = ws
        self._store = store
        self._counters = counters
        self._passwords = passwords
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
            Hello: self._on_hello,
            Resume: self._on_resume,
            RoomCreate: self._on_room_create,
            RoomJoin: self._on_room_join,
            RoomLeave: self._on_room_leave,
            Text: self._on_text,
            Presence: self._on_presence,
        }

    async def run(
        self,
        mailbox: trio.abc.ReceiveChannel[str],
        cleanup: Callable[[], Awaitable[None]],
    ) -> Outcome:
        """Serve until the socket closes or the caller cancels; say how it ended.

        ``mailbox`` is the identity's delivery channel (the caller owns it and the store state).
        When the outcome is CLOSED, ``cleanup()`` (idempotent; the caller's
        :func:`cleanup_identity`) runs before the closing handshake, so the other ends learn at
        once; for LOST the caller decides (park or clean up).
        Never raises for peer behaviour; an unexpected error is logged and the socket closed with
        1011. On cancellation (server shutdown) the socket is closed with 1001, on overflow of its
        outgoing queue with 4002; the closing handshake gets at most ``close_timeout``. A socket
        handed off by ``resume`` is left open for its new owner.
        """
        self._identity.connection = self
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._identity.overflowed:
                    self.overflowed()
                if self._resumed is not None:
                    self._engaged()
                    token = self._resume.issue(self._identity)
                    await self._send(Resumed(token=token, id=self._resumed.request_id))
                nursery.start_soon(self._pump, mailbox)
                if self._heartbeat_interval is not None:
                    nursery.start_soon(self._heartbeat, self._heartbeat_interval)
                nursery.start_soon(self._watch_join_timeout)
                await self._read_loop()
                nursery.cancel_scope.cancel()
        except ConnectionClosed:  # sending ``resumed`` failed: lost again
            self._outcome = Outcome.LOST
        except Exception:
            logger.exception("signaling connection %s failed", self.id)
            self._close_code = CloseCode.INTERNAL_ERROR
            self._outcome = Outcome.CLOSED
        finally:
            self._identity.connection = None
            # Cancelled from outside (shutdown): trio-websocket's reader task is cancelled too,
            # so no closing handshake can complete; send the close frame and drop the stream.
            shutting_down = trio.current_effective_deadline() == -math.inf
            if shutting_down:
                self._outcome = Outcome.CLOSED
            if self._outcome is Outcome.CLOSED:
                with trio.CancelScope(shield=True, deadline=trio.current_time() + _CLEANUP_TIMEOUT):
                    await cleanup()
            if self._ws.closed is None and self._outcome is not Outcome.HANDED_OFF:
                grace = self._close_timeout
                if shutting_down:
                    grace = min(grace, _SHUTDOWN_GRACE)
                with trio.CancelScope(shield=True, deadline=trio.current_time() + grace):
                    await self._ws.aclose(self._close_code)
        return self._outcome

    def overflowed(self) -> None:
        """The store gave up delivering to us: stop everything (the pump may be stuck writing)."""
        logger.debug("signaling connection %s: outgoing queue overflowed", self.id)
        self._close_code = CloseCode.QUEUE_OVERFLOW
        self._outcome = Outcome.CLOSED
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def abandon(self) -> None:
        """Another socket resumed this identity: drop this socket (as lost) and stop."""
        self._close_code = CloseCode.NORMAL
        self._outcome = Outcome.LOST
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

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
                if self._outcome is Outcome.HANDED_OFF:
                    return
        except ConnectionClosed as exc:
            code = exc.reason.code if exc.reason is not None else None
            if code != CloseCode.NORMAL and self._outcome is Outcome.CLOSED:
                self._outcome = Outcome.LOST  # not a clean goodbye from the client
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
                self._outcome = Outcome.LOST
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

    async def _refuse_join(self, request_id: Any, *, now: float, charge_global: bool) -> None:
        """Every failed join, of a share or a room, whatever the reason: charge this address's
        budget (and the service-wide one when asked), count it, and send the one reply that
        never says why."""
        await self._store.record_failed_join(self.ip, now=now)
        if charge_global:
            await self._store.record_global_failed_join(now=now)
        self._counters.joins_failed += 1
        await self._send(Error(code=ErrorCode.JOIN_FAILED, message=JOIN_FAILED_MESSAGE, id=request_id))

    async def _on_join(self, message: Join) -> None:
        """Join by code or share id; every failure gets the same ``join_failed`` reply.

        Order of checks: the address budget (refuses every join), then for joins by code the
        global budget. A refused attempt is charged to the address (so a guesser stays locked
        out) and, when it names a live code, to that code's attempt cap. A failure the address
        budget admitted is charged to the address and, for a join by code, to the global budget.
        """
        now = self._clock()
        by_code = message.code is not None
        record = None
        refused_by: LimitKind | None = None
        if not await self._store.join_budget_ok(self.ip, now=now):
            refused_by = LimitKind.IP_BUDGET
        elif by_code and not await self._store.global_join_budget_ok(now=now):
            refused_by = LimitKind.GLOBAL_BUDGET
        if refused_by is not None:
            self._counters.hit(refused_by)
            if message.code is not None and is_code(message.code):
                if await self._store.record_code_failure(message.code, now=now):
                    self._counters.hit(LimitKind.CODE_ATTEMPT_CAP)
        elif message.code is not None:
            if is_code(message.code):
                record = await self._store.join_by_code(message.code, self.id, now=now)
        elif is_share_id(message.share):
            assert message.share is not None
            record = await self._store.join_by_share(message.share, self.id, now=now)
        if record is None:
            await self._refuse_join(message.id, now=now, charge_global=by_code and refused_by is None)
            return
        self._counters.joins_ok += 1
        self._engaged()
        joined = self._joined(record.session, record.share, message.id)
        # Reply before telling the host, so nothing the host relays can overtake ``joined``.
        await self._send(joined)
        peer = Peer(session=record.session, share=record.share, ice=joined.ice)
        if not await self._store.deliver(record.host, serialize(peer)):
            if await self._store.end_session(record.session, self.id) is not None:
                await self._send(Left(session=record.session))

    def _joined(self, session: str, share: str, request_id: Any) -> Joined:
        """The ``joined`` reply, with the session's ICE servers when the server hands any out
        (one mint per session: both ends get the same list). A failure to make them is logged
        (never the servers themselves: they hold credentials) and the join goes on without."""
        if self._ice_servers is not None:
            try:
                ice = self._ice_servers(session) or None
                return Joined(session=session, share=share, ice=ice, id=request_id)
            except Exception:
                logger.exception("no ICE servers for signaling session %s", session)
        return Joined(session=session, share=share, id=request_id)

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

    # --- resume -------------------------------------------------------------------------------

    async def _on_hello(self, message: Hello) -> None:
        token = self._resume.issue(self._identity)
        await self._send(Welcome(token=token, grace=self._resume.grace, id=message.id))

    async def _on_resume(self, message: Resume) -> None:
        """Hand this socket to the identity of ``message.token`` (see :class:`ResumeDesk`).

        Only a socket that has not hosted, joined or entered a room may resume; every failure
        gets the one ``resume_failed`` reply.
        """
        handoff = Handoff(ws=self._ws, request_id=message.id)
        fresh = self._join_scope.deadline != math.inf and self._identity.token_digest is None
        if fresh and self._resume.claim(message.token, handoff):
            self._outcome = Outcome.HANDED_OFF
            self.handed_off = handoff
            return
        await self._send(
            Error(
                code=ErrorCode.RESUME_FAILED,
                message="cannot resume that",
                id=message.id,
            )
        )

    # --- rooms --------------------------------------------------------------------------------

    async def _tell(self, members: tuple[RoomMember, ...], frame: str) -> None:
        for member in members:
            await self._store.deliver(member.conn, frame)

    async def _on_room_create(self, message: RoomCreate) -> None:
        hashed = await self._passwords.hash(message.password)
        self._identity.used_rooms = True
        try:
            entry = await self._store.create_room(
                self.id, hashed, name=message.name, now=self._clock()
            )
        except RoomsExhausted:
            await self._send(
                Error(code=ErrorCode.TRY_LATER, message="too many rooms", id=message.id)
            )
            return
        self._engaged()
        await self._send(
            RoomCreated(
                room=entry.room,
                member=entry.member,
                expires_at=entry.expires_at,
                name=entry.name,
                id=message.id,
            )
        )

    async def _on_room_join(self, message: RoomJoin) -> None:
        """Join a room; every failure (unknown or expired room, wrong password, room full,
        already a member, budgets used up) gets the one ``join_failed`` reply and is charged
        like a failed join by code (address budget, and the global budget unless refused)."""
        now = self._clock()
        entry = None
        refused_by: LimitKind | None = None
        if not await self._store.join_budget_ok(self.ip, now=now):
            refused_by = LimitKind.IP_BUDGET
        elif not await self._store.global_join_budget_ok(now=now):
            refused_by = LimitKind.GLOBAL_BUDGET
        if refused_by is not None:
            self._counters.hit(refused_by)
        else:
            hashed = None
            if is_room_id(message.room):
                hashed = await self._store.room_password_hash(message.room, now=now)
            if await self._passwords.verify(hashed, message.password):
                self._identity.used_rooms = True
                entry = await self._store.join_room(message.room, self.id, now=self._clock())
        if entry is None:
            await self._refuse_join(message.id, now=now, charge_global=refused_by is None)
            return
        self._counters.joins_ok += 1
        self._engaged()
        await self._send(
            RoomJoined(
                room=entry.room,
                member=entry.member,
                members=[other.member for other in entry.others],
                expires_at=entry.expires_at,
                name=entry.name,
                id=message.id,
            )
        )
        joined = serialize(MemberJoined(room=entry.room, member=entry.member))
        await self._tell(entry.others, joined)

    async def _unknown_room(self, request_id: Any) -> None:
        await self._send(
            Error(code=ErrorCode.UNKNOWN_ROOM, message="not in such a room", id=request_id)
        )

    async def _on_room_leave(self, message: RoomLeave) -> None:
        membership = await self._store.leave_room(message.room, self.id)
        if membership is None:
            await self._unknown_room(message.id)
            return
        left = serialize(MemberLeft(room=message.room, member=membership.member))
        await self._tell(membership.others, left)
        await self._send(RoomLeft(room=message.room, id=message.id))

    async def _on_text(self, message: Text) -> None:
        membership = await self._store.room_membership(message.room, self.id, now=self._clock())
        if membership is None:
            await self._unknown_room(message.id)
            return
        frame = serialize(RoomText(room=message.room, member=membership.member, text=message.text))
        await self._tell(membership.others, frame)

    # --- presence -----------------------------------------------------------------------------

    async def _on_presence(self, message: Presence) -> None:
        """Which of the asked shares are hosted right now. Rate limited per socket and per
        client address (``rate_limited``); does not count as engagement (join timeout)."""
        if self._presence_rates is not None:
            if self._identity.presence_window is None:
                self._identity.presence_window = self._presence_rates.socket_window()
            refused = self._presence_rates.admit(
                self._identity.presence_window, self.ip, now=self._clock()
            )
            if refused is not None:
                self._counters.hit(refused)
                await self._send(
                    Error(
                        code=ErrorCode.RATE_LIMITED,
                        message="too many presence requests, try again later",
                        id=message.id,
                    )
                )
                return
        online = await self._store.hosted(message.shares) if message.shares else set()
        await self._send(PresenceReply(online=sorted(online), id=message.id))
