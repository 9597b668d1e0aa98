"""Signaling v1: the optional ``ice`` field of ``joined`` and ``peer`` (strict schema)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.protocol.errors import LocalProtocolError
from daemon.protocol.signaling import (
    MAX_ICE_CREDENTIAL_CHARS,
    MAX_ICE_SERVERS,
    MAX_ICE_URL_CHARS,
    MAX_ICE_URLS,
    Joined,
    MessageError,
    Peer,
    parse_client_message,
    parse_server_message,
    serialize,
)

SESSION = "g0W1mB3y2Qn8xT5vLk9ZpA"
SHARE = "share_ABCDEFGH-1234"
ICE = [
    {"urls": ["stun:pi.example.org:3478"]},
    {"urls": ["turn:pi.example.org:3479", "turns:pi.example.org:5349?transport=tcp"],
     "username": "1767225900:" + SESSION, "credential": "3iq3o0xN7dZ4JbJf6Ym1XDpWv0c="},
]


def frame(kind: str, ice: Any, **extra: Any) -> str:
    return json.dumps({"type": kind, "session": SESSION, "share": SHARE, "ice": ice, **extra})


@pytest.mark.parametrize("kind", ["joined", "peer"])
def test_round_trip(kind: str) -> None:
    message = parse_server_message(frame(kind, ICE))
    assert message.ice == ICE
    assert parse_server_message(serialize(message)) == message
    cls = Joined if kind == "joined" else Peer
    assert serialize(cls(session=SESSION, share=SHARE, ice=ICE)).startswith(
        f'{{"type":"{kind}","session":"{SESSION}","share":"{SHARE}","ice":[{{"urls":["stun:'
    )


@pytest.mark.parametrize("kind", ["joined", "peer"])
def test_absent_means_none_and_is_not_serialized(kind: str) -> None:
    message = parse_server_message(json.dumps({"type": kind, "session": SESSION, "share": SHARE}))
    assert message.ice is None
    assert '"ice"' not in serialize(message)


def test_joined_keeps_the_request_id() -> None:
    message = parse_server_message(frame("joined", ICE, id=3))
    assert message.id == 3 and serialize(message).endswith(',"id":3}')


BAD = [
    None,  # explicit null
    [],  # empty: omit the field instead
    {"urls": ["stun:x"]},  # not a list
    "stun:x",
    [{"urls": ["stun:x"]}] * (MAX_ICE_SERVERS + 1),
    ["stun:x"],  # entries are objects
    [{}],  # urls missing
    [{"urls": "stun:x"}],  # urls is always a list here
    [{"urls": []}],
    [{"urls": ["stun:x"] * (MAX_ICE_URLS + 1)}],
    [{"urls": ["http://x"]}],
    [{"urls": ["stun:"]}],
    [{"urls": ["stun:x y"]}],
    [{"urls": ["stun:\u00e9"]}],
    [{"urls": ["stun:x\n"]}],
    [{"urls": ["stun:" + "x" * MAX_ICE_URL_CHARS]}],
    [{"urls": [3478]}],
    [{"urls": ["turn:x"], "username": "u"}],  # both or neither
    [{"urls": ["turn:x"], "credential": "c"}],
    [{"urls": ["turn:x"], "username": "", "credential": "c"}],
    [{"urls": ["turn:x"], "username": "u", "credential": "c" * (MAX_ICE_CREDENTIAL_CHARS + 1)}],
    [{"urls": ["turn:x"], "username": 1, "credential": "c"}],
    [{"urls": ["turn:x"], "username": None, "credential": None}],
    [{"urls": ["turn:x"], "username": "u", "credential": "c", "credentialType": "password"}],
]


@pytest.mark.parametrize("ice", BAD)
@pytest.mark.parametrize("kind", ["joined", "peer"])
def test_bad_ice_is_a_bad_message(kind: str, ice: Any) -> None:
    with pytest.raises(MessageError) as info:
        parse_server_message(frame(kind, ice))
    assert info.value.code == "bad_message" and "ice" in str(info.value)
    cls = Joined if kind == "joined" else Peer
    if ice is not None:
        with pytest.raises(LocalProtocolError):
            cls(session=SESSION, share=SHARE, ice=ice)


def test_errors_never_echo_credentials() -> None:
    secret = "S3CR3T-credential"
    for ice in (
        [{"urls": ["turn:x"], "username": secret}],
        [{"urls": ["turn:x"], "username": "u", "credential": secret, "extra": 1}],
        [{"urls": ["turn:x"], "username": "u", "credential": secret * 40}],
    ):
        with pytest.raises(MessageError) as info:
            parse_server_message(frame("joined", ice))
        assert secret not in str(info.value)


def test_clients_cannot_send_ice() -> None:
    with pytest.raises(MessageError):
        parse_client_message(json.dumps({"type": "join", "code": "123456", "ice": ICE}))


_ice_server = st.fixed_dictionaries(
    {"urls": st.lists(st.sampled_from(["stun:a:1", "turn:b:2", "turns:c:3?transport=tcp"]), min_size=1, max_size=4)},
    optional={"extra": st.none()},
)


@given(st.lists(_ice_server, min_size=1, max_size=5), st.booleans())
def test_fuzzed_ice_either_round_trips_or_is_refused(ice: list[dict[str, Any]], with_credentials: bool) -> None:
    if with_credentials:
        for server in ice:
            server.update(username="u", credential="c")
    valid = len(ice) <= MAX_ICE_SERVERS and not any("extra" in server for server in ice)
    try:
        message = parse_server_message(frame("peer", ice))
    except MessageError:
        assert not valid
    else:
        assert valid and parse_server_message(serialize(message)) == message
