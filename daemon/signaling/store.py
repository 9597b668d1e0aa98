"""The shared state of signaling, behind one small interface.

Everything two server instances behind one address would have to share lives behind
:class:`SessionStore`: codes with their TTL, share -> hosting connection, session -> its two
connection ids, per-address and global failure budgets, rooms, presence (which shares are hosted),
and delivery of a text frame to a connection id.
:class:`~daemon.signaling.memory_store.MemorySessionStore` implements it in process; a Redis
implementation (keys with ``PEXPIREAT``, Lua for the atomic join, pub/sub per connection id for
delivery) can be added without touching the server.

Contract shared by every implementation:

* Each method is atomic with respect to the others (the in-memory store never yields inside one).
* Time is never read by the store: callers pass ``now`` (seconds, from the server's injected
  clock), so TTL behaviour is testable without sleeping.
* Connection ids, share ids and session ids are opaque strings; the store mints session ids.
* Host keys reach the store only as :func:`hash_host_key` digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import trio

__all__ = [
    "ConnectionId",
    "SessionRecord",
    "HostResult",
    "StoreStatistics",
    "StoreError",
    "HostKeyMismatch",
    "CodesExhausted",
    "RoomsExhausted",
    "RoomMember",
    "RoomEntry",
    "RoomMembership",
    "SessionStore",
    "hash_host_key",
]

ConnectionId: TypeAlias = str


def hash_host_key(host_key: str) -> bytes:
    """The digest the store keeps instead of a host key (SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(host_key.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One session: the ``joiner`` connection linked with the ``host`` of ``share``."""

    session: str
    share: str
    host: ConnectionId
    joiner: ConnectionId

    def other(self, conn: ConnectionId) -> ConnectionId | None:
        """The other end of the session from ``conn``, or ``None`` if ``conn`` is no party."""
        if conn == self.host:
            return self.joiner
        if conn == self.joiner:
            return self.host
        return None


@dataclass(frozen=True, slots=True)
class HostResult:
    """Outcome of :meth:`SessionStore.host_share`.

    ``replaced`` is the connection that hosted the share before, if it was another one.
    """

    share: str
    code: str | None
    expires_at: float | None
    replaced: ConnectionId | None


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    connections: int
    shares: int
    codes: int
    """Live (unexpired, unused) codes."""
    sessions: int
    rooms: int = 0
    """Live (unexpired) rooms."""


class StoreError(Exception):
    """Base of the store's refusals."""


class HostKeyMismatch(StoreError):
    """The share is hosted with a different host key."""


class CodesExhausted(StoreError):
    """No free code could be found; the caller should answer ``try_later``."""


class RoomsExhausted(StoreError):
    """``Limits.max_rooms`` rooms exist; the caller should answer ``try_later``."""


@dataclass(frozen=True, slots=True)
class RoomMember:
    """One member of a room: its public ``member`` id and its (private) connection."""

    member: str
    conn: ConnectionId


@dataclass(frozen=True, slots=True)
class RoomEntry:
    """Outcome of :meth:`SessionStore.create_room` / :meth:`SessionStore.join_room`: ``member``
    is the new member's id; ``others`` are the members already in the room."""

    room: str
    name: str | None
    member: str
    expires_at: float
    others: tuple[RoomMember, ...]


@dataclass(frozen=True, slots=True)
class RoomMembership:
    """A connection's place in a room: its ``member`` id and the ``others`` in the room."""

    room: str
    member: str
    others: tuple[RoomMember, ...]


class SessionStore(Protocol):
    """Shared signaling state. See the module docstring for the common contract."""

    def open_mailbox(
        self, conn: ConnectionId, *, on_overflow: Callable[[], None]
    ) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[str]]:
        """Register ``conn`` for delivery for the duration of the context.

        Yields the receiving end of the frames :meth:`deliver` addresses to ``conn``, in order.
        If ``conn``'s bounded queue overflows, the store stops delivering to it and calls
        ``on_overflow()`` (synchronously, from the delivering task): the owner must then
        disconnect the socket. Leaving the context unregisters ``conn`` but does not drop its
        shares or sessions; call :meth:`drop_connection` first.
        """
        ...

    async def deliver(self, conn: ConnectionId, frame: str) -> bool:
        """Queue ``frame`` for ``conn`` without waiting.

        Returns False when ``conn`` has no mailbox (gone) or its queue is full; a full queue
        also triggers ``conn``'s ``on_overflow`` (once) so its owner disconnects it.
        """
        ...

    async def host_share(
        self,
        share: str,
        conn: ConnectionId,
        key_hash: bytes,
        *,
        want_code: bool,
        now: float,
    ) -> HostResult:
        """Register ``share`` as hosted by ``conn``, replacing any registration of it (whose live
        code is revoked), and allocate a fresh code if ``want_code``.

        Raises:
            HostKeyMismatch: ``share`` is registered with another key hash (nothing changes).
            CodesExhausted: ``want_code`` and no free code was found (nothing changes).
        """
        ...

    async def unhost_share(self, share: str, conn: ConnectionId) -> bool:
        """Drop ``share`` and its live code if ``conn`` hosts it; False otherwise.

        Existing sessions of the share are not ended.
        """
        ...

    async def hosted(self, shares: Collection[str]) -> set[str]:
        """The subset of ``shares`` hosted by some connection right now (one round trip).

        Shares of a connection lost with a resume token stay hosted through its grace period.
        ``shares`` holds at most a few dozen ids (the server caps it); it may be empty.
        """
        ...

    async def join_by_code(
        self, code: str, joiner: ConnectionId, *, now: float
    ) -> SessionRecord | None:
        """Consume the live ``code`` and open a session with its share's host.

        Returns None (and consumes nothing) when the code is unknown, expired or used, or
        ``joiner`` is the host itself.
        """
        ...

    async def join_by_share(
        self, share: str, joiner: ConnectionId, *, now: float
    ) -> SessionRecord | None:
        """Open a session with the host of ``share``; None if not hosted (or by ``joiner``)."""
        ...

    async def get_session(self, session: str) -> SessionRecord | None:
        """The session, or None if it does not exist (any more)."""
        ...

    async def end_session(self, session: str, conn: ConnectionId) -> SessionRecord | None:
        """End ``session`` if ``conn`` is a party of it and return it; None otherwise."""
        ...

    async def drop_connection(self, conn: ConnectionId) -> list[SessionRecord]:
        """Drop everything ``conn`` owns: its shares and their codes, and its sessions.

        Returns the ended sessions so that the caller can tell their other ends. Idempotent.
        """
        ...

    async def join_budget_ok(self, ip: str, *, now: float) -> bool:
        """Whether ``ip`` may still try to join: fewer than ``Limits.ip_failed_join_budget``
        failures were charged to it in the sliding window ``(now - ip_budget_window, now]``."""
        ...

    async def record_failed_join(self, ip: str, *, now: float) -> None:
        """Charge one failed join to ``ip``'s budget (at time ``now``).

        The server also charges attempts refused because the budget was used up, so an address
        that keeps guessing stays locked out. An implementation may keep only the newest
        ``ip_failed_join_budget`` timestamps per address.
        """
        ...

    async def global_join_budget_ok(self, *, now: float) -> bool:
        """Whether joins by code are still allowed service-wide: fewer than
        ``Limits.global_failed_join_budget`` failures were charged with
        :meth:`record_global_failed_join` in the sliding window
        ``(now - global_budget_window, now]``.

        For the guessing bound in docs/signaling.md to hold across instances, the check and the
        charge of one attempt should be atomic (e.g. one Lua script); otherwise the bound loosens
        by the number of joins in flight at once.
        """
        ...

    async def record_global_failed_join(self, *, now: float) -> None:
        """Charge one failed join by code to the service-wide budget (at time ``now``).

        The server charges only attempts that its per-address budget admitted.
        """
        ...

    async def record_code_failure(self, code: str, *, now: float) -> bool:
        """Count one refused attempt against the live ``code``; revoke it at the cap.

        Returns True if the code was revoked by this call. Unknown codes are ignored.
        """
        ...

    async def statistics(self, *, now: float) -> StoreStatistics:
        """Current counts (expired codes are not counted)."""
        ...

    # --- rooms (added with rooms; all ids minted by the store with ``secrets``) ---------------

    async def create_room(
        self, conn: ConnectionId, password_hash: bytes, *, name: str | None, now: float
    ) -> RoomEntry:
        """Create a room that lives until ``now + Limits.room_ttl`` with ``conn`` as its only
        member. The room id is random (never derived from the password); ``password_hash`` is an
        argon2id string the server made and is kept as is.

        Raises:
            RoomsExhausted: ``Limits.max_rooms`` live rooms exist (nothing changes).
        """
        ...

    async def room_password_hash(self, room: str, *, now: float) -> bytes | None:
        """The password hash of the live ``room``; None if unknown or expired."""
        ...

    async def join_room(self, room: str, conn: ConnectionId, *, now: float) -> RoomEntry | None:
        """Add ``conn`` to the live ``room`` with a fresh member id. None (nothing changes) if
        the room is unknown or expired, full (``Limits.max_room_members``), or ``conn`` is
        already a member. The caller has checked the password."""
        ...

    async def room_membership(
        self, room: str, conn: ConnectionId, *, now: float
    ) -> RoomMembership | None:
        """``conn``'s membership of the live ``room``; None if it is not a member or the room is
        unknown or expired (an expired room is destroyed)."""
        ...

    async def leave_room(self, room: str, conn: ConnectionId) -> RoomMembership | None:
        """Remove ``conn`` from ``room`` (destroying the room when it was the last member) and
        return what it was, with the members left behind; None if it was not a member."""
        ...

    async def drop_room_memberships(self, conn: ConnectionId) -> list[RoomMembership]:
        """Remove ``conn`` from every room (as :meth:`leave_room`); the server calls it when a
        socket closes, before :meth:`drop_connection`. Idempotent."""
        ...
