"""Run the appliance daemon and ``doorstep send``/``receive`` inside the lab's namespaces.

The appliance (signaling, STUN, TURN) runs in the internet namespace on the lab's public address.
CLI peers run on NATed hosts and signal through it. Every process gets
``DOORSTEP_ICE_ADDRESSES`` = its host's own address, so ICE gathers exactly that interface.

The test process lives in the root namespace, which the lab is not connected to: it talks to the
appliance's API with ``curl`` run inside the internet namespace, and reads files (state dir, logs,
received files) through the shared filesystem.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.integration.harness import sha256_of

from .lab import Lab, Node

__all__ = ["Appliance", "CliRun", "Route", "connected_routes", "record_result", "cli_env"]

DOORSTEP = [sys.executable, "-m", "daemon.runtime.cli"]
ROOT = Path(__file__).resolve().parents[2]
HTTP_PORT = 8080
SIGNAL_PORT = 8081
STUN_PORT = 3478
TURN_PORT = 3479
RELAY_PORTS = "49160-49199"

# "2026-05-01 12:00:00,123 INFO doorstep.peer: connected via srflx (host/srflx)"
_ROUTE_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO doorstep\.peer: connected via (\w+) \((\w+)/(\w+)\)$", re.M
)


@dataclass(frozen=True, slots=True)
class Route:
    at: float
    """Wall-clock time of the log line (seconds since the epoch)."""
    route: str
    local: str
    remote: str

    @property
    def detail(self) -> str:
        return f"{self.local}/{self.remote}"


def connected_routes(log: str) -> list[Route]:
    """Every ``connected via`` line of a doorstep log, in order."""
    out = []
    for m in _ROUTE_RE.finditer(log):
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append(Route(stamp, m.group(2), m.group(3), m.group(4)))
    return out


def base_env(node: Node, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOORSTEP_")}
    env.update(PYTHONUNBUFFERED="1", DOORSTEP_ICE_ADDRESSES=node.address, **extra)
    return env


def cli_env(node: Node, work: Path, **extra: str) -> dict[str, str]:
    """A CLI peer's environment: its own state dir (never the appliance's) and its one address."""
    return base_env(node, DOORSTEP_STATE_DIR=str(work / "cli-state"), **extra)


class Appliance:
    """``doorstep daemon`` in a lab namespace: HTTP, signaling, STUN (and TURN when asked)."""

    def __init__(self, lab: Lab, state_dir: Path, *, turn: bool, stun: bool = True, node: Node | None = None,
                 public: str | None = None, **env: str) -> None:
        """On ``node`` (default: the internet namespace, public itself). Behind a NAT, ``public`` is
        the router's address that forwards the appliance's ports: STUN/TURN URLs carry it
        (``ice.public_host``), coturn maps it (``turn.external_ip``) and CLI peers get it in
        ``--signal``, and ``signal.public_url`` names it (the daemon itself still reaches its own
        signaling server on its listen address, so the router need not hairpin)."""
        self.lab = lab
        self.node = node or lab.internet
        self.public = public or self.node.address
        self.state_dir = state_dir
        self.log_path = state_dir.parent / f"{state_dir.name}.log"
        behind_nat = {} if self.public == self.node.address else {
            "DOORSTEP_TURN_EXTERNAL_IP": f"{self.public}/{self.node.address}",
            "DOORSTEP_SIGNAL_PUBLIC_URL": f"ws://{self.public}:{SIGNAL_PORT}/signal/v1",
        }
        self.env = base_env(
            self.node,
            DOORSTEP_STATE_DIR=str(state_dir),
            DOORSTEP_HTTP_LISTEN=f"{self.node.address}:{HTTP_PORT}",
            DOORSTEP_SIGNAL_LISTEN=f"{self.node.address}:{SIGNAL_PORT}",
            DOORSTEP_STUN_ENABLED="true" if stun else "false",
            DOORSTEP_STUN_LISTEN=f"{self.node.address}:{STUN_PORT}",
            DOORSTEP_TURN_ENABLED="true" if turn else "false",
            DOORSTEP_TURN_LISTEN=f"{self.node.address}:{TURN_PORT}",
            DOORSTEP_TURN_RELAY_PORTS=RELAY_PORTS,
            DOORSTEP_ICE_PUBLIC_HOST=self.public,
            **behind_nat,
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.runtime: dict[str, Any] = {}

    @property
    def signal_url(self) -> str:
        return f"ws://{self.public}:{SIGNAL_PORT}/signal/v1"

    @property
    def base(self) -> str:
        return f"http://{self.node.address}:{HTTP_PORT}"

    def start(self, timeout: float = 30.0) -> Appliance:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        runtime_file = self.state_dir / "runtime.json"
        runtime_file.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = self.lab.popen(self.node.ns, DOORSTEP + ["daemon"], env=self.env, stdout=log, stderr=log,
                                       cwd=ROOT)
        deadline = time.monotonic() + timeout
        while not runtime_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"appliance exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"appliance not ready within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.05)
        self.runtime = json.loads(runtime_file.read_text())
        return self

    def _auth_header(self) -> Path:
        """curl reads the token from a 0600 file, so it never appears in argv."""
        path = self.state_dir.parent / f"{self.state_dir.name}.auth"
        if not path.exists():
            token = (self.state_dir / "api-token").read_text().strip()
            path.write_text(f"Authorization: Bearer {token}\n")
            path.chmod(0o600)
        return path

    def curl(self, *args: str, timeout: float = 60.0) -> Any:
        """curl inside the internet namespace with the API token; the JSON it answered."""
        done = self.lab.sh(self.node.ns, "curl", "-sS", "--fail-with-body", "-H", "Expect:",
                           "-H", f"@{self._auth_header()}", *args, check=False, timeout=timeout)
        assert done.returncode == 0, f"curl {args} failed: {done.stdout} {done.stderr}\n{self.log_tail()}"
        return json.loads(done.stdout)

    def share(self, path: Path) -> dict[str, Any]:
        return self.curl("-T", str(path), self.base + "/api/v1/shares/")

    def transfers(self) -> list[dict[str, Any]]:
        return self.curl(self.base + "/api/v1/transfers")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:]) or "(no log)"

    def stop(self) -> int:
        """SIGTERM; the appliance must exit within 5 s (coturn included). Returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"appliance ignored SIGTERM for 5 s:\n{self.log_tail()}") from None
        return self.proc.returncode


class CliRun:
    """One ``doorstep`` CLI process on a lab host; stdout and stderr go to files under ``work``."""

    def __init__(self, lab: Lab, node: Node, work: Path, name: str, args: list[str], **env: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.stdout_path = work / f"{name}.out"
        self.stderr_path = work / f"{name}.err"
        self.started = time.time()
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = lab.popen(node.ns, DOORSTEP + args, env=cli_env(node, work / name, **env),
                                  stdout=out, stderr=err, cwd=ROOT)
        self.ended: float | None = None

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} still running after {timeout} s:\n{self.stderr[-4000:]}") from None
        self.ended = time.time()
        return code

    def wait_for_code(self, timeout: float = 20.0) -> str:
        """The 6-digit code ``doorstep send`` prints."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"^code: (\d{6})", self.stdout, re.M)
            if m:
                return m.group(1)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} printed no code:\n{self.stdout}\n{self.stderr[-4000:]}")

    def routes(self) -> list[Route]:
        return connected_routes(self.stderr)


def record_result(scenario: str, *, route: Route, started: float, ended: float, size: int, digest_ok: bool,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Print (and append to ``$DOORSTEP_NETNS_RESULTS`` if set) one scenario's measurements.

    ``connect_s``: CLI start (process launch) to the ``connected via`` log line, so it includes
    Python start-up, signaling and ICE. ``throughput``: file bytes over the time from connected to the
    receiving CLI's exit (authentication, transfer, verification).
    """
    row = {
        "scenario": scenario, "route": route.route, "detail": route.detail,
        "connect_s": round(route.at - started, 2), "transfer_s": round(ended - route.at, 2),
        "MBps": round(size / 1e6 / max(ended - route.at, 1e-6), 1), "bytes": size, "sha256_ok": digest_ok,
        **(extra or {}),
    }
    print("netns-result", json.dumps(row))
    target = os.environ.get("DOORSTEP_NETNS_RESULTS")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


def verify(path: Path, digest: str) -> bool:
    return path.is_file() and sha256_of(path) == digest
