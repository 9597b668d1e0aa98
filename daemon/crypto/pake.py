"""Session keys: a code-keyed SPAKE2 exchange, an X25519 exchange for paired devices, and key use.

Both exchanges end in a :class:`SessionKey` ``K`` (32 bytes), from which everything else is derived
with HKDF purposes (see :mod:`daemon.crypto.kdf`):

``doorstep/v1/session``
    turns the raw SPAKE2 output into ``K`` (:class:`CodePake`).
``doorstep/v1/device-session``
    turns the X25519 shared secret into ``K``; the salt is ``offerer_public || answerer_public``
    (:class:`EphemeralExchange`).
``doorstep/v1/confirm/<role>``
    keys the key-confirmation MAC that ``<role>`` sends (:meth:`SessionKey.confirm_tag`).
``doorstep/v1/resume/<share_id>``
    a high-entropy password for a later resume PAKE (:meth:`SessionKey.resume_secret`).

The confirmation tag is ``HMAC-SHA256(HKDF(K, "doorstep/v1/confirm/<role>"),
length_prefixed(offerer_fp, answerer_fp))`` over the canonical DTLS fingerprints as *this* side sees
them, so a wrong code or a DTLS man in the middle makes the peer's tag fail to verify.

Both exchange objects are single use: every call to ``finish`` consumes the object, even one that
raises, so a failed attempt can never be retried with the same secret state.
"""

from __future__ import annotations

import enum
import hashlib
import hmac

import nacl.bindings
import nacl.public
import spake2  # type: ignore[import-untyped]  # no stubs or py.typed

from daemon.crypto.errors import PakeError
from daemon.crypto.kdf import (
    canonical_fingerprint,
    check_role,
    hkdf_sha256,
    length_prefixed,
)

__all__ = [
    "DEFAULT_PAKE_CONTEXT",
    "PAKE_MESSAGE_BYTES",
    "SESSION_KEY_BYTES",
    "X25519_PUBLIC_BYTES",
    "CodePake",
    "EphemeralExchange",
    "SessionKey",
]

PAKE_MESSAGE_BYTES = 33
"""Length of one symmetric SPAKE2 message (a side byte plus an Ed25519 group element)."""

SESSION_KEY_BYTES = 32
"""Length of the agreed session key ``K``."""

X25519_PUBLIC_BYTES = 32
"""Length of an X25519 public key."""

DEFAULT_PAKE_CONTEXT = b"doorstep/pake/v1"
"""SPAKE2 identity string binding the exchange to this protocol."""

_CONFIRM_TAG_BYTES = hashlib.sha256().digest_size


class SessionKey:
    """32 secret bytes agreed by both peers; ``repr`` and ``str`` never show them.

    Raw bytes are not exposed: use :meth:`derive` with a purpose string for each use.
    Two keys compare equal (in constant time) when their bytes are equal; keys are not hashable.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        """Wrap ``raw``; raises ``ValueError`` unless it is exactly 32 bytes."""
        if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) != SESSION_KEY_BYTES:
            raise ValueError(f"a session key is exactly {SESSION_KEY_BYTES} bytes")
        self._raw = bytes(raw)

    def __repr__(self) -> str:
        return "SessionKey(<secret>)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionKey):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    __hash__ = None  # type: ignore[assignment]

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """Return ``hkdf_sha256(K, purpose=purpose, length=length)``: an independent subkey."""
        return hkdf_sha256(self._raw, purpose=purpose, length=length)

    def confirm_tag(self, role: str, offerer_fingerprint: str, answerer_fingerprint: str) -> bytes:
        """Return the 32-byte key-confirmation MAC that ``role`` sends for this fingerprint pair.

        Raises ``ValueError`` for an unknown role or a malformed fingerprint.
        """
        key = self.derive(f"doorstep/v1/confirm/{check_role(role)}")
        message = _fingerprint_pair(offerer_fingerprint, answerer_fingerprint)
        return hmac.digest(key, message, "sha256")

    def verify_confirm(
        self, tag: bytes, role: str, offerer_fingerprint: str, answerer_fingerprint: str
    ) -> bool:
        """Return whether ``tag`` is the confirmation ``role`` should have sent (constant time).

        A ``tag`` of the wrong type or length gives ``False``, never an exception. An unknown role
        or a malformed fingerprint (local arguments) raises ``ValueError``.
        """
        expected = self.confirm_tag(role, offerer_fingerprint, answerer_fingerprint)
        if not isinstance(tag, (bytes, bytearray, memoryview)) or len(tag) != _CONFIRM_TAG_BYTES:
            return False
        return hmac.compare_digest(expected, bytes(tag))

    def resume_secret(self, share_id: str) -> bytes:
        """Return 32 bytes to use as the password of a later resume PAKE for ``share_id``.

        Raises ``ValueError`` for an empty ``share_id``.
        """
        if not share_id:
            raise ValueError("share_id must not be empty")
        return self.derive(f"doorstep/v1/resume/{share_id}")


class _Stage(enum.Enum):
    NEW = "new"
    STARTED = "started"
    DONE = "done"


class CodePake:
    """One symmetric SPAKE2 exchange keyed by a password (a code or a resume secret). Single use.

    Call :meth:`start`, send its message, then pass the peer's message to :meth:`finish`.
    A ``str`` password is encoded as UTF-8; an empty password raises ``ValueError``. ``context``
    is SPAKE2's symmetric identity: both sides must use the same one.
    """

    __slots__ = ("_outbound", "_spake", "_stage")

    def __init__(self, password: bytes | str, *, context: bytes = DEFAULT_PAKE_CONTEXT) -> None:
        if isinstance(password, str):
            password = password.encode("utf-8")
        if not isinstance(password, (bytes, bytearray)) or not password:
            raise ValueError("the PAKE password must be non-empty bytes or str")
        self._spake: spake2.SPAKE2_Symmetric | None = spake2.SPAKE2_Symmetric(
            bytes(password), idSymmetric=bytes(context)
        )
        self._stage = _Stage.NEW
        self._outbound = b""

    def __repr__(self) -> str:
        return f"CodePake(stage={self._stage.value!r})"

    def start(self) -> bytes:
        """Return our :data:`PAKE_MESSAGE_BYTES`-byte message. Raises ``PakeError`` if called twice."""
        if self._stage is not _Stage.NEW or self._spake is None:
            raise PakeError("start() can only be called once")
        self._stage = _Stage.STARTED
        try:
            self._outbound = bytes(self._spake.start())
        except Exception as exc:
            self._spake = None
            raise PakeError("SPAKE2 failed to start") from exc
        return self._outbound

    def finish(self, peer_message: bytes) -> SessionKey:
        """Complete the exchange with the peer's message and return the session key.

        Raises ``PakeError`` if :meth:`start` was not called, ``finish`` was already called, the
        message has the wrong type or length, it is our own message reflected back, or SPAKE2
        rejects it. Any call consumes the exchange. A wrong password is *not* detected here: both
        sides get different keys, and key confirmation (:meth:`SessionKey.verify_confirm`) fails.
        """
        if self._stage is _Stage.NEW:
            raise PakeError("finish() called before start()")
        if self._stage is _Stage.DONE:
            raise PakeError("finish() can only be called once")
        self._stage = _Stage.DONE
        exchange, self._spake = self._spake, None
        if exchange is None:
            raise PakeError("the exchange failed to start")
        if not isinstance(peer_message, (bytes, bytearray, memoryview)):
            raise PakeError("the PAKE message must be bytes")
        message = bytes(peer_message)
        if len(message) != PAKE_MESSAGE_BYTES:
            raise PakeError(f"the PAKE message must be {PAKE_MESSAGE_BYTES} bytes, got {len(message)}")
        if hmac.compare_digest(message, self._outbound):
            raise PakeError("the peer reflected our own PAKE message")
        try:
            raw = exchange.finish(message)
        except Exception as exc:
            raise PakeError("the peer's PAKE message was rejected") from exc
        return SessionKey(hkdf_sha256(raw, purpose="doorstep/v1/session"))


class EphemeralExchange:
    """One X25519 exchange for device-authenticated sessions (``nacl.public``). Single use.

    Send :attr:`public_key` (signed by the device identity), then call :meth:`finish` with the
    peer's ephemeral key and both keys in role order. The private key is dropped by ``finish``.
    """

    __slots__ = ("_private", "_public")

    def __init__(self) -> None:
        """Generate a fresh key pair."""
        private = nacl.public.PrivateKey.generate()
        self._private: nacl.public.PrivateKey | None = private
        self._public = bytes(private.public_key)

    def __repr__(self) -> str:
        state = "used" if self._private is None else "fresh"
        return f"EphemeralExchange(public_key={self._public.hex()[:16]}..., {state})"

    @property
    def public_key(self) -> bytes:
        """Our 32-byte X25519 public key (not secret)."""
        return self._public

    def finish(self, peer_public: bytes, *, offerer_public: bytes, answerer_public: bytes) -> SessionKey:
        """Return ``K = hkdf(X25519(ours, peer), "doorstep/v1/device-session", salt=offerer||answerer)``.

        Raises ``PakeError`` if already finished, if any key is not 32 bytes, if the peer sent our
        own key back, or if the shared secret is all zero (a low-order peer key). Raises
        ``ValueError`` if ``{offerer_public, answerer_public}`` is not ``{ours, peer_public}``
        (the caller mixed up the keys). Any call consumes the exchange.
        """
        private, self._private = self._private, None
        if private is None:
            raise PakeError("finish() can only be called once")
        for name, key in (("peer", peer_public), ("offerer", offerer_public), ("answerer", answerer_public)):
            if not isinstance(key, (bytes, bytearray, memoryview)) or len(key) != X25519_PUBLIC_BYTES:
                raise PakeError(f"the {name} X25519 public key must be {X25519_PUBLIC_BYTES} bytes")
        peer, offerer, answerer = bytes(peer_public), bytes(offerer_public), bytes(answerer_public)
        if peer == self._public:
            raise PakeError("the peer reflected our own X25519 public key")
        if (offerer, answerer) not in ((self._public, peer), (peer, self._public)):
            raise ValueError("offerer_public and answerer_public must be our key and the peer's key")
        try:
            shared = nacl.bindings.crypto_scalarmult(bytes(private), peer)
        except Exception as exc:  # libsodium refuses an all-zero result
            raise PakeError("the peer's X25519 key is a low-order point") from exc
        if not any(shared):
            raise PakeError("the peer's X25519 key is a low-order point")
        return SessionKey(hkdf_sha256(shared, purpose="doorstep/v1/device-session", salt=offerer + answerer))


def _fingerprint_pair(offerer_fingerprint: str, answerer_fingerprint: str) -> bytes:
    return length_prefixed(
        canonical_fingerprint(offerer_fingerprint).encode("ascii"),
        canonical_fingerprint(answerer_fingerprint).encode("ascii"),
    )
