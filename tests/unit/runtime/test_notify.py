"""sd_notify spoken directly, against real AF_UNIX datagram sockets standing in for systemd's."""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from daemon.runtime.notify import (
    NotifyError,
    notify,
    notify_address,
    notify_best_effort,
    serve_watchdog,
    watchdog_interval,
)

UCRED = struct.Struct("iII")


class Manager:
    """The service manager's end: a datagram socket that records what it receives, with the
    sender's pid (SCM_CREDENTIALS), as systemd does to enforce ``NotifyAccess=main``."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": env_value}

    def receive(self, timeout: float = 2.0) -> tuple[int | None, list[str]]:
        self.sock.settimeout(timeout)
        data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
        pid = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = UCRED.unpack_from(payload)[0]
        return pid, data.decode().split("\n")

    def pending(self) -> list[list[str]]:
        """Every datagram waiting now, without blocking."""
        out = []
        self.sock.setblocking(False)
        while True:
            try:
                out.append(self.sock.recv(4096).decode().split("\n"))
            except BlockingIOError:
                return out


def _manager(address: str | bytes, env_value: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(address)
    return sock


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[Manager]:
    path = tmp_path / "notify"
    with _manager(str(path), str(path)) as sock:
        yield Manager(sock, str(path))


@pytest.fixture
def abstract_manager() -> Iterator[Manager]:
    name = f"doorstep-test-{os.getpid()}-{os.urandom(4).hex()}"
    with _manager(b"\0" + name.encode(), "@" + name) as sock:
        yield Manager(sock, "@" + name)


def watchdog(env: dict[str, str]):
    """``serve_watchdog`` on ``env``, for ``nursery.start``."""
    return lambda task_status: serve_watchdog(environ=env, task_status=task_status)


def test_without_notify_socket_nothing_is_sent() -> None:
    assert notify("READY=1", environ={}) is False
    assert notify("READY=1", environ={"NOTIFY_SOCKET": ""}) is False
    assert notify_address({}) is None


def test_lines_go_out_in_one_datagram_with_our_credentials(manager: Manager) -> None:
    assert notify("READY=1", "STATUS=ready: http 0.0.0.0:8080", environ=manager.env) is True
    pid, lines = manager.receive()
    assert lines == ["READY=1", "STATUS=ready: http 0.0.0.0:8080"]
    assert pid == os.getpid()  # what NotifyAccess=main checks


def test_an_abstract_socket_is_named_with_an_at_sign(abstract_manager: Manager) -> None:
    assert notify_address(abstract_manager.env) == b"\0" + abstract_manager.env["NOTIFY_SOCKET"][1:].encode()
    assert notify("STOPPING=1", environ=abstract_manager.env)
    assert abstract_manager.receive()[1] == ["STOPPING=1"]


def test_a_socket_nobody_listens_on_raises(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "gone")}
    with pytest.raises(NotifyError, match="gone") as caught:
        notify("READY=1", environ=env)
    assert isinstance(caught.value, OSError)
    assert notify_best_effort("STOPPING=1", environ=env) is False  # logged, not raised


def test_a_listening_socket_that_went_away_raises(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    _manager(str(path), str(path)).close()  # the file stays, nothing reads it
    with pytest.raises(NotifyError):
        notify("READY=1", environ={"NOTIFY_SOCKET": str(path)})


@pytest.mark.parametrize("value", ["relative/notify", "@", "vsock:2:1234"])
def test_other_address_forms_are_refused(value: str) -> None:
    with pytest.raises(NotifyError, match="NOTIFY_SOCKET"):
        notify("READY=1", environ={"NOTIFY_SOCKET": value})


@pytest.mark.parametrize("line", ["READY=1\nSTOPPING=1", "READY"])
def test_a_line_must_be_one_assignment(manager: Manager, line: str) -> None:
    with pytest.raises(ValueError):
        notify(line, environ=manager.env)
    assert manager.pending() == []


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "1000000"}, 1.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env) == expected


async def test_no_watchdog_asked_for_means_no_task(manager: Manager) -> None:
    async with trio.open_nursery() as nursery:
        assert await nursery.start(watchdog(manager.env)) is None  # no WATCHDOG_USEC
        assert await nursery.start(watchdog({"WATCHDOG_USEC": "1000000"})) is None  # no socket
    assert manager.pending() == []


async def test_the_watchdog_pings_every_half_interval(manager: Manager, autojump_clock: trio.testing.MockClock) -> None:
    env = {**manager.env, "WATCHDOG_USEC": "1000000"}
    async with trio.open_nursery() as nursery:
        assert await nursery.start(watchdog(env)) == 1.0
        await trio.sleep(2.25)
        nursery.cancel_scope.cancel()
    # pings at t = 0, 0.5, 1.0, 1.5, 2.0
    assert manager.pending() == [["WATCHDOG=1"]] * 5


async def test_the_first_ping_goes_out_before_started(manager: Manager) -> None:
    env = {**manager.env, "WATCHDOG_USEC": "30000000"}
    async with trio.open_nursery() as nursery:
        assert await nursery.start(watchdog(env)) == 30.0
        assert manager.pending() == [["WATCHDOG=1"]]
        nursery.cancel_scope.cancel()


async def test_a_stuck_event_loop_stops_the_pings(tmp_path: Path) -> None:
    """The pings come from the trio loop: while it is blocked, none go out (timed on the
    receiving side by a thread that reads datagrams as they arrive)."""
    path = tmp_path / "notify"
    sock = _manager(str(path), str(path))
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
    arrivals: list[float] = []

    def reader() -> None:
        sock.settimeout(1.0)
        try:
            while True:
                sock.recv(64)
                arrivals.append(time.monotonic())
        except (TimeoutError, OSError):
            return

    with sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, reader)
            await nursery.start(watchdog(env))
            await trio.sleep(0.35)
            time.sleep(0.6)
            await trio.sleep(0.35)
            nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert len(arrivals) >= 5
    assert max(gaps) >= 0.55  # the stuck 0.6 s
    assert sorted(gaps)[len(gaps) // 2] < 0.2  # otherwise every 0.1 s


async def test_a_failing_ping_is_logged_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "notify"
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
    sock = _manager(str(path), str(path))
    caplog.set_level(logging.WARNING, "doorstep.notify")
    async with trio.open_nursery() as nursery:
        await nursery.start(watchdog(env))
        sock.close()  # the manager goes away...
        path.unlink()
        await trio.sleep(2.25)
        with _manager(str(path), str(path)) as back:  # ...and comes back
            await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
            back.setblocking(False)
            assert back.recv(64) == b"WATCHDOG=1"
    failures = [r for r in caplog.records if "watchdog ping failed" in r.getMessage()]
    assert len(failures) == 1
