"""MemorySessionStore against the SessionStore contract (no sockets, no sleeping)."""

from __future__ import annotations

import pytest

from daemon.signaling import memory_store
from daemon.signaling.limits import Limits
from daemon.signaling.memory_store import MemorySessionStore
from daemon.signaling.store import (
    CodesExhausted,
    HostKeyMismatch,
    RoomsExhausted,
    SessionStore,
    hash_host_key,
)

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


async def test_hosted_is_the_subset_hosted_now() -> None:
    store = MemorySessionStore()
    assert await store.hosted([SHARE]) == set()
    await store.host_share(SHARE, "host", KEY, want_code=False, now=NOW)
    assert await store.hosted([SHARE, "x" * 16]) == {SHARE}
    await store.drop_connection("host")
    assert await store.hosted([SHARE]) == set()


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


async def test_failed_join_budget_per_ip_slides() -> None:
    limits = Limits(ip_failed_join_budget=2, ip_budget_window=60, max_tracked_ips=3)
    store = MemorySessionStore(limits=limits)
    assert await store.join_budget_ok("1.1.1.1", now=NOW)
    await store.record_failed_join("1.1.1.1", now=NOW)
    assert await store.join_budget_ok("1.1.1.1", now=NOW)
    await store.record_failed_join("1.1.1.1", now=NOW + 1)
    assert not await store.join_budget_ok("1.1.1.1", now=NOW + 59)
    assert await store.join_budget_ok("2.2.2.2", now=NOW + 59)
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 60)  # NOW slid out, NOW+1 remains
    await store.record_failed_join("1.1.1.1", now=NOW + 60)
    assert not await store.join_budget_ok("1.1.1.1", now=NOW + 60.5)  # NOW+1 and NOW+60
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 61)
    # charging while locked out extends the lockout: now NOW+60 and NOW+61 must slide out
    await store.record_failed_join("1.1.1.1", now=NOW + 61)
    assert not await store.join_budget_ok("1.1.1.1", now=NOW + 119.9)
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 120)

    for ip in ("2.2.2.2", "3.3.3.3", "4.4.4.4"):  # table bounded: the oldest is forgotten
        await store.record_failed_join(ip, now=NOW + 62)
        await store.record_failed_join(ip, now=NOW + 62)
    assert await store.join_budget_ok("1.1.1.1", now=NOW + 62)
    assert len(store._budgets) == 3
    assert all(len(times) <= 2 for times in store._budgets.values())  # bounded per address


async def test_global_failed_join_budget_slides() -> None:
    store = MemorySessionStore(limits=Limits(global_failed_join_budget=3, global_budget_window=10))
    for offset in (0, 1, 2):
        assert await store.global_join_budget_ok(now=NOW + offset)
        await store.record_global_failed_join(now=NOW + offset)
    assert not await store.global_join_budget_ok(now=NOW + 9.9)
    assert await store.global_join_budget_ok(now=NOW + 10)
    await store.record_global_failed_join(now=NOW + 10)
    assert not await store.global_join_budget_ok(now=NOW + 10.5)
    assert await store.global_join_budget_ok(now=NOW + 11)
    assert len(store._global_failures) == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"code_ttl": 0},
        {"global_budget_window": -1},
        {"global_failed_join_budget": 0},
        {"max_connections": 0},
        {"max_connections_per_ip": 0},
        {"presence_requests": 0},
        {"presence_requests_per_ip": 0},
        {"presence_window": 0},
        {"allowed_origins": {"https://a.example"}},
        {"allowed_origins": frozenset({1})},
    ],
)
def test_limits_reject_nonsense(bad: dict) -> None:
    with pytest.raises(ValueError):
        Limits(**bad)


def test_allowed_origins_are_lowercased() -> None:
    limits = Limits(allowed_origins=frozenset({"HTTPS://Doorstep.Local"}))
    assert limits.allowed_origins == frozenset({"https://doorstep.local"})


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


async def test_rooms_lifecycle() -> None:
    store = MemorySessionStore(limits=Limits(room_ttl=100, max_rooms=2, max_room_members=3))
    entry = await store.create_room("a", b"$argon2id$h", name="n", now=NOW)
    room = entry.room
    assert (entry.name, entry.expires_at, entry.others) == ("n", NOW + 100, ())
    assert await store.room_password_hash(room, now=NOW) == b"$argon2id$h"
    assert await store.room_password_hash("nope" * 5, now=NOW) is None

    joined_b = await store.join_room(room, "b", now=NOW)
    assert joined_b is not None
    assert [m.conn for m in joined_b.others] == ["a"]
    assert joined_b.others[0].member == entry.member and joined_b.member != entry.member
    assert await store.join_room(room, "b", now=NOW) is None  # already a member
    joined_c = await store.join_room(room, "c", now=NOW)
    assert joined_c is not None and {m.conn for m in joined_c.others} == {"a", "b"}
    assert await store.join_room(room, "d", now=NOW) is None  # full

    membership = await store.room_membership(room, "b", now=NOW)
    assert membership is not None and membership.member == joined_b.member
    assert {m.conn for m in membership.others} == {"a", "c"}
    assert await store.room_membership(room, "d", now=NOW) is None

    left = await store.leave_room(room, "c")
    assert left is not None and {m.conn for m in left.others} == {"a", "b"}
    assert await store.leave_room(room, "c") is None
    dropped = await store.drop_room_memberships("a")
    assert [(d.room, d.member) for d in dropped] == [(room, entry.member)]
    assert await store.drop_room_memberships("a") == []
    await store.drop_connection("b")  # the last member: the room is destroyed
    assert store.room_count(now=NOW) == 0
    assert await store.join_room(room, "e", now=NOW) is None


async def test_rooms_expire_and_are_capped() -> None:
    store = MemorySessionStore(limits=Limits(room_ttl=100, max_rooms=2))
    first = await store.create_room("a", b"h", name=None, now=NOW)
    await store.create_room("b", b"h", name=None, now=NOW + 50)
    with pytest.raises(RoomsExhausted):
        await store.create_room("c", b"h", name=None, now=NOW + 99)
    assert await store.room_membership(first.room, "a", now=NOW + 100) is None  # expired
    assert await store.join_room(first.room, "c", now=NOW + 100) is None
    third = await store.create_room("c", b"h", name=None, now=NOW + 100)  # a slot is free
    assert third.room != first.room
    assert store.room_count(now=NOW + 150) == 1
    assert await store.drop_room_memberships("a") == []
