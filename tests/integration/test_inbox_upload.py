"""``PUT /api/v1/inbox/{path}`` on a real daemon: ``curl -T`` lands a verified file in the inbox;
a wrong digest, a missing length, an oversized file or a path that tries to leave the inbox
leave nothing behind; a web session needs its CSRF token; the event stream shows the upload."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.integration.harness import Daemon, random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _curl(daemon: Daemon, *args: str) -> tuple[int, dict]:
    curl = require_binary("curl")
    done = subprocess.run([curl, "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {daemon.token}",
                           *args], capture_output=True, text=True, timeout=60)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else {}


def _inbox_tree(daemon: Daemon) -> list[str]:
    return sorted(str(p.relative_to(daemon.inbox)) for p in daemon.inbox.rglob("*") if p.is_file())


def test_curl_sends_a_file_into_the_inbox_verified(daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "report.pdf"
    digest = random_file(source, 3 * MiB + 1)
    status, transfer = _curl(daemon, "-T", str(source), "-H", f"X-Content-SHA256: {digest}",
                             f"{daemon.base}/api/v1/inbox/reports/")
    # curl -T to a URL ending in '/' appends the file name, as with PUT /api/v1/shares/
    assert status == 201, transfer
    assert transfer["state"] == "done" and transfer["direction"] == "receive"
    assert transfer["files"][0]["final_path"] == "reports/report.pdf"
    assert transfer["files"][0]["sha256"] == digest
    assert sha256_of(daemon.inbox / "reports" / "report.pdf") == digest

    status, again = _curl(daemon, "-T", str(source), f"{daemon.base}/api/v1/inbox/reports/report.pdf")
    assert status == 201 and again["files"][0]["final_path"] == "reports/report (1).pdf", "nothing is overwritten"
    listed = {f["path"]: f for f in daemon.api("GET", "/api/v1/inbox").json()}
    assert listed["reports/report (1).pdf"]["sha256"] == digest
    assert listed["reports/report (1).pdf"]["transfer"] == again["id"]


def test_what_does_not_arrive_intact_leaves_nothing(daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    random_file(source, 100_000)
    status, body = _curl(daemon, "-T", str(source), "-H", "X-Content-SHA256: " + "0" * 64,
                         f"{daemon.base}/api/v1/inbox/f.bin")
    assert (status, body["error"]) == (400, "digest_mismatch")
    status, body = _curl(daemon, "-T", str(source), "-H", "X-Content-SHA256: nope", f"{daemon.base}/api/v1/inbox/f.bin")
    assert status == 400, body
    status, body = _curl(daemon, "-X", "PUT", "--data-binary", f"@{source}", "-H", "Transfer-Encoding: chunked",
                         f"{daemon.base}/api/v1/inbox/f.bin")
    assert (status, body["error"]) == (411, "length_required")
    assert _inbox_tree(daemon) == []
    failed = daemon.api("GET", "/api/v1/transfers", params={"state": "failed"}).json()
    assert [t["error"] for t in failed] == ["the file that arrived does not have the SHA-256 the client sent"]


def test_a_path_that_tries_to_leave_the_inbox_stays_inside(daemon: Daemon) -> None:
    response = httpx.put(f"{daemon.base}/api/v1/inbox/%2E%2E/%2E%2E/escape.txt", content=b"inside",
                         headers={"Authorization": f"Bearer {daemon.token}"})
    assert response.status_code == 201, response.text
    assert response.json()["files"][0]["final_path"] == "escape.txt"
    assert not (daemon.state_dir.parent / "escape.txt").exists()
    assert (daemon.inbox / "escape.txt").read_bytes() == b"inside"


def test_the_inbox_limit_refuses_an_oversized_file_up_front(start_daemon, tmp_path: Path) -> None:
    daemon = start_daemon("small", DOORSTEP_INBOX_MAX_TRANSFER="1000")
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    status, body = _curl(daemon, "-T", str(big), f"{daemon.base}/api/v1/inbox/big.bin")
    assert (status, body["error"]) == (413, "too_large")
    assert _inbox_tree(daemon) == []


def test_a_web_session_needs_its_csrf_token(daemon: Daemon) -> None:
    with httpx.Client(base_url=daemon.base) as browser:
        session = browser.post("/api/v1/login", json={"token": daemon.token}).json()
        refused = browser.put("/api/v1/inbox/x.txt", content=b"x")
        assert (refused.status_code, refused.json()["error"]) == (403, "csrf")
        foreign = browser.put("/api/v1/inbox/x.txt", content=b"x",
                              headers={"X-CSRF-Token": session["csrf"], "Origin": "http://evil.example"})
        assert foreign.status_code == 403
        accepted = browser.put("/api/v1/inbox/x.txt", content=b"x", headers={"X-CSRF-Token": session["csrf"]})
        assert accepted.status_code == 201, accepted.text
    assert _inbox_tree(daemon) == ["x.txt"]


def test_the_event_stream_shows_the_upload_and_its_arrival(daemon: Daemon) -> None:
    seen: list[tuple[str, dict]] = []
    ready = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {daemon.token}"}
        with httpx.stream("GET", f"{daemon.base}/api/v1/events", headers=headers, timeout=30) as stream:
            kind = None
            for line in stream.iter_lines():
                ready.set()
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    seen.append((kind, json.loads(line[6:])))
                    if kind == "transfer" and seen[-1][1]["state"] == "done":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    response = daemon.api("PUT", "/api/v1/inbox/live.bin", content=b"y" * (3 * MiB))
    assert response.status_code == 201
    listener.join(10)
    assert not listener.is_alive(), seen
    states = [data["state"] for kind, data in seen if kind == "transfer"]
    assert states[0] in ("connecting", "active") and states[-1] == "done"
    assert ("arrival", {"transfer": response.json()["id"], "path": "live.bin", "size": 3 * MiB,
                                    "sha256": response.json()["files"][0]["sha256"]}) in seen
