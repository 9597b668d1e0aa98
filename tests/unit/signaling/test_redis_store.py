"""RedisSessionStore against a real ``redis-server``: the store contract (run on both stores),
delivery across two store instances, and two signaling servers sharing one Redis."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import trio

from daemon.runtime.config import ConfigError, load_config
from daemon.signaling import Limits, MemorySessionStore, SignalingServer, open_signaling
from daemon.signaling.redis_store import RedisSessionStore
from daemon.signaling.store import (
    CodesExhausted,
    HostKeyMismatch,
    RoomsExhausted,
    SessionStore,
    hash_host_key,
)
from tests.conftest import require_binary

NOW = 1_000.0
KEY = hash_host_key("host-key-0123456789")
SHARE = "share_0123456789abcdef"

StoreFactory = Callable[..., AbstractAsyncContextManager[SessionStore]]


# --- a real redis-server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server() -> Iterator[str]:
    """Start ``redis-server`` on 127.0.0.1 with a random free port and no persistence; yield its
    URL; stop it on exit. Fails in CI when redis-server is missing, skips elsewhere."""
    binary = require_binary("redis-server")
    with tempfile.TemporaryDirectory(prefix="doorstep-redis-") as tmp:
        for attempt in itertools.count():
            port = _free_port()
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                 "no", "--dir", tmp, "--logfile", os.path.join(tmp, "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while proc.poll() is None and not _ping(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None and _ping(port):
                break
            proc.kill()
            proc.wait()
            log = Path(tmp, "redis.log")
            if attempt >= 2:  # a port race can lose a few times; more is a real failure
                detail = log.read_text() if log.exists() else "(no log)"
                pytest.fail("redis-server did not start:\n" + detail)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


_prefixes = itertools.count()


def _unique_prefix() -> str:
    return f"test{os.getpid()}-{next(_prefixes)}:"


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> StoreFactory:
    """``async with make_store(limits) as store``: a fresh, empty store of the parametrized kind."""
    if request.param == "memory":

        @asynccontextmanager
        async def memory(limits: Limits | None = None) -> AsyncIterator[SessionStore]:
            yield MemorySessionStore(limits=limits)

        return memory
    url = request.getfixturevalue("redis_url")

    def redis(limits: Limits | None = None) -> AbstractAsyncContextManager[SessionStore]:
        return RedisSessionStore.open(url, limits=limits, prefix=_unique_prefix())

    return redis


# --- the store contract (same expectations as test_signaling_store.py, on both stores) -----------


async def test_store_satisfies_the_protocol(make_store: StoreFactory) -> None:
    async with make_store() as store:
        assert callable(store.open_mailbox)


async def test_codes_are_unique_among_live_ones(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_store() as store:
        draws = iter([42, 42, 42, 7] + [0] * 200)
        monkeypatch.setattr("secrets.randbelow", lambda n: next(draws))
        first = await store.host_share("a" * 16, "c1", KEY, want_code=True, now=NOW)
        draws = iter([42, 42, 42, 7] + [0] * 200)
        second = await store.host_share("b" * 16, "c1", KEY, want_code=True, now=NOW)
        assert (first.code, second.code) == ("000042", "000007")
        assert first.expires_at == NOW + 300


async def test_expired_codes_can_be_reissued(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_store() as store:
        monkeypatch.setattr("secrets.randbelow", lambda n: 123456)
        await store.host_share("a" * 16, "c1", KEY, want_code=True, now=NOW)
        with pytest.raises(CodesExhausted):
            await store.host_share("b" * 16, "c1", KEY, want_code=True, now=NOW + 299)
        assert (await store.statistics(now=NOW + 299)).shares == 1  # the refusal changed nothing
        again = await store.host_share("b" * 16, "c1", KEY, want_code=True, now=NOW + 300)
        assert again.code == "123456"
        assert await store.join_by_code("123456", "c2", now=NOW + 301) is not None
        # re-hosting the first share (whose code expired) leaves just its new code alive
        monkeypatch.setattr("secrets.randbelow", lambda n: 654321)
        await store.host_share("a" * 16, "c1", KEY, want_code=True, now=NOW + 301)
        assert (await store.statistics(now=NOW + 301)).codes == 1


async def test_join_by_code_is_single_use_and_expires(make_store: StoreFactory) -> None:
    async with make_store(Limits(code_ttl=10)) as store:
        hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
        assert hosted.code is not None
        assert await store.join_by_code(hosted.code, "host", now=NOW) is None  # not by its host
        record = await store.join_by_code(hosted.code, "j1", now=NOW + 9.9)
        assert record is not None
        assert (record.host, record.joiner, record.share) == ("host", "j1", SHARE)
        assert await store.get_session(record.session) == record
        assert await store.join_by_code(hosted.code, "j2", now=NOW + 9.9) is None

        hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
        assert hosted.code is not None
        assert await store.join_by_code(hosted.code, "j2", now=NOW + 10) is None
        assert (await store.statistics(now=NOW + 10)).codes == 0


async def test_rehost_replaces_and_checks_the_key(make_store: StoreFactory) -> None:
    async with make_store() as store:
        first = await store.host_share(SHARE, "old", KEY, want_code=True, now=NOW)
        with pytest.raises(HostKeyMismatch):
            await store.host_share(SHARE, "new", hash_host_key("x" * 16), want_code=True, now=NOW)
        second = await store.host_share(SHARE, "new", KEY, want_code=False, now=NOW)
        assert second.replaced == "old" and second.code is None and second.expires_at is None
        assert first.code is not None
        assert await store.join_by_code(first.code, "j", now=NOW) is None  # old code revoked
        assert not await store.unhost_share(SHARE, "old")
        assert await store.drop_connection("old") == []
        record = await store.join_by_share(SHARE, "j", now=NOW)
        assert record is not None and record.host == "new"
        same = await store.host_share(SHARE, "new", KEY, want_code=False, now=NOW)
        assert same.replaced is None
        assert await store.unhost_share(SHARE, "new")
        assert await store.join_by_share(SHARE, "j2", now=NOW) is None
        assert await store.get_session(record.session) == record  # unhost ends no session


async def test_drop_connection_ends_everything_it_owns(make_store: StoreFactory) -> None:
    async with make_store() as store:
        hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
        s1 = await store.join_by_share(SHARE, "j1", now=NOW)
        s2 = await store.join_by_share(SHARE, "j2", now=NOW)
        assert s1 is not None and s2 is not None and s1.session != s2.session
        stats = await store.statistics(now=NOW)
        assert (stats.shares, stats.codes, stats.sessions) == (1, 1, 2)

        assert await store.end_session(s1.session, "stranger") is None
        assert await store.end_session(s1.session, "j1") == s1
        assert await store.end_session(s1.session, "j1") is None
        assert await store.get_session(s1.session) is None

        ended = await store.drop_connection("host")
        assert ended == [s2]
        assert hosted.code is not None
        assert await store.join_by_code(hosted.code, "j3", now=NOW) is None
        assert await store.join_by_share(SHARE, "j3", now=NOW) is None
        stats = await store.statistics(now=NOW)
        assert (stats.shares, stats.codes, stats.sessions) == (0, 0, 0)
        assert await store.drop_connection("host") == []
        assert await store.drop_connection("j2") == []


async def test_delivery_is_bounded_and_overflow_is_reported_once(make_store: StoreFactory) -> None:
    async with make_store(Limits(mailbox_size=2)) as store:
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


async def test_failed_join_budget_per_ip_slides(make_store: StoreFactory) -> None:
    limits = Limits(ip_failed_join_budget=2, ip_budget_window=60, max_tracked_ips=3)
    async with make_store(limits) as store:
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
        await store.record_failed_join("1.1.1.1", now=NOW + 61)  # charged while locked out
        assert not await store.join_budget_ok("1.1.1.1", now=NOW + 119.9)
        assert await store.join_budget_ok("1.1.1.1", now=NOW + 120)
        await store.record_failed_join("1.1.1.1", now=NOW + 120)
        assert not await store.join_budget_ok("1.1.1.1", now=NOW + 120)

        for ip in ("2.2.2.2", "3.3.3.3", "4.4.4.4"):  # table bounded: the oldest is forgotten
            await store.record_failed_join(ip, now=NOW + 121)
            await store.record_failed_join(ip, now=NOW + 121)
        assert await store.join_budget_ok("1.1.1.1", now=NOW + 121)
        assert not await store.join_budget_ok("4.4.4.4", now=NOW + 121)


async def test_global_failed_join_budget_slides(make_store: StoreFactory) -> None:
    limits = Limits(global_failed_join_budget=3, global_budget_window=10)
    async with make_store(limits) as store:
        for offset in (0, 1, 2):
            assert await store.global_join_budget_ok(now=NOW + offset)
            await store.record_global_failed_join(now=NOW + offset)
        assert not await store.global_join_budget_ok(now=NOW + 9.9)
        assert await store.global_join_budget_ok(now=NOW + 10)
        await store.record_global_failed_join(now=NOW + 10)
        assert not await store.global_join_budget_ok(now=NOW + 10.5)
        assert await store.global_join_budget_ok(now=NOW + 11)
        await store.record_failed_join("1.1.1.1", now=NOW + 11)  # per-address budgets are apart
        assert await store.global_join_budget_ok(now=NOW + 11)


async def test_code_attempt_cap_revokes_the_code(make_store: StoreFactory) -> None:
    async with make_store(Limits(code_attempt_cap=3)) as store:
        hosted = await store.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
        assert hosted.code is not None
        other_code = "999999" if hosted.code != "999999" else "000000"
        assert not await store.record_code_failure(other_code, now=NOW)
        assert not await store.record_code_failure(hosted.code, now=NOW)
        assert not await store.record_code_failure(hosted.code, now=NOW)
        assert await store.record_code_failure(hosted.code, now=NOW)
        assert await store.join_by_code(hosted.code, "j", now=NOW) is None
        assert await store.join_by_share(SHARE, "j", now=NOW) is not None  # the share lives on


async def test_many_shares_get_distinct_live_codes(make_store: StoreFactory) -> None:
    async with make_store() as store:
        codes = set()
        for index in range(500):
            share = f"share-{index:011d}"
            result = await store.host_share(share, "c", KEY, want_code=True, now=NOW)
            codes.add(result.code)
        assert len(codes) == 500
        assert all(code is not None and len(code) == 6 and code.isdigit() for code in codes)
        assert (await store.statistics(now=NOW)).codes == 500


async def test_rooms_create_join_leave(make_store: StoreFactory) -> None:
    async with make_store(Limits(max_room_members=3, room_ttl=100)) as store:
        pw = b"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA"
        created = await store.create_room("a", pw, name="kitchen", now=NOW)
        assert (created.name, created.expires_at, created.others) == ("kitchen", NOW + 100, ())
        assert await store.room_password_hash(created.room, now=NOW) == pw
        assert await store.room_password_hash("nope", now=NOW) is None
        b = await store.join_room(created.room, "b", now=NOW + 1)
        assert b is not None and b.name == "kitchen" and b.expires_at == NOW + 100
        assert [m.member for m in b.others] == [created.member]
        assert b.others[0].conn == "a" and b.member != created.member
        assert await store.join_room(created.room, "b", now=NOW + 1) is None  # already a member
        c = await store.join_room(created.room, "c", now=NOW + 1)
        assert c is not None
        assert [(m.member, m.conn) for m in c.others] == [(created.member, "a"), (b.member, "b")]
        assert await store.join_room(created.room, "d", now=NOW + 1) is None  # full
        membership = await store.room_membership(created.room, "b", now=NOW + 2)
        assert membership is not None and membership.member == b.member
        assert [m.conn for m in membership.others] == ["a", "c"]
        assert await store.room_membership(created.room, "zz", now=NOW + 2) is None

        left = await store.leave_room(created.room, "c")
        assert left is not None and left.member == c.member
        assert [m.conn for m in left.others] == ["a", "b"]
        assert await store.leave_room(created.room, "c") is None
        dropped = await store.drop_room_memberships("b")
        assert [(d.room, d.member, [m.conn for m in d.others]) for d in dropped] == [
            (created.room, b.member, ["a"])
        ]
        assert await store.drop_room_memberships("b") == []
        assert await store.drop_connection("a") == []  # leaves its rooms too: the room is gone
        assert await store.room_password_hash(created.room, now=NOW + 2) is None
        assert await store.join_room(created.room, "e", now=NOW + 2) is None

        unnamed = await store.create_room("x", pw, name=None, now=NOW)
        assert unnamed.name is None
        joined = await store.join_room(unnamed.room, "y", now=NOW)
        assert joined is not None and joined.name is None


async def test_rooms_expire_and_are_capped(make_store: StoreFactory) -> None:
    async with make_store(Limits(max_rooms=2, room_ttl=10)) as store:
        first = await store.create_room("a", b"h", name=None, now=NOW)
        await store.create_room("b", b"h", name=None, now=NOW + 5)
        with pytest.raises(RoomsExhausted):
            await store.create_room("c", b"h", name=None, now=NOW + 9)
        assert await store.room_membership(first.room, "a", now=NOW + 9.9) is not None
        assert await store.join_room(first.room, "z", now=NOW + 10) is None  # expired
        assert await store.room_membership(first.room, "a", now=NOW + 10) is None
        third = await store.create_room("c", b"h", name=None, now=NOW + 10)  # room freed
        assert third.room != first.room
        assert await store.room_membership(third.room, "c", now=NOW + 15) is not None
        with pytest.raises(RoomsExhausted):  # the second room (until NOW+15) and the third
            await store.create_room("d", b"h", name=None, now=NOW + 14)
        assert (await store.create_room("d", b"h", name=None, now=NOW + 15)).others == ()


async def test_hosted_reports_the_shares_hosted_right_now(make_store: StoreFactory) -> None:
    async with make_store() as store:
        other, unknown = "share_fedcba9876543210", "inbox-abcdefghijklmnopqrst"
        assert await store.hosted([]) == set()
        assert await store.hosted([SHARE, other]) == set()
        await store.host_share(SHARE, "a", KEY, want_code=True, now=NOW)
        await store.host_share(other, "b", KEY, want_code=False, now=NOW)
        assert await store.hosted([SHARE, other, unknown]) == {SHARE, other}
        assert await store.hosted((SHARE, SHARE, unknown)) == {SHARE}  # duplicates are fine
        await store.host_share(SHARE, "c", KEY, want_code=False, now=NOW)  # re-hosted elsewhere
        assert await store.hosted([SHARE]) == {SHARE}
        assert await store.unhost_share(SHARE, "c")
        assert await store.hosted([SHARE, other]) == {other}
        record = await store.join_by_share(other, "j", now=NOW)
        assert record is not None
        assert await store.drop_connection("j") == [record]  # a joiner leaving changes nothing
        assert await store.hosted([other]) == {other}
        await store.drop_connection("b")
        assert await store.hosted([SHARE, other, unknown]) == set()


# --- Redis only: two instances sharing one Redis --------------------------------------------------


@asynccontextmanager
async def two_instances(
    url: str, limits: Limits | None = None
) -> AsyncIterator[tuple[RedisSessionStore, RedisSessionStore]]:
    """Two stores on one Redis and one prefix: two daemon instances behind one address."""
    prefix = _unique_prefix()
    async with RedisSessionStore.open(url, limits=limits, prefix=prefix) as a:
        async with RedisSessionStore.open(url, limits=limits, prefix=prefix) as b:
            yield a, b


async def test_state_is_shared_between_instances(redis_url: str) -> None:
    async with two_instances(redis_url) as (a, b):
        hosted = await a.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
        assert hosted.code is not None
        with pytest.raises(HostKeyMismatch):
            await b.host_share(SHARE, "other", hash_host_key("y" * 16), want_code=False, now=NOW)
        record = await b.join_by_code(hosted.code, "joiner", now=NOW)
        assert record is not None and record.host == "host"
        assert await a.join_by_code(hosted.code, "j2", now=NOW) is None  # consumed on B
        assert await a.get_session(record.session) == record
        assert await a.drop_connection("joiner") == [record]
        assert await b.get_session(record.session) is None
        assert await b.hosted([SHARE, "share_fedcba9876543210"]) == {SHARE}
        await a.drop_connection("host")
        assert await b.hosted([SHARE]) == set()


async def test_concurrent_joins_consume_a_code_once(redis_url: str) -> None:
    async with two_instances(redis_url) as (a, b):
        hosted = await a.host_share(SHARE, "host", KEY, want_code=True, now=NOW)
        assert hosted.code is not None
        code = hosted.code
        results = []

        async def join(store: RedisSessionStore, joiner: str) -> None:
            results.append(await store.join_by_code(code, joiner, now=NOW))

        async with trio.open_nursery() as nursery:
            for index in range(20):
                nursery.start_soon(join, (a, b)[index % 2], f"j{index}")
        assert len([r for r in results if r is not None]) == 1


async def test_delivery_crosses_instances_in_order(redis_url: str) -> None:
    async with two_instances(redis_url) as (a, b):
        assert not await b.deliver("on-a", "nobody yet")
        async with a.open_mailbox("on-a", on_overflow=lambda: None) as mailbox:
            with pytest.raises(ValueError):  # connection ids are unique across instances
                async with b.open_mailbox("on-a", on_overflow=lambda: None):
                    pass  # pragma: no cover
            frames = [f"frame {index}" for index in range(100)]
            for frame in frames:
                assert await b.deliver("on-a", frame)
            with trio.fail_after(5):
                received = [await mailbox.receive() for _ in frames]
            assert received == frames
        with trio.fail_after(5):
            while await b.deliver("on-a", "late"):  # the unsubscription is acknowledged on exit
                await trio.sleep(0.01)  # pragma: no cover


async def test_remote_overflow_disconnects_the_slow_connection(redis_url: str) -> None:
    async with two_instances(redis_url, Limits(mailbox_size=2)) as (a, b):
        overflowed = trio.Event()
        async with a.open_mailbox("slow", on_overflow=overflowed.set) as mailbox:
            for index in range(3):
                await b.deliver("slow", str(index))
            with trio.fail_after(5):
                await overflowed.wait()
            assert [frame async for frame in mailbox] == ["0", "1"]


# --- two signaling servers behind "one address" ---------------------------------------------------


async def test_handshake_across_two_servers(redis_url: str, connect_url) -> None:
    async with two_instances(redis_url) as (store_a, store_b), trio.open_nursery() as nursery:
        options = {"heartbeat_interval": None, "join_timeout": 60.0, "close_timeout": 1.0}
        port_a = await nursery.start(SignalingServer(store_a, **options).serve, "127.0.0.1", 0)
        port_b = await nursery.start(SignalingServer(store_b, **options).serve, "127.0.0.1", 0)
        url_a = f"ws://127.0.0.1:{port_a}/signal/v1"
        url_b = f"ws://127.0.0.1:{port_b}/signal/v1"
        async with connect_url(url_a) as host, connect_url(url_b) as joiner:
            hosted = await host.request(
                {"type": "host", "share": SHARE, "host_key": "k" * 16, "code": True, "id": 1}
            )
            assert hosted["type"] == "hosted" and hosted["id"] == 1
            joined = await joiner.request({"type": "join", "code": hosted["code"], "id": 2})
            assert joined["type"] == "joined" and joined["share"] == SHARE
            session = joined["session"]
            assert await host.receive() == {"type": "peer", "session": session, "share": SHARE}
            await host.send({"type": "relay", "session": session, "data": {"sdp": "offer"}})
            offer = {"type": "relay", "session": session, "data": {"sdp": "offer"}}
            assert await joiner.receive() == offer
            await joiner.send({"type": "relay", "session": session, "data": {"sdp": "answer"}})
            answer = {"type": "relay", "session": session, "data": {"sdp": "answer"}}
            assert await host.receive() == answer
            again = await joiner.request({"type": "join", "code": hosted["code"], "id": 3})
            assert again["code"] == "join_failed"
            assert await joiner.request({"type": "leave", "session": session, "id": 4}) == {
                "type": "left", "session": session, "id": 4,
            }
            assert await host.receive() == {"type": "left", "session": session}
            # a second session, ended by the host's socket closing
            rejoined = await joiner.request({"type": "join", "share": SHARE, "id": 5})
            assert rejoined["type"] == "joined"
            assert (await host.receive())["type"] == "peer"
            await host.ws.aclose()
            assert await joiner.receive() == {"type": "left", "session": rejoined["session"]}
        nursery.cancel_scope.cancel()



async def test_presence_across_two_servers(redis_url: str) -> None:
    inbox = "inbox-abcdefghijklmnopqrst"
    async with two_instances(redis_url) as (store_a, store_b), trio.open_nursery() as nursery:
        options = {"heartbeat_interval": None, "close_timeout": 1.0}
        port_a = await nursery.start(SignalingServer(store_a, **options).serve, "127.0.0.1", 0)
        port_b = await nursery.start(SignalingServer(store_b, **options).serve, "127.0.0.1", 0)
        async with open_signaling(f"ws://127.0.0.1:{port_b}/signal/v1") as asker:
            async with open_signaling(f"ws://127.0.0.1:{port_a}/signal/v1") as device:
                await device.host(inbox, "k" * 16, code=False)
                assert await asker.presence([inbox, SHARE]) == {inbox}
            with trio.fail_after(5):
                while await asker.presence([inbox]):
                    await trio.sleep(0.2)  # the close may take a moment (10 asks allowed)
        nursery.cancel_scope.cancel()


async def test_room_across_two_servers(redis_url: str, connect_url) -> None:
    fast = Limits(room_password_opslimit=1, room_password_memlimit=8192)
    async with two_instances(redis_url) as (store_a, store_b), trio.open_nursery() as nursery:
        options = {"limits": fast, "heartbeat_interval": None, "close_timeout": 1.0}
        port_a = await nursery.start(SignalingServer(store_a, **options).serve, "127.0.0.1", 0)
        port_b = await nursery.start(SignalingServer(store_b, **options).serve, "127.0.0.1", 0)
        async with connect_url(f"ws://127.0.0.1:{port_a}/signal/v1") as alice, connect_url(
            f"ws://127.0.0.1:{port_b}/signal/v1"
        ) as bob:
            created = await alice.request(
                {"type": "room_create", "password": "correct horse", "name": "kitchen", "id": 1}
            )
            assert created["type"] == "room_created", created
            room = created["room"]
            wrong = await bob.request(
                {"type": "room_join", "room": room, "password": "nope", "id": 2}
            )
            assert wrong["code"] == "join_failed"
            joined = await bob.request(
                {"type": "room_join", "room": room, "password": "correct horse", "id": 3}
            )
            assert joined["type"] == "room_joined" and joined["members"] == [created["member"]]
            bob_id = joined["member"]
            member_joined = {"type": "member_joined", "room": room, "member": bob_id}
            assert await alice.receive() == member_joined
            await bob.send({"type": "text", "room": room, "text": "hello from B"})
            assert await alice.receive() == {
                "type": "text", "room": room, "member": bob_id, "text": "hello from B",
            }
            await alice.send({"type": "text", "room": room, "text": "hello from A"})
            assert (await bob.receive())["text"] == "hello from A"
            await bob.ws.aclose()
            assert await alice.receive() == {"type": "member_left", "room": room, "member": bob_id}
        nursery.cancel_scope.cancel()

# --- configuration ------------------------------------------------------------------------------


def test_signal_store_config() -> None:
    assert load_config(environ={}).signal_store == "memory"
    url = "redis://127.0.0.1:6379/0"
    assert load_config(environ={"DOORSTEP_SIGNAL_STORE": url}).signal_store == url
    with pytest.raises(ConfigError, match="signal.store"):
        load_config(environ={"DOORSTEP_SIGNAL_STORE": "postgres://x"})


async def test_unreachable_redis_is_an_os_error_without_the_password() -> None:
    port = _free_port()  # nothing listens there
    with pytest.raises(OSError, match=f"redis://\\*\\*\\*@127.0.0.1:{port}/0") as caught:
        async with RedisSessionStore.open(f"redis://user:sekrit@127.0.0.1:{port}/0"):
            pass  # pragma: no cover
    assert "sekrit" not in str(caught.value)
