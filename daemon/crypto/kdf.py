"""Key derivation (HKDF-SHA256, RFC 5869), length-prefixed encoding, and fingerprint text.

Every key this package derives goes through :func:`hkdf_sha256` with a purpose string such as
``"doorstep/v1/confirm/offerer"``; the purpose is HKDF's ``info`` (UTF-8), so keys for different
purposes are independent. :func:`hkdf_extract` and :func:`hkdf_expand` are the two RFC 5869 steps,
exposed so they can be checked against the RFC's test vectors (whose ``info`` is not UTF-8 text).

:func:`length_prefixed` is the one encoding used for everything that is MACed or signed: each field
as a 4-byte big-endian length followed by its bytes, so no two different field tuples encode alike.

:func:`canonical_fingerprint` puts a DTLS certificate fingerprint in the one text form both peers
MAC and sign: ``"sha-256 AB:CD:..."`` (algorithm lower case, hex upper case, colon separated).
:data:`ROLES` names the two ends of a connection, which every MAC and signature is bound to.
"""

from __future__ import annotations

import hmac
import struct

__all__ = [
    "FINGERPRINT_ALGORITHMS",
    "HASH_LENGTH",
    "ROLES",
    "canonical_fingerprint",
    "check_role",
    "hkdf_expand",
    "hkdf_extract",
    "hkdf_sha256",
    "length_prefixed",
]

HASH_LENGTH = 32
"""Output length of SHA-256, HKDF's ``HashLen``."""

FINGERPRINT_ALGORITHMS: dict[str, int] = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
"""Accepted fingerprint hash algorithms (RFC 8122 names) and their digest length in bytes."""

ROLES: tuple[str, str] = ("offerer", "answerer")
"""The two ends of a connection: the signaling host that creates the channel, and the joiner."""

_MAX_OUTPUT = 255 * HASH_LENGTH
_HEX_DIGITS = frozenset("0123456789ABCDEF")


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-256: ``PRK = HMAC(salt or HashLen zero bytes, ikm)``."""
    return hmac.digest(salt or bytes(HASH_LENGTH), ikm, "sha256")


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256.

    Raises ``ValueError`` if ``prk`` is shorter than 32 bytes or ``length`` is not in 1..8160.
    """
    if len(prk) < HASH_LENGTH:
        raise ValueError("HKDF-Expand needs a PRK of at least 32 bytes")
    if not 1 <= length <= _MAX_OUTPUT:
        raise ValueError(f"HKDF output length must be 1..{_MAX_OUTPUT}, not {length}")
    blocks: list[bytes] = []
    block = b""
    for counter in range(1, -(-length // HASH_LENGTH) + 1):
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        blocks.append(block)
    return b"".join(blocks)[:length]


def hkdf_sha256(key: bytes, *, purpose: str, length: int = 32, salt: bytes = b"") -> bytes:
    """Derive ``length`` bytes from ``key`` for ``purpose`` (HKDF-SHA256, ``info = purpose`` UTF-8).

    ``salt`` is optional context (empty means RFC 5869's all-zero salt). Raises ``ValueError`` if
    ``length`` is not in 1..8160.
    """
    return hkdf_expand(hkdf_extract(salt, key), purpose.encode("utf-8"), length)


def length_prefixed(*fields: bytes) -> bytes:
    """Encode ``fields`` unambiguously: for each, a 4-byte big-endian length then the bytes."""
    return b"".join(struct.pack(">I", len(field)) + bytes(field) for field in fields)


def canonical_fingerprint(text: str) -> str:
    """Return ``text`` (``"<algorithm> <hex>:<hex>:..."``) in canonical form ``"sha-256 AB:CD:..."``.

    A comma-separated list of fingerprints (one certificate, several algorithms, as an SDP lists
    them) becomes the sorted, de-duplicated list of canonical items joined by commas.

    The algorithm is matched case-insensitively against :data:`FINGERPRINT_ALGORITHMS`; the value
    must be exactly that algorithm's digest length in two-digit hex pairs separated by colons.
    Leading/trailing whitespace is ignored and any whitespace run separates the two parts.
    Raises ``ValueError`` for anything else (``TypeError`` if ``text`` is not a ``str``).
    """
    if not isinstance(text, str):
        raise TypeError("fingerprint must be a str")
    if "," in text:  # a certificate named by several algorithms: the sorted set names it
        items = {canonical_fingerprint(item) for item in text.split(",")}
        return ",".join(sorted(items))
    parts = text.split()
    if len(parts) != 2:
        raise ValueError("fingerprint must be '<algorithm> <hex pairs>'")
    algorithm, value = parts[0].lower(), parts[1].upper()
    expected = FINGERPRINT_ALGORITHMS.get(algorithm)
    if expected is None:
        raise ValueError(f"unsupported fingerprint algorithm {parts[0]!r}")
    pairs = value.split(":")
    if len(pairs) != expected:
        raise ValueError(f"{algorithm} fingerprint needs {expected} hex pairs, got {len(pairs)}")
    if any(len(pair) != 2 or not _HEX_DIGITS.issuperset(pair) for pair in pairs):
        raise ValueError("fingerprint value must be two-digit hex pairs separated by ':'")
    return f"{algorithm} {':'.join(pairs)}"


def check_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`; raise ``ValueError`` otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be 'offerer' or 'answerer', not {role!r}")
    return role
