#!/usr/bin/python3
"""Runs *inside* the booted test container (systemd-nspawn, systemd as PID 1), as a oneshot unit
ordered after doorstep.service; stdlib only (Debian's python3). Writes what it saw to
``/var/tmp/doorstep-boot-test/result.json`` and powers the container off (the unit's ExecStopPost),
whatever happens. tests/package/test_deb.py reads the result and asserts.

The service runs with the packaged unit plus the test drop-in (WatchdogSec=3, loopback ICE, TURN on
with the managed coturn).
"""

import hashlib
import json
import os
import subprocess
import time
import traceback
import urllib.request
from pathlib import Path

OUT = Path("/var/tmp/doorstep-boot-test")
RESULT: dict = {"steps": []}


def sh(*argv: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def show(*props: str) -> dict:
    out = sh("systemctl", "show", "doorstep.service", "-p", ",".join(props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_until(predicate, timeout: float, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def step(name: str, **facts) -> None:
    RESULT["steps"].append(name)
    RESULT[name] = facts
    OUT.joinpath("result.json").write_text(json.dumps(RESULT, indent=2))


def http(method: str, url: str, data: bytes | None = None, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def main() -> None:
    props = ("ActiveState", "SubState", "Result", "StatusText", "MainPID", "NRestarts", "WatchdogUSec",
             "ExecMainStatus", "User", "NotifyAccess", "Type")
    active = wait_until(lambda: show("ActiveState")["ActiveState"] in ("active", "failed") or None, 90)
    step("started", waited=active is not None, **show(*props))

    runtime = json.loads(Path("/var/lib/doorstep/runtime.json").read_text())
    token = Path("/var/lib/doorstep/api-token").read_text().strip()
    st = os.stat("/var/lib/doorstep/api-token")
    status, body = http("GET", "http://127.0.0.1:8080/api/v1/health")
    page_status, page = http("GET", "http://127.0.0.1:8080/")
    main_pid = int(show("MainPID")["MainPID"])
    coturn_pid = int(Path("/var/lib/doorstep/coturn/turnserver.pid").read_text())
    step("serving", runtime=runtime, health=status, web_ui=page_status,
         web_ui_is_the_app=b"<html" in page.lower() and b"doorstep" in page.lower(), token_mode=oct(st.st_mode & 0o777), token_uid=st.st_uid,
         doorstep_uid=int(sh("id", "-u", "doorstep").stdout),
         coturn_comm=Path(f"/proc/{coturn_pid}/comm").read_text().strip(),
         coturn_in_unit=_in_cgroup(coturn_pid, main_pid),
         stock_coturn=show_unit("coturn.service"),
         stock_coturn_log=[e.get("MESSAGE") for e in journal("-u", "coturn.service")][-15:],
         listening=sh("python3", "-c", LISTENERS).stdout.split())

    # J2 in miniature: share through the API, receive P2P with the CLI (outside the sandbox).
    payload = os.urandom(1 << 20)
    status, body = http("PUT", "http://127.0.0.1:8080/api/v1/shares/hello.bin", payload, token)
    share = json.loads(body)
    done = sh("doorstep", "receive", share["code"], "--out", str(OUT / "rx"), timeout=120,
              env={"DOORSTEP_ICE_ADDRESSES": "127.0.0.1"})
    received = OUT / "rx" / "hello.bin"
    step("transfer", put=status, receive_exit=done.returncode, receive_stderr=done.stderr[-2000:],
         same=received.exists() and hashlib.sha256(received.read_bytes()).digest() == hashlib.sha256(payload).digest())

    time.sleep(7)  # more than twice WatchdogSec=3: the pings keep it alive
    step("watchdog_kept_alive", **show("ActiveState", "NRestarts", "MainPID"))

    os.kill(main_pid, 19)  # SIGSTOP: the event loop stops, so do the pings
    restarted = wait_until(lambda: show("NRestarts", "ActiveState", "MainPID")["NRestarts"] != "0"
                           and show("ActiveState")["ActiveState"] == "active" or None, 60)
    step("watchdog_restart", restarted=restarted is not None, **show("ActiveState", "NRestarts", "MainPID"),
         journal=[e.get("MESSAGE") for e in journal("-u", "doorstep.service") if "atchdog" in str(e.get("MESSAGE"))])

    entries = journal("-u", "doorstep.service")
    ready = [e for e in entries if str(e.get("MESSAGE", "")).startswith("doorstep: ready")]
    step("journal", count=len(entries), ready=ready[:1], identifiers=sorted({e.get("SYSLOG_IDENTIFIER", "")
                                                                            for e in entries}))

    security = sh("systemd-analyze", "security", "--no-pager", "doorstep.service").stdout
    step("security", overall=[line for line in security.splitlines() if "Overall exposure" in line])

    stopped_at = time.monotonic()
    stop = sh("systemctl", "stop", "doorstep.service", timeout=60)
    step("stopped", exit=stop.returncode, seconds=round(time.monotonic() - stopped_at, 2),
         **show("ActiveState", "Result", "ExecMainStatus", "ExecMainCode"),
         coturn_left=Path(f"/proc/{coturn_pid}").exists(),
         last=[e.get("MESSAGE") for e in journal("-u", "doorstep.service")][-6:])


LISTENERS = """
import socket
for proto, path in (("tcp", "/proc/net/tcp"), ("udp", "/proc/net/udp")):
    for line in open(path).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if proto == "udp" or state == "0A":
            print(f"{proto}:{int(local.split(':')[1], 16)}")
"""


def _in_cgroup(pid: int, main_pid: int) -> bool:
    def cgroup(p: int) -> str:
        return Path(f"/proc/{p}/cgroup").read_text()
    return cgroup(pid) == cgroup(main_pid)


def show_unit(unit: str) -> str:
    return sh("systemctl", "is-active", unit).stdout.strip()


def journal(*args: str) -> list[dict]:
    out = sh("journalctl", "--no-pager", "-o", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        main()
        RESULT["completed"] = True
    except Exception:
        RESULT["error"] = traceback.format_exc()
        RESULT["journal_tail"] = [e.get("MESSAGE") for e in journal("-u", "doorstep.service")][-40:]
    OUT.joinpath("result.json").write_text(json.dumps(RESULT, indent=2))
