"""``doorstep daemon`` speaks the service-manager protocol: the test plays systemd's part with its
own NOTIFY_SOCKET and WATCHDOG_USEC, as ``Type=notify`` + ``WatchdogSec=`` would set them.

READY=1 must come only once every listener answers, from the main process (``NotifyAccess=main``);
then WATCHDOG=1 every half interval; then STOPPING=1 on SIGTERM, and exit 0.
"""

from __future__ import annotations

import json
import socket
import subprocess
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.integration.harness import DOORSTEP, Daemon

pytestmark = pytest.mark.integration

UCRED = struct.Struct("iII")


@dataclass
class Message:
    at: float
    pid: int
    lines: list[str]
    runtime_file_there: bool


@dataclass
class FakeManager:
    """A NOTIFY_SOCKET served by a thread that records every datagram as it arrives, and checks at
    the moment READY=1 arrives that the daemon already serves HTTP (what READY promises)."""

    path: Path
    state_dir: Path
    messages: list[Message] = field(default_factory=list)
    http_at_ready: int | None = None
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
            except TimeoutError:
                continue
            pid = next((UCRED.unpack_from(p)[0] for lvl, kind, p in ancdata
                        if lvl == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), -1)
            lines = data.decode().split("\n")
            runtime = self.state_dir / "runtime.json"
            message = Message(time.monotonic(), pid, lines, runtime.exists())
            if "READY=1" in lines and runtime.exists():
                port = json.loads(runtime.read_text())["http_port"]
                self.http_at_ready = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code
            self.messages.append(message)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def first(self, line: str) -> Message:
        return next(m for m in self.messages if line in m.lines)

    def wait_for(self, line: str, timeout: float) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if line in m.lines:
                    return m
            time.sleep(0.02)
        raise AssertionError(f"no {line} within {timeout} s; got {[m.lines for m in self.messages]}")


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[FakeManager]:
    fake = FakeManager(tmp_path / "notify", tmp_path / "a")
    yield fake
    fake.close()


def test_ready_watchdog_stopping(manager: FakeManager, start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon("a", NOTIFY_SOCKET=str(manager.path), WATCHDOG_USEC="1000000")
    assert daemon.proc is not None
    ready = manager.wait_for("READY=1", 10)
    assert ready.pid == daemon.proc.pid  # NotifyAccess=main accepts the main process only
    assert ready.runtime_file_there and manager.http_at_ready == 200
    status = next(line for line in ready.lines if line.startswith("STATUS="))
    assert status.startswith("STATUS=ready: http 127.0.0.1:") and ", signaling 127.0.0.1:" in status
    assert ", stun 127.0.0.1:" in status

    time.sleep(3.0)
    pings = [m for m in manager.messages if m.lines == ["WATCHDOG=1"] and m.at > ready.at]
    assert len(pings) >= 4, [m.lines for m in manager.messages]  # every 0.5 s: ~6 in 3 s
    assert all(m.pid == daemon.proc.pid for m in pings)
    gaps = [b.at - a.at for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 0.9, gaps
    # The watchdog runs from the start: pings before READY=1 as well.
    assert manager.messages[0].lines == ["WATCHDOG=1"]

    sent_at = time.monotonic()
    assert daemon.stop() == 0, daemon.log_tail()
    stopping = manager.first("STOPPING=1")
    assert stopping.at >= sent_at and stopping.pid == daemon.proc.pid
    assert "STATUS=stopping" in stopping.lines
    assert not any("READY=1" in m.lines for m in manager.messages if m.at > ready.at)


def test_ready_waits_for_coturn(manager: FakeManager, start_daemon: Callable[..., Daemon]) -> None:
    """With TURN on, READY=1 comes after the managed coturn reported its own READY=1 (to the
    daemon's socket for it, not to ours: coturn's pid never shows up here)."""
    require_binary("turnserver")
    from tests.integration.test_coturn import free_port

    port = free_port()
    daemon = start_daemon("a", NOTIFY_SOCKET=str(manager.path), DOORSTEP_TURN_ENABLED="true",
                          DOORSTEP_TURN_LISTEN=f"127.0.0.1:{port}")
    assert daemon.proc is not None
    ready = manager.wait_for("READY=1", 15)
    pid_file = daemon.state_dir / "coturn" / "turnserver.pid"
    coturn_pid = int(pid_file.read_text())
    assert Path(f"/proc/{coturn_pid}").exists()
    assert f", turn 127.0.0.1:{port}" in next(line for line in ready.lines if line.startswith("STATUS="))
    assert {m.pid for m in manager.messages} == {daemon.proc.pid}
    assert daemon.stop() == 0, daemon.log_tail()


def test_a_notify_socket_nobody_listens_on_fails_the_start(tmp_path: Path) -> None:
    """systemd never hands out a dead socket; if it were, the daemon says so and exits 1 rather
    than serving unannounced until the start timeout kills it."""
    daemon = Daemon(tmp_path / "a", NOTIFY_SOCKET=str(tmp_path / "nobody"))
    done = subprocess.run(DOORSTEP + ["daemon"], env=daemon.env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr
    assert "cannot start: " in done.stderr and "cannot notify the service manager at " in done.stderr
    assert not (daemon.state_dir / "runtime.json").exists()
