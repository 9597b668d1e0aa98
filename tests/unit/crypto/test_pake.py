"""SPAKE2 and X25519 exchanges, session keys, key confirmation bound to DTLS fingerprints."""

from __future__ import annotations

import hmac
import struct

import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.crypto.errors import CryptoError, PakeError
from daemon.crypto.kdf import hkdf_sha256
from daemon.crypto.pake import (
    PAKE_MESSAGE_BYTES,
    CodePake,
    EphemeralExchange,
    SessionKey,
)

FP_O = "sha-256 " + ":".join(["0A"] * 32)
FP_A = "sha-256 " + ":".join(["B1"] * 32)
FP_MITM = "sha-256 " + ":".join(["EE"] * 32)


def run_pake(
    password_a: bytes | str, password_b: bytes | str, **kwargs: bytes
) -> tuple[SessionKey, SessionKey]:
    a, b = CodePake(password_a, **kwargs), CodePake(password_b, **kwargs)
    msg_a, msg_b = a.start(), b.start()
    return a.finish(msg_b), b.finish(msg_a)


def confirms_cross_verify(
    key_o: SessionKey, key_a: SessionKey, fps_o: tuple[str, str], fps_a: tuple[str, str]
) -> bool:
    """Each side checks the tag the other sent, as the auth step does; True only if both pass."""
    tag_from_o = key_o.confirm_tag("offerer", *fps_o)
    tag_from_a = key_a.confirm_tag("answerer", *fps_a)
    return key_a.verify_confirm(tag_from_o, "offerer", *fps_a) and key_o.verify_confirm(
        tag_from_a, "answerer", *fps_o
    )


# --- SessionKey -------------------------------------------------------------------------------


def test_session_key_requires_32_bytes() -> None:
    for bad in (b"", b"x" * 31, b"x" * 33, "x" * 32):
        with pytest.raises(ValueError):
            SessionKey(bad)  # type: ignore[arg-type]
    assert SessionKey(bytearray(32)) == SessionKey(bytes(32))  # type: ignore[arg-type]


def test_session_key_repr_hides_secret() -> None:
    raw = bytes(range(100, 132))
    key = SessionKey(raw)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert raw.hex() not in text
        assert raw.hex()[:8] not in text
        assert str(raw) not in text
    assert not hasattr(key, "__dict__")


def test_session_key_equality_and_unhashable() -> None:
    assert SessionKey(b"a" * 32) == SessionKey(b"a" * 32)
    assert SessionKey(b"a" * 32) != SessionKey(b"b" * 32)
    assert SessionKey(b"a" * 32) != b"a" * 32
    with pytest.raises(TypeError):
        hash(SessionKey(b"a" * 32))


def test_derive_is_hkdf_with_purpose() -> None:
    raw = bytes(range(32))
    key = SessionKey(raw)
    assert key.derive("doorstep/v1/x") == hkdf_sha256(raw, purpose="doorstep/v1/x")
    assert key.derive("doorstep/v1/x", 64) == hkdf_sha256(raw, purpose="doorstep/v1/x", length=64)
    assert key.derive("doorstep/v1/x") != key.derive("doorstep/v1/y")


def test_confirm_tag_known_answer() -> None:
    """Pins the wire construction: HMAC(HKDF(K, confirm/<role>), len||fp_o||len||fp_a)."""
    raw = bytes(range(32))
    mac_key = hkdf_sha256(raw, purpose="doorstep/v1/confirm/offerer")
    message = b"".join(struct.pack(">I", len(fp)) + fp.encode() for fp in (FP_O, FP_A))
    expected = hmac.digest(mac_key, message, "sha256")
    assert SessionKey(raw).confirm_tag("offerer", FP_O, FP_A) == expected
    assert len(expected) == 32


def test_confirm_tag_uses_canonical_fingerprints() -> None:
    key = SessionKey(bytes(32))
    assert key.confirm_tag("offerer", FP_O.lower(), " " + FP_A) == key.confirm_tag("offerer", FP_O, FP_A)


def test_confirm_tags_differ_per_role_and_fingerprint_pair() -> None:
    key = SessionKey(bytes(range(32)))
    tags = {
        key.confirm_tag("offerer", FP_O, FP_A),
        key.confirm_tag("answerer", FP_O, FP_A),
        key.confirm_tag("offerer", FP_A, FP_O),
        key.confirm_tag("answerer", FP_A, FP_O),
        key.confirm_tag("offerer", FP_O, FP_MITM),
        key.confirm_tag("offerer", FP_MITM, FP_A),
        SessionKey(bytes(32)).confirm_tag("offerer", FP_O, FP_A),
    }
    assert len(tags) == 7


def test_verify_confirm_accepts_only_the_exact_tag() -> None:
    key = SessionKey(bytes(range(32)))
    tag = key.confirm_tag("offerer", FP_O, FP_A)
    assert key.verify_confirm(tag, "offerer", FP_O, FP_A) is True
    assert key.verify_confirm(bytearray(tag), "offerer", FP_O, FP_A) is True  # type: ignore[arg-type]
    # swapped fingerprints, other role, MITM-substituted fingerprint, other key
    assert key.verify_confirm(tag, "offerer", FP_A, FP_O) is False
    assert key.verify_confirm(tag, "answerer", FP_O, FP_A) is False
    assert key.verify_confirm(tag, "offerer", FP_O, FP_MITM) is False
    assert SessionKey(bytes(32)).verify_confirm(tag, "offerer", FP_O, FP_A) is False
    flipped = bytes([tag[0] ^ 1]) + tag[1:]
    assert key.verify_confirm(flipped, "offerer", FP_O, FP_A) is False


@pytest.mark.parametrize("bad_tag", [b"", b"x" * 31, b"x" * 33, "x" * 32, None, 0])
def test_verify_confirm_wrong_length_or_type_is_false(bad_tag: object) -> None:
    key = SessionKey(bytes(32))
    assert key.verify_confirm(bad_tag, "offerer", FP_O, FP_A) is False  # type: ignore[arg-type]


def test_confirm_rejects_local_misuse() -> None:
    key = SessionKey(bytes(32))
    with pytest.raises(ValueError):
        key.confirm_tag("host", FP_O, FP_A)
    with pytest.raises(ValueError):
        key.verify_confirm(bytes(32), "joiner", FP_O, FP_A)
    with pytest.raises(ValueError):
        key.confirm_tag("offerer", "sha-256 AB", FP_A)


def test_resume_secret() -> None:
    key = SessionKey(bytes(range(32)))
    secret = key.resume_secret("share-1")
    assert len(secret) == 32
    assert secret == hkdf_sha256(bytes(range(32)), purpose="doorstep/v1/resume/share-1")
    assert secret != key.resume_secret("share-2")
    assert secret != SessionKey(bytes(32)).resume_secret("share-1")
    with pytest.raises(ValueError):
        key.resume_secret("")


# --- CodePake ---------------------------------------------------------------------------------


def test_pake_message_length() -> None:
    assert PAKE_MESSAGE_BYTES == 33
    assert len(CodePake("123456").start()) == PAKE_MESSAGE_BYTES


def test_same_code_agrees_and_confirms() -> None:
    key_o, key_a = run_pake("123456", "123456")
    assert key_o == key_a
    assert confirms_cross_verify(key_o, key_a, (FP_O, FP_A), (FP_O, FP_A))


def test_str_and_bytes_passwords_are_the_same_password() -> None:
    key_o, key_a = run_pake("123456", b"123456")
    assert key_o == key_a


def test_session_key_is_hkdf_of_the_spake2_output() -> None:
    import spake2  # type: ignore[import-untyped]

    ours = CodePake("424242")
    theirs = spake2.SPAKE2_Symmetric(b"424242", idSymmetric=b"doorstep/pake/v1")
    msg_ours, msg_theirs = ours.start(), theirs.start()
    key = ours.finish(msg_theirs)
    raw = theirs.finish(msg_ours)
    assert key == SessionKey(hkdf_sha256(raw, purpose="doorstep/v1/session"))
    assert key != SessionKey(raw)


def test_wrong_code_gives_keys_whose_confirms_fail() -> None:
    key_o, key_a = run_pake("123456", "123457")
    assert key_o != key_a
    assert not confirms_cross_verify(key_o, key_a, (FP_O, FP_A), (FP_O, FP_A))
    tag = key_o.confirm_tag("offerer", FP_O, FP_A)
    assert key_a.verify_confirm(tag, "offerer", FP_O, FP_A) is False


def test_dtls_mitm_is_caught_by_confirm_even_with_the_right_code() -> None:
    # Same K (the MITM relayed the PAKE), but each side sees a different fingerprint pair.
    key_o, key_a = run_pake("123456", "123456")
    assert not confirms_cross_verify(key_o, key_a, (FP_O, FP_MITM), (FP_MITM, FP_A))


def test_different_context_does_not_agree() -> None:
    a, b = CodePake("123456"), CodePake("123456", context=b"other/v1")
    msg_a, msg_b = a.start(), b.start()
    assert a.finish(msg_b) != b.finish(msg_a)


def test_resume_secret_keys_a_second_pake() -> None:
    key_o, key_a = run_pake("123456", "123456")
    resumed_o, resumed_a = run_pake(key_o.resume_secret("s1"), key_a.resume_secret("s1"))
    assert resumed_o == resumed_a
    assert resumed_o != key_o
    stale_o, stale_a = run_pake(key_o.resume_secret("s1"), key_a.resume_secret("s2"))
    assert stale_o != stale_a


def test_reflected_message_rejected() -> None:
    pake = CodePake("123456")
    own = pake.start()
    with pytest.raises(PakeError, match="reflected"):
        pake.finish(own)


def _valid_peer_message() -> bytes:
    return CodePake("123456").start()


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"S", id="side-byte-only"),
        pytest.param(_valid_peer_message()[:-1], id="short"),
        pytest.param(_valid_peer_message() + b"\x00", id="long"),
        pytest.param(_valid_peer_message() * 2, id="double"),
        pytest.param(b"S" + b"\xff" * 32, id="not-a-point"),
        pytest.param(b"S" + bytes(32), id="zero-element"),
        pytest.param(b"A" + _valid_peer_message()[1:], id="asymmetric-side-A"),
        pytest.param(b"B" + _valid_peer_message()[1:], id="asymmetric-side-B"),
        pytest.param(b"\x00" * 33, id="all-zero"),
        pytest.param(bytes(range(33)), id="garbage"),
    ],
)
def test_malformed_peer_message_rejected(message: bytes) -> None:
    pake = CodePake("123456")
    pake.start()
    with pytest.raises(PakeError):
        pake.finish(message)


@pytest.mark.parametrize("message", ["S" * 33, None, 33, list(range(33))])
def test_non_bytes_peer_message_rejected(message: object) -> None:
    pake = CodePake("123456")
    pake.start()
    with pytest.raises(PakeError):
        pake.finish(message)  # type: ignore[arg-type]


def test_single_use() -> None:
    pake = CodePake("123456")
    with pytest.raises(PakeError):
        pake.finish(_valid_peer_message())
    pake.start()
    with pytest.raises(PakeError):
        pake.start()
    pake.finish(_valid_peer_message())
    with pytest.raises(PakeError):
        pake.finish(_valid_peer_message())


def test_failed_finish_consumes_the_exchange() -> None:
    pake = CodePake("123456")
    pake.start()
    with pytest.raises(PakeError):
        pake.finish(b"short")
    with pytest.raises(PakeError):
        pake.finish(_valid_peer_message())


def test_pake_error_is_a_crypto_error_and_chains_the_cause() -> None:
    pake = CodePake("123456")
    pake.start()
    with pytest.raises(CryptoError) as info:
        pake.finish(b"S" + b"\xff" * 32)
    assert info.value.__cause__ is not None


def test_empty_password_rejected() -> None:
    for bad in ("", b""):
        with pytest.raises(ValueError):
            CodePake(bad)


def test_code_pake_repr_hides_password() -> None:
    pake = CodePake("918273")
    pake.start()
    assert "918273" not in repr(pake)
    assert "started" in repr(pake)


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=64) | st.text(min_size=1, max_size=20))
def test_property_same_password_same_key(password: bytes | str) -> None:
    key_o, key_a = run_pake(password, password)
    assert key_o == key_a
    assert confirms_cross_verify(key_o, key_a, (FP_O, FP_A), (FP_O, FP_A))


@settings(max_examples=15, deadline=None)
@given(st.binary(min_size=1, max_size=16), st.binary(min_size=1, max_size=16))
def test_property_different_passwords_fail_confirmation(pw_a: bytes, pw_b: bytes) -> None:
    key_o, key_a = run_pake(pw_a, pw_b)
    if pw_a == pw_b:
        assert key_o == key_a
    else:
        assert key_o != key_a
        assert not confirms_cross_verify(key_o, key_a, (FP_O, FP_A), (FP_O, FP_A))


# --- EphemeralExchange ------------------------------------------------------------------------


def test_ephemeral_exchange_agrees() -> None:
    offerer, answerer = EphemeralExchange(), EphemeralExchange()
    pair = {"offerer_public": offerer.public_key, "answerer_public": answerer.public_key}
    key_o = offerer.finish(answerer.public_key, **pair)
    key_a = answerer.finish(offerer.public_key, **pair)
    assert key_o == key_a
    assert confirms_cross_verify(key_o, key_a, (FP_O, FP_A), (FP_O, FP_A))


def test_ephemeral_key_is_hkdf_of_x25519_with_both_keys_as_salt() -> None:
    offerer, answerer = EphemeralExchange(), EphemeralExchange()
    private_o = bytes(offerer._private)  # type: ignore[arg-type]
    shared = nacl.bindings.crypto_scalarmult(private_o, answerer.public_key)
    expected = hkdf_sha256(
        shared, purpose="doorstep/v1/device-session", salt=offerer.public_key + answerer.public_key
    )
    key = offerer.finish(
        answerer.public_key, offerer_public=offerer.public_key, answerer_public=answerer.public_key
    )
    assert key == SessionKey(expected)


def test_ephemeral_role_order_matters() -> None:
    offerer, answerer = EphemeralExchange(), EphemeralExchange()
    key_o = offerer.finish(
        answerer.public_key, offerer_public=offerer.public_key, answerer_public=answerer.public_key
    )
    key_a = answerer.finish(  # answerer wrongly thinks it is the offerer
        offerer.public_key, offerer_public=answerer.public_key, answerer_public=offerer.public_key
    )
    assert key_o != key_a


def test_ephemeral_public_key_and_fresh_pairs() -> None:
    a, b = EphemeralExchange(), EphemeralExchange()
    assert isinstance(a.public_key, bytes) and len(a.public_key) == 32
    assert a.public_key != b.public_key


# Curve25519 u-coordinates of low order: every one gives an all-zero shared secret.
LOW_ORDER_POINTS = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
]


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=["zero", "one", "order-8"])
def test_ephemeral_rejects_low_order_point(point: bytes) -> None:
    ours = EphemeralExchange()
    with pytest.raises(PakeError, match="low-order"):
        ours.finish(point, offerer_public=ours.public_key, answerer_public=point)


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, "x" * 32, None])
def test_ephemeral_rejects_wrong_lengths(bad: object) -> None:
    ours, theirs = EphemeralExchange(), EphemeralExchange()
    peer: bytes = bad  # type: ignore[assignment]
    with pytest.raises(PakeError):
        ours.finish(peer, offerer_public=ours.public_key, answerer_public=theirs.public_key)
    ours = EphemeralExchange()
    with pytest.raises(PakeError):
        ours.finish(theirs.public_key, offerer_public=ours.public_key, answerer_public=peer)


def test_ephemeral_rejects_reflection() -> None:
    ours = EphemeralExchange()
    with pytest.raises(PakeError, match="reflected"):
        ours.finish(ours.public_key, offerer_public=ours.public_key, answerer_public=ours.public_key)


def test_ephemeral_rejects_mixed_up_keys() -> None:
    ours, theirs, other = EphemeralExchange(), EphemeralExchange(), EphemeralExchange()
    with pytest.raises(ValueError):
        ours.finish(theirs.public_key, offerer_public=other.public_key, answerer_public=theirs.public_key)


def test_ephemeral_single_use() -> None:
    ours, theirs = EphemeralExchange(), EphemeralExchange()
    pair = {"offerer_public": ours.public_key, "answerer_public": theirs.public_key}
    ours.finish(theirs.public_key, **pair)
    with pytest.raises(PakeError):
        ours.finish(theirs.public_key, **pair)


def test_ephemeral_repr_hides_private_key() -> None:
    ours = EphemeralExchange()
    private_hex = bytes(ours._private).hex()  # type: ignore[arg-type]
    assert private_hex[:8] not in repr(ours)
    assert private_hex not in str(ours)
