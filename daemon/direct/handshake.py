"""Proof of the session key on a fresh TCP connection (sans-I/O).

Whoever opens a TCP connection to a direct candidate must prove, before anything else, that it
holds the session key the two peers agreed during authentication; the listener proves it back.
Wire (both HELLOs are sent at once, the PROOFs in this order)::

    dialer                                  listener
    HELLO  = MAGIC(8) || nonce_d(32)  ->    <-  HELLO = MAGIC(8) || nonce_l(32)
    PROOF_d (32)                      ->        (checked before anything is proven back)
                                      <-  PROOF_l (32)

    PROOF_x = HMAC-SHA256(K_proof, lp("doorstep/v1/direct/proof", x, role_x, nonce_d, nonce_l))

``x`` is ``dialer``/``listener``, ``role_x`` the sender's session role (``offerer``/``answerer``),
``lp`` the length-prefixed encoding of :func:`daemon.crypto.kdf.length_prefixed`, and
``K_proof = session_key.derive("doorstep/v1/direct/proof")``. Each proof covers the verifier's own
fresh nonce, so a recorded proof is worthless; it names the prover's side and role, so a proof
cannot be reflected back. The listener proves nothing to a dialer that did not prove first.

After success both ends hold the connection id (16 bytes of SHA-256 over both nonces, hex) that
the ``direct_select`` messages name, and per-direction stream keys bound to this connection::

    K_stream(role) = HKDF(session_key.derive("doorstep/v1/direct/stream"),
                          info = "doorstep/v1/direct/stream/" + role, salt = nonce_d || nonce_l)

The machine reads exact sizes (:attr:`ProofHandshake.bytes_needed`), so it never consumes bytes
that follow the handshake. Any mismatch raises :class:`HandshakeFailed` and the machine is dead.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets

from daemon.crypto import SessionKey
from daemon.crypto.kdf import check_role, hkdf_sha256, length_prefixed
from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MAGIC", "NONCE_SIZE", "HELLO_SIZE", "PROOF_SIZE", "Side", "DirectKeys", "HandshakeFailed",
           "ProofHandshake"]

MAGIC = b"DSTPDIR1"
NONCE_SIZE = 32
HELLO_SIZE = len(MAGIC) + NONCE_SIZE
PROOF_SIZE = 32
_PROOF_LABEL = b"doorstep/v1/direct/proof"


class Side(enum.Enum):
    DIALER = "dialer"
    LISTENER = "listener"


class HandshakeFailed(RemoteProtocolError):
    """The other end of the TCP connection did not prove the session key (or is not a doorstep peer)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="direct_handshake")


class DirectKeys:
    """The direct-path keys of one authenticated session; ``repr`` never shows them."""

    __slots__ = ("proof", "_stream")

    def __init__(self, proof: bytes, stream: bytes) -> None:
        if len(proof) != 32 or len(stream) != 32:
            raise ValueError("direct keys are 32 bytes")
        self.proof = proof
        self._stream = stream

    @classmethod
    def from_session(cls, key: SessionKey) -> DirectKeys:
        return cls(key.derive("doorstep/v1/direct/proof"), key.derive("doorstep/v1/direct/stream"))

    def __repr__(self) -> str:
        return "DirectKeys(<secret>)"

    def stream_key(self, role: str, nonces: bytes) -> bytes:
        """The secretstream key of what ``role`` sends on the connection with these nonces."""
        return hkdf_sha256(self._stream, purpose=f"doorstep/v1/direct/stream/{check_role(role)}", salt=nonces)


class _State(enum.Enum):
    HELLO = "hello"
    PROOF = "proof"
    DONE = "done"
    FAILED = "failed"


class ProofHandshake:
    """One end of the handshake: send :meth:`start`, then feed exactly :attr:`bytes_needed` bytes
    to :meth:`receive` (sending what it returns) until :attr:`done`."""

    def __init__(self, keys: DirectKeys, *, side: Side, role: str, nonce: bytes | None = None) -> None:
        self._keys = keys
        self.side = side
        self.role = check_role(role)
        self.peer_role = "answerer" if role == "offerer" else "offerer"
        self._nonce = secrets.token_bytes(NONCE_SIZE) if nonce is None else nonce
        if len(self._nonce) != NONCE_SIZE:
            raise LocalProtocolError("a nonce is 32 bytes", code="bad_argument")
        self._peer_nonce: bytes | None = None
        self._state = _State.HELLO
        self._started = False

    # -- the surface -------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def bytes_needed(self) -> int:
        """How many bytes :meth:`receive` takes next (0 once done or failed)."""
        if self._state is _State.HELLO:
            return HELLO_SIZE
        return PROOF_SIZE if self._state is _State.PROOF else 0

    def start(self) -> bytes:
        """Our HELLO, to send first (once)."""
        if self._started:
            raise LocalProtocolError("start() twice", code="state")
        self._started = True
        return MAGIC + self._nonce

    def receive(self, data: bytes) -> bytes:
        """Take the next :attr:`bytes_needed` bytes; return what to send now (maybe ``b""``).
        Raises :class:`HandshakeFailed` for a wrong magic or proof."""
        if not self._started or self._state in (_State.DONE, _State.FAILED):
            raise LocalProtocolError(f"receive() in state {self._state.value}", code="state")
        if len(data) != self.bytes_needed:
            raise LocalProtocolError(f"receive() takes exactly {self.bytes_needed} bytes", code="bad_argument")
        try:
            return self._receive(bytes(data))
        except HandshakeFailed:
            self._state = _State.FAILED
            raise

    @property
    def nonces(self) -> bytes:
        """``nonce_d || nonce_l`` (known once the peer's HELLO arrived)."""
        if self._peer_nonce is None:
            raise LocalProtocolError("nonces are known after the peer's HELLO", code="state")
        mine, theirs = self._nonce, self._peer_nonce
        return mine + theirs if self.side is Side.DIALER else theirs + mine

    @property
    def connection_id(self) -> str:
        """32 hex digits naming this connection on both ends."""
        return hashlib.sha256(b"doorstep/v1/direct/id" + self.nonces).digest()[:16].hex()

    def stream_keys(self) -> tuple[bytes, bytes]:
        """``(send key, receive key)`` for the record layer; only once :attr:`done`."""
        if not self.done:
            raise LocalProtocolError("the handshake is not done", code="state")
        nonces = self.nonces
        return self._keys.stream_key(self.role, nonces), self._keys.stream_key(self.peer_role, nonces)

    # -- the steps -----------------------------------------------------------------------------

    def _receive(self, data: bytes) -> bytes:
        if self._state is _State.HELLO:
            if not hmac.compare_digest(data[: len(MAGIC)], MAGIC):
                raise HandshakeFailed("not a doorstep direct connection")
            self._peer_nonce = data[len(MAGIC):]
            if self._peer_nonce == self._nonce:
                raise HandshakeFailed("the peer echoed our nonce")
            self._state = _State.PROOF
            return self._proof(self.side, self.role) if self.side is Side.DIALER else b""
        peer_side = Side.LISTENER if self.side is Side.DIALER else Side.DIALER
        if not hmac.compare_digest(data, self._proof(peer_side, self.peer_role)):
            raise HandshakeFailed("the peer did not prove the session key")
        self._state = _State.DONE
        return self._proof(self.side, self.role) if self.side is Side.LISTENER else b""

    def _proof(self, side: Side, role: str) -> bytes:
        message = length_prefixed(_PROOF_LABEL, side.value.encode(), role.encode(), self.nonces[:NONCE_SIZE],
                                  self.nonces[NONCE_SIZE:])
        return hmac.digest(self._keys.proof, message, "sha256")
