"""The shares API on a real daemon: text shares (received byte-exact), revoke, QR code as SVG, and a
file called "text" still uploads with ``curl -T``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, api_error, run_cli

pytestmark = pytest.mark.integration


def test_a_text_share_is_received_as_a_utf8_txt_file(daemon: Daemon, tmp_path: Path) -> None:
    text = "Grüße aus dem Keller 🏠\nline two\n"
    created = daemon.api("POST", "/api/v1/shares/text", json={"text": text, "name": "greeting"})
    assert created.status_code == 201, created.text
    share = created.json()
    encoded = text.encode()
    assert share["name"] == "greeting.txt" and share["size"] == len(encoded) and len(share["code"]) == 6
    assert share["files"] == [{"path": "greeting.txt", "size": len(encoded),
                               "sha256": hashlib.sha256(encoded).hexdigest()}]
    assert [s["share_id"] for s in daemon.api("GET", "/api/v1/shares").json()] == [share["share_id"]]

    out = tmp_path / "out"
    done = run_cli("receive", share["code"], "--out", str(out), "--signal", daemon.signal_url)
    assert done.returncode == 0, done.stderr + daemon.log_tail()
    assert (out / "greeting.txt").read_bytes() == encoded

    default = daemon.api("POST", "/api/v1/shares/text", json={"text": ""})
    assert default.status_code == 201 and default.json()["name"] == "note.txt" and default.json()["size"] == 0


BAD_TEXT_SHARES = [
    ({"text": "x" * (1024 * 1024 + 1)}, 413, "too_large"),
    ({"text": "é" * (512 * 1024 + 1)}, 413, "too_large"),  # over 1 MiB once encoded
    ({"text": "x", "name": "../evil.txt"}, 400, "bad_name"),
    ({"text": "x", "name": ""}, 400, "bad_request"),
    ({"text": "x", "colour": "red"}, 400, "bad_request"),
    ({"name": "x.txt"}, 400, "bad_request"),
    ({"text": 7}, 400, "bad_request"),
    ([], 400, "bad_request"),
]


def test_bad_text_shares_are_refused(daemon: Daemon) -> None:
    for body, status, code in BAD_TEXT_SHARES:
        api_error(daemon.api("POST", "/api/v1/shares/text", json=body), status, code)
    assert daemon.api("GET", "/api/v1/shares").json() == []
    created = daemon.api("POST", "/api/v1/shares/text", json={"text": "\u00e9" * (512 * 1024)})
    assert created.status_code == 201 and created.json()["size"] == 1024 * 1024, created.text[:200]


def test_qr_svg_revoke_and_the_code_is_dead(daemon: Daemon, tmp_path: Path) -> None:
    share = daemon.api("POST", "/api/v1/shares/text", json={"text": "secret plans"}).json()
    qr = daemon.api("GET", f"/api/v1/shares/{share['share_id']}/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg+xml")
    assert qr.text.startswith("<?xml") and "<svg" in qr.text and "</svg>" in qr.text
    api_error(daemon.api("GET", "/api/v1/shares/nosuchshare/qr.svg"), 404, "unknown_share")

    assert daemon.api("DELETE", f"/api/v1/shares/{share['share_id']}").status_code == 204
    assert daemon.api("GET", "/api/v1/shares").json() == []
    assert not (daemon.state_dir / "shares" / share["share_id"]).exists(), "its files are deleted"
    [transfer] = daemon.api("GET", "/api/v1/transfers").json()
    assert (transfer["state"], transfer["error"]) == ("cancelled", "the share was revoked")
    api_error(daemon.api("GET", f"/api/v1/shares/{share['share_id']}/qr.svg"), 404, "unknown_share")
    api_error(daemon.api("DELETE", f"/api/v1/shares/{share['share_id']}"), 404, "unknown_share")
    late = run_cli("receive", share["code"], "--out", str(tmp_path / "out"), "--signal", daemon.signal_url)
    assert late.returncode == 1 and "no such code" in late.stderr


def test_a_used_code_has_no_qr(daemon: Daemon, tmp_path: Path) -> None:
    share = daemon.api("POST", "/api/v1/shares/text", json={"text": "once"}).json()
    done = run_cli("receive", share["code"], "--out", str(tmp_path / "out"), "--signal", daemon.signal_url)
    assert done.returncode == 0, done.stderr
    response = daemon.api("GET", f"/api/v1/shares/{share['share_id']}/qr.svg")
    assert response.status_code == 404  # retired once sent, or its code spent


def test_a_file_called_text_still_uploads(daemon: Daemon) -> None:
    uploaded = daemon.api("PUT", "/api/v1/shares/text", content=b"plain bytes")
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["files"][0]["path"] == "text" and uploaded.json()["size"] == 11
