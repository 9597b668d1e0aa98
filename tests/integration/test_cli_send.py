"""``doorstep send --to DEVICE`` and ``--via-daemon``: the CLI uploads to its local daemon, which pushes
to a paired appliance (or hands out a code), while the CLI follows the transfer live."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.harness import DOORSTEP, SLOW_PATH, Daemon, loopback_env, random_file, run_cli, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@dataclass
class Pair:
    sender: Daemon
    receiver: Daemon
    receiver_id: str  # as the sender knows it
    receiver_name: str

    def cli(self, *args: str, daemon: Daemon | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, timeout=120, **cli_env(daemon or self.sender), **env)


def cli_env(daemon: Daemon) -> dict[str, str]:
    return {"DOORSTEP_STATE_DIR": str(daemon.state_dir),
            "DOORSTEP_HTTP_LISTEN": f"127.0.0.1:{daemon.runtime['http_port']}"}


@pytest.fixture
def pair(start_daemon: Callable[..., Daemon]) -> Pair:
    """Two daemons, the receiver offering and the sender joining, as tests/integration/test_pairing.py does."""
    # The data channel: over the direct path a push ends before the bars show a speed.
    receiver, sender = start_daemon("receiver", **SLOW_PATH), start_daemon("sender", **SLOW_PATH)
    offer = receiver.api("POST", "/api/v1/pair", json={})
    assert offer.status_code == 200, offer.text
    joined = sender.api("POST", "/api/v1/pair", json={"code": offer.json()["code"], "signal": receiver.signal_url})
    assert joined.status_code == 200, joined.text + sender.log_tail()
    return Pair(sender=sender, receiver=receiver, receiver_id=joined.json()["id"], receiver_name=joined.json()["name"])


def _inbox_files(daemon: Daemon) -> dict[str, str]:
    return {str(p.relative_to(daemon.inbox)): sha256_of(p) for p in daemon.inbox.rglob("*")
            if p.is_file() and ".doorstep" not in p.parts}


def test_send_to_a_paired_device_shows_progress_and_lands_verified(pair: Pair, tmp_path: Path) -> None:
    source = tmp_path / "holiday.bin"
    digest = random_file(source, 12 * MiB + 3)
    watch = subprocess.Popen(DOORSTEP + ["transfers", "--watch"], env=loopback_env(**cli_env(pair.sender)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # the watcher has its first snapshot before the transfer exists
        prefix = pair.receiver_name[: max(1, len(pair.receiver_name) // 2)]
        sent = pair.cli("send", "--to", prefix, str(source))
        time.sleep(1.5)  # at least one more poll or event for the watcher
    finally:
        watch.send_signal(signal.SIGINT)
        watched, watch_errors = watch.communicate(timeout=30)
    assert sent.returncode == 0, sent.stderr + pair.sender.log_tail()
    assert _inbox_files(pair.receiver) == {"holiday.bin": digest}

    # Not a terminal: plain progress lines, then the result.
    lines = sent.stdout.splitlines()
    assert any(re.fullmatch(r"holiday\.bin → daemon: uploaded +12\.6 MB / 12\.6 MB \(100%\)", line) for line in lines), lines
    pushing = [line for line in lines if line.startswith(f"holiday.bin → {pair.receiver_name}: ")]
    assert len(pushing) >= 2, lines
    assert re.search(r": done +12\.6 MB / 12\.6 MB \(100%\)$", pushing[-1]), pushing
    assert all(re.search(r"\(\d+%\)", line) for line in pushing), pushing
    assert lines[-1] == (f"sent 1 file(s), 12.6 MB to {pair.receiver_name} ({pair.receiver_id}), "
                         "verified by the receiver")
    assert sent.stderr == ""

    assert watch.returncode == 0, watch_errors
    assert watched.splitlines()[0] == "watching transfers; Ctrl-C to stop"
    seen = [line for line in watched.splitlines()[1:] if "holiday.bin" in line]
    assert seen and re.search(r"  send +holiday\.bin: done +12\.6 MB / 12\.6 MB \(100%\)$", seen[-1]), watched

    listed = pair.cli("transfers", "--json")
    assert listed.returncode == 0, listed.stderr
    [record] = [t for t in json.loads(listed.stdout) if t["files"] and t["files"][0]["path"] == "holiday.bin"]
    assert (record["direction"], record["state"], record["bytes_done"]) == ("send", "done", 12 * MiB + 3)
    assert record["files"][0]["sha256"] == digest
    api = pair.sender.api("GET", "/api/v1/transfers").json()
    assert json.loads(listed.stdout) == api, "the CLI shows what the API reports"
    received = pair.cli("transfers", "--json", "--direction", "receive", "--state", "done", daemon=pair.receiver)
    assert [t["files"][0]["sha256"] for t in json.loads(received.stdout)] == [digest]
    table = pair.cli("transfers")
    assert re.search(rf"{record['id']}\s+send\s+done\s+100%\s+12\.6 MB\s.*holiday\.bin", table.stdout), table.stdout


def test_send_in_a_terminal_draws_live_bars(pair: Pair, tmp_path: Path) -> None:
    source = tmp_path / "tty.bin"
    digest = random_file(source, 24 * MiB)
    env = loopback_env(**cli_env(pair.sender), COLUMNS="120", TERM="xterm")
    pid, fd = pty.fork()
    if pid == 0:  # the child: doorstep with a terminal for stdin, stdout and stderr
        os.execvpe(DOORSTEP[0], DOORSTEP + ["send", "--to", pair.receiver_id, str(source)], env)
    output = bytearray()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and select.select([fd], [], [], deadline - time.monotonic())[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child is gone and the terminal closed
            break
        if not chunk:
            break
        output += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "━" in text and "\r" in text, "a progress bar, redrawn in place"
    assert re.search(r"tty\.bin → daemon +uploaded .* 25\.2/25\.2 MB", text), text
    assert re.search(rf"tty\.bin → {re.escape(pair.receiver_name)} +done .* 25\.2/25\.2 MB", text), text
    assert "MB/s" in text and "verified by the receiver" in text
    assert _inbox_files(pair.receiver) == {"tty.bin": digest}


def test_send_a_folder_to_a_device_by_id_with_json(pair: Pair, tmp_path: Path) -> None:
    folder = tmp_path / "trip"
    (folder / "img").mkdir(parents=True)
    digests = {"trip/notes.txt": random_file(folder / "notes.txt", 1000),
               "trip/img/a.raw": random_file(folder / "img" / "a.raw", 2 * MiB),
               "trip/img/empty": random_file(folder / "img" / "empty", 0)}
    sent = pair.cli("send", "--json", "--to", pair.receiver_id, str(folder))
    assert sent.returncode == 0, sent.stderr + pair.sender.log_tail()
    result = json.loads(sent.stdout)  # one document, nothing else on stdout
    assert result["transfer"]["state"] == "done" and result["device"]["id"] == pair.receiver_id
    assert sorted((f["path"], f["sha256"]) for f in result["share"]["files"]) == sorted(digests.items())
    assert "uploaded" in sent.stderr, "progress goes to stderr under --json"
    assert _inbox_files(pair.receiver) == digests


def test_send_to_an_unknown_device_or_a_missing_file_fails_cleanly(pair: Pair, tmp_path: Path) -> None:
    source = tmp_path / "x.txt"
    source.write_text("x")
    unknown = pair.cli("send", "--to", "nobody-by-that-name", str(source))
    assert unknown.returncode == 1 and "no paired device matches 'nobody-by-that-name'" in unknown.stderr
    missing = pair.cli("send", "--to", pair.receiver_id, str(tmp_path / "nope"))
    assert missing.returncode == 1 and "not a file or folder" in missing.stderr
    assert unknown.stdout == missing.stdout == ""
    mixed = pair.cli("send", "--to", pair.receiver_id, "--signal", "ws://127.0.0.1:9/signal/v1", str(source))
    assert mixed.returncode == 2 and "--signal is for standalone send" in mixed.stderr
    assert pair.sender.api("GET", "/api/v1/shares").json() == [], "nothing was uploaded"


def test_send_via_daemon_prints_a_code_that_a_standalone_receiver_uses(daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    digest = random_file(source, 300_000)
    shared = run_cli("send", "--via-daemon", str(source), **cli_env(daemon))
    assert shared.returncode == 0, shared.stderr
    code = re.search(r"^code: ([0-9]{6})  \(valid until \d\d:\d\d:\d\d\)$", shared.stdout, re.M).group(1)
    assert f"link: {daemon.base}/r/{code}" in shared.stdout.splitlines()
    [share] = daemon.api("GET", "/api/v1/shares").json()
    assert share["code"] == code and share["files"] == [{"path": "report.pdf", "size": 300_000, "sha256": digest}]

    received = run_cli("receive", code, "--out", str(tmp_path / "out"), "--signal", daemon.signal_url)
    assert received.returncode == 0, received.stderr
    assert sha256_of(tmp_path / "out" / "report.pdf") == digest

    as_json = run_cli("send", "--via-daemon", "--json", str(source), **cli_env(daemon))
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["code"] in {s["code"] for s in daemon.api("GET", "/api/v1/shares").json()}
