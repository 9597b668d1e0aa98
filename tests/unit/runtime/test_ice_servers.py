"""From configuration to the ICE servers each signaling session gets; the TURN secret file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import stat
from pathlib import Path

import pytest

from daemon.protocol.signaling import Joined
from daemon.runtime.config import load_config
from daemon.runtime.ice_servers import server_url, session_ice_servers
from daemon.runtime.turn_secret import TURN_SECRET_FILE, ensure_turn_secret, read_turn_secret

SESSION = "g0W1mB3y2Qn8xT5vLk9ZpA"


def config(tmp_path: Path, **env: str):
    return load_config(environ={"DOORSTEP_STATE_DIR": str(tmp_path), **env})


def test_nothing_to_hand_out(tmp_path: Path) -> None:
    assert session_ice_servers(config(tmp_path), stun_port=None) is None


def test_stun_only_uses_public_host_or_listen_address(tmp_path: Path) -> None:
    servers = session_ice_servers(config(tmp_path), stun_port=40000)
    assert servers is not None and servers(SESSION) == [{"urls": ["stun:127.0.0.1:40000"]}]
    public = session_ice_servers(config(tmp_path, DOORSTEP_ICE_PUBLIC_HOST="pi.example.org"), stun_port=3478)
    assert public is not None and public(SESSION) == [{"urls": ["stun:pi.example.org:3478"]}]


def test_wildcard_listen_without_any_public_host_hands_out_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A loopback URL would send remote peers to their own machine (and cost them 5 s)."""
    wildcard = {"DOORSTEP_STUN_LISTEN": ":3478", "DOORSTEP_TURN_LISTEN": "0.0.0.0:3479"}
    with caplog.at_level(logging.WARNING, logger="doorstep.ice"):
        assert session_ice_servers(config(tmp_path, **wildcard), stun_port=3478) is None
        assert session_ice_servers(config(tmp_path, DOORSTEP_TURN_ENABLED="1", **wildcard), stun_port=3478) is None
    assert "ice.public_host" in caplog.text and "stun.listen" in caplog.text and "turn.listen" in caplog.text
    assert (tmp_path / TURN_SECRET_FILE).exists()  # the managed coturn still needs its secret


@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({"DOORSTEP_SIGNAL_PUBLIC_URL": "wss://door.example.org/signal/v1"}, "door.example.org"),
        ({"DOORSTEP_HTTP_PUBLIC_URL": "http://192.168.1.20:8080"}, "192.168.1.20"),
        ({"DOORSTEP_HTTP_PUBLIC_URL": "http://a.example", "DOORSTEP_ICE_PUBLIC_HOST": "b.example"}, "b.example"),
    ],
)
def test_wildcard_listen_uses_the_public_url_host(tmp_path: Path, env: dict[str, str], host: str) -> None:
    servers = session_ice_servers(config(tmp_path, DOORSTEP_STUN_LISTEN=":3478", **env), stun_port=3478)
    assert servers is not None and servers(SESSION) == [{"urls": [f"stun:{host}:3478"]}]


def test_specific_listen_address_is_used(tmp_path: Path) -> None:
    servers = session_ice_servers(config(tmp_path, DOORSTEP_STUN_LISTEN="192.168.1.20:3478"), stun_port=3478)
    assert servers is not None and servers(SESSION) == [{"urls": ["stun:192.168.1.20:3478"]}]


def test_managed_turn_mints_per_session_with_the_state_dir_secret(tmp_path: Path) -> None:
    cfg = config(tmp_path, DOORSTEP_TURN_ENABLED="true", DOORSTEP_TURN_TTL="300",
                 DOORSTEP_ICE_PUBLIC_HOST="pi.example.org")
    servers = session_ice_servers(cfg, stun_port=3478, clock=lambda: 1_700_000_000.5)
    assert servers is not None
    secret_file = tmp_path / TURN_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(bytes.fromhex(secret)) == 32
    stun, turn = servers(SESSION)
    assert stun == {"urls": ["stun:pi.example.org:3478"]}
    assert turn["urls"] == ["turn:pi.example.org:3479"]
    assert turn["username"] == f"1700000300:{SESSION}"
    expected = hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(expected).decode()
    assert servers("other")[1]["username"] == "1700000300:other"
    Joined(session=SESSION, share="share_0123456789abcdef", ice=servers(SESSION))  # fits the schema


def test_lists_are_fresh_per_call(tmp_path: Path) -> None:
    servers = session_ice_servers(config(tmp_path), stun_port=1)
    assert servers is not None
    first = servers("a")
    first[0]["urls"].append("stun:evil")
    assert servers("b") == [{"urls": ["stun:127.0.0.1:1"]}]


def test_external_turn_uses_its_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "external-secret"
    secret_file.write_text("s3cr3t\n")
    secret_file.chmod(0o600)
    cfg = config(tmp_path, DOORSTEP_STUN_ENABLED="false", DOORSTEP_TURN_ENABLED="true",
                 DOORSTEP_TURN_URL="turns:turn.example.org:5349?transport=tcp",
                 DOORSTEP_TURN_SECRET_FILE=str(secret_file))
    servers = session_ice_servers(cfg, stun_port=None, clock=lambda: 1000.0)
    assert servers is not None
    [turn] = servers(SESSION)
    assert turn["urls"] == ["turns:turn.example.org:5349?transport=tcp"]
    expected = hmac.new(b"s3cr3t", f"1600:{SESSION}".encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(expected).decode()
    assert not (tmp_path / TURN_SECRET_FILE).exists()


def test_missing_external_secret_file_is_an_os_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, DOORSTEP_TURN_ENABLED="true", DOORSTEP_TURN_URL="turn:x.example:3478",
                 DOORSTEP_TURN_SECRET_FILE=str(tmp_path / "missing"))
    with pytest.raises(OSError):
        session_ice_servers(cfg, stun_port=None)


def test_ensure_turn_secret_keeps_an_existing_secret(tmp_path: Path) -> None:
    first = ensure_turn_secret(tmp_path)
    assert ensure_turn_secret(tmp_path) == first and len(first) == 64


def test_read_turn_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "secret"
    path.write_text("  \n")
    with pytest.raises(ValueError):
        read_turn_secret(path)
    path.write_text("abc\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="doorstep.turn"):
        assert read_turn_secret(path) == b"abc"
    assert "chmod 600" in caplog.text and "abc" not in caplog.text.replace(str(path), "")


def test_server_url() -> None:
    assert server_url("stun", "192.0.2.1", 3478) == "stun:192.0.2.1:3478"
    assert server_url("turn", "::1", 3479) == "turn:[::1]:3479"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DOORSTEP_ICE_PUBLIC_HOST": "pi lan"}, "ice.public_host"),
        ({"DOORSTEP_ICE_PUBLIC_HOST": "stun:pi"}, "ice.public_host"),
        ({"DOORSTEP_TURN_URL": "http://turn.example.org"}, "turn.url"),
        ({"DOORSTEP_TURN_URL": "turn:a b"}, "turn.url"),
        ({"DOORSTEP_TURN_ENABLED": "true", "DOORSTEP_TURN_URL": "turn:t.example.org"}, "turn.secret_file"),
    ],
)
def test_config_checks(tmp_path: Path, env: dict[str, str], message: str) -> None:
    from daemon.runtime.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        config(tmp_path, **env)


def test_config_accepts_hosts_and_addresses(tmp_path: Path) -> None:
    assert config(tmp_path, DOORSTEP_ICE_PUBLIC_HOST="pi.example.org.").ice_public_host == "pi.example.org."
    assert config(tmp_path, DOORSTEP_ICE_PUBLIC_HOST="192.0.2.7").ice_public_host == "192.0.2.7"


def test_config_refuses_ipv6_literals_that_aiortc_cannot_parse(tmp_path: Path) -> None:
    from daemon.runtime.config import ConfigError

    with pytest.raises(ConfigError, match="use a host name"):
        config(tmp_path, DOORSTEP_ICE_PUBLIC_HOST="[2001:DB8::1]")
    assert config(tmp_path, DOORSTEP_TURN_URL="turn:t.example.org").turn_url == "turn:t.example.org"
