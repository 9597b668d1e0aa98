"""Policy knobs of signaling: code lifetime, attempt caps, failure budgets, connection caps,
allowed browser origins, queues, presence rates. ``docs/signaling.md`` (Limits) explains the
defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Limits the signaling server and its :class:`~daemon.signaling.store.SessionStore` enforce.

    All durations are seconds of the server's injected clock (unix time by default). The store
    enforces codes, attempt caps and failure budgets (shared by every server instance on it);
    the server enforces connection caps and the Origin allowlist (per server instance).
    """

    code_ttl: float = 300.0
    """A code dies this long after it was issued, used or not."""
    code_attempt_cap: int = 5
    """A live code is revoked after this many refused join attempts against it."""
    ip_failed_join_budget: int = 20
    """Failed joins one client address (an IPv4 address, or an IPv6 /64) may make in any
    sliding window of ``ip_budget_window``; beyond it every join from that address fails (with
    the same reply as any other failure). Each refused attempt is charged too, so an address that
    keeps guessing stays locked out: it gets in again only once fewer than the budget of its
    attempts fall within the last window."""
    ip_budget_window: float = 600.0
    """Length of the sliding per-address budget window."""
    global_failed_join_budget: int = 50
    """Failed *code* joins (from addresses within their own budget) the whole service accepts in
    any sliding window of ``global_budget_window``; beyond it every join by code fails, from any
    address, until the window slides on. Joins by share id are not blocked by it. This is the
    limit that bounds guessing from many addresses (see docs/signaling.md)."""
    global_budget_window: float = 600.0
    """Length of the sliding global budget window; must be at least ``code_ttl`` for the
    guessing bound in docs/signaling.md to hold."""
    max_tracked_ips: int = 65_536
    """Bound on per-address budget records kept in memory; the least recently charged are
    forgotten first."""
    mailbox_size: int = 256
    """Frames queued for one connection before it counts as too slow and is disconnected."""
    code_allocation_attempts: int = 64
    """Random draws tried before giving up on finding a free code (``try_later``)."""
    max_connections: int = 1024
    """Open sockets one server instance accepts; further handshakes are refused with HTTP 503."""
    max_connections_per_ip: int = 32
    """Open sockets from one client address (IPv4 address or IPv6 /64) per server instance;
    further handshakes from it are refused with HTTP 429."""
    allowed_origins: frozenset[str] = frozenset()
    """Browser origins (``scheme://host[:port]``, compared case-insensitively) allowed to
    connect. A handshake carrying an ``Origin`` header not listed here is refused with HTTP 403;
    a handshake without ``Origin`` (a native client) is always allowed. Empty: no browser page
    may connect."""

    room_ttl: float = 3600.0
    """A room is destroyed this long after it was created, or when its last member leaves."""
    max_rooms: int = 256
    """Live rooms in the store; ``room_create`` beyond it answers ``try_later``."""
    max_room_members: int = 16
    """Members one room holds; a join beyond it fails with ``join_failed``."""
    room_password_opslimit: int = 2
    """argon2id passes for room passwords (libsodium's INTERACTIVE: 2)."""
    room_password_memlimit: int = 64 * 1024 * 1024
    """argon2id memory for room passwords, bytes (libsodium's INTERACTIVE: 64 MiB)."""
    concurrent_password_hashes: int = 2
    """argon2id computations one server instance runs at once (each takes the memlimit)."""

    presence_requests: int = 10
    """``presence`` requests one socket may make in any sliding ``presence_window``; beyond it
    the server answers ``rate_limited`` (refused requests are not counted)."""
    presence_requests_per_ip: int = 60
    """``presence`` requests all sockets of one client address may make, together, in any
    sliding ``presence_window`` on one server instance (so reconnecting does not reset it)."""
    presence_window: float = 60.0
    """Length of the sliding presence windows."""

    def __post_init__(self) -> None:
        if min(
            self.code_ttl,
            self.ip_budget_window,
            self.global_budget_window,
            self.room_ttl,
            self.presence_window,
        ) <= 0:
            raise ValueError("durations must be positive")
        if min(
            self.code_attempt_cap,
            self.ip_failed_join_budget,
            self.global_failed_join_budget,
            self.max_tracked_ips,
            self.mailbox_size,
            self.code_allocation_attempts,
            self.max_connections,
            self.max_connections_per_ip,
            self.max_rooms,
            self.max_room_members,
            self.room_password_opslimit,
            self.concurrent_password_hashes,
            self.presence_requests,
            self.presence_requests_per_ip,
        ) < 1:
            raise ValueError("counts must be at least 1")
        if self.room_password_memlimit < 8192:
            raise ValueError("room_password_memlimit must be at least 8192 bytes (libsodium)")
        if not isinstance(self.allowed_origins, frozenset) or not all(
            isinstance(origin, str) for origin in self.allowed_origins
        ):
            raise ValueError("allowed_origins must be a frozenset of strings")
        object.__setattr__(
            self, "allowed_origins", frozenset(o.lower() for o in self.allowed_origins)
        )
