"""Configuration: defaults < TOML file < DOORSTEP_* env < flags, with errors naming key and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.runtime.config import ConfigError, Listen, load_config


def test_embedded_defaults_are_loopback_and_local_state() -> None:
    config = load_config(environ={})
    assert config.state_dir == Path(".state")
    assert config.http_listen == Listen("127.0.0.1", 8080)
    assert config.signal_listen == Listen("127.0.0.1", 8081)
    assert config.turn_enabled is False
    assert config.inbox_dir == Path(".state/inbox")
    assert config.ice_addresses is None
    assert config.signal_url == "ws://127.0.0.1:8081/signal/v1"


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "doorstep.toml"
    toml.write_text('state_dir = "/srv/state"\n[http]\nlisten = "0.0.0.0:9000"\n[turn]\nenabled = true\n'
                    '[inbox]\ndir = "/srv/in"\n')
    env = {"DOORSTEP_HTTP_LISTEN": "127.0.0.2:9001", "DOORSTEP_ICE_ADDRESSES": "127.0.0.1, ::1",
           "DOORSTEP_SIGNAL_PUBLIC_URL": "wss://pi.example/signal/v1"}
    config = load_config(toml, environ=env, overrides={"state_dir": "/flag/state", "http.listen": None})
    assert config.state_dir == Path("/flag/state")
    assert config.http_listen == Listen("127.0.0.2", 9001)
    assert config.turn_enabled is True
    assert config.inbox_dir == Path("/srv/in")
    assert config.ice_addresses == ("127.0.0.1", "::1")
    assert config.signal_url == "wss://pi.example/signal/v1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DOORSTEP_HTTP_LISTEN": "nonsense"}, "http.listen (from DOORSTEP_HTTP_LISTEN)"),
        ({"DOORSTEP_HTTP_LISTEN": "1.2.3.4:99999"}, "http.listen"),
        ({"DOORSTEP_TURN_ENABLED": "maybe"}, "turn.enabled"),
        ({"DOORSTEP_ICE_ADDRESSES": "127.0.0.1,eth0"}, "'eth0' is not an IP address"),
    ],
)
def test_bad_values_name_key_and_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(environ=env)


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "doorstep.toml"
    toml.write_text("[http]\nlisen = '127.0.0.1:1'\n")
    with pytest.raises(ConfigError, match="unknown key 'http.lisen'"):
        load_config(toml, environ={})


def test_listen_forms() -> None:
    assert Listen.parse(":8080") == Listen("", 8080)
    assert Listen.parse(":8080").connect_host == "127.0.0.1"
    assert Listen.parse("[::1]:80") == Listen("::1", 80)
    assert str(Listen("::1", 80)) == "[::1]:80"


def test_allowed_hosts_are_derived_unless_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "Pi.lan")
    derived = load_config(environ={"DOORSTEP_HTTP_LISTEN": "192.168.1.5:8080",
                                   "DOORSTEP_HTTP_PUBLIC_URL": "https://Files.Example.org:8443/base"})
    assert derived.http_allowed_hosts == {"localhost", "127.0.0.1", "::1", "192.168.1.5", "pi.lan", "pi.local",
                                          "files.example.org"}
    assert "0.0.0.0" not in load_config(environ={"DOORSTEP_HTTP_LISTEN": "0.0.0.0:8080"}).http_allowed_hosts
    toml = tmp_path / "doorstep.toml"
    toml.write_text('[http]\nallowed_hosts = ["pi.example", "[::1]", "Doorstep.LAN."]\npassword_file = "/etc/pw"\n')
    config = load_config(toml, environ={})
    assert config.http_allowed_hosts == {"pi.example", "::1", "doorstep.lan"}
    assert config.http_password_file == Path("/etc/pw")
    assert load_config(environ={}).http_password_file is None
    for bad in ("pi.example:8080", "http://pi.example", "pi example", "a..b"):
        with pytest.raises(ConfigError, match="http.allowed_hosts"):
            load_config(environ={"DOORSTEP_HTTP_ALLOWED_HOSTS": bad})
