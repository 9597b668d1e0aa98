"""The real coturn under doorstep's supervisor, on loopback: ready, serving, restarted after
``kill -9``, and gone when the daemon stops (or stopped by the next daemon if one was killed).

Nothing here relays anywhere: the only peers are checked in tests/integration/test_turn_abuse.py,
inside a network namespace.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio

from daemon.ice.coturn_config import CoturnSettings
from daemon.ice.turn_credentials import mint
from daemon.runtime.coturn import run_coturn
from tests.conftest import require_binary
from tests.integration.harness import Daemon
from tests.integration.turn_client import SUCCESS, TurnClient, binding_request, decode

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def coturn_installed() -> None:
    require_binary("turnserver")


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def turnservers_on(conf: Path) -> list[int]:
    """Live turnserver processes started with ``-c conf``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and os.fsencode(conf) in argv and alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def stun_answers(port: int) -> bool:
    """Whether a STUN Binding request to 127.0.0.1:port gets a success answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for _ in range(6):
            sock.sendto(binding_request(), ("127.0.0.1", port))
            try:
                return decode(sock.recv(2048)).cls == SUCCESS
            except TimeoutError:
                continue
    return False


async def allocates(port: int, secret: bytes) -> bool:
    username, password = mint(secret, ttl=60, now=time.time(), session="supervisor-test")
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        answer, authenticated = await TurnClient(sock, ("127.0.0.1", port), username, password).allocate()
    return authenticated and answer.cls == SUCCESS


async def test_coturn_is_ready_serves_and_is_restarted_after_kill_9(tmp_path: Path) -> None:
    port = free_port()
    secret = secrets.token_hex(32).encode()
    settings = CoturnSettings(listen_ip="127.0.0.1", listen_port=port, relay_ips=("127.0.0.1",),
                              relay_ports=(49160, 49359), realm="doorstep", secret=secret)
    conf = tmp_path / "state" / "coturn" / "turnserver.conf"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            status = await nursery.start(partial(run_coturn, settings, tmp_path / "state"))
            first = status.pid
            assert first is not None and status.ready_count == 1
            assert turnservers_on(conf) == [first]
            assert await allocates(port, secret)

            os.kill(first, signal.SIGKILL)
            second = await status.wait_ready(2)
            assert second != first and not alive(first)
            assert turnservers_on(conf) == [second]
            assert await allocates(port, secret)
            nursery.cancel_scope.cancel()
    assert turnservers_on(conf) == []


def turn_env(port: int) -> dict[str, str]:
    return {"DOORSTEP_TURN_ENABLED": "true", "DOORSTEP_TURN_LISTEN": f"127.0.0.1:{port}",
            "DOORSTEP_STUN_LISTEN": "127.0.0.1:0"}


def test_the_daemon_runs_coturn_and_leaves_none_behind(start_daemon: Callable[..., Daemon]) -> None:
    port = free_port()
    daemon = start_daemon("a", **turn_env(port))
    conf = daemon.state_dir / "coturn" / "turnserver.conf"
    assert daemon.proc is not None
    [pid] = turnservers_on(conf)
    assert Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1] == str(daemon.proc.pid)  # its child
    assert stun_answers(port)
    secret = (daemon.state_dir / "turn-secret").read_text().strip()
    assert f"static-auth-secret={secret}" in conf.read_text()
    assert secret not in daemon.log_tail(10_000)

    assert daemon.stop() == 0
    assert not alive(pid)
    assert turnservers_on(conf) == []


def test_a_coturn_left_by_a_killed_daemon_is_stopped_by_the_next(start_daemon: Callable[..., Daemon]) -> None:
    port = free_port()
    daemon = start_daemon("a", **turn_env(port))
    conf = daemon.state_dir / "coturn" / "turnserver.conf"
    [orphan] = turnservers_on(conf)
    daemon.kill()  # SIGKILL: no chance to stop its child
    assert alive(orphan)

    daemon.start()
    [child] = turnservers_on(conf)
    assert child != orphan and not alive(orphan)
    assert "left behind by a previous daemon" in daemon.log_tail()
    assert stun_answers(port)
    assert daemon.stop() == 0
    assert turnservers_on(conf) == []
