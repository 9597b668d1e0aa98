"""Device identity: an Ed25519 key pair, channel-bound signatures, device ids, and safety words.

A device signs the connection it is on, not just a nonce: :meth:`DeviceIdentity.sign_channel`
signs ``length_prefixed(label, role, offerer_fp, answerer_fp, extra)`` with canonical DTLS
fingerprints (:func:`daemon.crypto.kdf.canonical_fingerprint`), so a signature made for one
connection, one role or one purpose (``label``) is useless on any other. ``extra`` carries what
the step also commits to (in ``device`` mode, the signer's ephemeral X25519 key).

Persistence is the caller's job: store :attr:`DeviceIdentity.seed` (32 bytes, mode 0600) and load it
back with :meth:`DeviceIdentity.from_seed`.

Derived display values (all from SHA-256, all stable across versions):

* :func:`device_id_of`: ``base32(sha256(public_key))`` lower case, unpadded, first 20 characters
  (100 bits); URL-safe.
* :func:`safety_words`: words from ``sha256(SAFETY_WORDS_LABEL || min(a, b) || max(a, b))``, the same
  on both devices; two people compare them out of band when pairing.
* :func:`fingerprint_words`: words from ``sha256(FINGERPRINT_WORDS_LABEL || public_key)``, a short
  name for one device's key.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import nacl.exceptions
import nacl.signing

from daemon.crypto.errors import BadKeyFile, BadSignature
from daemon.crypto.kdf import canonical_fingerprint, check_role, length_prefixed
from daemon.crypto.rotation import KeyRotation, sign_rotation, verify_chain
from daemon.crypto.words import WORDS

__all__ = [
    "DEVICE_AUTH_LABEL",
    "DEVICE_ID_LENGTH",
    "FINGERPRINT_WORDS_LABEL",
    "PAIRING_LABEL",
    "PUBLIC_KEY_BYTES",
    "SAFETY_WORDS_LABEL",
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "DeviceIdentity",
    "device_id_of",
    "fingerprint_words",
    "safety_words",
    "verify_channel",
]

DEVICE_AUTH_LABEL = b"doorstep/v1/device-auth"
"""``label`` for the signature a paired device sends in ``device`` mode."""

PAIRING_LABEL = b"doorstep/v1/pairing"
"""``label`` for the signature each device sends while pairing (``pair`` mode)."""

SAFETY_WORDS_LABEL = b"doorstep/v1/safety-words"
FINGERPRINT_WORDS_LABEL = b"doorstep/v1/fingerprint-words"

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
DEVICE_ID_LENGTH = 20

_BYTES_LIKE = (bytes, bytearray, memoryview)


class DeviceIdentity:
    """An Ed25519 key pair (``nacl.signing``). ``repr`` shows only :attr:`device_id`.

    Build one with :meth:`generate` or :meth:`from_seed`.
    """

    __slots__ = ("_device_id", "_public_key", "_rotations", "_signing_key")

    def __init__(self, signing_key: nacl.signing.SigningKey, rotations: Sequence[KeyRotation] = ()) -> None:
        """``rotations``: the chain from the key the device was first paired with to this one
        (:mod:`daemon.crypto.rotation`); raises ``BadSignature`` if it does not lead here."""
        self._signing_key = signing_key
        self._public_key = bytes(signing_key.verify_key)
        self._rotations = tuple(rotations)
        self._device_id = device_id_of(verify_chain(self._rotations, self._public_key)[0])

    @classmethod
    def generate(cls) -> DeviceIdentity:
        """Return a new identity from a fresh random seed."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes, rotations: Sequence[KeyRotation] = ()) -> DeviceIdentity:
        """Rebuild the identity stored as ``seed`` (and its rotation chain); raises ``BadKeyFile``
        unless the seed is 32 bytes, ``BadSignature`` if the chain does not lead to its key."""
        if not isinstance(seed, _BYTES_LIKE) or len(seed) != SEED_BYTES:
            raise BadKeyFile(f"a device seed is exactly {SEED_BYTES} bytes")
        return cls(nacl.signing.SigningKey(bytes(seed)), rotations)

    def rotated(self) -> DeviceIdentity:
        """A new identity with a fresh key, the same device id, and this key's signature over the
        new one appended to the chain. Raises ``BadSignature`` past :data:`MAX_CHAIN` rotations."""
        fresh = nacl.signing.SigningKey.generate()
        link = sign_rotation(self._signing_key, bytes(fresh.verify_key))
        return DeviceIdentity(fresh, (*self._rotations, link))

    @property
    def rotations(self) -> tuple[KeyRotation, ...]:
        """How the device's first key led to this one, oldest rotation first (empty if never rotated)."""
        return self._rotations

    def __repr__(self) -> str:
        return f"DeviceIdentity(device_id={self._device_id!r})"

    @property
    def seed(self) -> bytes:
        """The 32 secret seed bytes, for the caller to persist (mode 0600). Never log them."""
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public_key

    @property
    def device_id(self) -> str:
        """:func:`device_id_of` the device's first key (:attr:`public_key` unless it rotated)."""
        return self._device_id

    def sign_channel(
        self,
        *,
        label: bytes,
        role: str,
        offerer_fingerprint: str,
        answerer_fingerprint: str,
        extra: bytes = b"",
    ) -> bytes:
        """Return a 64-byte detached signature binding ``label``, ``role``, both fingerprints and ``extra``.

        Raises ``ValueError`` for an empty label, an unknown role or a malformed fingerprint, and
        ``TypeError`` if ``label`` or ``extra`` is not bytes.
        """
        message = _channel_message(label, role, offerer_fingerprint, answerer_fingerprint, extra)
        return bytes(self._signing_key.sign(message).signature)


def verify_channel(
    public_key: bytes,
    signature: bytes,
    *,
    label: bytes,
    role: str,
    offerer_fingerprint: str,
    answerer_fingerprint: str,
    extra: bytes = b"",
) -> None:
    """Check a :meth:`DeviceIdentity.sign_channel` signature; return ``None`` if it is valid.

    Raises ``BadSignature`` for any failure of the peer's data: key or signature of the wrong type
    or length, an unusable key, or a signature that does not match. Local arguments (``label``,
    ``role``, fingerprints, ``extra``) are validated first, exactly as in ``sign_channel``
    (``ValueError`` / ``TypeError``): they come from our own connection, not from the peer.
    """
    message = _channel_message(label, role, offerer_fingerprint, answerer_fingerprint, extra)
    if not isinstance(public_key, _BYTES_LIKE) or len(public_key) != PUBLIC_KEY_BYTES:
        raise BadSignature(f"a device public key is exactly {PUBLIC_KEY_BYTES} bytes")
    if not isinstance(signature, _BYTES_LIKE) or len(signature) != SIGNATURE_BYTES:
        raise BadSignature(f"a signature is exactly {SIGNATURE_BYTES} bytes")
    try:
        nacl.signing.VerifyKey(bytes(public_key)).verify(message, bytes(signature))
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise BadSignature("the signature does not verify") from exc


def device_id_of(public_key: bytes) -> str:
    """Return the device id: lower-case unpadded base32 of ``sha256(public_key)``, first 20 chars.

    Raises ``ValueError`` unless ``public_key`` is 32 bytes.
    """
    key = _public_key_bytes(public_key)
    return base64.b32encode(hashlib.sha256(key).digest()).decode("ascii").lower()[:DEVICE_ID_LENGTH]


def safety_words(public_key_a: bytes, public_key_b: bytes, count: int = 5) -> tuple[str, ...]:
    """Return ``count`` words naming the pair of keys, the same whichever order they are given in.

    Each word carries 8 bits. Raises ``ValueError`` unless both keys are 32 bytes and ``count`` is
    in 1..32.
    """
    low, high = sorted((_public_key_bytes(public_key_a), _public_key_bytes(public_key_b)))
    return _words(hashlib.sha256(SAFETY_WORDS_LABEL + low + high).digest(), count)


def fingerprint_words(public_key: bytes, count: int = 4) -> tuple[str, ...]:
    """Return ``count`` words naming one device key, for display. Same errors as :func:`safety_words`."""
    key = _public_key_bytes(public_key)
    return _words(hashlib.sha256(FINGERPRINT_WORDS_LABEL + key).digest(), count)


def _channel_message(
    label: bytes, role: str, offerer_fingerprint: str, answerer_fingerprint: str, extra: bytes
) -> bytes:
    if not isinstance(label, _BYTES_LIKE) or not isinstance(extra, _BYTES_LIKE):
        raise TypeError("label and extra must be bytes")
    if not label:
        raise ValueError("label must not be empty")
    return length_prefixed(
        bytes(label),
        check_role(role).encode("ascii"),
        canonical_fingerprint(offerer_fingerprint).encode("ascii"),
        canonical_fingerprint(answerer_fingerprint).encode("ascii"),
        bytes(extra),
    )


def _public_key_bytes(public_key: bytes) -> bytes:
    if not isinstance(public_key, _BYTES_LIKE) or len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"a device public key is exactly {PUBLIC_KEY_BYTES} bytes")
    return bytes(public_key)


def _words(digest: bytes, count: int) -> tuple[str, ...]:
    if not 1 <= count <= len(digest):
        raise ValueError(f"count must be 1..{len(digest)}, not {count}")
    return tuple(WORDS[byte] for byte in digest[:count])
