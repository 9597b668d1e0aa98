"""MemorySessionStore specifics. The store contract itself runs against both stores (memory and a
real redis-server) in test_redis_store.py."""

from __future__ import annotations

import pytest

from daemon.signaling.limits import Limits
from daemon.signaling.memory_store import MemorySessionStore
from daemon.signaling.store import SessionStore, hash_host_key

NOW = 1_000.0
KEY = hash_host_key("host-key-0123456789")
SHARE = "share_0123456789abcdef"


def test_memory_store_satisfies_the_protocol() -> None:
    store: SessionStore = MemorySessionStore()  # checked by mypy; the call below by Python
    assert callable(store.open_mailbox)


def test_host_keys_are_hashed() -> None:
    assert hash_host_key("a" * 16) != hash_host_key("b" * 16)
    assert len(hash_host_key("a" * 16)) == 32


async def test_hosted_is_the_subset_hosted_now() -> None:
    store = MemorySessionStore()
    assert await store.hosted([SHARE]) == set()
    await store.host_share(SHARE, "host", KEY, want_code=False, now=NOW)
    assert await store.hosted([SHARE, "x" * 16]) == {SHARE}
    await store.drop_connection("host")
    assert await store.hosted([SHARE]) == set()


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


