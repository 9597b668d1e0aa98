"""The Debian package, end to end (journey J1): build it, lint it, install it with apt into a clean
Debian 12 chroot, check what it put there, verify and score the systemd unit, run the installed
daemon as systemd would (its user, its config, a NOTIFY_SOCKET, WATCHDOG_USEC, the journal), then
remove and purge it.

Needs root (debootstrap, mounts, chroot) and the Debian tools of ``make test``'s list; elsewhere it
skips, saying why; with ``CI=true`` a missing piece fails it. Slow the first time (debootstrap,
apt downloads, the build: a few minutes); later runs reuse ``.cache/chroot`` and an unchanged
``build/deb``. Phase times go to ``tests/artifacts/package-times.json``.

What a chroot cannot show is the unit running under systemd itself (PID 1 here is not systemd):
the sandbox settings are checked by ``systemd-analyze`` only, and ``doorstep daemon`` is started by
the test with the environment the unit gives it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI, require_binary

from .chroot import Chroot, ensure_base, free_disk_bytes, host_arch

pytestmark = [pytest.mark.package, pytest.mark.timeout(1200)]

PROJECT = Path(__file__).resolve().parents[2]
CACHE = PROJECT / ".cache" / "chroot"
ARTIFACTS = PROJECT / "tests" / "artifacts"
VENV = "/usr/lib/doorstep"
EXPOSURE_LIMIT = 2.0
TOOLS = ("dpkg-buildpackage", "dh", "lintian", "debootstrap", "pkg-config", "zstd", "systemd-analyze", "chroot")
UCRED = struct.Struct("iII")
TIMES: dict[str, float] = {}


def _fail_or_skip(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class timed:
    """Record how long a phase took in :data:`TIMES` (and the artifacts file)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        TIMES[self.name] = round(time.monotonic() - self.start, 1)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "package-times.json").write_text(json.dumps(TIMES, indent=2) + "\n")


@pytest.fixture(scope="module")
def tools() -> None:
    if os.geteuid() != 0:
        _fail_or_skip("the package tests need root (debootstrap, mount, chroot)")
    for tool in TOOLS:
        require_binary(tool)
    if subprocess.run(["pkg-config", "--exists", "libsystemd"]).returncode != 0:
        _fail_or_skip("libsystemd-dev is not installed (make test installs it with apt-get)")
    if free_disk_bytes(CACHE) < 3 << 30:
        _fail_or_skip(f"less than 3 GiB free under {CACHE}")


@pytest.fixture(scope="module")
def deb(tools: None) -> Path:
    with timed("build"):
        done = subprocess.run([str(PROJECT / "scripts" / "build-deb")], cwd=PROJECT, capture_output=True,
                              text=True, timeout=900)
    assert done.returncode == 0, f"build failed:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
    path = PROJECT / done.stdout.strip().splitlines()[-1]
    assert path.is_file(), done.stdout
    return path


@pytest.fixture(scope="module")
def chroot(tools: None) -> Iterator[Chroot]:
    with timed("chroot base (debootstrap when not cached)"):
        base = ensure_base(CACHE, host_arch())
    root = Chroot.open(base, CACHE / "run", CACHE / "apt-archives")
    try:
        yield root
    finally:
        root.close()


@pytest.fixture(scope="module")
def installed(chroot: Chroot, deb: Path) -> Chroot:
    shutil.copy(deb, chroot.path(f"/tmp/{deb.name}"))
    with timed("apt install ./doorstep.deb (dependencies included)"):
        chroot.apt_install(f"/tmp/{deb.name}")
    with timed("apt install man-db (for systemd-analyze verify's man: check)"):
        chroot.apt_install("man-db")
    return chroot


# --- the artifact ---------------------------------------------------------------------------------------


def test_package_metadata(deb: Path) -> None:
    fields = {name: subprocess.run(["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True,
                                   check=True).stdout.strip()
              for name in ("Package", "Version", "Depends", "Recommends")}
    changelog = subprocess.run(["dpkg-parsechangelog", "-l", str(PROJECT / "debian/changelog"), "-S", "Version"],
                               capture_output=True, text=True, check=True).stdout.strip()
    pyproject = re.search(r'^version = "([^"]+)"', (PROJECT / "pyproject.toml").read_text(), re.M)
    assert pyproject and fields["Version"] == changelog == pyproject.group(1)
    depends = [d.strip() for d in fields["Depends"].split(",")]
    assert "python3 (>= 3.11)" in depends and any(d.startswith("libsystemd0") for d in depends)
    assert any(re.fullmatch(r"python3\.\d+", d) for d in depends)  # the interpreter the venv was made with
    assert fields["Recommends"] == "coturn"
    members = subprocess.run(["ar", "t", str(deb)], capture_output=True, text=True, check=True).stdout.split()
    assert members == ["debian-binary", "control.tar.zst", "data.tar.zst"]


def test_requirements_pin_every_dependency() -> None:
    """debian/requirements.txt (made from the tested venv by ``make deb-requirements``) pins every
    runtime dependency of pyproject.toml, the systemd extra included, at a version it allows. The
    rest of the closure is checked by ``pip check`` in the build."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["systemd"]]
    pins = {}
    for line in (PROJECT / "debian/requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    for req in wanted:
        version = pins.get(canonicalize_name(req.name))
        assert version is not None, f"{req.name} is not in debian/requirements.txt: run `make deb-requirements`"
        assert req.specifier.contains(version, prereleases=True), (
            f"debian/requirements.txt pins {req.name}=={version}, pyproject.toml wants {req}")


def test_lintian_reports_no_errors(deb: Path) -> None:
    changes = deb.with_suffix(".changes")
    with timed("lintian"):
        done = subprocess.run(["lintian", "--tag-display-limit", "0", "--fail-on", "error", str(changes)],
                              capture_output=True, text=True, timeout=600)
    tags = [line for line in done.stdout.splitlines() if re.match(r"[EWIPX]: ", line)]
    (ARTIFACTS / "lintian.txt").write_text("\n".join(tags) + "\n")
    errors = [t for t in tags if t.startswith("E: ")]
    assert done.returncode == 0 and not errors, "\n".join(tags) + done.stderr


# --- installed into a clean bookworm --------------------------------------------------------------------


def test_files_user_and_directories(installed: Chroot) -> None:
    c = installed
    passwd = c.run("getent", "passwd", "doorstep").stdout.strip().split(":")
    assert passwd[5:] == ["/var/lib/doorstep", "/usr/sbin/nologin"] and int(passwd[2]) < 1000
    for path, mode in (("/srv/doorstep", "750"), ("/srv/doorstep/inbox", "2750"), ("/srv/doorstep/outbox", "2770")):
        assert c.run("stat", "-c", "%U:%G %a", path).stdout.split() == ["doorstep:doorstep", mode], path
    conffiles = c.run("dpkg-query", "-W", "-f=${Conffiles}", "doorstep").stdout
    assert "/etc/doorstep/doorstep.toml" in conffiles
    assert c.path("/lib/systemd/system/doorstep.service").is_file()
    assert c.path("/etc/systemd/system/multi-user.target.wants/doorstep.service").is_symlink()  # enabled
    assert c.path("/usr/lib/sysusers.d/doorstep.conf").is_file()
    assert c.path("/usr/lib/tmpfiles.d/doorstep.conf").is_file()
    # The venv: relocated (nothing names the build tree), byte-compiled by postinst, complete.
    leaked = c.run("grep", "-rIl", "/build/deb/", VENV, check=False)
    assert leaked.returncode == 1, leaked.stdout
    assert list(c.path(f"{VENV}/lib").glob("python3.*/site-packages/daemon/runtime/__pycache__/notify.*.pyc"))
    c.run(f"{VENV}/bin/python", "-c", "import daemon.runtime.daemon, control_api.app, aiortc, systemd.journal")
    assert "daemon" in c.run("doorstep", "--help").stdout  # /usr/bin/doorstep, the wrapper
    assert "pip" not in c.run(f"{VENV}/bin/python", "-m", "pip", "--version", check=False).stdout


def test_packaged_config_loads(installed: Chroot) -> None:
    code = ("from daemon.runtime.config import load_config; c = load_config(__import__('pathlib').Path("
            "'/etc/doorstep/doorstep.toml'), environ={}); print(c.state_dir, c.http_listen, c.signal_listen, "
            "c.stun_listen, c.turn_listen, c.inbox_dir, c.outbox_dir)")
    out = installed.run(f"{VENV}/bin/python", "-c", code, user="doorstep").stdout.split()
    assert out == ["/var/lib/doorstep", "0.0.0.0:8080", "0.0.0.0:8081", "0.0.0.0:3480", "127.0.0.1:3479",
                   "/srv/doorstep/inbox", "/srv/doorstep/outbox"]


def test_systemd_analyze_verify_prints_nothing(installed: Chroot) -> None:
    done = installed.run("systemd-analyze", "verify", "/lib/systemd/system/doorstep.service", check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_systemd_analyze_security_exposure(installed: Chroot) -> None:
    done = installed.run("systemd-analyze", "security", "--offline=yes", "--no-pager",
                         "/lib/systemd/system/doorstep.service", check=False)
    (ARTIFACTS / "systemd-security.txt").write_text(done.stdout)
    match = re.search(r"Overall exposure level for doorstep\.service: ([0-9.]+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= EXPOSURE_LIMIT, done.stdout


# --- the installed daemon, started the way the unit starts it ---------------------------------------------


@dataclass
class ServiceManager:
    """systemd's side, played from the host: NOTIFY_SOCKET and journald's socket inside the chroot."""

    notify: socket.socket
    journal: socket.socket
    messages: list[tuple[float, int, list[str]]] = field(default_factory=list)
    entries: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._pump, args=(self.notify, self._on_notify), daemon=True),
                         threading.Thread(target=self._pump, args=(self.journal, self._on_journal), daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, sock: socket.socket, handle) -> None:
        sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, anc, _, _ = sock.recvmsg(1 << 16, socket.CMSG_SPACE(UCRED.size))
            except TimeoutError:
                continue
            pid = next((UCRED.unpack_from(p)[0] for lvl, kind, p in anc
                        if lvl == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), -1)
            handle(data, pid)

    def _on_notify(self, data: bytes, pid: int) -> None:
        self.messages.append((time.monotonic(), pid, data.decode().split("\n")))

    def _on_journal(self, data: bytes, pid: int) -> None:
        self.entries.append(parse_journal_datagram(data))

    def wait_for(self, line: str, timeout: float) -> tuple[float, int, list[str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if line in message[2]:
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no {line} in {timeout} s: {self.messages}")

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.notify.close()
        self.journal.close()


def parse_journal_datagram(data: bytes) -> dict[str, str]:
    """journald's native protocol: ``KEY=value\\n``, or ``KEY\\n<u64 LE size><value>\\n``."""
    fields, i = {}, 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            i = end + 1
        else:
            key, (size,) = line, struct.unpack_from("<Q", data, end + 1)
            value = data[end + 9:end + 9 + size]
            i = end + 9 + size + 1
        fields[key.decode()] = value.decode("utf-8", "replace")
    return fields


def _datagram_socket(path: Path, mode: int) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(str(path))
    path.chmod(mode)
    return sock


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", 0))
        tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        return udp.getsockname()[1]


def test_installed_daemon_ready_watchdog_journal_stopping(installed: Chroot) -> None:
    c = installed
    c.run("install", "-d", "-o", "doorstep", "-g", "doorstep", "-m", "0700", "/var/lib/doorstep")  # StateDirectory=
    manager = ServiceManager(_datagram_socket(c.path("/run/systemd/notify"), 0o777),
                             _datagram_socket(c.path("/run/systemd/journal/socket"), 0o666))
    stderr_path = c.run_dir / "daemon.stderr"
    turn_port = _free_port()
    with stderr_path.open("w+") as stderr:
        st = os.fstat(stderr.fileno())
        env = {  # what the unit's Environment= and systemd give it, loopback ports for the test
            "DOORSTEP_CONFIG": "/etc/doorstep/doorstep.toml", "NOTIFY_SOCKET": "/run/systemd/notify",
            "WATCHDOG_USEC": "1000000", "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
            "DOORSTEP_HTTP_LISTEN": "127.0.0.1:0", "DOORSTEP_SIGNAL_LISTEN": "127.0.0.1:0",
            "DOORSTEP_STUN_LISTEN": "127.0.0.1:0", "DOORSTEP_TURN_ENABLED": "true",
            "DOORSTEP_TURN_LISTEN": f"127.0.0.1:{turn_port}",
        }
        argv = c.argv(f"{VENV}/bin/doorstep", "daemon", user="doorstep", env=env)
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        try:
            with timed("installed daemon: start to READY=1 (coturn included)"):
                try:
                    ready_at, pid, lines = manager.wait_for("READY=1", 60)
                except AssertionError as exc:
                    stderr.seek(0)
                    raise AssertionError(f"{exc}\nits stderr:\n{stderr.read()[-4000:]}") from None
            assert pid == proc.pid
            status = next(line for line in lines if line.startswith("STATUS="))
            assert status.startswith("STATUS=ready: http 127.0.0.1:") and f"turn 127.0.0.1:{turn_port}" in status
            runtime = json.loads(c.path("/var/lib/doorstep/runtime.json").read_text())
            health = httpx.get(f"http://127.0.0.1:{runtime['http_port']}/api/v1/health", timeout=10)
            assert health.status_code == 200
            assert c.run("stat", "-c", "%U %a", "/var/lib/doorstep/api-token").stdout.split() == ["doorstep", "600"]
            assert int(c.path("/var/lib/doorstep/coturn/turnserver.pid").read_text()) != proc.pid  # coturn, a child

            time.sleep(3.0)
            pings = [m for m in manager.messages if m[2] == ["WATCHDOG=1"] and m[0] > ready_at]
            assert len(pings) >= 4 and {m[1] for m in pings} == {proc.pid}, manager.messages
            assert {m[1] for m in manager.messages} == {proc.pid}  # coturn's READY=1 never reaches us

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            TIMES["installed daemon: whole run"] = round(time.monotonic() - started, 1)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            manager.close()
        stderr.seek(0)
        leftover = stderr.read()
    stopping = [m for m in manager.messages if "STOPPING=1" in m[2]]
    assert stopping and stopping[0][1] == proc.pid, manager.messages
    assert not c.path("/var/lib/doorstep/runtime.json").exists()
    # Logs went to the journal natively (systemd-python), not to stderr.
    messages = [e.get("MESSAGE", "") for e in manager.entries]
    assert any(m.startswith("doorstep: ready: http on") for m in messages), messages
    ready_entry = next(e for e in manager.entries if e.get("MESSAGE", "").startswith("doorstep: ready"))
    assert ready_entry["SYSLOG_IDENTIFIER"] == "doorstep" and ready_entry["PRIORITY"] == "6"
    assert ready_entry["LOGGER"] == "doorstep"
    assert "doorstep: stopped" in messages
    assert "Traceback" not in leftover, leftover


# --- the unit under systemd itself -------------------------------------------------------------------------

BOOT_DROP_IN = """\
# tests/package: a short watchdog to see it work, loopback ICE (the container has only lo), and
# the managed coturn, to run it inside the sandbox too.
[Service]
WatchdogSec=3
Environment=DOORSTEP_ICE_ADDRESSES=127.0.0.1 DOORSTEP_TURN_ENABLED=true DOORSTEP_TURN_LISTEN=127.0.0.1:3479
"""
BOOT_NET_UNIT = """\
[Unit]
Description=tests/package: a LAN-like address, without which the stock coturn.service refuses to start
DefaultDependencies=no
Before=network-online.target coturn.service doorstep.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link add lan0 type veth peer name lan1
ExecStart=/sbin/ip addr add 192.168.77.2/24 dev lan0
ExecStart=/sbin/ip link set lan0 up
ExecStart=/sbin/ip link set lan1 up

[Install]
WantedBy=multi-user.target
"""
BOOT_CHECK_UNIT = """\
[Unit]
Description=tests/package: check doorstep.service, then power off
After=doorstep.service multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 /var/tmp/doorstep-boot-test/boot_check.py
ExecStopPost=/bin/systemctl poweroff --no-block
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
"""


def test_the_unit_under_systemd(installed: Chroot) -> None:
    """Boot the chroot with systemd as PID 1 (systemd-nspawn, private network): the enabled unit
    starts with its whole sandbox, READY=1 makes it active, the web API answers, a share goes P2P
    to a receiver, WATCHDOG=1 keeps it alive and a stopped event loop gets it restarted, the logs
    are native journal entries, and it stops cleanly. boot_check.py runs inside and reports."""
    c = installed
    if shutil.which("systemd-nspawn") is None:
        _fail_or_skip("systemd-nspawn is not installed (package systemd-container; make test installs it)")
    shutil.rmtree(c.path("/var/lib/doorstep"), ignore_errors=True)  # a first start: StateDirectory=, token
    check_dir = c.path("/var/tmp/doorstep-boot-test")
    shutil.rmtree(check_dir, ignore_errors=True)
    check_dir.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("boot_check.py"), check_dir / "boot_check.py")
    drop_in = c.path("/etc/systemd/system/doorstep.service.d/test.conf")
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(BOOT_DROP_IN)
    with timed("apt install iproute2 (for the container's LAN address)"):
        c.apt_install("iproute2")
    units = {"doorstep-boot-test.service": BOOT_CHECK_UNIT, "doorstep-boot-net.service": BOOT_NET_UNIT}
    added = [drop_in]
    for name, text in units.items():
        unit = c.path(f"/etc/systemd/system/{name}")
        unit.write_text(text)
        wants = c.path(f"/etc/systemd/system/multi-user.target.wants/{name}")
        wants.symlink_to(f"/etc/systemd/system/{name}")
        added += [unit, wants]
    console = c.run_dir / "boot-console.txt"
    c.detach_api()
    try:
        with timed("systemd-nspawn boot, checks, poweroff"), console.open("w") as out:
            done = subprocess.run(["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--private-network",
                                   "--console=pipe", "-D", str(c.root), "--boot"],
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=400)
    finally:
        c.attach_api()
        for path in added:
            path.unlink(missing_ok=True)
    result_file = check_dir / "result.json"
    shutil.copy(console, ARTIFACTS / "boot-console.txt")
    assert result_file.exists(), f"no result (nspawn exit {done.returncode}):\n{console.read_text()[-4000:]}"
    shutil.copy(result_file, ARTIFACTS / "boot-check.json")
    r = json.loads(result_file.read_text())
    assert r.get("completed"), json.dumps(r, indent=2)[-6000:]

    started = r["started"]
    assert (started["ActiveState"], started["SubState"], started["Type"], started["NotifyAccess"]) == (
        "active", "running", "notify", "main"), started
    assert started["User"] == "doorstep" and started["NRestarts"] == "0"
    assert started["WatchdogUSec"] in ("3s", "3000000")
    assert started["StatusText"].startswith("ready: http 0.0.0.0:8080, signaling 0.0.0.0:8081, stun 0.0.0.0:3480")

    serving = r["serving"]
    assert serving["health"] == 200
    assert serving["web_ui"] == 200 and serving["web_ui_is_the_app"], "J1: the web UI answers"
    assert serving["token_mode"] == "0o600" and serving["token_uid"] == serving["doorstep_uid"]
    assert serving["coturn_comm"] == "turnserver" and serving["coturn_in_unit"]
    # coturn.service from the coturn package runs beside it on 3478, as the package leaves it.
    assert serving["stock_coturn"] == "active", serving["stock_coturn_log"]
    for port in ("tcp:8080", "tcp:8081", "udp:3480", "udp:3479", "udp:3478"):
        assert port in serving["listening"], serving["listening"]

    transfer = r["transfer"]
    assert transfer["put"] == 201 and transfer["receive_exit"] == 0 and transfer["same"], transfer

    assert r["watchdog_kept_alive"]["ActiveState"] == "active" and r["watchdog_kept_alive"]["NRestarts"] == "0"
    restart = r["watchdog_restart"]
    assert restart["restarted"] and restart["NRestarts"] == "1", restart
    assert any("Watchdog timeout" in str(m) for m in restart["journal"]), restart

    journal = r["journal"]
    assert journal["ready"], journal
    entry = journal["ready"][0]
    assert entry["SYSLOG_IDENTIFIER"] == "doorstep" and entry["LOGGER"] == "doorstep" and entry["PRIORITY"] == "6"

    overall = r["security"]["overall"]
    score = float(re.search(r"doorstep\.service: ([0-9.]+)", overall[0]).group(1))
    assert score <= EXPOSURE_LIMIT, overall

    stopped = r["stopped"]
    assert stopped["exit"] == 0 and stopped["ActiveState"] == "inactive" and stopped["Result"] == "success", stopped
    assert not stopped["coturn_left"]


# --- remove keeps state, purge removes it ------------------------------------------------------------------


def test_remove_keeps_state_and_purge_removes_it(installed: Chroot) -> None:
    c = installed
    c.run("install", "-d", "-o", "doorstep", "-g", "doorstep", "-m", "0700", "/var/lib/doorstep")
    c.path("/var/lib/doorstep/api-token").write_text("kept\n")
    (c.path("/srv/doorstep/inbox") / "received.txt").write_text("the owner's\n")
    with timed("apt remove + purge"):
        c.run("apt-get", "remove", "-y", "-q", "doorstep")
        assert not c.path(VENV).exists()  # the bytecode postinst made went too
        assert c.path("/var/lib/doorstep/api-token").read_text() == "kept\n"
        assert c.path("/etc/doorstep/doorstep.toml").exists()  # a conffile stays until purge
        c.run("apt-get", "purge", "-y", "-q", "doorstep")
    assert not c.path("/var/lib/doorstep").exists()
    assert not c.path("/etc/doorstep").exists()
    assert not c.path("/etc/systemd/system/multi-user.target.wants/doorstep.service").exists()
    assert (c.path("/srv/doorstep/inbox") / "received.txt").read_text() == "the owner's\n"
    assert c.run("getent", "passwd", "doorstep", check=False).returncode == 0  # may still own files
