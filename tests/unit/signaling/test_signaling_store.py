"""MemorySessionStore against the SessionStore contract (no sockets, no sleeping)."""

from __future__ import annotations

import pytest

from daemon.signaling import memory_store
from daemon.signaling.limits import Limits
from daemon.signaling.memory_store import MemorySessionStore
from daemon.signaling.store import CodesExhausted, HostKeyMismatch, SessionStore, hash_host_key

NOW = 1_000.0
KEY = hash_host_key("host-key-0123456789")
SHARE = "share_0123456789abcdef"


def test_memory_store_satisfies_the_protocol() -> None:
    store: SessionStore = MemorySessionStore()  # checked by mypy; the call below by Python
    assert callable(store.open_mailbox)


def test_host_keys_are_hashed() -> None:
    assert hash_host_key("a" * 16) != hash_host_key("b" * 16)
    assert len(hash_host_key("a" * 16)) == 32


async def test_codes_are_unique_among_live_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([42, 42, 42, 7])
    monkeypatch.setattr(memory_store.secrets, "randbelow", lambda n: next(draws))
    store = MemorySessionStore()
    first = await store.host_share("a" * 16, "c1", KEY, want_code=True, now=NOW)
    second = await store.host_share("b" * 16, "c1", KEY, want_code=True, now=NOW)
    assert (first.code, second.code) == ("000042", "000007")
    assert first.expires_at == NOW + 300


async def test_expired_codes_can_be_reissued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_store.secrets, "randbelow", lambda n: 123456)
    store = MemorySessionStore()
    await store.host_share("a" * 16, "c1", KEY, want_code=True, now=NOW)
    with pytest.raises(CodesExhausted):
        await store.host_share("b" * 16, "c1", KEY, want_code=True, now=NOW + 299)
    assert (await store.statistics(now=NOW + 299)).shares == 1  # the refusal changed nothing
    again = await store.host_share("b" * 16, "c1", KEY, want_code=True, now=NOW + 300)
    assert again.code == "123456"
    assert await store.join_by_code("123456", "c2", now=NOW + 301) is not None


async def test_join_by_code_is_single_use_and_expires() -> None:
    store = MemorySessionStore(limits=Limits(code_ttl=10))
    hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
    assert hosted.code is not None
    assert await store.join_by_code(hosted.code, "host", now=NOW) is None  # not by its host
    record = await store.join_by_code(hosted.code, "j1", now=NOW + 9.9)
    assert record is not None
    assert (record.host, record.joiner, record.share) == ("host", "j1", SHARE)
    assert (record.other("host"), record.other("j1"), record.other("x")) == ("j1", "host", None)
    assert await store.join_by_code(hosted.code, "j2", now=NOW + 9.9) is None

    hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
    assert hosted.code is not None
    assert await store.join_by_code(hosted.code, "j2", now=NOW + 10) is None
    assert (await store.statistics(now=NOW + 10)).codes == 0


async def test_rehost_replaces_and_checks_the_key() -> None:
    store = MemorySessionStore()
    first = await store.host_share(SHARE, "old", KEY, want_code=True, now=NOW)
    with pytest.raises(HostKeyMismatch):
        await store.host_share(SHARE, "new", hash_host_key("x" * 16), want_code=True, now=NOW)
    second = await store.host_share(SHARE, "new", KEY, want_code=False, now=NOW)
    assert second.replaced == "old" and second.code is None
    assert first.code is not None
    assert await store.join_by_code(first.code, "j", now=NOW) is None  # old code revoked
    assert not await store.unhost_share(SHARE, "old")
    assert await store.drop_connection("old") == []
    record = await store.join_by_share(SHARE, "j", now=NOW)
    assert record is not None and record.host == "new"
    same = await store.host_share(SHARE, "new", KEY, want_code=False, now=NOW)
    assert same.replaced is None


async def test_drop_connection_ends_everything_it_owns() -> None:
    store = MemorySessionStore()
    hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
    s1 = await store.join_by_share(SHARE, "j1", now=NOW)
    s2 = await store.join_by_share(SHARE, "j2", now=NOW)
    assert s1 is not None and s2 is not None
    stats = await store.statistics(now=NOW)
    assert (stats.shares, stats.codes, stats.sessions) == (1, 1, 2)

    assert await store.end_session(s1.session, "stranger") is None
    assert await store.end_session(s1.session, "j1") == s1
    assert await store.end_session(s1.session, "j1") is None

    ended = await store.drop_connection("host")
    assert ended == [s2]
    assert hosted.code is not None
    assert await store.join_by_code(hosted.code, "j3", now=NOW) is None
    assert await store.join_by_share(SHARE, "j3", now=NOW) is None
    stats = await store.statistics(now=NOW)
    assert (stats.shares, stats.codes, stats.sessions) == (0, 0, 0)
    assert await store.drop_connection("host") == []
    assert await store.drop_connection("j2") == []


async def test_delivery_is_bounded_and_overflow_is_reported_once() -> None:
    store = MemorySessionStore(limits=Limits(mailbox_size=2))
    overflows = []
    assert not await store.deliver("c", "early")
    async with store.open_mailbox("c", on_overflow=lambda: overflows.append(1)) as mailbox:
        with pytest.raises(ValueError):
            async with store.open_mailbox("c", on_overflow=lambda: None):
                pass  # pragma: no cover
        assert await store.deliver("c", "1") and await store.deliver("c", "2")
        assert not await store.deliver("c", "3")
        assert not await store.deliver("c", "4")
        assert overflows == [1]
        assert (await store.statistics(now=NOW)).connections == 1
        assert [frame async for frame in mailbox] == ["1", "2"]
    assert not await store.deliver("c", "late")
    assert (await store.statistics(now=NOW)).connections == 0


async def test_failed_join_budget_per_ip_and_window() -> None:
    limits = Limits(ip_failed_join_budget=2, ip_budget_window=60, max_tracked_ips=3)
    store = MemorySessionStore(limits=limits)
    assert await store.join_budget_ok("1.1.1.1", now=NOW)
    await store.record_failed_join("1.1.1.1", now=NOW)
    assert await store.join_budget_ok("1.1.1.1", now=NOW)
    await store.record_failed_join("1.1.1.1", now=NOW + 1)
    assert not await store.join_budget_ok("1.1.1.1", now=NOW + 59)
    assert await store.join_budget_ok("2.2.2.2", now=NOW + 59)
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 60)
    await store.record_failed_join("1.1.1.1", now=NOW + 60)  # new window
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 60)

    for ip in ("2.2.2.2", "3.3.3.3", "4.4.4.4"):  # table bounded: the oldest is forgotten
        await store.record_failed_join(ip, now=NOW + 61)
        await store.record_failed_join(ip, now=NOW + 61)
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 61)
    assert len(store._budgets) == 3


async def test_code_attempt_cap_revokes_the_code() -> None:
    store = MemorySessionStore(limits=Limits(code_attempt_cap=3))
    hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
    assert hosted.code is not None
    other_code = "999999" if hosted.code != "999999" else "000000"
    assert not await store.record_code_failure(other_code, now=NOW)
    assert not await store.record_code_failure(hosted.code, now=NOW)
    assert not await store.record_code_failure(hosted.code, now=NOW)
    assert await store.record_code_failure(hosted.code, now=NOW)
    assert await store.join_by_code(hosted.code, "j", now=NOW) is None
    assert await store.join_by_share(SHARE, "j", now=NOW) is not None  # the share lives on


async def test_many_shares_get_distinct_live_codes() -> None:
    store = MemorySessionStore()
    codes = set()
    for index in range(500):
        result = await store.host_share(f"share-{index:011d}", "c", KEY, want_code=True, now=NOW)
        codes.add(result.code)
    assert len(codes) == 500
    assert all(code is not None and len(code) == 6 and code.isdigit() for code in codes)
