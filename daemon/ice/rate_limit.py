"""Per-source token buckets with bounded memory: pure, no clock of its own (callers pass ``now``)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """One token bucket per key (a source address, say), at most ``max_keys`` of them.

    Each key may spend ``burst`` tokens at once and earns ``rate`` tokens per second back, up to
    ``burst``. When a new key arrives and ``max_keys`` are tracked, the key seen least recently is
    forgotten (it comes back later with a full bucket): memory stays bounded whatever the number
    of sources, and a forgotten source gains at most one extra burst.

    ``now`` is any monotonic clock in seconds; a clock that goes backwards earns nothing.
    Raises ValueError for a non-positive or non-finite ``rate``, a ``burst`` below 1 or a
    ``max_keys`` below 1.
    """

    __slots__ = ("rate", "burst", "max_keys", "_buckets")

    def __init__(self, *, rate: float, burst: float, max_keys: int) -> None:
        if not (0 < rate < math.inf) or not (1 <= burst < math.inf) or max_keys < 1:
            raise ValueError("rate must be positive, burst at least 1 and max_keys at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        """key -> (tokens, time of last update), least recently seen first."""

    def __len__(self) -> int:
        """How many keys are tracked."""
        return len(self._buckets)

    def allow(self, key: Hashable, *, now: float) -> bool:
        """Spend one of ``key``'s tokens if it has one; False means over the limit."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            tokens, last = self.burst, now
        else:
            tokens, last = bucket
            if now > last:
                tokens, last = min(self.burst, tokens + (now - last) * self.rate), now
            self._buckets.move_to_end(key)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, last)
        return allowed
