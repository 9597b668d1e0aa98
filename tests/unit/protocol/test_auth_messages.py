"""The authentication step's messages and ordering (daemon.protocol.auth)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.protocol import LocalProtocolError, RemoteProtocolError
from daemon.protocol.auth import (
    AuthConfirm,
    AuthFailed,
    AuthHandshake,
    AuthHello,
    AuthIdentity,
    AuthMode,
    AuthState,
    decode_auth,
    encode_auth,
)

PAKE = bytes(range(33))
KEY = b"k" * 32
SIG = b"s" * 64


def body(frame: bytes) -> bytes:
    return frame[5:]


def raw(obj: dict) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "message",
    [
        AuthHello(mode=AuthMode.CODE, pake=PAKE),
        AuthHello(mode=AuthMode.RESUME, pake=PAKE),
        AuthHello(mode=AuthMode.PAIR, pake=PAKE),
        AuthHello(mode=AuthMode.DEVICE, device_key=KEY, ephemeral=KEY, signature=SIG),
        AuthHello(mode=AuthMode.ORIGIN),
        AuthHello(mode=AuthMode.DEVICE, device_key=KEY, ephemeral=KEY, signature=SIG,
                  rotations=((b"o" * 32, b"n" * 32, b"s" * 64), (b"n" * 32, KEY, b"t" * 64)), revoked=(b"r" * 32,)),
        AuthIdentity(device_key=KEY, name="pi", signature=SIG, rotations=((b"o" * 32, KEY, b"s" * 64),)),
        AuthConfirm(tag=b"t" * 32),
        AuthIdentity(device_key=KEY, name="kitchen pi ☕", signature=SIG),
        AuthFailed(code="failed", reason="nope"),
    ],
)
def test_round_trip(message) -> None:
    assert decode_auth(body(encode_auth(message))) == message


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "auth_hello", "version": 1, "mode": "code"},  # no pake
        {"type": "auth_hello", "version": 1, "mode": "code", "pake": "AAAA"},  # wrong length
        {"type": "auth_hello", "version": 2, "mode": "code", "pake": "A" * 44},
        {"type": "auth_hello", "version": 1, "mode": "telepathy", "pake": "A" * 44},
        {"type": "auth_hello", "version": 1, "mode": "device", "pake": "A" * 44},
        {"type": "auth_hello", "version": 1, "mode": "code", "pake": "A" * 44, "device_key": "A" * 43},
        {"type": "auth_hello", "version": 1, "mode": "origin", "pake": "A" * 44},
        {"type": "auth_hello", "version": 1, "mode": "origin", "seal": True},
        {"type": "auth_hello", "version": 1, "mode": "origin", "device_key": "A" * 43},
        {"type": "auth_hello", "version": 1, "mode": "code", "pake": "A" * 44, "revoked": ["A" * 43]},
        {"type": "auth_hello", "version": 1, "mode": "device", "device_key": "A" * 43, "ephemeral": "A" * 43,
         "signature": "A" * 86, "revoked": ["A" * 43] * 65},
        {"type": "auth_hello", "version": 1, "mode": "device", "device_key": "A" * 43, "ephemeral": "A" * 43,
         "signature": "A" * 86, "revoked": "A" * 43},
        {"type": "auth_hello", "version": 1, "mode": "device", "device_key": "A" * 43, "ephemeral": "A" * 43,
         "signature": "A" * 86, "rotations": [{"old": "A" * 43, "new": "A" * 43}]},
        {"type": "auth_hello", "version": 1, "mode": "device", "device_key": "A" * 43, "ephemeral": "A" * 43,
         "signature": "A" * 86, "rotations": [{"old": "A" * 43, "new": "A" * 43, "signature": "A" * 86}] * 17},
        {"type": "auth_identity", "device_key": "A" * 43, "name": "x", "signature": "A" * 86,
         "rotations": [{"old": "A" * 42, "new": "A" * 43, "signature": "A" * 86}]},
        {"type": "auth_confirm", "tag": "A" * 43, "extra": 1},
        {"type": "auth_confirm", "tag": "A" * 42 + "=="},
        {"type": "auth_confirm", "tag": 5},
        {"type": "auth_identity", "device_key": "A" * 43, "name": "", "signature": "A" * 86},
        {"type": "auth_identity", "device_key": "A" * 43, "name": "x\n", "signature": "A" * 86},
        {"type": "auth_identity", "device_key": "A" * 43, "name": "x" * 65, "signature": "A" * 86},
        {"type": "auth_failed", "code": "whatever", "reason": "x"},
        {"type": "offer", "transfer_id": "x", "files": []},
        {"type": None},
    ],
)
def test_malformed_messages_are_remote_errors(obj) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_auth(raw(obj))


@given(st.binary(max_size=300))
def test_decoder_never_crashes(data: bytes) -> None:
    try:
        decode_auth(data)
    except RemoteProtocolError:
        pass


def test_initiator_and_responder_code_flow() -> None:
    joiner, host = AuthHandshake(AuthMode.CODE), AuthHandshake(None)
    hello = joiner.send_hello(AuthHello(mode=AuthMode.CODE, pake=PAKE))
    assert host.receive(body(hello)).mode is AuthMode.CODE and host.mode is AuthMode.CODE
    reply = host.send_hello(AuthHello(mode=AuthMode.CODE, pake=PAKE))
    joiner.receive(body(reply))
    for me, peer in ((joiner, host), (host, joiner)):
        peer.receive(body(me.send_confirm(b"t" * 32)))
    for side in (joiner, host):
        side.confirmed()
        assert side.state is AuthState.AUTHENTICATED
    with pytest.raises(RemoteProtocolError):
        host.receive(body(encode_auth(AuthConfirm(tag=b"t" * 32))))


def test_pair_needs_identities_before_authenticated() -> None:
    side = AuthHandshake(AuthMode.PAIR)
    side.send_hello(AuthHello(mode=AuthMode.PAIR, pake=PAKE))
    side.receive(body(encode_auth(AuthHello(mode=AuthMode.PAIR, pake=PAKE))))
    side.send_confirm(b"t" * 32)
    side.receive(body(encode_auth(AuthConfirm(tag=b"t" * 32))))
    side.confirmed()
    assert side.state is AuthState.IDENTIFYING
    with pytest.raises(LocalProtocolError):
        side.mark_authenticated()
    side.send_identity(KEY, "me", SIG)
    side.receive(body(encode_auth(AuthIdentity(device_key=KEY, name="you", signature=SIG))))
    side.mark_authenticated()
    assert side.state is AuthState.AUTHENTICATED


def test_mode_mismatch_and_repeats_are_refused() -> None:
    side = AuthHandshake(AuthMode.RESUME)
    side.send_hello(AuthHello(mode=AuthMode.RESUME, pake=PAKE))
    with pytest.raises(RemoteProtocolError) as info:
        side.receive(body(encode_auth(AuthHello(mode=AuthMode.CODE, pake=PAKE))))
    assert info.value.code == "auth_mode" and side.state is AuthState.FAILED

    side = AuthHandshake(AuthMode.CODE)
    with pytest.raises(RemoteProtocolError):  # a confirm before any hello
        side.receive(body(encode_auth(AuthConfirm(tag=b"t" * 32))))

    side = AuthHandshake(AuthMode.CODE)
    side.receive(body(encode_auth(AuthHello(mode=AuthMode.CODE, pake=PAKE))))
    with pytest.raises(RemoteProtocolError):
        side.receive(body(encode_auth(AuthHello(mode=AuthMode.CODE, pake=PAKE))))


def test_device_mode_has_no_confirm_and_responder_cannot_speak_first() -> None:
    with pytest.raises(LocalProtocolError):
        AuthHandshake(None).send_hello(AuthHello(mode=AuthMode.CODE, pake=PAKE))
    side = AuthHandshake(AuthMode.DEVICE)
    side.send_hello(AuthHello(mode=AuthMode.DEVICE, device_key=KEY, ephemeral=KEY, signature=SIG))
    side.receive(body(encode_auth(AuthHello(mode=AuthMode.DEVICE, device_key=KEY, ephemeral=KEY, signature=SIG))))
    with pytest.raises(LocalProtocolError):
        side.send_confirm(b"t" * 32)
    side.mark_authenticated()
    assert side.state is AuthState.AUTHENTICATED


def test_origin_mode_is_two_hellos_and_nothing_else() -> None:
    assert encode_auth(AuthHello(mode=AuthMode.ORIGIN))[5:] == b'{"type":"auth_hello","version":1,"mode":"origin"}'
    responder = AuthHandshake(None)
    assert responder.receive(raw({"type": "auth_hello", "version": 1, "mode": "origin"})) == AuthHello(
        mode=AuthMode.ORIGIN)
    responder.send_hello(AuthHello(mode=AuthMode.ORIGIN))
    with pytest.raises(LocalProtocolError):
        responder.send_confirm(b"t" * 32)
    with pytest.raises(RemoteProtocolError):
        responder.receive(body(encode_auth(AuthConfirm(tag=b"t" * 32))))
    initiator = AuthHandshake(AuthMode.ORIGIN)
    initiator.send_hello(AuthHello(mode=AuthMode.ORIGIN))
    with pytest.raises(LocalProtocolError):
        initiator.mark_authenticated()  # the responder's hello has not arrived
    initiator.receive(body(encode_auth(AuthHello(mode=AuthMode.ORIGIN))))
    initiator.mark_authenticated()
    assert initiator.state is AuthState.AUTHENTICATED


def test_failed_ends_the_step() -> None:
    side = AuthHandshake(AuthMode.CODE)
    message = side.receive(body(encode_auth(AuthFailed(code="unsupported_mode", reason="no resume here"))))
    assert isinstance(message, AuthFailed) and side.state is AuthState.FAILED
    with pytest.raises(RemoteProtocolError):
        side.receive(body(encode_auth(AuthHello(mode=AuthMode.CODE, pake=PAKE))))
