"""In-process :class:`~daemon.signaling.store.SessionStore` for a single daemon instance.

All state is plain dicts; no method awaits anything, so each is atomic under trio. Delivery uses
one bounded trio memory channel per connection. Memory is bounded by the live connections (each
share has at most one code; sessions and shares die with their connections) plus the per-IP
budget table (capped by ``Limits.max_tracked_ips``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from daemon.signaling.limits import Limits
from daemon.signaling.store import (
    CodesExhausted,
    ConnectionId,
    HostKeyMismatch,
    HostResult,
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
class _Budget:
    window_start: float
    failures: int


@dataclass(slots=True)
class _Mailbox:
    send: trio.MemorySendChannel[str]
    on_overflow: Callable[[], None]


@dataclass(slots=True)
class _Owned:
    shares: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)


class MemorySessionStore:
    """A :class:`~daemon.signaling.store.SessionStore` kept in this process's memory."""

    def __init__(self, *, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._mailboxes: dict[ConnectionId, _Mailbox] = {}
        self._shares: dict[str, _Share] = {}
        self._codes: dict[str, _Code] = {}
        self._sessions: dict[str, SessionRecord] = {}
        self._owned: dict[ConnectionId, _Owned] = {}
        self._budgets: dict[str, _Budget] = {}

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
        budget = self._budgets.get(ip)
        if budget is None or now - budget.window_start >= self.limits.ip_budget_window:
            return True
        return budget.failures < self.limits.ip_failed_join_budget

    async def record_failed_join(self, ip: str, *, now: float) -> None:
        budget = self._budgets.pop(ip, None)  # re-inserted last: dict order is recency
        if budget is None or now - budget.window_start >= self.limits.ip_budget_window:
            budget = _Budget(window_start=now, failures=0)
        budget.failures += 1
        self._budgets[ip] = budget
        while len(self._budgets) > self.limits.max_tracked_ips:
            del self._budgets[next(iter(self._budgets))]

    async def record_code_failure(self, code: str, *, now: float) -> bool:
        record = self._live_code(code, now)
        if record is None:
            return False
        record.failures += 1
        if record.failures >= self.limits.code_attempt_cap:
            self._revoke_code(code)
            return True
        return False

    # --- introspection ----------------------------------------------------------------------

    async def statistics(self, *, now: float) -> StoreStatistics:
        for code in [c for c, record in self._codes.items() if record.expires_at <= now]:
            self._revoke_code(code)
        return StoreStatistics(
            connections=len(self._mailboxes),
            shares=len(self._shares),
            codes=len(self._codes),
            sessions=len(self._sessions),
        )
