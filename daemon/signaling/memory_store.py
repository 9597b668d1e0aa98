"""In-process :class:`~daemon.signaling.store.SessionStore` for a single daemon instance.

All state is plain dicts; no method awaits anything, so each is atomic under trio. Delivery uses
one bounded trio memory channel per connection. Memory is bounded by the live connections (each
share has at most one code; sessions and shares die with their connections) plus the per-IP
budget table (capped by ``Limits.max_tracked_ips``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from collections import deque
from dataclasses import dataclass, field

import trio

from daemon.signaling.limits import Limits
from daemon.signaling.store import (
    CodesExhausted,
    ConnectionId,
    HostKeyMismatch,
    HostResult,
    RoomEntry,
    RoomMember,
    RoomMembership,
    RoomsExhausted,
    SessionRecord,
    StoreStatistics,
)

__all__ = ["MemorySessionStore"]


@dataclass(slots=True)
class _Share:
    share: str
    conn: ConnectionId
    key_hash: bytes
    code: str | None


@dataclass(slots=True)
class _Code:
    code: str
    share: str
    expires_at: float
    failures: int = 0


@dataclass(slots=True)
class _Mailbox:
    send: trio.MemorySendChannel[str]
    on_overflow: Callable[[], None]


@dataclass(slots=True)
class _Owned:
    shares: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    rooms: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Room:
    room: str
    name: str | None
    password_hash: bytes
    expires_at: float
    members: dict[ConnectionId, str] = field(default_factory=dict)
    """conn -> member id, in joining order."""

    def others(self, conn: ConnectionId) -> tuple[RoomMember, ...]:
        return tuple(RoomMember(member=m, conn=c) for c, m in self.members.items() if c != conn)


class MemorySessionStore:
    """A :class:`~daemon.signaling.store.SessionStore` kept in this process's memory."""

    def __init__(self, *, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._mailboxes: dict[ConnectionId, _Mailbox] = {}
        self._shares: dict[str, _Share] = {}
        self._codes: dict[str, _Code] = {}
        self._sessions: dict[str, SessionRecord] = {}
        self._owned: dict[ConnectionId, _Owned] = {}
        self._rooms: dict[str, _Room] = {}
        self._budgets: dict[str, deque[float]] = {}
        """Per address: the newest failure times (at most the budget), least recent first."""
        self._global_failures: deque[float] = deque(maxlen=self.limits.global_failed_join_budget)

    # --- delivery ---------------------------------------------------------------------------

    @asynccontextmanager
    async def open_mailbox(
        self, conn: ConnectionId, *, on_overflow: Callable[[], None]
    ) -> AsyncIterator[trio.MemoryReceiveChannel[str]]:
        if conn in self._mailboxes:
            raise ValueError("connection id already has a mailbox")
        send, receive = trio.open_memory_channel[str](self.limits.mailbox_size)
        mailbox = _Mailbox(send=send, on_overflow=on_overflow)
        self._mailboxes[conn] = mailbox
        try:
            yield receive
        finally:
            if self._mailboxes.get(conn) is mailbox:
                del self._mailboxes[conn]
            send.close()
            receive.close()

    async def deliver(self, conn: ConnectionId, frame: str) -> bool:
        mailbox = self._mailboxes.get(conn)
        if mailbox is None:
            return False
        try:
            mailbox.send.send_nowait(frame)
        except trio.WouldBlock:
            mailbox.send.close()  # no more deliveries; the owner disconnects the slow socket
            mailbox.on_overflow()
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False
        return True

    # --- shares and codes -------------------------------------------------------------------

    def _owned_by(self, conn: ConnectionId) -> _Owned:
        owned = self._owned.get(conn)
        if owned is None:
            owned = self._owned[conn] = _Owned()
        return owned

    def _revoke_code(self, code: str | None) -> None:
        if code is None:
            return
        record = self._codes.pop(code, None)
        if record is not None:
            share = self._shares.get(record.share)
            if share is not None and share.code == code:
                share.code = None

    def _live_code(self, code: str, now: float) -> _Code | None:
        record = self._codes.get(code)
        if record is not None and record.expires_at <= now:
            self._revoke_code(code)
            return None
        return record

    def _allocate_code(self, now: float) -> str:
        for _ in range(self.limits.code_allocation_attempts):
            candidate = f"{secrets.randbelow(10**6):06d}"
            if self._live_code(candidate, now) is None:
                return candidate
        raise CodesExhausted("no free code")

    async def host_share(
        self,
        share: str,
        conn: ConnectionId,
        key_hash: bytes,
        *,
        want_code: bool,
        now: float,
    ) -> HostResult:
        existing = self._shares.get(share)
        if existing is not None and not hmac.compare_digest(existing.key_hash, key_hash):
            raise HostKeyMismatch("share is hosted with another key")
        code = self._allocate_code(now) if want_code else None
        replaced: ConnectionId | None = None
        if existing is not None:
            self._revoke_code(existing.code)
            if existing.conn != conn:
                replaced = existing.conn
                self._owned_by(existing.conn).shares.discard(share)
        self._shares[share] = _Share(share=share, conn=conn, key_hash=key_hash, code=code)
        self._owned_by(conn).shares.add(share)
        expires_at: float | None = None
        if code is not None:
            expires_at = now + self.limits.code_ttl
            self._codes[code] = _Code(code=code, share=share, expires_at=expires_at)
        return HostResult(share=share, code=code, expires_at=expires_at, replaced=replaced)

    async def unhost_share(self, share: str, conn: ConnectionId) -> bool:
        record = self._shares.get(share)
        if record is None or record.conn != conn:
            return False
        self._drop_share(record)
        return True

    async def hosted(self, shares: Collection[str]) -> set[str]:
        return {share for share in shares if share in self._shares}

    def _drop_share(self, record: _Share) -> None:
        self._revoke_code(record.code)
        del self._shares[record.share]
        owned = self._owned.get(record.conn)
        if owned is not None:
            owned.shares.discard(record.share)

    # --- sessions ---------------------------------------------------------------------------

    def _open_session(self, share: _Share, joiner: ConnectionId) -> SessionRecord:
        session = secrets.token_urlsafe(16)
        while session in self._sessions:  # pragma: no cover - 128 random bits
            session = secrets.token_urlsafe(16)
        record = SessionRecord(session=session, share=share.share, host=share.conn, joiner=joiner)
        self._sessions[session] = record
        self._owned_by(share.conn).sessions.add(session)
        self._owned_by(joiner).sessions.add(session)
        return record

    async def join_by_code(
        self, code: str, joiner: ConnectionId, *, now: float
    ) -> SessionRecord | None:
        record = self._live_code(code, now)
        if record is None:
            return None
        share = self._shares.get(record.share)
        if share is None or share.conn == joiner:
            return None
        self._revoke_code(code)  # single use: consumed by the first successful join
        return self._open_session(share, joiner)

    async def join_by_share(
        self, share: str, joiner: ConnectionId, *, now: float
    ) -> SessionRecord | None:
        record = self._shares.get(share)
        if record is None or record.conn == joiner:
            return None
        return self._open_session(record, joiner)

    async def get_session(self, session: str) -> SessionRecord | None:
        return self._sessions.get(session)

    def _forget_session(self, record: SessionRecord) -> None:
        del self._sessions[record.session]
        for conn in (record.host, record.joiner):
            owned = self._owned.get(conn)
            if owned is not None:
                owned.sessions.discard(record.session)

    async def end_session(self, session: str, conn: ConnectionId) -> SessionRecord | None:
        record = self._sessions.get(session)
        if record is None or record.other(conn) is None:
            return None
        self._forget_session(record)
        return record

    async def drop_connection(self, conn: ConnectionId) -> list[SessionRecord]:
        for room in list(self._owned.get(conn, _Owned()).rooms):  # normally done already
            await self.leave_room(room, conn)
        owned = self._owned.pop(conn, None)
        if owned is None:
            return []
        for share in list(owned.shares):
            record = self._shares.get(share)
            if record is not None and record.conn == conn:
                self._drop_share(record)
        ended = []
        for session in list(owned.sessions):
            record = self._sessions.get(session)
            if record is not None:
                self._forget_session(record)
                ended.append(record)
        return ended

    # --- abuse budgets ----------------------------------------------------------------------

    async def join_budget_ok(self, ip: str, *, now: float) -> bool:
        return _window_ok(
            self._budgets.get(ip),
            self.limits.ip_failed_join_budget,
            self.limits.ip_budget_window,
            now,
        )

    async def record_failed_join(self, ip: str, *, now: float) -> None:
        failures = self._budgets.pop(ip, None)  # re-inserted last: dict order is recency
        if failures is None:
            failures = deque(maxlen=self.limits.ip_failed_join_budget)
        failures.append(now)
        self._budgets[ip] = failures
        while len(self._budgets) > self.limits.max_tracked_ips:
            del self._budgets[next(iter(self._budgets))]

    async def global_join_budget_ok(self, *, now: float) -> bool:
        return _window_ok(
            self._global_failures,
            self.limits.global_failed_join_budget,
            self.limits.global_budget_window,
            now,
        )

    async def record_global_failed_join(self, *, now: float) -> None:
        self._global_failures.append(now)

    async def record_code_failure(self, code: str, *, now: float) -> bool:
        record = self._live_code(code, now)
        if record is None:
            return False
        record.failures += 1
        if record.failures >= self.limits.code_attempt_cap:
            self._revoke_code(code)
            return True
        return False

    # --- rooms ------------------------------------------------------------------------------

    def _destroy_room(self, record: _Room) -> None:
        del self._rooms[record.room]
        for conn in record.members:
            owned = self._owned.get(conn)
            if owned is not None:
                owned.rooms.discard(record.room)

    def _live_room(self, room: str, now: float) -> _Room | None:
        record = self._rooms.get(room)
        if record is not None and record.expires_at <= now:
            self._destroy_room(record)
            return None
        return record

    def _purge_rooms(self, now: float) -> None:
        for record in [r for r in self._rooms.values() if r.expires_at <= now]:
            self._destroy_room(record)

    def _new_member_id(self, record: _Room) -> str:
        member = secrets.token_urlsafe(9)
        while member in record.members.values():  # pragma: no cover - 72 random bits
            member = secrets.token_urlsafe(9)
        return member

    async def create_room(
        self, conn: ConnectionId, password_hash: bytes, *, name: str | None, now: float
    ) -> RoomEntry:
        if len(self._rooms) >= self.limits.max_rooms:
            self._purge_rooms(now)
            if len(self._rooms) >= self.limits.max_rooms:
                raise RoomsExhausted("too many rooms")
        room = secrets.token_urlsafe(16)
        while room in self._rooms:  # pragma: no cover - 128 random bits
            room = secrets.token_urlsafe(16)
        record = _Room(
            room=room,
            name=name,
            password_hash=password_hash,
            expires_at=now + self.limits.room_ttl,
        )
        member = self._new_member_id(record)
        record.members[conn] = member
        self._rooms[room] = record
        self._owned_by(conn).rooms.add(room)
        return RoomEntry(
            room=room, name=name, member=member, expires_at=record.expires_at, others=()
        )

    async def room_password_hash(self, room: str, *, now: float) -> bytes | None:
        record = self._live_room(room, now)
        return None if record is None else record.password_hash

    async def join_room(self, room: str, conn: ConnectionId, *, now: float) -> RoomEntry | None:
        record = self._live_room(room, now)
        if (
            record is None
            or conn in record.members
            or len(record.members) >= self.limits.max_room_members
        ):
            return None
        others = record.others(conn)
        member = self._new_member_id(record)
        record.members[conn] = member
        self._owned_by(conn).rooms.add(room)
        return RoomEntry(
            room=room,
            name=record.name,
            member=member,
            expires_at=record.expires_at,
            others=others,
        )

    async def room_membership(
        self, room: str, conn: ConnectionId, *, now: float
    ) -> RoomMembership | None:
        record = self._live_room(room, now)
        if record is None or conn not in record.members:
            return None
        return RoomMembership(room=room, member=record.members[conn], others=record.others(conn))

    async def leave_room(self, room: str, conn: ConnectionId) -> RoomMembership | None:
        record = self._rooms.get(room)
        if record is None or conn not in record.members:
            return None
        member = record.members.pop(conn)
        owned = self._owned.get(conn)
        if owned is not None:
            owned.rooms.discard(room)
        if not record.members:
            del self._rooms[room]
        return RoomMembership(room=room, member=member, others=record.others(conn))

    async def drop_room_memberships(self, conn: ConnectionId) -> list[RoomMembership]:
        owned = self._owned.get(conn)
        if owned is None:
            return []
        left = []
        for room in list(owned.rooms):
            membership = await self.leave_room(room, conn)
            if membership is not None:
                left.append(membership)
        return left

    def room_count(self, *, now: float) -> int:
        """Live rooms (not part of the protocol; for tests and statistics)."""
        self._purge_rooms(now)
        return len(self._rooms)

    # --- introspection ----------------------------------------------------------------------

    async def statistics(self, *, now: float) -> StoreStatistics:
        for code in [c for c, record in self._codes.items() if record.expires_at <= now]:
            self._revoke_code(code)
        self._purge_rooms(now)
        return StoreStatistics(
            connections=len(self._mailboxes),
            shares=len(self._shares),
            codes=len(self._codes),
            sessions=len(self._sessions),
            rooms=len(self._rooms),
        )


def _window_ok(failures: deque[float] | None, budget: int, window: float, now: float) -> bool:
    """Fewer than ``budget`` of the newest ``budget`` failure times fall in ``(now - window, now]``.

    ``failures`` holds at most ``budget`` times in the order they were charged; the budget is used
    up exactly when it is full and its oldest entry is younger than ``window``.
    """
    if failures is None or len(failures) < budget:
        return True
    return now - failures[0] >= window
