"""The coturn supervisor against a fake ``turnserver`` (a Python script): readiness through
NOTIFY_SOCKET, start-up failures, restarts with backoff, stopping, and a secret that never shows.

The real coturn is exercised in tests/integration/test_coturn.py.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from daemon.ice.coturn_config import CoturnSettings
from daemon.runtime import coturn
from daemon.runtime.coturn import CoturnError, coturn_settings, run_coturn
from daemon.runtime.config import load_config

SECRET = b"f" * 64
SETTINGS = CoturnSettings(listen_ip="127.0.0.1", listen_port=3479, relay_ips=("127.0.0.1",),
                          relay_ports=(49160, 49359), realm="doorstep", secret=SECRET)

FAKE = """#!{python}
import os, socket, subprocess, sys, time, signal
mode = {mode!r}
conf = sys.argv[sys.argv.index("-c") + 1]
secret = [l for l in open(conf) if l.startswith("static-auth-secret=")][0].strip()
print("fake turnserver on", conf, secret, flush=True)

def notify(message=b"READY=1"):
    address = os.environ["NOTIFY_SOCKET"]
    address = "\\0" + address[1:] if address.startswith("@") else address
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(message, address)

if mode == "exit":
    sys.exit(3)
if mode == "impostor":  # READY=1 from another process than the child
    subprocess.run([sys.executable, "-c", "import os, socket; socket.socket(socket.AF_UNIX, "
                    "socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])"])
if mode in ("ready", "stubborn", "flaky"):
    notify(b"STATUS=starting")
    notify()
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if mode == "flaky":
    marker = os.path.join(os.path.dirname(conf), "crashed-once")
    if not os.path.exists(marker):
        open(marker, "w").close()
        print("crashing now", flush=True)
        sys.exit(1)
while True:
    time.sleep(1)
"""


def fake_turnserver(tmp_path: Path, mode: str) -> str:
    path = tmp_path / f"turnserver-{mode}"
    path.write_text(FAKE.format(python=sys.executable, mode=mode))
    path.chmod(0o755)
    return str(path)


def alive(pid: int) -> bool:
    return coturn._alive(pid)


async def test_reports_started_once_the_child_says_ready_and_stops_it_when_cancelled(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with trio.open_nursery() as nursery:
        status = await nursery.start(
            lambda task_status: run_coturn(SETTINGS, state, binary=fake_turnserver(tmp_path, "ready"),
                                           task_status=task_status))
        pid = status.pid
        assert pid is not None and alive(pid) and status.ready_count == 1
        conf = state / "coturn" / "turnserver.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        assert stat.S_IMODE((state / "coturn").stat().st_mode) == 0o700
        assert f"static-auth-secret={SECRET.decode()}" in conf.read_text()
        assert (state / "coturn" / "turnserver.pid").read_text().strip() == str(pid)
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[-3:-1] == [b"-c", os.fsencode(conf)]
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert sorted(e.partition(b"=")[0] for e in environ if e) == [b"NOTIFY_SOCKET", b"PATH"]
        nursery.cancel_scope.cancel()
    assert not alive(pid)
    assert not (state / "coturn" / "turnserver.pid").exists()
    assert not (state / "coturn" / "notify").exists()


async def test_a_child_exiting_before_ready_fails_the_start_without_showing_the_secret(tmp_path: Path) -> None:
    with pytest.raises(CoturnError) as caught:
        await run_coturn(SETTINGS, tmp_path / "state", binary=fake_turnserver(tmp_path, "exit"))
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "static-auth-secret=<secret>" in message
    assert SECRET.decode() not in message
    assert isinstance(caught.value, OSError)  # the daemon's "cannot start: ..." path


@pytest.mark.parametrize("mode", ["silent", "impostor"])
async def test_no_ready_from_the_child_itself_within_the_timeout_fails_the_start(tmp_path: Path, mode: str) -> None:
    with trio.fail_after(10):
        with pytest.raises(CoturnError, match="did not report READY=1 in time"):
            await run_coturn(SETTINGS, tmp_path / "state", binary=fake_turnserver(tmp_path, mode), ready_timeout=1.0)


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CoturnError, match="no-such-turnserver not found: install the coturn package"):
        await run_coturn(SETTINGS, tmp_path / "state", binary="no-such-turnserver")


async def test_a_child_that_dies_is_restarted_with_backoff(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="doorstep.coturn")
    async with trio.open_nursery() as nursery:
        status = await nursery.start(
            lambda task_status: run_coturn(SETTINGS, tmp_path / "state", binary=fake_turnserver(tmp_path, "flaky"),
                                           task_status=task_status))
        with trio.fail_after(10):
            second = await status.wait_ready(2)
        assert alive(second)
        nursery.cancel_scope.cancel()
    assert not alive(second)
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "turnserver exited with code 1" in warning and "restarting in" in warning
    assert "crashing now" in warning and "static-auth-secret=<secret>" in warning
    assert SECRET.decode() not in caplog.text


async def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(coturn, "STOP_TIMEOUT", 0.5)
    async with trio.open_nursery() as nursery:
        status = await nursery.start(
            lambda task_status: run_coturn(SETTINGS, tmp_path / "state", binary=fake_turnserver(tmp_path, "stubborn"),
                                           task_status=task_status))
        pid = status.pid
        await trio.sleep(0.2)  # let it install its SIGTERM handler
        nursery.cancel_scope.cancel()
    assert not alive(pid)
    assert "ignored SIGTERM" in caplog.text


async def test_a_child_left_behind_by_a_killed_daemon_is_stopped_first(tmp_path: Path) -> None:
    state = tmp_path / "state"
    home = state / "coturn"
    home.mkdir(parents=True)
    orphan = subprocess.Popen([fake_turnserver(tmp_path, "silent"), "-c", str(home / "turnserver.conf")],
                              stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        (home / "turnserver.conf").write_text("static-auth-secret=x\n")
        (home / "turnserver.pid").write_text(f"{orphan.pid}\n")
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_coturn(SETTINGS, state, binary=fake_turnserver(tmp_path, "ready"),
                                               task_status=task_status))
            assert orphan.poll() == -signal.SIGTERM
            nursery.cancel_scope.cancel()
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()


async def test_an_unrelated_pid_in_the_record_is_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "coturn").mkdir(parents=True)
    (state / "coturn" / "turnserver.pid").write_text(f"{os.getpid()}\n")
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: run_coturn(SETTINGS, state, binary=fake_turnserver(tmp_path, "ready"),
                                           task_status=task_status))
        nursery.cancel_scope.cancel()


def test_settings_from_the_daemon_config() -> None:
    config = load_config(environ={
        "DOORSTEP_TURN_LISTEN": "192.168.1.10:3479", "DOORSTEP_TURN_RELAY_PORTS": "50000-50099",
        "DOORSTEP_TURN_EXTERNAL_IP": "203.0.113.7/192.168.1.10",
        "DOORSTEP_ICE_ADDRESSES": "127.0.0.1,192.168.1.10,fd00::10",
    })
    s = coturn_settings(config, SECRET)
    assert (s.listen_ip, s.listen_port, s.relay_ips, s.relay_ports) == ("192.168.1.10", 3479, ("192.168.1.10",),
                                                                        (50000, 50099))
    assert s.external_ip == "203.0.113.7/192.168.1.10" and s.realm == "doorstep"
    assert s.allowed_peer_ips == ("192.168.1.10", "fd00::10")  # loopback never; duplicates once


def test_a_wildcard_listen_address_listens_and_relays_everywhere() -> None:
    s = coturn_settings(load_config(environ={"DOORSTEP_TURN_LISTEN": "0.0.0.0:3479"}), SECRET)
    assert (s.listen_ip, s.relay_ips, s.allowed_peer_ips) == ("", (), ())
