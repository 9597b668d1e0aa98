"""Journey J2 on one machine: share with curl, receive with the CLI, P2P and verified."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.harness import Daemon, random_file, run_cli, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _auth_header_file(daemon: Daemon, tmp_path: Path) -> Path:
    """curl reads the header from a 0600 file, so the token never appears in argv."""
    path = tmp_path / "auth.header"
    path.write_text(f"Authorization: Bearer {daemon.token}\n")
    path.chmod(0o600)
    return path


def _curl(*args: str) -> dict:
    curl = require_binary("curl")
    done = subprocess.run([curl, "-sS", "--fail-with-body", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"curl failed: {done.stdout} {done.stderr}"
    return json.loads(done.stdout)


def test_health_needs_no_token_and_everything_else_does(daemon: Daemon) -> None:
    import httpx

    health = httpx.get(daemon.base + "/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(daemon.base + "/api/v1/transfers").status_code == 401
    wrong = httpx.get(daemon.base + "/api/v1/transfers", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert daemon.api("GET", "/api/v1/transfers").status_code == 200
    assert (daemon.state_dir / "api-token").stat().st_mode & 0o777 == 0o600


def test_curl_share_64mib_received_by_cli(daemon: Daemon, tmp_path: Path) -> None:
    source = tmp_path / "report.bin"
    digest = random_file(source, 64 * MiB)
    share = _curl("-T", str(source), "-H", f"@{_auth_header_file(daemon, tmp_path)}", daemon.base + "/api/v1/shares/")
    assert len(share["code"]) == 6 and share["code"].isdigit()
    assert share["url"].endswith("/r/" + share["code"]) and share["qr"].startswith("data:image/svg+xml")
    assert share["files"] == [{"path": "report.bin", "size": 64 * MiB, "sha256": digest}]

    out = tmp_path / "out"
    done = run_cli("receive", share["code"], "--out", str(out), "--signal", daemon.signal_url)
    assert done.returncode == 0, done.stderr + daemon.log_tail()
    assert sha256_of(out / "report.bin") == digest
    assert sorted(p.name for p in out.iterdir()) == ["report.bin"], "no partial or private files left behind"

    sent = daemon.wait_transfer(
        daemon.api("GET", "/api/v1/transfers").json()[0]["id"], lambda t: t["state"] == "done", timeout=15
    )
    assert sent["direction"] == "send" and sent["bytes_done"] == 64 * MiB

    again = run_cli("receive", share["code"], "--out", str(tmp_path / "again"), "--signal", daemon.signal_url)
    assert again.returncode == 1 and "no such code" in again.stderr

    stats = daemon.api("GET", "/api/v1/stats").json()
    assert stats["transfers"]["count"]["state"]["done"] == 1
    assert stats["transfers"]["bytes_moved_total"] >= 64 * MiB
    signaling = stats["signaling"]
    assert signaling["joins_total"]["result"] == {"ok": 1, "failed": 1}
    assert signaling["connections"] == 1, "only the daemon's own hosting socket stays open"
    assert signaling["shares"] == 3, "only the daemon's own standing addresses stay hosted (inbox, library, mailbox)"
    assert signaling["codes"] == 0 and signaling["rooms"] == 0
    assert signaling["connections_opened_total"] == 3 and signaling["connections_refused_total"] == 0
    metrics = daemon.api("GET", "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'doorstep_transfers_count{state="done"} 1\n' in metrics.text
    assert "# TYPE doorstep_transfers_bytes_moved_total counter" in metrics.text
    assert 'doorstep_signaling_joins_total{result="failed"} 1\n' in metrics.text
    assert 'doorstep_signaling_limit_hits_total{limit="ip_budget"} 0\n' in metrics.text


def test_multipart_folder_tree_received_by_cli(daemon: Daemon, tmp_path: Path) -> None:
    tree = {"tree/a.bin": 3 * MiB + 17, "tree/sub/b.txt": 1000, "tree/sub/deeper/empty": 0}
    digests = {}
    form = []
    for rel, size in tree.items():
        path = tmp_path / rel.replace("/", "_")
        digests[rel] = random_file(path, size)
        form += ["-F", f"file=@{path};filename={rel}"]
    share = _curl(*form, "-H", f"@{_auth_header_file(daemon, tmp_path)}", daemon.base + "/api/v1/shares")
    assert sorted(f["path"] for f in share["files"]) == sorted(tree)

    out = tmp_path / "out"
    done = run_cli("receive", share["code"], "--out", str(out), "--signal", daemon.signal_url)
    assert done.returncode == 0, done.stderr + daemon.log_tail()
    for rel, digest in digests.items():
        assert sha256_of(out / rel) == digest, rel
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(tree)


def test_wrong_code_is_refused_clearly(daemon: Daemon, tmp_path: Path) -> None:
    done = run_cli("receive", "000000", "--out", str(tmp_path / "out"), "--signal", daemon.signal_url)
    assert done.returncode == 1 and "no such code" in done.stderr
    response = daemon.api("POST", "/api/v1/receive", json={"code": "000000"})
    assert response.status_code == 404 and response.json()["error"] == "join_failed"
    assert daemon.api("POST", "/api/v1/receive", json={"code": "12ab"}).status_code == 400
    assert daemon.api("POST", "/api/v1/receive", json={"code": "123456", "extra": 1}).status_code == 400


def test_encrypted_frames_when_either_side_turns_them_on(start_daemon, tmp_path: Path) -> None:
    """``transfer.encrypt`` on one side is enough: DATA frames are sealed with a key derived from
    the session key (only the two authenticated peers hold it); the file arrives bit-exact."""
    # On the data channel: the direct path seals its whole stream instead (test_direct_path.py).
    sealing = start_daemon("sealing", DOORSTEP_TRANSFER_ENCRYPT="true", DOORSTEP_TRANSFER_DIRECT="false")
    source = tmp_path / "sealed.bin"
    digest = random_file(source, 5 * MiB + 3)
    for receiver_env in ({"DOORSTEP_TRANSFER_ENCRYPT": "true"}, {}):
        share = _curl("-T", str(source), "-H", f"@{_auth_header_file(sealing, tmp_path)}",
                      sealing.base + "/api/v1/shares/")
        out = tmp_path / f"out{len(receiver_env)}"
        done = run_cli("receive", share["code"], "--out", str(out), "--signal", sealing.signal_url, **receiver_env)
        assert done.returncode == 0, done.stderr + sealing.log_tail()
        assert sha256_of(out / "sealed.bin") == digest
    assert sealing.log_tail(400).count("sealed DATA frames") >= 2, "both transfers were sealed"
