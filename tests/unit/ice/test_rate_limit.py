"""Per-source token buckets: burst, refill, per-key isolation, bounded memory (LRU)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.ice.rate_limit import TokenBuckets


def test_burst_then_refill_at_rate() -> None:
    buckets = TokenBuckets(rate=10, burst=20, max_keys=8)
    assert [buckets.allow("a", now=0.0) for _ in range(21)] == [True] * 20 + [False]
    assert not buckets.allow("a", now=0.05)  # half a token earned
    assert buckets.allow("a", now=0.1)
    assert not buckets.allow("a", now=0.1)
    assert sum(buckets.allow("a", now=100.0) for _ in range(50)) == 20  # capped at the burst


def test_keys_are_independent() -> None:
    buckets = TokenBuckets(rate=1, burst=2, max_keys=8)
    assert buckets.allow("a", now=0) and buckets.allow("a", now=0) and not buckets.allow("a", now=0)
    assert buckets.allow("b", now=0)


def test_refused_requests_do_not_spend() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=8)
    assert buckets.allow("a", now=0)
    for step in range(9):
        assert not buckets.allow("a", now=step / 10)
    assert buckets.allow("a", now=1.0)


def test_clock_going_backwards_earns_nothing() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=8)
    assert buckets.allow("a", now=10.0)
    assert not buckets.allow("a", now=5.0)
    assert not buckets.allow("a", now=10.5)  # no credit for 5.0 -> 10.5
    assert buckets.allow("a", now=11.0)


def test_memory_is_bounded_least_recently_seen_forgotten() -> None:
    buckets = TokenBuckets(rate=1, burst=1, max_keys=3)
    for key in "abc":
        assert buckets.allow(key, now=0)
    assert not buckets.allow("a", now=0)  # "a" is now the most recent; "b" the oldest
    assert buckets.allow("d", now=0)
    assert len(buckets) == 3
    assert not buckets.allow("a", now=0)  # still tracked, still empty
    assert not buckets.allow("c", now=0)
    assert buckets.allow("b", now=0)  # was forgotten: a fresh bucket


@pytest.mark.parametrize(
    "kwargs",
    [{"rate": 0}, {"rate": -1}, {"rate": float("inf")}, {"rate": float("nan")}, {"burst": 0.5}, {"max_keys": 0}],
)
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(**({"rate": 1, "burst": 2, "max_keys": 4} | kwargs))


@given(
    rate=st.floats(0.1, 100),
    burst=st.integers(1, 50),
    times=st.lists(st.floats(0, 100), max_size=300).map(sorted),
)
def test_never_more_than_burst_plus_rate_times_elapsed(rate: float, burst: int, times: list[float]) -> None:
    buckets = TokenBuckets(rate=rate, burst=burst, max_keys=1)
    allowed = [t for t in times if buckets.allow("k", now=t)]
    if allowed:
        assert len(allowed) <= burst + rate * (allowed[-1] - allowed[0]) + 1e-6
