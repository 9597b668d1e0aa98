"""Monotonic event counters of one signaling server instance (for Prometheus and tests).

:class:`Counters` is the mutable tally the server and its connections bump; the server exposes a
frozen copy through :meth:`~daemon.signaling.server.SignalingServer.statistics`. Counters are
per server instance and only ever grow (Prometheus ``counter`` semantics).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from collections.abc import Mapping

__all__ = ["LimitKind", "Counters"]


class LimitKind(enum.StrEnum):
    """Which limit refused something (the ``kind`` label of the limit-hit counter)."""

    IP_BUDGET = "ip_budget"
    """A join refused because its address used up its failed-join budget."""
    GLOBAL_BUDGET = "global_budget"
    """A join by code refused because the service-wide failed-join budget is used up."""
    CODE_ATTEMPT_CAP = "code_attempt_cap"
    """A live code revoked after ``code_attempt_cap`` refused attempts against it."""
    CONNECTIONS = "connections"
    """A handshake refused (503) because the instance has ``max_connections`` open sockets."""
    CONNECTIONS_PER_IP = "connections_per_ip"
    """A handshake refused (429) because its address has ``max_connections_per_ip`` sockets."""
    ORIGIN = "origin"
    """A handshake refused (403) because its ``Origin`` is not allowed."""
    PRESENCE_RATE = "presence_rate"
    """A ``presence`` request refused (``rate_limited``): its socket made too many."""
    PRESENCE_RATE_PER_IP = "presence_rate_per_ip"
    """A ``presence`` request refused (``rate_limited``): its client address made too many."""


@dataclass(slots=True)
class Counters:
    """Mutable tallies; read them through :meth:`limit_hits_snapshot` and the attributes."""

    joins_ok: int = 0
    joins_failed: int = 0
    connections_opened: int = 0
    """Sockets accepted (handshake completed)."""
    connections_closed: int = 0
    """Accepted sockets that have finished (for whatever reason)."""
    connections_refused: int = 0
    """Handshakes refused by a connection cap or the Origin allowlist (not wrong paths)."""
    limit_hits: dict[LimitKind, int] = field(
        default_factory=lambda: {kind: 0 for kind in LimitKind}
    )

    def hit(self, kind: LimitKind) -> None:
        self.limit_hits[kind] += 1

    def limit_hits_snapshot(self) -> Mapping[LimitKind, int]:
        """A read-only copy with every :class:`LimitKind` present."""
        return MappingProxyType(dict(self.limit_hits))
