"""The coturn supervisor: the managed TURN server as a child process of the daemon.

:func:`run_coturn` is a service for the root nursery. It writes ``<state_dir>/coturn/turnserver.conf``
(0600: it holds the TURN secret), starts ``turnserver -c`` on it with a ``NOTIFY_SOCKET`` it listens
on, and reports started once the child sent ``READY=1``. If the child dies it is started again after
a jittered backoff; if it never gets ready it is killed and started again the same way. Cancelling
the service stops the child: SIGTERM, up to 5 s, then SIGKILL.

Resource handling: the child runs in its own session (a terminal's Ctrl-C reaches the daemon only,
which stops it) and its pid is recorded in ``<state_dir>/coturn/turnserver.pid``. A coturn left
behind by a daemon that was killed with SIGKILL is stopped at the next start, before it could share
the port (coturn binds its UDP listener with SO_REUSEPORT, so two would silently split the
traffic).

Error handling: before the first ``READY=1`` every failure (no ``turnserver`` binary, the child
exiting, no ``READY=1`` within ``ready_timeout``) raises :class:`CoturnError` with the child's last
output lines, so the daemon refuses to start with one clear line. After that, failures are logged
(exit code, last output lines) and retried forever.

The secret never reaches a log: coturn runs at normal verbosity (it does not print it), and every
output line is scrubbed of it anyway before being kept or logged (at debug level).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import trio

from daemon.ice.coturn_config import CoturnSettings, render_turnserver_conf
from daemon.storage import write_secret_file

from .backoff import backoff_delay
from .config import Config

__all__ = ["CoturnError", "CoturnStatus", "coturn_settings", "run_coturn"]

log = logging.getLogger("doorstep.coturn")

COTURN_DIR = "coturn"
CONF_FILE = "turnserver.conf"
PID_FILE = "turnserver.pid"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
STABLE_AFTER = 60.0
"""A child that stayed up this long after READY=1 resets the backoff."""
TAIL_LINES = 20
_UCRED = struct.Struct("iII")  # pid, uid, gid (SCM_CREDENTIALS)


class CoturnError(ChildProcessError):
    """The managed coturn could not be started (missing binary, early exit, never ready)."""


class CoturnStatus:
    """The supervised coturn as seen by its supervisor; ``nursery.start(run_coturn, ...)`` returns it.

    ``pid`` is the current child's pid (None between children), ``ready_count`` how many children
    have reported ``READY=1`` so far (1 after the start, 2 after the first restart, ...).
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.ready_count = 0
        self._changed = trio.Event()

    def _update(self, *, pid: int | None, ready: bool = False) -> None:
        self.pid = pid
        self.ready_count += ready
        self._changed.set()
        self._changed = trio.Event()

    async def wait_ready(self, count: int) -> int:
        """Wait until ``count`` children have reported ready; return the current child's pid."""
        while self.ready_count < count or self.pid is None:
            await self._changed.wait()
        return self.pid


def coturn_settings(config: Config, secret: bytes) -> CoturnSettings:
    """The managed coturn's settings from the daemon's configuration and the TURN secret.

    coturn listens (and relays) on ``turn.listen``'s address, or everywhere for a wildcard. The
    appliance's own addresses that the relay may reach despite the private-range deny list are the
    specific ones it is configured with: ``ice.addresses``, ``turn.listen`` and the private part of
    ``turn.external_ip`` (loopback and wildcard addresses never are).
    """
    host = config.turn_listen.host
    listen_ip = "" if host in ("", "0.0.0.0", "::") else ("127.0.0.1" if host == "localhost" else host)
    private = config.turn_external_ip.partition("/")[2]
    own = (*(config.ice_addresses or ()), listen_ip, private)
    return CoturnSettings(
        listen_ip=listen_ip,
        listen_port=config.turn_listen.port,
        relay_ips=(listen_ip,) if listen_ip else (),
        relay_ports=config.turn_relay_ports,
        external_ip=config.turn_external_ip,
        realm=config.turn_realm,
        secret=secret,
        allowed_peer_ips=tuple(dict.fromkeys(ip for ip in own if _may_be_peer(ip))),
    )


def _may_be_peer(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:  # empty, or scoped (fe80::1%eth0), which coturn cannot take
        return False
    return not (ip.is_loopback or ip.is_unspecified or ip.is_multicast)


@dataclass(frozen=True, slots=True)
class _Exit:
    """How one child ended: its exit code, whether it got ready, and for how long it was up."""

    code: int
    ready: bool
    timed_out: bool
    uptime: float
    tail: str

    def describe(self) -> str:
        if self.timed_out:
            return "did not report READY=1 in time and was killed"
        if self.code < 0:
            try:
                return f"was killed by {signal.Signals(-self.code).name}"
            except ValueError:
                return f"was killed by signal {-self.code}"
        return f"exited with code {self.code}"


async def run_coturn(
    settings: CoturnSettings,
    state_dir: Path,
    *,
    binary: str = "turnserver",
    wrapper: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT,
    task_status: trio.TaskStatus[CoturnStatus] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run and supervise coturn until cancelled; report a :class:`CoturnStatus` once it is ready.

    ``binary``: the ``turnserver`` executable (name or path). ``wrapper``: argv put before it (tests
    run coturn inside a network namespace with ``ip netns exec NAME``; it must exec, keeping the
    pid). Raises CoturnError (an OSError) if coturn cannot be started the first time, OSError if
    the state dir cannot be written.
    """
    home = state_dir / COTURN_DIR
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    conf = home / CONF_FILE
    write_secret_file(conf, render_turnserver_conf(settings, userdb=home / "turndb").encode("ascii"))
    pid_file = home / PID_FILE
    await _stop_leftover(pid_file, conf)
    executable = shutil.which(binary)
    if executable is None:
        raise CoturnError(f"{binary} not found: install the coturn package, or set turn.enabled=false")
    command = [*wrapper, executable, "-c", str(conf)]
    scrub = _scrubber(settings.secret)
    status = CoturnStatus()
    with await _notify_socket(home) as (notify, address):
        env = {"PATH": os.environ.get("PATH", os.defpath), "NOTIFY_SOCKET": address}

        def on_ready(pid: int) -> None:
            status._update(pid=pid, ready=True)
            log.info("coturn ready (pid %d) on %s:%d", pid, settings.listen_ip or "*", settings.listen_port)
            if status.ready_count == 1:
                task_status.started(status)

        attempt = 0
        while True:
            ended = await _run_child(command, env, notify, pid_file, ready_timeout, scrub, on_ready)
            status._update(pid=None)
            if status.ready_count == 0:
                raise CoturnError(
                    f"turnserver {ended.describe()} (ready timeout {ready_timeout:g} s); "
                    f"its last output:\n{ended.tail or '(none)'}"
                )
            if ended.ready and ended.uptime >= STABLE_AFTER:
                attempt = 0
            delay = backoff_delay(attempt)
            attempt += 1
            log.warning(
                "turnserver %s after %.1f s%s; restarting in %.1f s. Its last output:\n%s",
                ended.describe(), ended.uptime, "" if ended.ready else " without getting ready",
                delay, ended.tail or "(none)",
            )
            await trio.sleep(delay)


async def _run_child(
    command: list[str],
    env: dict[str, str],
    notify: trio.socket.SocketType,
    pid_file: Path,
    ready_timeout: float,
    scrub: Callable[[str], str],
    on_ready: Callable[[int], None],
) -> _Exit:
    """Start one child, wait for it to end; stop it (SIGTERM, then SIGKILL) if cancelled."""
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    started = trio.current_time()
    ready_at: float | None = None
    timed_out = False
    proc = await trio.lowlevel.open_process(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        write_secret_file(pid_file, f"{proc.pid}\n".encode())
        assert proc.stdout is not None
        output_done = trio.Event()

        async def watch_ready() -> None:
            nonlocal ready_at, timed_out
            with trio.move_on_after(ready_timeout) as waiting:
                await _wait_ready(notify, proc.pid)
            if waiting.cancelled_caught:
                log.error("turnserver (pid %d) did not report READY=1 within %g s; killing it",
                          proc.pid, ready_timeout)
                timed_out = True
                proc.kill()
                return
            ready_at = trio.current_time()
            on_ready(proc.pid)
            await _drain(notify)  # coturn repeats READY=1 every few seconds

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_output, proc.stdout, tail, scrub, output_done)
            nursery.start_soon(watch_ready)
            code = await proc.wait()
            with trio.move_on_after(1.0):  # the last lines, written just before it exited
                await output_done.wait()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await _stop(proc)
            if proc.stdout is not None:
                await proc.stdout.aclose()
            pid_file.unlink(missing_ok=True)
    uptime = trio.current_time() - (ready_at or started)
    return _Exit(code=code, ready=ready_at is not None, timed_out=timed_out, uptime=uptime, tail="\n".join(tail))


async def _stop(proc: trio.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    with trio.move_on_after(STOP_TIMEOUT):
        await proc.wait()
        log.info("coturn (pid %d) stopped", proc.pid)
        return
    log.warning("turnserver (pid %d) ignored SIGTERM for %g s; killing it", proc.pid, STOP_TIMEOUT)
    proc.kill()
    await proc.wait()


async def _pump_output(
    stream: trio.abc.ReceiveStream, tail: deque[str], scrub: Callable[[str], str], done: trio.Event
) -> None:
    """Keep the child's last lines (scrubbed) and pass them to the debug log."""
    pending = b""
    try:
        async for chunk in stream:
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = scrub(raw.decode("utf-8", "replace").rstrip())
                if line:
                    tail.append(line)
                    log.debug("turnserver: %s", line)
        if pending.strip():
            tail.append(scrub(pending.decode("utf-8", "replace").rstrip()))
    finally:
        done.set()


def _scrubber(secret: bytes) -> Callable[[str], str]:
    text = secret.decode("ascii", "replace")
    return lambda line: line.replace(text, "<secret>")


class _NotifySocket:
    """Context manager closing (and unlinking) the notify socket."""

    def __init__(self, sock: trio.socket.SocketType, address: str, path: Path | None) -> None:
        self.sock, self.address, self.path = sock, address, path

    def __enter__(self) -> tuple[trio.socket.SocketType, str]:
        return self.sock, self.address

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def _notify_socket(home: Path) -> _NotifySocket:
    """A datagram socket for ``NOTIFY_SOCKET`` in ``home`` (abstract if the path is too long for
    AF_UNIX), passing the sender's credentials so that only our child's READY=1 counts."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        path: Path | None = home / "notify"
        if len(os.fsencode(path)) < 100:
            path.unlink(missing_ok=True)
            await sock.bind(str(path))
            return _NotifySocket(sock, str(path), path)
        name = f"doorstep-coturn-{os.getpid()}-{os.urandom(4).hex()}"
        await sock.bind("\0" + name)
        return _NotifySocket(sock, "@" + name, None)
    except BaseException:
        sock.close()
        raise


async def _wait_ready(sock: trio.socket.SocketType, pid: int) -> None:
    """Return once process ``pid`` sent a datagram with a ``READY=1`` line."""
    while True:
        data, ancdata, _flags, _addr = await sock.recvmsg(4096, socket.CMSG_SPACE(_UCRED.size))
        sender = None
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= _UCRED.size:
                sender = _UCRED.unpack_from(payload)[0]
        if sender == pid and b"READY=1" in data.split(b"\n"):
            return


async def _drain(sock: trio.socket.SocketType) -> NoReturn:
    while True:
        await sock.recv(4096)


async def _stop_leftover(pid_file: Path, conf: Path) -> None:
    """Stop a turnserver on our config that a killed daemon left behind (SIGTERM, then SIGKILL)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        pid_file.unlink(missing_ok=True)
        return
    if os.fsencode(conf) not in cmdline:
        pid_file.unlink(missing_ok=True)
        return
    log.warning("stopping turnserver (pid %d) left behind by a previous daemon", pid)
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        with trio.move_on_after(wait):
            while _alive(pid):
                await trio.sleep(0.05)
            break
    pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
