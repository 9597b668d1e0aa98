"""PresenceWatcher against a real signaling server on 127.0.0.1:0 (one fake device hosts its inbox
address, another does not), and against fake connections for the failure cases."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from daemon.runtime.pairing import inbox_address
from daemon.runtime.presence import UNKNOWN, Presence, PresenceWatcher, device_entries
from daemon.signaling import MemorySessionStore, SignalingError, open_signaling, serve_signaling
from daemon.state import DeviceRecord, DeviceStatus

ONLINE = "aaaaaaaaaaaaaaaaaaaa"  # device ids: 20 base32 characters
OFFLINE = "bbbbbbbbbbbbbbbbbbbb"
NO_URL = "cccccccccccccccccccc"
UNREACHABLE = "dddddddddddddddddddd"
KEY = "host-key-0123456789"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/signal/v1"  # nothing listens there any more


@pytest.fixture
async def server_url(nursery: trio.Nursery) -> str:
    port = await nursery.start(serve_signaling, MemorySessionStore(), "127.0.0.1", 0)
    return f"ws://127.0.0.1:{port}/signal/v1"


@asynccontextmanager
async def device_online(url: str, device_id: str) -> AsyncIterator[None]:
    """A fake daemon: hosts its inbox address on ``url`` for the block."""
    async with open_signaling(url) as client:
        await client.host(inbox_address(device_id), KEY, code=False)
        yield


async def test_online_offline_unknown_and_unreachable(server_url: str) -> None:
    clock = Clock()
    devices = [(ONLINE, server_url), (OFFLINE, server_url), (NO_URL, None),
               (UNREACHABLE, closed_port_url())]
    watcher = PresenceWatcher(lambda: devices, clock=clock, timeout=5)
    assert watcher.status(ONLINE) == UNKNOWN == Presence(online=None, checked_at=None)
    async with device_online(server_url, ONLINE):
        await watcher.check_now()
        assert watcher.status(ONLINE) == Presence(online=True, checked_at=clock.now)
        assert watcher.status(OFFLINE) == Presence(online=False, checked_at=clock.now)
        assert watcher.status(NO_URL) == UNKNOWN
        unreachable = watcher.status(UNREACHABLE)
        assert unreachable.online is False and unreachable.checked_at == clock.now
        assert unreachable.error is not None and "cannot reach" in unreachable.error
        assert watcher.status("never-listed") == UNKNOWN
        assert watcher.status(ONLINE).to_json() == {
            "online": True, "checked_at": clock.now, "error": None,
        }
    clock.now += 30
    await watcher.check_now()  # the device went away
    assert watcher.status(ONLINE) == Presence(online=False, checked_at=clock.now)
    assert watcher.rounds == 2


async def test_run_checks_at_once_on_wake_and_every_interval(server_url: str) -> None:
    devices = [(ONLINE, server_url), (OFFLINE, server_url)]
    watcher = PresenceWatcher(lambda: list(devices), interval=60, min_gap=0)

    async def until(device_id: str, online: bool | None) -> None:
        with trio.fail_after(5):
            while watcher.status(device_id).online is not online:
                await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        async with device_online(server_url, ONLINE):
            await nursery.start(watcher.run)
            await until(ONLINE, True)  # the first round runs right away
            await until(OFFLINE, False)
            async with device_online(server_url, OFFLINE):
                watcher.wake()
                await until(OFFLINE, True)
        watcher.wake()
        await until(ONLINE, False)
        await until(OFFLINE, False)
        devices.remove((OFFLINE, server_url))  # forgotten devices are forgotten here too
        watcher.wake()
        await until(OFFLINE, None)
        assert watcher.status(OFFLINE) == UNKNOWN
        nursery.cancel_scope.cancel()


async def test_seen_marks_online_and_goes_stale() -> None:
    clock = Clock()
    watcher = PresenceWatcher(lambda: [(NO_URL, None)], clock=clock, interval=30, timeout=10)
    watcher.seen(NO_URL)
    assert watcher.status(NO_URL) == Presence(online=True, checked_at=clock.now)
    await watcher.check_now()  # nothing to ask: the mark stays
    assert watcher.status(NO_URL).online is True
    seen_at = clock.now
    clock.now += 2 * 30 + 10 + 1  # stale_after defaults to 2 * interval + timeout
    assert watcher.status(NO_URL) == Presence(online=None, checked_at=seen_at)


# --- fake connections -----------------------------------------------------------------------------


class FakeServer:
    """``open_signaling`` stand-in: records what was asked; answers from ``hosted``, or fails,
    hangs (before connecting) or blocks (while asked) as told."""

    def __init__(self, hosted: Iterable[str] = (), *, fail: BaseException | None = None,
                 hang: bool = False) -> None:
        self.hosted = set(hosted)
        self.fail = fail
        self.hang = hang
        self.opened: list[str] = []
        self.asked: list[list[str]] = []
        self.release = trio.Event()
        self.asking = trio.Event()
        self.block = False

    @asynccontextmanager
    async def open(self, url: str) -> AsyncIterator[Any]:
        self.opened.append(url)
        if self.hang:
            await trio.sleep_forever()
        yield self

    async def presence(self, shares: Iterable[str]) -> set[str]:
        asked = list(shares)
        self.asked.append(asked)
        self.asking.set()
        if self.block:
            await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return self.hosted & set(asked)


async def test_one_connection_per_server_and_32_addresses_per_request() -> None:
    ids = [f"{index:020d}" for index in range(40)]
    server = FakeServer(hosted=[inbox_address(ids[0]), inbox_address(ids[39]), "inbox-stranger"])
    other = FakeServer()

    def open_any(url: str) -> Any:
        return (server if url == "ws://a/signal/v1" else other).open(url)

    devices = [(i, "ws://a/signal/v1") for i in ids] + [(OFFLINE, "ws://b/signal/v1")]
    watcher = PresenceWatcher(lambda: devices, open_signaling=open_any)
    await watcher.check_now()
    assert server.opened == ["ws://a/signal/v1"] and other.opened == ["ws://b/signal/v1"]
    assert [len(asked) for asked in server.asked] == [32, 8]
    assert sorted(sum(server.asked, [])) == sorted(inbox_address(i) for i in ids)
    assert [i for i in ids if watcher.status(i).online] == [ids[0], ids[39]]
    assert watcher.status(ids[1]).online is False and watcher.status(OFFLINE).online is False


@pytest.mark.parametrize(
    ("failure", "online", "error"),
    [
        (SignalingError("bad_message", "unknown message type 'presence'"), None, "does not support"),
        (SignalingError("rate_limited", "too many"), None, "refused: rate_limited"),
        (OSError("boom"), False, "cannot reach"),
        (RuntimeError("bug"), None, "internal error"),
    ],
)
async def test_failures_become_statuses(failure: BaseException, online: bool | None, error: str) -> None:
    server = FakeServer(fail=failure)
    watcher = PresenceWatcher(lambda: [(ONLINE, "ws://a/signal/v1")], open_signaling=server.open)
    await watcher.check_now()
    status = watcher.status(ONLINE)
    assert status.online is online and status.checked_at is not None
    assert status.error is not None and error in status.error


async def test_a_hanging_server_costs_at_most_the_timeout() -> None:
    slow, fast = FakeServer(hang=True), FakeServer(hosted=[inbox_address(ONLINE)])
    devices = [(OFFLINE, "ws://slow/signal/v1"), (ONLINE, "ws://fast/signal/v1")]
    watcher = PresenceWatcher(
        lambda: devices, timeout=0.2,
        open_signaling=lambda url: (slow if "slow" in url else fast).open(url),
    )
    with trio.fail_after(2):
        await watcher.check_now()
    assert watcher.status(ONLINE).online is True
    assert watcher.status(OFFLINE).online is False
    assert "no answer" in (watcher.status(OFFLINE).error or "")


async def test_the_loop_survives_failing_rounds() -> None:
    calls = 0

    def devices() -> list[tuple[str, str | None]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database is locked")
        return [(ONLINE, "ws://a/signal/v1")]

    server = FakeServer(hosted=[inbox_address(ONLINE)])
    watcher = PresenceWatcher(devices, interval=0.05, min_gap=0, open_signaling=server.open)
    async with trio.open_nursery() as nursery:
        await nursery.start(watcher.run)
        with trio.fail_after(5):
            while watcher.status(ONLINE).online is not True:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert calls >= 2


async def test_seen_during_a_round_wins_over_its_stale_answer() -> None:
    clock = Clock()
    server = FakeServer()  # says: not hosted
    server.block = True
    watcher = PresenceWatcher(lambda: [(ONLINE, "ws://a/signal/v1")], clock=clock,
                              open_signaling=server.open)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher.check_now)
        await server.asking.wait()
        clock.now += 1
        watcher.seen(ONLINE)  # it authenticated to us while the server was being asked
        server.release.set()
    assert watcher.status(ONLINE) == Presence(online=True, checked_at=clock.now)


def test_device_entries_skip_revoked_devices() -> None:
    def record(device_id: str, status: DeviceStatus, url: str | None) -> DeviceRecord:
        return DeviceRecord(device_id=device_id, public_key=b"k" * 32, name="n", status=status,
                            paired_at=0.0, last_seen=None, signal_url=url)

    records = [record(ONLINE, DeviceStatus.APPROVED, "ws://a/signal/v1"),
               record(OFFLINE, DeviceStatus.REVOKED, "ws://a/signal/v1"),
               record(NO_URL, DeviceStatus.PENDING, None)]
    assert device_entries(records) == [(ONLINE, "ws://a/signal/v1"), (NO_URL, None)]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        PresenceWatcher(lambda: [], interval=0)
    with pytest.raises(ValueError):
        PresenceWatcher(lambda: [], timeout=-1)


async def test_on_change_reports_transitions_only() -> None:
    server = FakeServer(hosted=[inbox_address(ONLINE)])
    changes: list[tuple[str, bool | None]] = []

    def on_change(device_id: str, presence: Presence) -> None:
        changes.append((device_id, presence.online))
        if device_id == OFFLINE:
            raise RuntimeError("listener bug")  # logged, never breaks the round

    devices = [(ONLINE, "ws://a/signal/v1"), (OFFLINE, "ws://a/signal/v1")]
    watcher = PresenceWatcher(lambda: devices, open_signaling=server.open, on_change=on_change)
    await watcher.check_now()
    await watcher.check_now()  # nothing changed: nothing told
    assert sorted(changes) == [(ONLINE, True), (OFFLINE, False)]
    watcher.seen(OFFLINE)
    server.hosted.clear()
    await watcher.check_now()
    assert changes[2:] == [(OFFLINE, True), (ONLINE, False), (OFFLINE, False)]
