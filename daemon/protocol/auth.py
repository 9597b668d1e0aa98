"""The authentication step: the first CONTROL frames on a data channel, before the transfer protocol.

Sans-I/O: :class:`AuthHandshake` checks the order and shape of the messages of one side; the
driver (``daemon.runtime.authentication``) computes and verifies the cryptography it carries.
Binary fields travel as unpadded base64url text of a fixed decoded length. The *initiator* (the
joiner, who knows why it came: a code, a resume, pairing, a paired device) picks the mode and sends
its ``auth_hello`` first; the *responder* (the host) answers in the same mode or refuses.

Modes (both sides must name the same one)::

    code, resume   hello{pake}        -> confirm{tag}                 -> authenticated
    pair           hello{pake}        -> confirm{tag} -> identity{..} -> authenticated
    device         hello{device_key, ephemeral, signature,
                         rotations?, revoked?}                        -> authenticated
    origin         hello{}                                            -> authenticated

Either side may send ``auth_failed`` at any point; after it nothing else may follow.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import encode_control_frame
from daemon.protocol.messages import MAX_TEXT_CHARS, clip_text, parse_control_json

__all__ = [
    "AUTH_VERSION",
    "AuthMode",
    "AuthState",
    "AuthHello",
    "AuthConfirm",
    "AuthIdentity",
    "AuthFailed",
    "AuthMessage",
    "AuthHandshake",
    "encode_auth",
    "decode_auth",
    "MAX_DEVICE_NAME_CHARS",
    "MAX_ROTATIONS",
    "MAX_REVOKED",
    "Rotation",
]

AUTH_VERSION = 1
MAX_DEVICE_NAME_CHARS = 64
_NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_SIGNAL_RE = re.compile(r"wss?://[!-~]{1,506}")


class AuthMode(enum.StrEnum):
    CODE = "code"
    """SPAKE2 keyed by the share's code."""
    RESUME = "resume"
    """SPAKE2 keyed by the secret both sides derived in an earlier authenticated session."""
    PAIR = "pair"
    """As ``code``, then both sides exchange and pin device keys."""
    DEVICE = "device"
    """Paired devices: Ed25519 signatures over the DTLS fingerprints, X25519 for the key."""
    ORIGIN = "origin"
    """A browser page the appliance served: nothing is proved in-band (a page cannot run SPAKE2
    without hand-written crypto); the page trusts the origin that served it, and the host accepts
    this mode only where that origin is itself (its own signaling server, a live unspent code)."""


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code="bad_message")


def _b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def _unb64(name: str, text: object, length: int) -> bytes:
    if type(text) is not str or len(text) > 128 or not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise _fail(f"{name} must be unpadded base64url text")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _fail(f"{name} is not base64url") from None
    if len(raw) != length:
        raise _fail(f"{name} must decode to {length} bytes, got {len(raw)}")
    return raw


def _check_bytes(name: str, value: object, length: int) -> None:
    if type(value) is not bytes or len(value) != length:
        raise _fail(f"{name} must be {length} bytes")


PAKE_BYTES = 33
KEY_BYTES = 32
SIGNATURE_BYTES = 64
TAG_BYTES = 32
MAX_ROTATIONS = 16
"""Key rotations a device announces at most (``daemon.crypto.rotation.MAX_CHAIN``)."""
MAX_REVOKED = 64
"""Revoked device keys one hello carries at most."""

Rotation = tuple[bytes, bytes, bytes]
"""One key rotation as (old key, new key, the old key's signature); the driver checks the chain."""


def _check_rotations(rotations: object) -> None:
    if type(rotations) is not tuple or len(rotations) > MAX_ROTATIONS:
        raise _fail(f"rotations must be at most {MAX_ROTATIONS} (old, new, signature) links")
    for link in rotations:
        if type(link) is not tuple or len(link) != 3:
            raise _fail("a rotation is (old key, new key, signature)")
        _check_bytes("rotation old key", link[0], KEY_BYTES)
        _check_bytes("rotation new key", link[1], KEY_BYTES)
        _check_bytes("rotation signature", link[2], SIGNATURE_BYTES)


def _check_revoked(revoked: object) -> None:
    if type(revoked) is not tuple or len(revoked) > MAX_REVOKED:
        raise _fail(f"revoked must be at most {MAX_REVOKED} device keys")
    for key in revoked:
        _check_bytes("revoked key", key, KEY_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthHello:
    """Both sides, first. ``pake`` for code/resume/pair; the three device fields for device."""

    TYPE: ClassVar[str] = "auth_hello"
    mode: AuthMode
    seal: bool = False
    """This side wants DATA frames sealed (app-layer encryption); on if either side wants it.
    DTLS protects this flag once the step has proved there is nobody in the middle."""
    pake: bytes | None = None
    device_key: bytes | None = None
    ephemeral: bytes | None = None
    signature: bytes | None = None
    rotations: tuple[Rotation, ...] = ()
    """device: how the sender's first key led to ``device_key`` (empty if it never rotated)."""
    revoked: tuple[bytes, ...] = ()
    """device: keys of devices the sender's owner revoked; a peer that trusts the sender revokes
    them too (a lost device, revoked on the appliance, is refused everywhere)."""

    def __post_init__(self) -> None:
        if not isinstance(self.mode, AuthMode):
            raise _fail("mode must be an AuthMode")
        if type(self.seal) is not bool:
            raise _fail("seal must be a boolean")
        _check_rotations(self.rotations)
        _check_revoked(self.revoked)
        if self.mode is not AuthMode.DEVICE and (self.rotations or self.revoked):
            raise _fail("only a device hello carries rotations or revoked keys")
        device = (self.device_key, self.ephemeral, self.signature)
        if self.mode is AuthMode.ORIGIN:
            if self.pake is not None or any(v is not None for v in device):
                raise _fail("an origin hello carries no pake message or device fields")
            if self.seal:
                raise _fail("an origin session cannot seal DATA frames: it has no shared key")
        elif self.mode is AuthMode.DEVICE:
            if self.pake is not None:
                raise _fail("a device hello carries no pake message")
            _check_bytes("device_key", self.device_key, KEY_BYTES)
            _check_bytes("ephemeral", self.ephemeral, KEY_BYTES)
            _check_bytes("signature", self.signature, SIGNATURE_BYTES)
        else:
            _check_bytes("pake", self.pake, PAKE_BYTES)
            if any(v is not None for v in device):
                raise _fail(f"a {self.mode} hello carries no device fields")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfirm:
    """code/resume/pair: the key-confirmation tag over both DTLS fingerprints."""

    TYPE: ClassVar[str] = "auth_confirm"
    tag: bytes

    def __post_init__(self) -> None:
        _check_bytes("tag", self.tag, TAG_BYTES)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthIdentity:
    """pair: the sender's device key, its chosen name, and its signature over the fingerprints."""

    TYPE: ClassVar[str] = "auth_identity"
    device_key: bytes
    name: str
    signature: bytes
    signal: str | None = None
    """Where the sender can be reached later (its public signaling URL), if it says."""
    rotations: tuple[Rotation, ...] = ()
    """How the sender's first key (which names it) led to ``device_key``; empty if it never rotated."""

    def __post_init__(self) -> None:
        _check_rotations(self.rotations)
        if self.signal is not None and (
            type(self.signal) is not str or not _SIGNAL_RE.fullmatch(self.signal)
        ):
            raise _fail("signal must be a ws:// or wss:// URL of at most 512 printable characters")
        _check_bytes("device_key", self.device_key, KEY_BYTES)
        _check_bytes("signature", self.signature, SIGNATURE_BYTES)
        if type(self.name) is not str or not _NAME_RE.fullmatch(self.name):
            raise _fail(f"name must be 1..{MAX_DEVICE_NAME_CHARS} characters without control characters")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthFailed:
    """Either side: authentication failed; the channel closes after this."""

    TYPE: ClassVar[str] = "auth_failed"
    code: str
    """``unsupported_mode`` (nothing was tested: the initiator may try another mode), or
    ``failed`` (a proof was wrong or missing)."""
    reason: str

    def __post_init__(self) -> None:
        if self.code not in ("unsupported_mode", "failed"):
            raise _fail("code must be unsupported_mode or failed")
        if type(self.reason) is not str or len(self.reason) > MAX_TEXT_CHARS:
            raise _fail("reason must be a string of at most 1024 characters")


AuthMessage = AuthHello | AuthConfirm | AuthIdentity | AuthFailed
_TYPES: dict[str, type[Any]] = {cls.TYPE: cls for cls in (AuthHello, AuthConfirm, AuthIdentity, AuthFailed)}
_BINARY = {"pake": PAKE_BYTES, "device_key": KEY_BYTES, "ephemeral": KEY_BYTES, "signature": SIGNATURE_BYTES,
           "tag": TAG_BYTES}


def encode_auth(message: AuthMessage) -> bytes:
    """The CONTROL frame carrying ``message`` (absent optional fields are left out)."""
    obj: dict[str, Any] = {"type": message.TYPE}
    if isinstance(message, AuthHello):
        obj["version"] = AUTH_VERSION
    for field in fields(message):
        value = getattr(message, field.name)
        if value is None or (field.name == "seal" and value is False) or value == ():
            continue
        if field.name == "rotations":
            obj["rotations"] = [{"old": _b64(o), "new": _b64(n), "signature": _b64(sig)} for o, n, sig in value]
            continue
        if field.name == "revoked":
            obj["revoked"] = [_b64(key) for key in value]
            continue
        if isinstance(value, bool):
            obj[field.name] = value
            continue
        obj[field.name] = _b64(value) if isinstance(value, bytes) else str(value)
    return encode_control_frame(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())


def decode_auth(body: bytes) -> AuthMessage:
    """Parse one CONTROL body of the authentication step. Raises ``RemoteProtocolError``."""
    obj = parse_control_json(body)
    kind = obj.pop("type", None)
    cls = _TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise RemoteProtocolError(f"expected an authentication message, got {kind!r:.80}", code="unknown_message")
    if cls is AuthHello and obj.pop("version", None) != AUTH_VERSION:
        raise RemoteProtocolError(f"peer speaks another authentication version (we speak {AUTH_VERSION})",
                                  code="version")
    names = {f.name for f in fields(cls)}
    try:
        if not set(obj) <= names:
            raise _fail(f"{kind}: unknown fields {sorted(set(obj) - names)}")
        values: dict[str, Any] = {}
        for name, value in obj.items():
            if name == "rotations":
                values[name] = _decode_rotations(value)
            elif name == "revoked":
                if type(value) is not list or len(value) > MAX_REVOKED:
                    raise _fail(f"revoked must be a list of at most {MAX_REVOKED} keys")
                values[name] = tuple(_unb64("revoked key", key, KEY_BYTES) for key in value)
            elif name in _BINARY:
                values[name] = _unb64(name, value, _BINARY[name])
            elif name == "mode":
                if value not in tuple(AuthMode):
                    raise _fail(f"unknown mode {value!r:.40}")
                values[name] = AuthMode(value)
            else:
                values[name] = value
        return cls(**values)
    except (LocalProtocolError, TypeError) as exc:
        raise RemoteProtocolError(f"invalid {kind}: {exc}", code="bad_message") from None


_HELLO_ONLY = (AuthMode.DEVICE, AuthMode.ORIGIN)
"""Modes whose whole exchange is the two hellos."""


def _decode_rotations(value: object) -> tuple[Rotation, ...]:
    if type(value) is not list or len(value) > MAX_ROTATIONS:
        raise _fail(f"rotations must be a list of at most {MAX_ROTATIONS} links")
    links = []
    for link in value:
        if type(link) is not dict or set(link) != {"old", "new", "signature"}:
            raise _fail("a rotation is an object with exactly old, new and signature")
        links.append((_unb64("rotation old key", link["old"], KEY_BYTES),
                      _unb64("rotation new key", link["new"], KEY_BYTES),
                      _unb64("rotation signature", link["signature"], SIGNATURE_BYTES)))
    return tuple(links)


class AuthState(enum.Enum):
    START = "start"
    HELLO_SENT = "hello_sent"
    CONFIRMING = "confirming"
    """Peer's hello is in; waiting for ours/theirs confirm."""
    IDENTIFYING = "identifying"
    """pair: keys confirmed; exchanging identities."""
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


class AuthHandshake:
    """Order and consistency of one side's authentication messages.

    ``send_*`` return the frame to send (and raise ``LocalProtocolError`` when out of order);
    :meth:`receive` takes one received CONTROL body and returns the decoded message, raising
    ``RemoteProtocolError`` when it is malformed, out of order or names another mode. The driver
    calls :meth:`mark_authenticated` once the cryptography checked out, or :meth:`send_failed`.
    """

    def __init__(self, mode: AuthMode | None) -> None:
        """``mode``: the initiator's choice; ``None`` for a responder, which adopts the mode of
        the peer's first ``auth_hello``."""
        self.mode = AuthMode(mode) if mode is not None else None
        self.state = AuthState.START
        self._peer_hello = self._sent_confirm = self._peer_confirm = False
        self._sent_identity = self._peer_identity = False

    def _need(self, *states: AuthState) -> None:
        if self.state not in states:
            raise LocalProtocolError(f"not allowed in state {self.state.value}", code="bad_state")

    def send_hello(self, hello: AuthHello) -> bytes:
        self._need(AuthState.START)
        if self.mode is None:
            raise LocalProtocolError("a responder sends its hello after the peer's", code="bad_state")
        if hello.mode is not self.mode:
            raise _fail("hello names another mode")
        self.state = AuthState.HELLO_SENT if not self._peer_hello else AuthState.CONFIRMING
        return encode_auth(hello)

    def send_confirm(self, tag: bytes) -> bytes:
        self._need(AuthState.CONFIRMING)
        if self.mode in _HELLO_ONLY or self._sent_confirm:
            raise LocalProtocolError("no confirm to send", code="bad_state")
        self._sent_confirm = True
        return encode_auth(AuthConfirm(tag=tag))

    def send_identity(self, device_key: bytes, name: str, signature: bytes, signal: str | None = None,
                      rotations: tuple[Rotation, ...] = ()) -> bytes:
        self._need(AuthState.IDENTIFYING)
        if self._sent_identity:
            raise LocalProtocolError("identity already sent", code="bad_state")
        self._sent_identity = True
        return encode_auth(AuthIdentity(device_key=device_key, name=name, signature=signature, signal=signal,
                                        rotations=rotations))

    def send_failed(self, reason: str, *, code: str = "failed") -> bytes:
        self.state = AuthState.FAILED
        return encode_auth(AuthFailed(code=code, reason=clip_text(reason)))

    def confirmed(self) -> None:
        """The peer's confirm tag verified (code/resume/pair)."""
        self._need(AuthState.CONFIRMING)
        if not (self._sent_confirm and self._peer_confirm):
            raise LocalProtocolError("both confirms must be exchanged first", code="bad_state")
        self.state = AuthState.IDENTIFYING if self.mode is AuthMode.PAIR else AuthState.AUTHENTICATED

    def mark_authenticated(self) -> None:
        """Everything the mode requires was received and verified."""
        if self.mode in _HELLO_ONLY:
            self._need(AuthState.CONFIRMING)
        elif self.mode is AuthMode.PAIR:
            self._need(AuthState.IDENTIFYING)
            if not (self._sent_identity and self._peer_identity):
                raise LocalProtocolError("identities must be exchanged first", code="bad_state")
        else:
            self._need(AuthState.AUTHENTICATED)
        self.state = AuthState.AUTHENTICATED

    def receive(self, body: bytes) -> AuthMessage:
        if self.state in (AuthState.FAILED, AuthState.AUTHENTICATED):
            raise RemoteProtocolError("message after the authentication step ended", code="bad_state")
        message = decode_auth(body)
        if isinstance(message, AuthFailed):
            self.state = AuthState.FAILED
            return message
        if isinstance(message, AuthHello):
            if self._peer_hello:
                raise self._remote("a second auth_hello")
            if self.mode is None:
                self.mode = message.mode
            if message.mode is not self.mode:
                raise self._remote(f"peer wants mode {message.mode}, we use {self.mode}", code="auth_mode")
            self._peer_hello = True
            if self.state is AuthState.HELLO_SENT:
                self.state = AuthState.CONFIRMING
        elif isinstance(message, AuthConfirm):
            if self.mode in _HELLO_ONLY or not self._peer_hello or self._peer_confirm:
                raise self._remote("an unexpected auth_confirm")
            self._peer_confirm = True
        else:
            if self.mode is not AuthMode.PAIR or self.state is not AuthState.IDENTIFYING or self._peer_identity:
                raise self._remote("an unexpected auth_identity")
            self._peer_identity = True
        return message

    def _remote(self, text: str, code: str = "bad_state") -> RemoteProtocolError:
        self.state = AuthState.FAILED
        return RemoteProtocolError(f"peer sent {text}" if not text.startswith("peer") else text, code=code)
