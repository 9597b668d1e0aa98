"""Run the real ``doorstep`` daemon and CLI as subprocesses, on loopback only."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

DOORSTEP = [sys.executable, "-m", "daemon.runtime.cli"]
STOP_TIMEOUT = 5.0


def loopback_env(**extra: str) -> dict[str, str]:
    """Environment for any doorstep process in tests: ICE gathers 127.0.0.1 only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOORSTEP_")}
    env.update(DOORSTEP_ICE_ADDRESSES="127.0.0.1", PYTHONUNBUFFERED="1", **extra)
    return env


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; return their SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class Daemon:
    """One ``doorstep daemon`` process on its own state dir, on ephemeral loopback ports."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.state_dir = state_dir
        self.inbox = state_dir / "inbox"
        self.log_path = state_dir.parent / f"{state_dir.name}.log"
        self.env = loopback_env(**{
            "DOORSTEP_STATE_DIR": str(state_dir), "DOORSTEP_HTTP_LISTEN": "127.0.0.1:0",
            "DOORSTEP_SIGNAL_LISTEN": "127.0.0.1:0", "DOORSTEP_STUN_LISTEN": "127.0.0.1:0", **env,
        })
        self.proc: subprocess.Popen[bytes] | None = None
        self.runtime: dict[str, Any] = {}

    def start(self, timeout: float = 30.0) -> Daemon:
        (self.state_dir / "runtime.json").unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(DOORSTEP + ["daemon"], env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        runtime_file = self.state_dir / "runtime.json"
        while not runtime_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"daemon not ready within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.runtime = json.loads(runtime_file.read_text())
        return self

    @property
    def token(self) -> str:
        return (self.state_dir / "api-token").read_text().strip()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.runtime['http_port']}"

    @property
    def signal_url(self) -> str:
        return self.runtime["signal_url"]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def wait_transfer(self, transfer_id: str, predicate, timeout: float = 120.0, *,
                      allow_failure: bool = False) -> dict[str, Any]:
        """Poll the transfer until ``predicate(record)`` holds; fail with the log tail otherwise
        (also as soon as it fails, unless ``allow_failure``)."""
        deadline = time.monotonic() + timeout
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            record = self.api("GET", f"/api/v1/transfers/{transfer_id}").json()
            if predicate(record):
                return record
            if record.get("state") == "failed" and not allow_failure:
                raise AssertionError(f"transfer failed: {record}\n{self.log_tail()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting on transfer: {record}\n{self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM; the daemon must exit within 5 s. Returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"daemon ignored SIGTERM for {STOP_TIMEOUT} s:\n{self.log_tail()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def run_cli(*args: str, timeout: float = 180.0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(DOORSTEP + list(args), env=loopback_env(**env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def tree_listing(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of everything under ``root`` except the ``skip`` subtrees."""
    found = {}
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a daemon that must keep its port across restarts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SLOW_PATH = {"DOORSTEP_TRANSFER_DIRECT": "false", "DOORSTEP_SCTP_TUNING": "off"}
"""Daemon env for tests that must catch a transfer mid-way: the data channel with aiortc as shipped
(about 10 MB/s here; the direct path and the tuned data channel finish tens of MiB in a second)."""


def api_error(response: Any, status: int, code: str) -> str:
    """Assert ``response`` is the API's JSON error ``code`` with ``status``; return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    return body["message"]
