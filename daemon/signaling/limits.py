"""Policy knobs of the signaling session store: code lifetime, attempt caps, budgets, queues."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Limits a :class:`~daemon.signaling.store.SessionStore` enforces.

    All durations are seconds of the server's injected clock (unix time by default).
    """

    code_ttl: float = 300.0
    """A code dies this long after it was issued, used or not."""
    code_attempt_cap: int = 5
    """A live code is revoked after this many refused join attempts against it."""
    ip_failed_join_budget: int = 20
    """Failed joins one IP address may make per window; beyond it every join from that address
    fails (with the same reply as any other failure)."""
    ip_budget_window: float = 600.0
    """Length of the per-IP budget window (a fixed window starting at the first failure)."""
    max_tracked_ips: int = 65_536
    """Bound on per-IP budget records kept in memory; the oldest are forgotten first."""
    mailbox_size: int = 256
    """Frames queued for one connection before it counts as too slow and is disconnected."""
    code_allocation_attempts: int = 64
    """Random draws tried before giving up on finding a free code (``try_later``)."""

    def __post_init__(self) -> None:
        if self.code_ttl <= 0 or self.ip_budget_window <= 0:
            raise ValueError("durations must be positive")
        if min(
            self.code_attempt_cap,
            self.ip_failed_join_budget,
            self.max_tracked_ips,
            self.mailbox_size,
            self.code_allocation_attempts,
        ) < 1:
            raise ValueError("counts must be at least 1")
