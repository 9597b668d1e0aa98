"""Key rotation: a device replaces its Ed25519 key and proves the new one with the old.

A :class:`KeyRotation` is the old key's signature over ``length_prefixed(ROTATION_LABEL, old, new)``.
A device keeps the chain of its rotations, oldest first: ``chain[0].old`` is the key it was first
paired with (its **root**, which names it: the device id is :func:`device_id_of` the root, stable
across rotations), each link's ``new`` is the next link's ``old``, and the last ``new`` is the key
it holds now. A peer that pinned any key of the chain can follow it to the current key without
pairing again (:func:`verify_chain`); a peer that never knew the device learns its root from it.

A stolen old key can sign a chain of its own; a peer that already followed the real rotation no
longer trusts the old key, and the owner revokes a lost device's current key everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from daemon.crypto.errors import BadSignature
from daemon.crypto.kdf import length_prefixed

__all__ = ["ROTATION_LABEL", "MAX_CHAIN", "KeyRotation", "sign_rotation", "verify_chain"]

ROTATION_LABEL = b"doorstep/v1/key-rotation"
MAX_CHAIN = 16
"""Rotations a device may carry (and a peer accepts); rotating more often than that needs re-pairing."""

_KEY = 32
_SIGNATURE = 64


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """``old`` signed that ``new`` replaces it (``signature``, 64 bytes; keys 32 bytes each)."""

    old: bytes
    new: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not (_is_bytes(self.old, _KEY) and _is_bytes(self.new, _KEY) and _is_bytes(self.signature, _SIGNATURE)):
            raise BadSignature("a key rotation holds two 32-byte keys and a 64-byte signature")


def _is_bytes(value: object, length: int) -> bool:
    return isinstance(value, bytes) and len(value) == length


def sign_rotation(old: nacl.signing.SigningKey, new_public_key: bytes) -> KeyRotation:
    """The statement, signed by ``old``, that ``new_public_key`` replaces it."""
    old_public = bytes(old.verify_key)
    message = length_prefixed(ROTATION_LABEL, old_public, bytes(new_public_key))
    return KeyRotation(old_public, bytes(new_public_key), bytes(old.sign(message).signature))


def verify_chain(chain: Sequence[KeyRotation], current_key: bytes) -> tuple[bytes, ...]:
    """Check ``chain`` leads to ``current_key``; return every key on it, root first, current last
    (just ``(current_key,)`` for an empty chain).

    Raises ``BadSignature`` if a signature does not verify, the links do not join, the chain does
    not end at ``current_key``, a key repeats, or it is longer than :data:`MAX_CHAIN`.
    """
    if len(chain) > MAX_CHAIN:
        raise BadSignature(f"a rotation chain holds at most {MAX_CHAIN} rotations")
    keys = [link.old for link in chain] + [bytes(current_key)]
    for index, link in enumerate(chain):
        if link.new != keys[index + 1]:
            raise BadSignature("the rotation chain does not join up to the device's current key")
        message = length_prefixed(ROTATION_LABEL, link.old, link.new)
        try:
            nacl.signing.VerifyKey(link.old).verify(message, link.signature)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise BadSignature("a key rotation is not signed by the key it replaces") from exc
    if len(set(keys)) != len(keys):
        raise BadSignature("a key appears twice in the rotation chain")
    return tuple(keys)
