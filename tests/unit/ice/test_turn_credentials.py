"""TURN REST credentials (coturn's use-auth-secret): known HMAC values, TTL cap, argument checks."""

from __future__ import annotations

import pytest

from daemon.ice import IceServer
from daemon.ice.turn_credentials import MAX_TTL, mint

# Expected credentials computed independently:
#   printf '%s' USERNAME | openssl dgst -sha1 -hmac SECRET -binary | base64
SECRET = b"4080a0d1e5b1b6c1f8a7e2c6d3b4a5f60718293a4b5c6d7e8f90a1b2c3d4e5f6"


def test_known_value() -> None:
    username, credential = mint(SECRET, ttl=600, now=1_700_000_000.0, session="g0W1mB3y2Qn8xT5vLk9ZpA")
    assert username == "1700000600:g0W1mB3y2Qn8xT5vLk9ZpA"
    assert credential == "tQnwsKCrt/zzZ+pHalsbVgWK7U0="


def test_expiry_is_truncated_to_whole_seconds() -> None:
    assert mint(b"secret", ttl=60, now=1_700_000_000.9, session="s") == (
        "1700000060:s",
        "YyAvf5BeXMKxHnRBwxxCBIOyNPs=",
    )


def test_ttl_is_capped_at_ten_minutes() -> None:
    username, _ = mint(SECRET, ttl=86_400, now=1_000.0, session="abc")
    assert MAX_TTL == 600 and username == "1600:abc"


def test_fresh_per_session_and_time() -> None:
    a = mint(SECRET, ttl=600, now=1_000.0, session="one")
    b = mint(SECRET, ttl=600, now=1_000.0, session="two")
    c = mint(SECRET, ttl=600, now=1_001.0, session="one")
    assert len({a[1], b[1], c[1]}) == 3
    assert mint(b"other secret", ttl=600, now=1_000.0, session="one")[1] != a[1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": b""},
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": float("nan")},
        {"ttl": float("inf")},
        {"now": float("nan")},
        {"session": ""},
        {"session": "a:b"},
        {"session": "x" * 65},
        {"session": "caf\u00e9"},
    ],
)
def test_bad_arguments(kwargs: dict) -> None:
    arguments = {"secret": SECRET, "ttl": 600, "now": 1_000.0, "session": "s"} | kwargs
    secret = arguments.pop("secret")
    with pytest.raises(ValueError):
        mint(secret, **arguments)


def test_credential_stays_out_of_repr() -> None:
    username, credential = mint(SECRET, ttl=600, now=1_000.0, session="s")
    server = IceServer(urls=("turn:pi.lan:3479",), username=username, credential=credential)
    assert credential not in repr(server) and username in repr(server)
