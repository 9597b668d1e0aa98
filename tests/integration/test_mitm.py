"""A man in the middle on the signaling path: the connection fails and no byte lands in the inbox.

``mitm_relay.py`` is a signaling proxy. In ``passthrough`` mode it forwards every frame (the
control: the proxy itself breaks nothing). In ``mitm`` mode it is a capable attacker: it answers
the host's offer with its own peer connection, offers the joiner its own, and once both data
channels are open pumps every message verbatim between them. DTLS alone cannot notice (each side
checks the certificate against the fingerprint it was given, which is the relay's); only the
authentication step, bound to the fingerprints each side sees, can.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import DOORSTEP, Daemon, loopback_env, random_file, run_cli, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
FILE_SIZE = 4 * MiB
LEAK_LIMIT = 64 * 1024  # what the relay may carry from host to joiner: auth frames, never file data
BLOCK = 16
AUTH_FAILURE = "could not authenticate the peer"
RELAY_SCRIPT = Path(__file__).with_name("mitm_relay.py")


class MitmRelay:
    """The relay subprocess: its URL and its status file."""

    def __init__(self, upstream: str, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.status_path = workdir / f"relay-{mode}.json"
        self.log_path = workdir / f"relay-{mode}.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(RELAY_SCRIPT), "--upstream", upstream, "--status", str(self.status_path),
             "--mode", mode],
            env=loopback_env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> MitmRelay:
        self.wait_for(lambda s: s.get("ready"), timeout, "listening")
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.status()['port']}/signal/v1"

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except FileNotFoundError:
            return {}

    def wait_for(self, predicate: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if self.proc.poll() is not None:
                raise AssertionError(f"relay exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"relay: not {what} within {timeout} s: {status}\n{self.log_tail()}")
            time.sleep(0.05)

    def intercepted(self) -> list[dict[str, Any]]:
        return [s for s in self.status().get("sessions", {}).values() if s.get("intercepted")]

    def settle(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait (briefly, without failing) until every intercepted session is over; return the status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(s.get("state") == "closed" for s in self.intercepted()):
                break
            time.sleep(0.05)
        return self.status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def start_relay(tmp_path: Path) -> Iterator[Callable[[str, str], MitmRelay]]:
    """``start_relay(upstream, mode)``; every relay is stopped at teardown (terminate, then kill)."""
    relays: list[MitmRelay] = []

    def start(upstream: str, mode: str) -> MitmRelay:
        relay = MitmRelay(upstream, mode, tmp_path)
        relays.append(relay)
        return relay.wait_ready()

    yield start
    for relay in relays:
        relay.stop()


def _share(daemon: Daemon, tmp_path: Path) -> tuple[bytes, str, str]:
    """Share a random 4 MiB file from ``daemon``; return (its bytes, its SHA-256, the code)."""
    source = tmp_path / "secret.bin"
    digest = random_file(source, FILE_SIZE)
    response = daemon.api("PUT", "/api/v1/shares/secret.bin", content=source.read_bytes())
    assert response.status_code == 201, response.text
    return source.read_bytes(), digest, response.json()["code"]


def _leaks(root: Path, secret: bytes) -> list[str]:
    """Files under ``root`` holding any run of the secret's bytes (>= 2 * BLOCK - 1 long, anywhere)."""
    blocks = {secret[i:i + BLOCK] for i in range(0, len(secret) - BLOCK + 1, BLOCK)}
    blocks.discard(bytes(BLOCK))
    found = []
    for path in sorted(root.rglob("*")) if root.exists() else ():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if any(data[i:i + BLOCK] in blocks for i in range(len(data) - BLOCK + 1)):
            found.append(f"{path.relative_to(root)} ({len(data)} bytes)")
    return found


def _mitm_evidence(relay: MitmRelay) -> dict[str, Any]:
    """Check the relay really sat in the middle of one session (both channels open, SDP rewritten)."""
    sessions = relay.intercepted()
    assert sessions, f"the relay intercepted no session: {relay.status()}\n{relay.log_tail()}"
    opened = [s for s in sessions if s["host_channel_open"] and s["joiner_channel_open"]]
    assert opened, f"the relay never had both data channels open: {sessions}\n{relay.log_tail()}"
    for s in opened:
        assert s["host_fingerprint"] and s["joiner_fingerprint"], s
        assert s["relay_offer_fingerprint"] not in (None, s["host_fingerprint"]), "joiner got the host's own fp"
        assert s["relay_answer_fingerprint"] not in (None, s["joiner_fingerprint"]), "host got the joiner's own fp"
    return {
        "host_to_joiner": sum(s["host_to_joiner"]["bytes"] for s in sessions),
        "joiner_to_host": sum(s["joiner_to_host"]["bytes"] for s in sessions),
        "sessions": sessions,
    }


def test_passthrough_relay_delivers_the_file(daemon: Daemon, start_relay, tmp_path: Path) -> None:
    """Control: the same proxy, forwarding unchanged, breaks nothing."""
    _, digest, code = _share(daemon, tmp_path)
    relay = start_relay(daemon.signal_url, "passthrough")

    out = tmp_path / "out"
    done = run_cli("receive", code, "--out", str(out), "--signal", relay.url, timeout=120)
    assert done.returncode == 0, done.stderr + daemon.log_tail() + relay.log_tail()
    assert sha256_of(out / "secret.bin") == digest

    sessions = list(relay.status()["sessions"].values())
    assert len(sessions) >= 1 and not any(s["intercepted"] for s in sessions)
    # The signaling really went through the proxy: it saw the offer and the answer go by.
    assert sessions[0]["host_fingerprint"] and sessions[0]["joiner_fingerprint"], sessions
    assert sessions[0]["offer_via"] == "server" and sessions[0]["answer_via"] == "client", sessions


def test_mitm_relay_between_sharer_and_cli_receiver_fails_without_leaking(
    daemon: Daemon, start_relay, tmp_path: Path
) -> None:
    secret, _, code = _share(daemon, tmp_path)
    relay = start_relay(daemon.signal_url, "mitm")

    out = tmp_path / "out"
    try:
        done = run_cli("receive", code, "--out", str(out), "--signal", relay.url, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"doorstep receive did not give up within 120 s: {relay.status()}\n{daemon.log_tail()}")
    relay.settle()

    moved = _mitm_evidence(relay)  # the attacker really was in the middle: both channels open
    leaks = _leaks(out, secret)
    assert not leaks, (f"file bytes landed through the man in the middle: {leaks}; relay carried "
                       f"{moved['host_to_joiner']} bytes host->joiner\nreceiver said: {done.stderr[-800:]}")
    assert moved["host_to_joiner"] < LEAK_LIMIT, f"the relay carried file data: {moved}"
    assert done.returncode != 0, done.stdout + done.stderr
    assert AUTH_FAILURE in done.stderr.lower(), done.stderr

    sent = daemon.api("GET", "/api/v1/transfers").json()
    assert [t["bytes_done"] for t in sent if t["direction"] == "send"] == [0], sent
    assert all(t["state"] != "done" for t in sent), sent


def test_mitm_relay_between_cli_sender_and_daemon_receiver_fails_without_leaking(
    daemon: Daemon, start_relay, tmp_path: Path
) -> None:
    """The reverse direction: the relay sits on the *sender's* signaling socket (host end)."""
    source = tmp_path / "secret.bin"
    random_file(source, FILE_SIZE)
    secret = source.read_bytes()
    relay = start_relay(daemon.signal_url, "mitm")

    stdout_path, stderr_path = tmp_path / "send.out", tmp_path / "send.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        sender = subprocess.Popen(DOORSTEP + ["send", str(source), "--signal", relay.url], env=loopback_env(),
                                  stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"code: ([0-9]{6})", stdout_path.read_text())):
            assert sender.poll() is None, f"doorstep send exited {sender.returncode}: {stderr_path.read_text()}"
            assert time.monotonic() < deadline, f"doorstep send printed no code: {stderr_path.read_text()}"
            time.sleep(0.05)
        # The daemon joins its own signaling server directly; only the sender goes through the relay.
        response = daemon.api("POST", "/api/v1/receive", json={"code": match.group(1)})
        assert response.status_code == 202, response.text
        record = daemon.wait_transfer(response.json()["id"], lambda t: t["state"] in ("done", "failed"),
                                      timeout=120, allow_failure=True)
        relay.settle()
        try:
            sender.wait(15)
        except subprocess.TimeoutExpired:
            pass  # checked below, after the evidence

        moved = _mitm_evidence(relay)
        leaks = _leaks(daemon.inbox, secret)
        assert not leaks, (f"file bytes landed in the daemon's inbox through the man in the middle: {leaks}; "
                           f"relay carried {moved['host_to_joiner']} bytes host->joiner; transfer: {record}")
        assert moved["host_to_joiner"] < LEAK_LIMIT, f"the relay carried file data: {moved}"
        assert record["state"] == "failed" and record["bytes_done"] == 0, record
        assert AUTH_FAILURE in (record["error"] or "").lower(), record
        assert "verified by the receiver" not in stdout_path.read_text()
        # The sender burns its code after a failed authentication: nothing left to wait for.
        assert sender.poll() not in (None, 0), f"doorstep send did not give up: {stdout_path.read_text()}"
        assert AUTH_FAILURE in stderr_path.read_text().lower(), stderr_path.read_text()
    finally:
        if sender.poll() is None:
            sender.terminate()
            try:
                sender.wait(5)
            except subprocess.TimeoutExpired:
                sender.kill()
                sender.wait()
