"""The CLI: standalone send to standalone receive through an appliance's signaling, and the thin API commands."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.harness import DOORSTEP, Daemon, loopback_env, random_file, run_cli, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _read_code(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if match := re.match(r"code: ([0-9]{6})", line):
            return match.group(1)
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"doorstep send printed no code (exit {proc.poll()})")


def test_standalone_send_of_a_folder_to_standalone_receive(daemon: Daemon, tmp_path: Path) -> None:
    folder = tmp_path / "holiday"
    (folder / "img").mkdir(parents=True)
    digests = {"holiday/notes.txt": random_file(folder / "notes.txt", 10_000),
               "holiday/img/big.raw": random_file(folder / "img" / "big.raw", 5 * MiB)}
    sender = subprocess.Popen(DOORSTEP + ["send", str(folder), "--signal", daemon.signal_url],
                              env=loopback_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL)
    try:
        code = _read_code(sender)
        out = tmp_path / "out"
        received = run_cli("receive", code, "--out", str(out), "--signal", daemon.signal_url)
        assert received.returncode == 0, received.stderr
        assert sender.wait(30) == 0, sender.stderr.read() if sender.stderr else ""
    finally:
        if sender.poll() is None:
            sender.kill()
    for rel, digest in digests.items():
        assert sha256_of(out / rel) == digest, rel
    assert "verified" in received.stdout


def test_send_refuses_missing_paths(tmp_path: Path) -> None:
    done = run_cli("send", str(tmp_path / "nope"), "--signal", "ws://127.0.0.1:9/signal/v1")
    assert done.returncode == 1 and "not a file or folder" in done.stderr


def test_receive_by_share_link_asks_the_appliance_for_its_signaling_url(daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    digest = random_file(source, 1000)
    with source.open("rb") as body:
        share = daemon.api("PUT", "/api/v1/shares/a.txt", content=body).json()
    link = share["url"]
    assert link == f"{daemon.base}/r/{share['code']}"
    done = run_cli("receive", link, "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert sha256_of(tmp_path / "out" / "a.txt") == digest


def test_status_and_transfers_are_thin_clients_of_the_api(daemon: Daemon, tmp_path: Path) -> None:
    with (tmp_path / "x").open("wb") as f:
        f.write(b"x" * 100)
    with (tmp_path / "x").open("rb") as body:
        daemon.api("PUT", "/api/v1/shares/x", content=body).raise_for_status()
    env = {"DOORSTEP_STATE_DIR": str(daemon.state_dir),
           "DOORSTEP_HTTP_LISTEN": f"127.0.0.1:{daemon.runtime['http_port']}"}
    status = run_cli("status", "--json", **env)
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["health"]["status"] == "ok" and len(body["transfers"]) == 1
    listing = run_cli("transfers", **env)
    assert listing.returncode == 0 and "send" in listing.stdout and "connecting" in listing.stdout
    denied = run_cli("transfers", DOORSTEP_TOKEN="wrong", **env)
    assert denied.returncode == 1 and "did not answer" not in denied.stderr and "401" in denied.stderr


def test_daemon_reports_a_busy_port_without_a_traceback(daemon: Daemon, tmp_path: Path) -> None:
    busy = f"127.0.0.1:{daemon.runtime['signal_port']}"
    done = run_cli("daemon", timeout=30, DOORSTEP_STATE_DIR=str(tmp_path / "second"),
                   DOORSTEP_HTTP_LISTEN="127.0.0.1:0", DOORSTEP_STUN_LISTEN="127.0.0.1:0",
                   DOORSTEP_SIGNAL_LISTEN=busy)
    assert done.returncode == 1
    assert "cannot start" in done.stderr and "Traceback" not in done.stderr


def test_daemon_reports_a_bad_password_file_without_a_traceback(tmp_path: Path) -> None:
    password_file = tmp_path / "web-password"
    password_file.write_text("not an argon2id hash\n")
    done = run_cli("daemon", timeout=30, DOORSTEP_STATE_DIR=str(tmp_path / "state"),
                   DOORSTEP_HTTP_LISTEN="127.0.0.1:0", DOORSTEP_SIGNAL_LISTEN="127.0.0.1:0",
                   DOORSTEP_STUN_LISTEN="127.0.0.1:0", DOORSTEP_HTTP_PASSWORD_FILE=str(password_file))
    assert done.returncode == 1, done.stderr
    assert "cannot start" in done.stderr and "password_file" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "state").exists(), "stopped before anything was created"
