"""The proof-of-key handshake, socket-free: both ends pump bytes to each other."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.crypto import SessionKey
from daemon.direct.handshake import (
    HELLO_SIZE, PROOF_SIZE, DirectKeys, HandshakeFailed, ProofHandshake, Side,
)
from daemon.protocol.errors import LocalProtocolError

KEYS = DirectKeys.from_session(SessionKey(bytes(range(32))))
OTHER = DirectKeys.from_session(SessionKey(bytes(range(1, 33))))


def pair(dialer_keys: DirectKeys = KEYS, listener_keys: DirectKeys = KEYS, *, dialer_role: str = "answerer"):
    listener_role = "offerer" if dialer_role == "answerer" else "answerer"
    return (ProofHandshake(dialer_keys, side=Side.DIALER, role=dialer_role),
            ProofHandshake(listener_keys, side=Side.LISTENER, role=listener_role))


def run(dialer: ProofHandshake, listener: ProofHandshake) -> None:
    """Pump the wire both ways until both are done (or one raises)."""
    to_listener, to_dialer = bytearray(dialer.start()), bytearray(listener.start())
    for _ in range(6):
        for machine, inbox, outbox in ((listener, to_listener, to_dialer), (dialer, to_dialer, to_listener)):
            need = machine.bytes_needed
            if need and len(inbox) >= need:
                outbox += machine.receive(bytes(inbox[:need]))
                del inbox[:need]
    assert not to_listener and not to_dialer, "nothing may follow the handshake"


@pytest.mark.parametrize("dialer_role", ["offerer", "answerer"])
def test_both_ends_agree_on_the_connection_and_keys(dialer_role: str) -> None:
    dialer, listener = pair(dialer_role=dialer_role)
    run(dialer, listener)
    assert dialer.done and listener.done
    assert dialer.connection_id == listener.connection_id and len(dialer.connection_id) == 32
    d_send, d_receive = dialer.stream_keys()
    l_send, l_receive = listener.stream_keys()
    assert d_send == l_receive and l_send == d_receive and d_send != d_receive


def test_every_connection_has_its_own_id_and_keys() -> None:
    first, second = pair(), pair()
    run(*first)
    run(*second)
    assert first[0].connection_id != second[0].connection_id
    assert first[0].stream_keys()[0] != second[0].stream_keys()[0]


def test_a_dialer_without_the_key_is_dropped_and_learns_no_proof() -> None:
    dialer, listener = pair(dialer_keys=OTHER)
    dialer_hello, listener_hello = dialer.start(), listener.start()
    proof = dialer.receive(listener_hello)
    assert listener.receive(dialer_hello) == b""  # the listener proves nothing before the dialer did
    with pytest.raises(HandshakeFailed):
        listener.receive(proof)
    assert not listener.done and listener.bytes_needed == 0


def test_a_listener_without_the_key_is_dropped() -> None:
    dialer, listener = pair(listener_keys=OTHER)
    with pytest.raises(HandshakeFailed):
        run(dialer, listener)
    assert not dialer.done


def test_same_role_on_both_ends_fails() -> None:
    """A proof cannot be reflected: both ends claiming the same session role do not agree."""
    dialer = ProofHandshake(KEYS, side=Side.DIALER, role="offerer")
    listener = ProofHandshake(KEYS, side=Side.LISTENER, role="offerer")
    with pytest.raises(HandshakeFailed):
        run(dialer, listener)


def test_a_recorded_proof_is_worthless_on_a_new_connection() -> None:
    old_dialer, old_listener = pair()
    old_hello = old_dialer.start()
    old_proof = old_dialer.receive(old_listener.start())
    _dialer, listener = pair()
    listener.start()
    listener.receive(old_hello)  # replay the old dialer's HELLO ...
    with pytest.raises(HandshakeFailed):  # ... and its proof, made for another listener nonce
        listener.receive(old_proof)


def test_an_echoed_nonce_is_refused() -> None:
    dialer, _ = pair()
    hello = dialer.start()
    with pytest.raises(HandshakeFailed):
        dialer.receive(hello)


@given(st.binary(min_size=HELLO_SIZE, max_size=HELLO_SIZE), st.binary(min_size=PROOF_SIZE, max_size=PROOF_SIZE))
def test_random_bytes_never_pass(hello: bytes, proof: bytes) -> None:
    listener = ProofHandshake(KEYS, side=Side.LISTENER, role="offerer")
    listener.start()
    try:
        listener.receive(hello)
        listener.receive(proof)
    except HandshakeFailed:
        return
    raise AssertionError("random bytes passed the handshake")


def test_wrong_magic_is_refused_at_once() -> None:
    listener = ProofHandshake(KEYS, side=Side.LISTENER, role="offerer")
    listener.start()
    with pytest.raises(HandshakeFailed):
        listener.receive(b"GET / HTTP/1.1\r\n" + bytes(HELLO_SIZE - 16))


def test_misuse_is_a_local_error() -> None:
    dialer, _ = pair()
    with pytest.raises(LocalProtocolError):
        dialer.receive(bytes(HELLO_SIZE))  # before start()
    dialer.start()
    with pytest.raises(LocalProtocolError):
        dialer.receive(bytes(3))  # not the size it needs
    with pytest.raises(LocalProtocolError):
        dialer.stream_keys()


def test_keys_do_not_show_in_repr() -> None:
    assert "secret" in repr(KEYS) and KEYS.proof.hex() not in repr(KEYS)
