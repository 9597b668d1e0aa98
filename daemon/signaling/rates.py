"""Request rate limits of one server instance: sliding windows per socket and per client address.

Used for ``presence`` (see docs/signaling.md, Presence). Times come from the server's injected
clock. Only admitted requests are counted: a refused request reveals nothing, so it costs nothing.
"""

from __future__ import annotations

from collections import deque

from daemon.signaling.counters import LimitKind
from daemon.signaling.limits import Limits

__all__ = ["SlidingWindow", "PresenceRates"]


class SlidingWindow:
    """At most ``count`` events in any sliding ``window`` seconds (``(now - window, now]``)."""

    __slots__ = ("_count", "_window", "_times")

    def __init__(self, count: int, window: float) -> None:
        self._count = count
        self._window = window
        self._times: deque[float] = deque(maxlen=count)
        """The newest ``count`` event times, least recent first."""

    def ok(self, now: float) -> bool:
        """Whether one more event would stay within the limit."""
        return len(self._times) < self._count or now - self._times[0] >= self._window

    def charge(self, now: float) -> None:
        self._times.append(now)


class PresenceRates:
    """The ``presence`` limits of one server instance: ``Limits.presence_requests`` per socket
    and ``Limits.presence_requests_per_ip`` per client address, both per
    ``Limits.presence_window``. Per-address windows are kept for at most
    ``Limits.max_tracked_ips`` addresses, the least recently charged forgotten first."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._by_ip: dict[str, SlidingWindow] = {}

    def socket_window(self) -> SlidingWindow:
        """A fresh window for one socket (identity)."""
        return SlidingWindow(self._limits.presence_requests, self._limits.presence_window)

    def admit(self, socket: SlidingWindow, ip: str, *, now: float) -> LimitKind | None:
        """Charge one request to ``socket`` and ``ip`` and return None, or return the limit that
        refuses it (and charge nothing)."""
        if not socket.ok(now):
            return LimitKind.PRESENCE_RATE
        window = self._by_ip.pop(ip, None)  # re-inserted last: dict order is recency
        if window is None:
            window = SlidingWindow(self._limits.presence_requests_per_ip, self._limits.presence_window)
        self._by_ip[ip] = window
        while len(self._by_ip) > self._limits.max_tracked_ips:
            del self._by_ip[next(iter(self._by_ip))]
        if not window.ok(now):
            return LimitKind.PRESENCE_RATE_PER_IP
        socket.charge(now)
        window.charge(now)
        return None
