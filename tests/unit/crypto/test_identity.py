"""Device identities: seeds, channel-bound signatures, device ids, safety and fingerprint words."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.crypto.errors import BadKeyFile, BadSignature, CryptoError
from daemon.crypto.identity import (
    DEVICE_AUTH_LABEL,
    PAIRING_LABEL,
    SAFETY_WORDS_LABEL,
    DeviceIdentity,
    device_id_of,
    fingerprint_words,
    safety_words,
    verify_channel,
)
from daemon.crypto.words import WORDS

FP_O = "sha-256 " + ":".join(["0A"] * 32)
FP_A = "sha-256 " + ":".join(["B1"] * 32)
FP_MITM = "sha-256 " + ":".join(["EE"] * 32)
SEED_1 = bytes(range(32))
SEED_2 = bytes(range(32, 64))
EPHEMERAL = bytes(range(200, 232))

CHANNEL: dict[str, Any] = {
    "label": DEVICE_AUTH_LABEL,
    "role": "offerer",
    "offerer_fingerprint": FP_O,
    "answerer_fingerprint": FP_A,
    "extra": EPHEMERAL,
}


def test_labels() -> None:
    assert DEVICE_AUTH_LABEL == b"doorstep/v1/device-auth"
    assert PAIRING_LABEL == b"doorstep/v1/pairing"


def test_seed_round_trip() -> None:
    identity = DeviceIdentity.generate()
    seed = identity.seed
    assert isinstance(seed, bytes) and len(seed) == 32
    again = DeviceIdentity.from_seed(seed)
    assert again.public_key == identity.public_key
    assert again.device_id == identity.device_id
    assert again.seed == seed
    assert DeviceIdentity.from_seed(bytearray(seed)).public_key == identity.public_key  # type: ignore[arg-type]


def test_seed_matches_nacl() -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    assert identity.public_key == bytes(nacl.signing.SigningKey(SEED_1).verify_key)
    assert len(identity.public_key) == 32


def test_generate_is_random() -> None:
    assert DeviceIdentity.generate().public_key != DeviceIdentity.generate().public_key


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, b"x" * 64, "x" * 32, None, 32])
def test_from_seed_rejects_bad_seed(bad: object) -> None:
    with pytest.raises(BadKeyFile):
        DeviceIdentity.from_seed(bad)  # type: ignore[arg-type]


def test_bad_key_file_is_a_crypto_error() -> None:
    with pytest.raises(CryptoError):
        DeviceIdentity.from_seed(b"short")


def test_repr_hides_seed() -> None:
    identity = DeviceIdentity.from_seed(SEED_2)
    for text in (repr(identity), str(identity), f"{identity}", repr([identity])):
        assert SEED_2.hex() not in text
        assert SEED_2.hex()[:8] not in text
        assert str(SEED_2) not in text
        assert identity.device_id in text
    assert not hasattr(identity, "__dict__")


def test_sign_and_verify() -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    signature = identity.sign_channel(**CHANNEL)
    assert isinstance(signature, bytes) and len(signature) == 64
    verify_channel(identity.public_key, signature, **CHANNEL)  # returns None, raises if invalid
    # Ed25519 is deterministic.
    assert identity.sign_channel(**CHANNEL) == signature


def test_signature_known_message() -> None:
    """Pins the signed bytes: length-prefixed (label, role, canonical fp_o, canonical fp_a, extra)."""
    identity = DeviceIdentity.from_seed(SEED_1)
    signature = identity.sign_channel(
        label=PAIRING_LABEL,
        role="answerer",
        offerer_fingerprint=FP_O.lower(),
        answerer_fingerprint=FP_A,
    )
    fields = [PAIRING_LABEL, b"answerer", FP_O.encode(), FP_A.encode(), b""]
    message = b"".join(struct.pack(">I", len(field)) + field for field in fields)
    nacl.signing.VerifyKey(identity.public_key).verify(message, signature)  # raises if wrong


def test_verify_accepts_non_canonical_fingerprint_text() -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    signature = identity.sign_channel(**CHANNEL)
    relaxed = dict(CHANNEL, offerer_fingerprint=FP_O.lower(), answerer_fingerprint="SHA-256 " + FP_A[8:])
    verify_channel(identity.public_key, signature, **relaxed)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"label": PAIRING_LABEL}, id="label"),
        pytest.param({"role": "answerer"}, id="role"),
        pytest.param({"offerer_fingerprint": FP_A, "answerer_fingerprint": FP_O}, id="swapped-fps"),
        pytest.param({"offerer_fingerprint": FP_MITM}, id="offerer-fp"),
        pytest.param({"answerer_fingerprint": FP_MITM}, id="answerer-fp"),
        pytest.param({"extra": b""}, id="extra-missing"),
        pytest.param({"extra": EPHEMERAL[:-1] + b"\x00"}, id="extra-changed"),
    ],
)
def test_tampered_context_rejected(change: dict[str, Any]) -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    signature = identity.sign_channel(**CHANNEL)
    with pytest.raises(BadSignature):
        verify_channel(identity.public_key, signature, **{**CHANNEL, **change})


def test_tampered_signature_rejected() -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    signature = identity.sign_channel(**CHANNEL)
    for index in (0, 31, 32, 63):
        tampered = bytearray(signature)
        tampered[index] ^= 0x01
        with pytest.raises(BadSignature):
            verify_channel(identity.public_key, bytes(tampered), **CHANNEL)


def test_other_key_rejected() -> None:
    signature = DeviceIdentity.from_seed(SEED_1).sign_channel(**CHANNEL)
    with pytest.raises(BadSignature):
        verify_channel(DeviceIdentity.from_seed(SEED_2).public_key, signature, **CHANNEL)


@pytest.mark.parametrize(
    "public_key",
    [b"", b"x" * 31, b"x" * 33, "x" * 32, None, bytes(32), b"\x01" + bytes(31), b"\xff" * 32],
    ids=["empty", "short", "long", "str", "none", "zero", "identity-point", "not-a-point"],
)
def test_bad_public_key_bytes_rejected(public_key: object) -> None:
    signature = DeviceIdentity.from_seed(SEED_1).sign_channel(**CHANNEL)
    with pytest.raises(BadSignature):
        verify_channel(public_key, signature, **CHANNEL)  # type: ignore[arg-type]


@pytest.mark.parametrize("signature", [b"", b"x" * 63, b"x" * 65, "x" * 64, None, bytes(64)])
def test_bad_signature_bytes_rejected(signature: object) -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    with pytest.raises(BadSignature):
        verify_channel(identity.public_key, signature, **CHANNEL)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"label": b""}, ValueError),
        ({"role": "host"}, ValueError),
        ({"offerer_fingerprint": "sha-256 AB"}, ValueError),
        ({"answerer_fingerprint": "md5 " + ":".join(["AB"] * 16)}, ValueError),
        ({"label": "doorstep/v1/device-auth"}, TypeError),
        ({"extra": "not bytes"}, TypeError),
    ],
)
def test_local_misuse_raises_value_or_type_error(change: dict[str, Any], error: type[Exception]) -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    with pytest.raises(error):
        identity.sign_channel(**{**CHANNEL, **change})
    # Checked before the peer's key and signature, so even a garbage signature gives the local error.
    with pytest.raises(error):
        verify_channel(identity.public_key, bytes(64), **{**CHANNEL, **change})


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.sampled_from(["offerer", "answerer"]), st.binary(max_size=64))
def test_property_any_seed_signs_and_verifies(seed: bytes, role: str, extra: bytes) -> None:
    identity = DeviceIdentity.from_seed(seed)
    assert DeviceIdentity.from_seed(identity.seed).public_key == identity.public_key
    context = dict(CHANNEL, role=role, extra=extra)
    verify_channel(identity.public_key, identity.sign_channel(**context), **context)


# --- device ids and words ---------------------------------------------------------------------


def test_device_id_format_and_value() -> None:
    identity = DeviceIdentity.from_seed(SEED_1)
    device_id = identity.device_id
    assert re.fullmatch(r"[a-z2-7]{20}", device_id)
    expected = base64.b32encode(hashlib.sha256(identity.public_key).digest()).decode().lower()[:20]
    assert device_id == expected == device_id_of(identity.public_key)
    assert device_id != DeviceIdentity.from_seed(SEED_2).device_id


def test_device_id_rejects_bad_key() -> None:
    for bad in (b"", b"x" * 31, b"x" * 33, "x" * 32):
        with pytest.raises(ValueError):
            device_id_of(bad)  # type: ignore[arg-type]


def test_safety_words_symmetric_and_pinned() -> None:
    a = DeviceIdentity.from_seed(SEED_1).public_key
    b = DeviceIdentity.from_seed(SEED_2).public_key
    words = safety_words(a, b)
    assert words == safety_words(b, a)
    assert len(words) == 5
    assert all(word in WORDS for word in words)
    low, high = sorted((a, b))
    digest = hashlib.sha256(SAFETY_WORDS_LABEL + low + high).digest()
    assert words == tuple(WORDS[byte] for byte in digest[:5])
    assert safety_words(a, b, count=8)[:5] == words


def test_safety_words_differ_for_different_keys() -> None:
    a = DeviceIdentity.from_seed(SEED_1).public_key
    b = DeviceIdentity.from_seed(SEED_2).public_key
    c = DeviceIdentity.from_seed(bytes(32)).public_key
    assert safety_words(a, b) != safety_words(a, c)
    assert safety_words(a, b) != safety_words(b, c)


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_property_safety_words_order_independent(a: bytes, b: bytes) -> None:
    assert safety_words(a, b) == safety_words(b, a)


def test_safety_words_argument_checks() -> None:
    key = bytes(32)
    for count in (0, -1, 33):
        with pytest.raises(ValueError):
            safety_words(key, key, count=count)
    assert len(safety_words(key, key, count=32)) == 32
    with pytest.raises(ValueError):
        safety_words(key, b"short")


def test_fingerprint_words() -> None:
    a = DeviceIdentity.from_seed(SEED_1).public_key
    b = DeviceIdentity.from_seed(SEED_2).public_key
    words = fingerprint_words(a)
    assert len(words) == 4
    assert all(word in WORDS for word in words)
    assert words == fingerprint_words(a)
    assert words != fingerprint_words(b)
    assert len(fingerprint_words(a, count=6)) == 6
    # Domain-separated from the safety words of the pair (a, a).
    assert words != safety_words(a, a, count=4)
    with pytest.raises(ValueError):
        fingerprint_words(a, count=0)
    with pytest.raises(ValueError):
        fingerprint_words(a[:31])
