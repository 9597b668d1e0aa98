"""Live settings: the view hides secrets, changes are validated, applied, saved 0600, and read back
at the next start between the TOML file and the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.runtime.config import ConfigError, load_config
from daemon.runtime.settings import LiveSettings, SettingError


def _config(tmp_path: Path, toml: str = "", environ: dict[str, str] | None = None):
    path = tmp_path / "doorstep.toml"
    path.write_text(f'state_dir = "{tmp_path / "state"}"\n' + toml)
    return load_config(path, environ=environ or {})


def test_view_leaves_secrets_out(tmp_path: Path) -> None:
    config = _config(tmp_path, '[signal]\nstore = "redis://user:hunter2@redis.lan:6379/0"\n'
                               '[turn]\nsecret_file = "/etc/doorstep/turn.secret"\n')
    view = LiveSettings(config).view()
    assert "turn.secret_file" not in view and "http.password_file" not in view
    assert view["signal.store"] == "redis://user:***@redis.lan:6379/0"
    assert "hunter2" not in json.dumps(view)
    assert view["inbox.reserve"] == 256 * 2**20 and view["inbox.collision"] == "rename"
    assert view["share.ttl"] == 86400.0 and view["transfer.encrypt"] is False
    assert view["http.listen"] == "127.0.0.1:8080" and view["turn.relay_ports"] == "49160-49359"


def test_update_applies_saves_and_reloads_with_precedence(tmp_path: Path) -> None:
    config = _config(tmp_path, '[share]\nttl = 100\n[inbox]\nunpaired = "hold"\n')
    (tmp_path / "state").mkdir()
    settings = LiveSettings(config)
    heard = []
    settings.on_change(heard.append)
    parsed = settings.update({"share.ttl": 60, "inbox.per_device": True, "outbox.after_send": "keep"})
    settings.save(parsed)
    assert heard == [{"share.ttl": 60.0, "inbox.per_device": True, "outbox.after_send": "keep"}]
    assert settings.config.share_ttl == 60.0 and settings.view()["inbox.per_device"] is True
    saved = tmp_path / "state" / "settings.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert json.loads(saved.read_text()) == {"share.ttl": 60.0, "inbox.per_device": True, "outbox.after_send": "keep"}
    settings.save(settings.update({"inbox.unpaired": "refuse"}))  # merged with what was saved
    assert json.loads(saved.read_text())["share.ttl"] == 60.0

    again = _config(tmp_path, '[share]\nttl = 100\n[inbox]\nunpaired = "hold"\n')  # settings.json beats TOML
    assert (again.share_ttl, again.inbox_per_device, again.inbox_unpaired) == (60.0, True, "refuse")
    env = _config(tmp_path, environ={"DOORSTEP_SHARE_TTL": "5"})  # the environment beats settings.json
    assert env.share_ttl == 5.0 and env.outbox_after_send == "keep"
    flags = load_config(tmp_path / "doorstep.toml", environ={}, overrides={"state_dir": str(tmp_path / "other")})
    assert flags.share_ttl == 86400.0, "settings.json is read from the effective state dir"


@pytest.mark.parametrize(("changes", "needle"), [
    ({}, "nothing to change"),
    ({"http.listen": "0.0.0.0:80"}, "cannot be changed while the daemon runs"),
    ({"colour": "red"}, "is not a setting"),
    ({"inbox.per_device": "true"}, "not a boolean"),
    ({"transfer.encrypt": 1}, "not a boolean"),
    ({"share.ttl": "60"}, "not a number"),
    ({"share.ttl": 0}, "positive"),
    ({"share.ttl": True}, "not a"),
    ({"inbox.unpaired": "maybe"}, "not one of"),
    ({"outbox.after_send": 3}, "not a string"),
])
def test_bad_changes_change_nothing(tmp_path: Path, changes: dict, needle: str) -> None:
    settings = LiveSettings(_config(tmp_path))
    before = settings.view()
    with pytest.raises(SettingError, match=needle):
        settings.update({**changes, "share.ttl": changes.get("share.ttl", 10)} if "share.ttl" in changes else changes)
    assert settings.view() == before


def test_a_malformed_settings_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "settings.json").write_text('{"http.listen": "0.0.0.0:1"}')
    with pytest.raises(ConfigError, match="cannot be set there"):
        _config(tmp_path)
    (tmp_path / "state" / "settings.json").write_text("[1]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        _config(tmp_path)
    (tmp_path / "state" / "settings.json").write_text('{"share.ttl": -1}')
    with pytest.raises(ConfigError, match="share.ttl"):
        _config(tmp_path)


def test_byte_counts(tmp_path: Path) -> None:
    config = _config(tmp_path, '[inbox]\nmax_transfer = "2G"\nreserve = "0"\ncollision = "skip"\n')
    assert (config.inbox_max_transfer, config.inbox_reserve, config.inbox_collision) == (2 * 2**30, 0, "skip")
    assert _config(tmp_path, environ={"DOORSTEP_INBOX_RESERVE": "64MiB"}).inbox_reserve == 64 * 2**20
    with pytest.raises(ConfigError, match="inbox.max_transfer"):
        _config(tmp_path, environ={"DOORSTEP_INBOX_MAX_TRANSFER": "lots"})
