"""The settings API on a real daemon: the effective config without secrets; the safe subset changes
live, is saved 0600 to ``settings.json`` and comes back at the next start (an env var still wins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.harness import api_error, run_cli

pytestmark = pytest.mark.integration


def test_read_change_persist_and_reload(start_daemon, tmp_path: Path) -> None:
    secret = tmp_path / "turn.secret"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    daemon = start_daemon("a", DOORSTEP_TURN_SECRET_FILE=str(secret),  # data channel: sealed DATA frames
                          DOORSTEP_SIGNAL_ALLOWED_ORIGINS="https://pi.example", DOORSTEP_TRANSFER_DIRECT="false")
    settings = daemon.api("GET", "/api/v1/settings")
    assert settings.status_code == 200
    view = settings.json()
    assert "turn.secret_file" not in view and "http.password_file" not in view
    assert str(secret) not in settings.text and "s3cret" not in settings.text
    assert view["state_dir"] == str(daemon.state_dir) and view["inbox.dir"] == str(daemon.inbox)
    assert view["signal.allowed_origins"] == ["https://pi.example"]
    assert (view["transfer.encrypt"], view["share.ttl"], view["inbox.unpaired"]) == (False, 86400.0, "hold")
    assert (view["inbox.max_transfer"], view["inbox.reserve"], view["inbox.collision"]) == (0, 256 << 20, "rename")

    changed = daemon.api("PATCH", "/api/v1/settings",
                         json={"transfer.encrypt": True, "share.ttl": 120, "inbox.unpaired": "refuse"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["transfer.encrypt"], changed.json()["share.ttl"]) == (True, 120.0)
    assert daemon.api("GET", "/api/v1/settings").json()["inbox.unpaired"] == "refuse"
    saved = daemon.state_dir / "settings.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text()) == {"transfer.encrypt": True, "share.ttl": 120.0, "inbox.unpaired": "refuse"}

    # Live: the next transfer is sealed although the receiver did not ask for it.
    share = daemon.api("POST", "/api/v1/shares/text", json={"text": "sealed"}).json()
    done = run_cli("receive", share["code"], "--out", str(tmp_path / "out"), "--signal", daemon.signal_url)
    assert done.returncode == 0, done.stderr
    assert "sealed DATA frames" in daemon.log_tail(200)

    # Next start: settings.json over the defaults, the environment over settings.json.
    assert daemon.stop() == 0
    daemon.env["DOORSTEP_SHARE_TTL"] = "77"
    daemon.start()
    again = daemon.api("GET", "/api/v1/settings").json()
    assert (again["transfer.encrypt"], again["inbox.unpaired"], again["share.ttl"]) == (True, "refuse", 77.0)


def test_only_the_safe_subset_changes(start_daemon) -> None:
    daemon = start_daemon("a")
    before = daemon.api("GET", "/api/v1/settings").json()
    for body in ({}, {"http.listen": "0.0.0.0:80"}, {"state_dir": "/tmp"}, {"inbox.unpaired": "maybe"},
                 {"transfer.encrypt": "yes"}, {"share.ttl": 0}, {"share.ttl": -5}, {"share.ttl": "60"},
                 {"outbox.after_send": "shred"}, {"inbox.per_device": None}, [], {"turn.secret_file": "/x"}):
        response = daemon.api("PATCH", "/api/v1/settings", json=body)
        message = api_error(response, 400, "bad_request")
        assert message, body
    assert daemon.api("GET", "/api/v1/settings").json() == before
    assert not (daemon.state_dir / "settings.json").exists()
    both = daemon.api("PATCH", "/api/v1/settings", json={"outbox.after_send": "keep", "inbox.per_device": True})
    assert both.status_code == 200 and (both.json()["outbox.after_send"], both.json()["inbox.per_device"]) == \
        ("keep", True)
