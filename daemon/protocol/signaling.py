"""Signaling protocol v1 messages: typed values and their strict JSON codec (sans-I/O).

A signaling frame is one WebSocket *text* frame of at most :data:`MAX_FRAME_BYTES` UTF-8 bytes
holding one JSON object ``{"type": <name>, <fields>...}``. The schema is closed: an unknown
``type``, a missing, extra, ``null`` (where not allowed) or mistyped field, a duplicate key,
``NaN``/``Infinity``, or a ``bool`` posing as an int are all rejected. Field names on the wire
equal the dataclass field names below. ``docs/signaling.md`` is the prose version of this module.

Every message is a frozen, slotted, keyword-only dataclass that validates itself on construction
and raises ``LocalProtocolError(code="bad_message")`` (our own mistake). The parsers turn any
failure in received text into :class:`MessageError` (a ``RemoteProtocolError``) whose ``code`` is
an :class:`ErrorCode` value and whose ``request_id`` is the request's ``id`` when one could be
read, so a server can answer ``error`` with the id echoed. :func:`serialize` raises
``LocalProtocolError`` for a message that cannot be sent (``message_too_large`` above the
frame limit).

Direction matters: :func:`parse_client_message` accepts only client-to-server types and
:func:`parse_server_message` only server-to-client types (``relay``, ``text`` and ``presence``
are both, with a different class per direction for ``text`` and ``presence``).

This module is stdlib only: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "SIGNALING_PATH",
    "MAX_FRAME_BYTES",
    "MAX_DATA_DEPTH",
    "MAX_REQUEST_ID",
    "MAX_REQUEST_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_JOIN_FIELD_CHARS",
    "HOST_KEY_MIN_CHARS",
    "HOST_KEY_MAX_CHARS",
    "MAX_ROOM_TEXT_CHARS",
    "MAX_ROOM_NAME_CHARS",
    "MAX_ROOM_PASSWORD_CHARS",
    "MAX_ROOM_MEMBERS_LISTED",
    "MAX_ICE_SERVERS",
    "MAX_ICE_URLS",
    "MAX_ICE_URL_CHARS",
    "MAX_ICE_USERNAME_CHARS",
    "MAX_ICE_CREDENTIAL_CHARS",
    "MAX_PRESENCE_SHARES",
    "MessageType",
    "ErrorCode",
    "CloseCode",
    "RequestId",
    "MessageError",
    "Host",
    "Hosted",
    "Unhost",
    "Unhosted",
    "Join",
    "Joined",
    "Peer",
    "Relay",
    "Leave",
    "Left",
    "Ping",
    "Pong",
    "Error",
    "Hello",
    "Welcome",
    "Resume",
    "Resumed",
    "RoomCreate",
    "RoomCreated",
    "RoomJoin",
    "RoomJoined",
    "RoomLeave",
    "RoomLeft",
    "MemberJoined",
    "MemberLeft",
    "Text",
    "RoomText",
    "Presence",
    "PresenceReply",
    "ClientMessage",
    "ServerMessage",
    "Message",
    "CLIENT_MESSAGE_TYPES",
    "SERVER_MESSAGE_TYPES",
    "parse_client_message",
    "parse_server_message",
    "serialize",
    "is_share_id",
    "is_code",
    "is_session_id",
    "is_room_id",
    "is_resume_token",
]

PROTOCOL_VERSION: Final = 1
SIGNALING_PATH: Final = "/signal/v1"
"""The WebSocket resource; the version lives in the path."""
MAX_FRAME_BYTES: Final = 64 * 1024
"""Largest text frame, in UTF-8 bytes, either direction."""
MAX_DATA_DEPTH: Final = 32
"""Deepest nesting of a ``relay``'s ``data`` (the object itself is depth 1)."""
MAX_REQUEST_ID: Final = 2**53 - 1
"""Largest ``|id|`` for an integer request id (the JavaScript safe-integer range)."""
MAX_REQUEST_ID_CHARS: Final = 64
MAX_TEXT_CHARS: Final = 1024
"""Longest ``error.message``."""
MAX_JOIN_FIELD_CHARS: Final = 128
"""Longest ``join.code`` / ``join.share`` string (their format is checked by the server)."""
HOST_KEY_MIN_CHARS: Final = 16
HOST_KEY_MAX_CHARS: Final = 128
MAX_ROOM_TEXT_CHARS: Final = 4096
"""Longest ``text`` relayed to a room."""
MAX_ROOM_NAME_CHARS: Final = 64
MAX_ROOM_PASSWORD_CHARS: Final = 256
MAX_ROOM_MEMBERS_LISTED: Final = 256
"""Longest ``room_joined.members`` list (servers cap rooms well below this)."""
MAX_ICE_SERVERS: Final = 4
"""Most entries in an ``ice`` list (``joined``/``peer``)."""
MAX_ICE_URLS: Final = 4
"""Most ``urls`` of one ICE server."""
MAX_ICE_URL_CHARS: Final = 256
MAX_ICE_USERNAME_CHARS: Final = 256
MAX_ICE_CREDENTIAL_CHARS: Final = 256
MAX_PRESENCE_SHARES: Final = 32
"""Most share ids one ``presence`` request may ask about (and its reply may list)."""

_SHARE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CODE = re.compile(r"[0-9]{6}")
_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_RESUME_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")
_MEMBER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ICE_URL = re.compile(r"(?:stun|turns?):[\x21-\x7e]+")
_ICE_SERVER_FIELDS = frozenset({"urls", "username", "credential"})


class MessageType(enum.StrEnum):
    """Every ``type`` value of signaling v1."""

    # client -> server
    HOST = "host"
    UNHOST = "unhost"
    JOIN = "join"
    LEAVE = "leave"
    PING = "ping"
    HELLO = "hello"
    RESUME = "resume"
    ROOM_CREATE = "room_create"
    ROOM_JOIN = "room_join"
    ROOM_LEAVE = "room_leave"
    # both directions
    RELAY = "relay"
    TEXT = "text"
    """Client to server: ``Text``; server to client: ``RoomText`` (adds ``member``)."""
    PRESENCE = "presence"
    """Client to server: ``Presence`` (``shares``); server to client: ``PresenceReply``
    (``online``)."""
    # server -> client
    HOSTED = "hosted"
    UNHOSTED = "unhosted"
    JOINED = "joined"
    PEER = "peer"
    LEFT = "left"
    PONG = "pong"
    ERROR = "error"
    WELCOME = "welcome"
    RESUMED = "resumed"
    ROOM_CREATED = "room_created"
    ROOM_JOINED = "room_joined"
    ROOM_LEFT = "room_left"
    MEMBER_JOINED = "member_joined"
    MEMBER_LEFT = "member_left"


class ErrorCode(enum.StrEnum):
    """``code`` values of ``error`` replies. Clients must tolerate codes not listed here."""

    BAD_MESSAGE = "bad_message"
    """Malformed JSON, unknown type, or a missing, unknown or mistyped field."""
    MESSAGE_TOO_LARGE = "message_too_large"
    """A relay whose forwarded frame would exceed the frame limit."""
    JOIN_FAILED = "join_failed"
    """Every join failure, whatever the reason (never says which)."""
    UNKNOWN_SESSION = "unknown_session"
    """``relay``/``leave`` for a session that does not exist or that the sender is no party of."""
    UNKNOWN_SHARE = "unknown_share"
    """``unhost`` of a share this socket does not host."""
    HOST_KEY_MISMATCH = "host_key_mismatch"
    """``host`` of a share that is hosted with another ``host_key``."""
    TRY_LATER = "try_later"
    """The server cannot serve the request now (e.g. no free code); retrying later may work."""
    RESUME_FAILED = "resume_failed"
    """``resume`` with a token that is unknown, expired or used, or from a socket that already
    hosts, joins or is in a room (one reply for all)."""
    UNKNOWN_ROOM = "unknown_room"
    """``text``/``room_leave`` for a room that does not exist or that the sender is not in."""
    RATE_LIMITED = "rate_limited"
    """Too many requests of this kind (``presence``) in the sliding window; retry later."""


class CloseCode(enum.IntEnum):
    """WebSocket close codes the signaling server uses (4000-4999 are application codes)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    """The server shuts down."""
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    """A binary frame was received."""
    MESSAGE_TOO_BIG = 1009
    """A frame above :data:`MAX_FRAME_BYTES`."""
    INTERNAL_ERROR = 1011
    JOIN_TIMEOUT = 4000
    """The socket neither hosted nor joined within the join timeout."""
    HEARTBEAT_TIMEOUT = 4001
    """The peer missed too many WebSocket pings in a row."""
    QUEUE_OVERFLOW = 4002
    """The peer did not read fast enough; its outgoing queue overflowed."""


RequestId: TypeAlias = int | str


class MessageError(RemoteProtocolError):
    """Received text is not a valid signaling message.

    ``code`` is an :class:`ErrorCode` value (``bad_message`` or ``message_too_large``);
    ``request_id`` is the message's ``id`` when it could be read, else ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = ErrorCode.BAD_MESSAGE,
        request_id: RequestId | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.request_id = request_id


# --- validation helpers (raise LocalProtocolError: constructing a bad message is our bug) -------


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code=ErrorCode.BAD_MESSAGE)


def _short(value: object) -> str:
    """A bounded repr for error messages: peers must not make us echo 64 KiB back."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800" escape
        return False
    return True


def _check_str(name: str, value: object, *, min_chars: int = 0, max_chars: int) -> None:
    if not isinstance(value, str):
        raise _fail(f"{name} must be a string, got {type(value).__name__}")
    if not min_chars <= len(value) <= max_chars:
        raise _fail(f"{name} must be {min_chars}..{max_chars} characters long")
    if not _is_encodable(value):
        raise _fail(f"{name} is not valid Unicode")


def _check_pattern(name: str, value: object, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str):
        raise _fail(f"{name} must be a string, got {type(value).__name__}")
    if pattern.fullmatch(value) is None:
        raise _fail(f"{name} must be {what}")


def _check_share(name: str, value: object) -> None:
    _check_pattern(name, value, _SHARE_ID, "16..64 characters of [A-Za-z0-9_-]")


def _check_session(name: str, value: object) -> None:
    _check_pattern(name, value, _SESSION_ID, "1..64 characters of [A-Za-z0-9_-]")


def _check_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        raise _fail(f"{name} must be true or false, got {type(value).__name__}")


def _check_id(value: object) -> None:
    if value is None:
        return
    if type(value) is int:
        if not -MAX_REQUEST_ID <= value <= MAX_REQUEST_ID:
            raise _fail(f"id must be within +-{MAX_REQUEST_ID}")
        return
    if type(value) is str:
        _check_str("id", value, min_chars=1, max_chars=MAX_REQUEST_ID_CHARS)
        return
    raise _fail(f"id must be an integer or a string, got {type(value).__name__}")


def _check_json_object(name: str, value: object) -> None:
    """``value`` is a JSON object of bounded depth made only of JSON values (iterative walk)."""
    if not isinstance(value, dict):
        raise _fail(f"{name} must be a JSON object, got {type(value).__name__}")
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DATA_DEPTH:
                raise _fail(f"{name} is nested deeper than {MAX_DATA_DEPTH}")
            for key, child in item.items():
                if type(key) is not str:
                    raise _fail(f"{name} has a non-string key")
                if not _is_encodable(key):
                    raise _fail(f"{name} has a key that is not valid Unicode")
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DATA_DEPTH:
                raise _fail(f"{name} is nested deeper than {MAX_DATA_DEPTH}")
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if not _is_encodable(item):
                raise _fail(f"{name} holds a string that is not valid Unicode")
        elif item is None or isinstance(item, (bool, int)):
            pass
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _fail(f"{name} holds a non-finite number")
        else:
            raise _fail(f"{name} holds a {type(item).__name__}, which is not a JSON value")


def _check_ice(value: object) -> None:
    """``value`` is None or a list of ICE servers ``{urls, username?, credential?}`` (the
    ``RTCIceServer`` shape, ``urls`` always a list). Messages never echo a username or a
    credential: they are secrets."""
    if value is None:
        return
    if type(value) is not list or not 1 <= len(value) <= MAX_ICE_SERVERS:
        raise _fail(f"ice must be a list of 1..{MAX_ICE_SERVERS} servers")
    for server in value:
        if type(server) is not dict:
            raise _fail("ice[] must be objects")
        unknown = server.keys() - _ICE_SERVER_FIELDS
        if unknown:
            raise _fail(f"ice[]: unknown field {_short(next(iter(unknown)))}")
        urls = server.get("urls")
        if type(urls) is not list or not 1 <= len(urls) <= MAX_ICE_URLS:
            raise _fail(f"ice[].urls must be a list of 1..{MAX_ICE_URLS} URLs")
        for url in urls:
            if type(url) is not str or len(url) > MAX_ICE_URL_CHARS or _ICE_URL.fullmatch(url) is None:
                raise _fail(
                    f"ice[].urls[] must be stun:, turn: or turns: URLs of at most "
                    f"{MAX_ICE_URL_CHARS} printable ASCII characters"
                )
        if ("username" in server) != ("credential" in server):
            raise _fail("ice[]: username and credential go together")
        if "username" in server:
            for name, limit in (
                ("username", MAX_ICE_USERNAME_CHARS),
                ("credential", MAX_ICE_CREDENTIAL_CHARS),
            ):
                item = server[name]
                if type(item) is not str or not 1 <= len(item) <= limit or not _is_encodable(item):
                    raise _fail(f"ice[].{name} must be a string of 1..{limit} characters")


def _optional() -> Any:
    """A field that may be absent on the wire (then ``None``); an explicit null is invalid."""
    return field(default=None, metadata={"omit_none": True})


# --- client -> server ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """Register ``share`` on this socket (replacing any other socket's registration of it, given
    the same ``host_key``); with ``code`` true, also allocate a 6-digit code for it."""

    TYPE: ClassVar[MessageType] = MessageType.HOST
    share: str
    host_key: str
    code: bool
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_share("share", self.share)
        _check_str(
            "host_key", self.host_key, min_chars=HOST_KEY_MIN_CHARS, max_chars=HOST_KEY_MAX_CHARS
        )
        _check_bool("code", self.code)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unhost:
    """Stop hosting ``share``; its live code dies."""

    TYPE: ClassVar[MessageType] = MessageType.UNHOST
    share: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_share("share", self.share)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Join:
    """Join a hosted share by ``code`` or by ``share`` id (exactly one of them).

    Their format is deliberately not checked here: a malformed code must get the same
    ``join_failed`` reply as an unknown one, so only type and length are schema errors.
    """

    TYPE: ClassVar[MessageType] = MessageType.JOIN
    code: str | None = _optional()
    share: str | None = _optional()
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        if (self.code is None) == (self.share is None):
            raise _fail("join needs exactly one of code and share")
        if self.code is not None:
            _check_str("code", self.code, max_chars=MAX_JOIN_FIELD_CHARS)
        if self.share is not None:
            _check_str("share", self.share, max_chars=MAX_JOIN_FIELD_CHARS)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    """Opaque ``data`` for the other end of ``session`` (both directions; the server never sets
    ``id`` on a relay it forwards)."""

    TYPE: ClassVar[MessageType] = MessageType.RELAY
    session: str
    data: dict[str, Any]
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_session("session", self.session)
        _check_json_object("data", self.data)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Leave:
    """End ``session``; both ends then get ``left``."""

    TYPE: ClassVar[MessageType] = MessageType.LEAVE
    session: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_session("session", self.session)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """Application-level liveness check; answered by ``pong``."""

    TYPE: ClassVar[MessageType] = MessageType.PING
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_id(self.id)


# --- server -> client ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hosted:
    """``share`` is hosted by this socket; ``code`` and ``expires_at`` (unix seconds) are both
    set or both ``None``."""

    TYPE: ClassVar[MessageType] = MessageType.HOSTED
    share: str
    code: str | None
    expires_at: float | None
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_share("share", self.share)
        if (self.code is None) != (self.expires_at is None):
            raise _fail("code and expires_at are both set or both null")
        if self.code is not None:
            _check_pattern("code", self.code, _CODE, "6 digits")
        if self.expires_at is not None:
            if type(self.expires_at) not in (int, float) or not math.isfinite(self.expires_at):
                raise _fail("expires_at must be a finite number")
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Unhosted:
    """``share`` is no longer hosted by this socket: the reply to ``unhost``, or unsolicited
    (no ``id``) when another socket re-hosted it with the same host key."""

    TYPE: ClassVar[MessageType] = MessageType.UNHOSTED
    share: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_share("share", self.share)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Joined:
    """The reply to a successful ``join``: ``session`` now links this socket with the host.
    ``ice``: the STUN/TURN servers (with fresh TURN credentials) this end may use, if the server
    hands any out."""

    TYPE: ClassVar[MessageType] = MessageType.JOINED
    session: str
    share: str
    ice: list[dict[str, Any]] | None = _optional()
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_session("session", self.session)
        _check_share("share", self.share)
        _check_ice(self.ice)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """Sent to a host: someone joined ``share``; ``session`` links them. ``ice`` as in
    :class:`Joined`."""

    TYPE: ClassVar[MessageType] = MessageType.PEER
    session: str
    share: str
    ice: list[dict[str, Any]] | None = _optional()

    def __post_init__(self) -> None:
        _check_session("session", self.session)
        _check_share("share", self.share)
        _check_ice(self.ice)


@dataclass(frozen=True, slots=True, kw_only=True)
class Left:
    """``session`` is over: the other end left or disconnected, or (with ``id``) the reply to
    this socket's own ``leave``."""

    TYPE: ClassVar[MessageType] = MessageType.LEFT
    session: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_session("session", self.session)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong:
    """The reply to ``ping``."""

    TYPE: ClassVar[MessageType] = MessageType.PONG
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """A request failed; ``id`` echoes the request's id when it had a readable one."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: str
    message: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_pattern("code", self.code, _ERROR_CODE, "1..64 characters of [a-z0-9_]")
        _check_str("message", self.message, max_chars=MAX_TEXT_CHARS)
        _check_id(self.id)


# --- resume ------------------------------------------------------------------------------------


def _check_token(name: str, value: object) -> None:
    _check_pattern(name, value, _RESUME_TOKEN, "32..64 characters of [A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """Ask for a resume token for this socket (opt-in; each ``hello`` replaces the token)."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome:
    """The reply to ``hello``: ``token`` resumes this socket's state from a new socket within
    ``grace`` seconds after this one is lost. The token is a secret, sent only here."""

    TYPE: ClassVar[MessageType] = MessageType.WELCOME
    token: str
    grace: float
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_token("token", self.token)
        if type(self.grace) not in (int, float) or not 0 < self.grace < math.inf:
            raise _fail("grace must be a positive finite number")
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume:
    """Take over the shares, sessions and rooms of the lost socket that ``token`` belongs to.
    Only type and length are schema errors: a malformed token gets ``resume_failed``."""

    TYPE: ClassVar[MessageType] = MessageType.RESUME
    token: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_str("token", self.token, max_chars=MAX_JOIN_FIELD_CHARS)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """The reply to a successful ``resume``; ``token`` is the new token (the old one is spent).
    Frames queued for the lost socket follow, in order."""

    TYPE: ClassVar[MessageType] = MessageType.RESUMED
    token: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_token("token", self.token)
        _check_id(self.id)


# --- rooms -------------------------------------------------------------------------------------


def _check_room(name: str, value: object) -> None:
    _check_pattern(name, value, _ROOM_ID, "16..64 characters of [A-Za-z0-9_-]")


def _check_member(name: str, value: object) -> None:
    _check_pattern(name, value, _MEMBER_ID, "1..64 characters of [A-Za-z0-9_-]")


def _check_room_name(value: object) -> None:
    if value is not None:
        _check_str("name", value, min_chars=1, max_chars=MAX_ROOM_NAME_CHARS)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomCreate:
    """Create a password-protected room and become its first member."""

    TYPE: ClassVar[MessageType] = MessageType.ROOM_CREATE
    password: str
    name: str | None = _optional()
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_str("password", self.password, min_chars=1, max_chars=MAX_ROOM_PASSWORD_CHARS)
        _check_room_name(self.name)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomCreated:
    """The reply to ``room_create``: ``room`` is the new room's id (random, never derived from
    the password), ``member`` this socket's member id in it, ``expires_at`` unix seconds."""

    TYPE: ClassVar[MessageType] = MessageType.ROOM_CREATED
    room: str
    member: str
    expires_at: float
    name: str | None = _optional()
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_member("member", self.member)
        if type(self.expires_at) not in (int, float) or not math.isfinite(self.expires_at):
            raise _fail("expires_at must be a finite number")
        _check_room_name(self.name)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomJoin:
    """Join ``room`` with its password. Like ``join``, only type and length are schema errors:
    a malformed room id gets the same ``join_failed`` reply as a wrong password."""

    TYPE: ClassVar[MessageType] = MessageType.ROOM_JOIN
    room: str
    password: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_str("room", self.room, max_chars=MAX_JOIN_FIELD_CHARS)
        _check_str("password", self.password, min_chars=1, max_chars=MAX_ROOM_PASSWORD_CHARS)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomJoined:
    """The reply to a successful ``room_join``: this socket's ``member`` id and the ids of the
    other ``members`` already in the room."""

    TYPE: ClassVar[MessageType] = MessageType.ROOM_JOINED
    room: str
    member: str
    members: list[str]
    expires_at: float
    name: str | None = _optional()
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_member("member", self.member)
        if not isinstance(self.members, list) or len(self.members) > MAX_ROOM_MEMBERS_LISTED:
            raise _fail(f"members must be a list of at most {MAX_ROOM_MEMBERS_LISTED} ids")
        for member in self.members:
            _check_member("members[]", member)
        if type(self.expires_at) not in (int, float) or not math.isfinite(self.expires_at):
            raise _fail("expires_at must be a finite number")
        _check_room_name(self.name)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLeave:
    """Leave ``room``; the others get ``member_left``."""

    TYPE: ClassVar[MessageType] = MessageType.ROOM_LEAVE
    room: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomLeft:
    """The reply to ``room_leave``: this socket is no longer in ``room``."""

    TYPE: ClassVar[MessageType] = MessageType.ROOM_LEFT
    room: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined:
    """Sent to the members of ``room``: ``member`` joined it."""

    TYPE: ClassVar[MessageType] = MessageType.MEMBER_JOINED
    room: str
    member: str

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_member("member", self.member)


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLeft:
    """Sent to the members of ``room``: ``member`` left it (or its socket closed)."""

    TYPE: ClassVar[MessageType] = MessageType.MEMBER_LEFT
    room: str
    member: str

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_member("member", self.member)


@dataclass(frozen=True, slots=True, kw_only=True)
class Text:
    """Client to server: relay ``text`` to every other member of ``room``. No success reply."""

    TYPE: ClassVar[MessageType] = MessageType.TEXT
    room: str
    text: str
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_str("text", self.text, max_chars=MAX_ROOM_TEXT_CHARS)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoomText:
    """Server to client (``type`` ``text``): ``member`` of ``room`` said ``text``."""

    TYPE: ClassVar[MessageType] = MessageType.TEXT
    room: str
    member: str
    text: str

    def __post_init__(self) -> None:
        _check_room("room", self.room)
        _check_member("member", self.member)
        _check_str("text", self.text, max_chars=MAX_ROOM_TEXT_CHARS)


# --- presence ----------------------------------------------------------------------------------


def _check_share_list(name: str, value: object, *, ordered: bool) -> None:
    """A list of at most :data:`MAX_PRESENCE_SHARES` share ids; with ``ordered``, strictly
    increasing (sorted, no duplicates)."""
    if type(value) is not list or len(value) > MAX_PRESENCE_SHARES:
        raise _fail(f"{name} must be a list of at most {MAX_PRESENCE_SHARES} share ids")
    for item in value:
        _check_share(f"{name}[]", item)
    if ordered and any(a >= b for a, b in zip(value, value[1:])):
        raise _fail(f"{name} must be sorted, without duplicates")


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence:
    """Client to server: which of ``shares`` (share ids the asker already knows, e.g. the inbox
    addresses of its paired devices) are hosted by some socket right now? Rate limited."""

    TYPE: ClassVar[MessageType] = MessageType.PRESENCE
    shares: list[str]
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_share_list("shares", self.shares, ordered=False)
        _check_id(self.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceReply:
    """Server to client (``type`` ``presence``): the reply to ``presence``; ``online`` is the
    subset of the asked shares hosted right now, sorted, without duplicates."""

    TYPE: ClassVar[MessageType] = MessageType.PRESENCE
    online: list[str]
    id: RequestId | None = _optional()

    def __post_init__(self) -> None:
        _check_share_list("online", self.online, ordered=True)
        _check_id(self.id)


ClientMessage: TypeAlias = (
    Host
    | Unhost
    | Join
    | Relay
    | Leave
    | Ping
    | Hello
    | Resume
    | RoomCreate
    | RoomJoin
    | RoomLeave
    | Text
    | Presence
)
ServerMessage: TypeAlias = (
    Hosted
    | Unhosted
    | Joined
    | Peer
    | Relay
    | Left
    | Pong
    | Error
    | Welcome
    | Resumed
    | RoomCreated
    | RoomJoined
    | RoomLeft
    | MemberJoined
    | MemberLeft
    | RoomText
    | PresenceReply
)
Message: TypeAlias = ClientMessage | ServerMessage

CLIENT_MESSAGE_TYPES: Final[dict[str, type[ClientMessage]]] = {
    cls.TYPE.value: cls
    for cls in (
        Host,
        Unhost,
        Join,
        Relay,
        Leave,
        Ping,
        Hello,
        Resume,
        RoomCreate,
        RoomJoin,
        RoomLeave,
        Text,
        Presence,
    )
}
SERVER_MESSAGE_TYPES: Final[dict[str, type[ServerMessage]]] = {
    cls.TYPE.value: cls
    for cls in (
        Hosted,
        Unhosted,
        Joined,
        Peer,
        Relay,
        Left,
        Pong,
        Error,
        Welcome,
        Resumed,
        RoomCreated,
        RoomJoined,
        RoomLeft,
        MemberJoined,
        MemberLeft,
        RoomText,
        PresenceReply,
    )
}


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    required: bool
    omit_none: bool


def _field_specs(cls: type) -> dict[str, _FieldSpec]:
    return {
        f.name: _FieldSpec(
            required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
            omit_none=bool(f.metadata.get("omit_none")),
        )
        for f in dataclasses.fields(cls)
    }


_FIELDS: Final[dict[type, dict[str, _FieldSpec]]] = {
    cls: _field_specs(cls)
    for cls in {*CLIENT_MESSAGE_TYPES.values(), *SERVER_MESSAGE_TYPES.values()}
}


# --- codec --------------------------------------------------------------------------------------


class _Rejected(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Rejected("duplicate key")
    return result


def _reject_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected("number out of range")
    return value


def _readable_id(value: object) -> RequestId | None:
    try:
        _check_id(value)
    except LocalProtocolError:
        return None
    return value  # type: ignore[return-value]


def _parse(text: str, table: dict[str, type[Any]]) -> Any:
    if not isinstance(text, str):
        raise LocalProtocolError("signaling frames are text (str)", code=ErrorCode.BAD_MESSAGE)
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
        raise MessageError(
            f"frame larger than {MAX_FRAME_BYTES} bytes", code=ErrorCode.MESSAGE_TOO_LARGE
        )
    try:
        obj = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except _Rejected as exc:
        raise MessageError(f"malformed JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limit, deep nesting
        raise MessageError("malformed JSON") from exc
    if not isinstance(obj, dict):
        raise MessageError("a message must be a JSON object")
    request_id = _readable_id(obj.get("id"))
    kind = obj.get("type")
    if type(kind) is not str:
        raise MessageError('"type" must be a string', request_id=request_id)
    cls = table.get(kind)
    if cls is None:
        raise MessageError(f"unknown message type {_short(kind)}", request_id=request_id)
    specs = _FIELDS[cls]
    for key in obj:
        if key != "type" and key not in specs:
            raise MessageError(f"{kind}: unknown field {_short(key)}", request_id=request_id)
    for name, spec in specs.items():
        if name not in obj:
            if spec.required:
                raise MessageError(f"{kind}: missing field {name!r}", request_id=request_id)
        elif spec.omit_none and obj[name] is None:
            raise MessageError(f"{kind}: {name} must not be null", request_id=request_id)
    arguments = {key: value for key, value in obj.items() if key != "type"}
    try:
        return cls(**arguments)
    except LocalProtocolError as exc:
        raise MessageError(f"{kind}: {exc}", request_id=request_id) from exc


def parse_client_message(text: str) -> ClientMessage:
    """Parse one frame a client sent to the server.

    Raises:
        MessageError: the text is not a valid client-to-server message (``code`` says why:
            ``message_too_large`` above :data:`MAX_FRAME_BYTES`, else ``bad_message``).
        LocalProtocolError: ``text`` is not a ``str`` (a caller bug).
    """
    return _parse(text, CLIENT_MESSAGE_TYPES)  # type: ignore[no-any-return]


def parse_server_message(text: str) -> ServerMessage:
    """Parse one frame the server sent to a client. Raises as :func:`parse_client_message`."""
    return _parse(text, SERVER_MESSAGE_TYPES)  # type: ignore[no-any-return]


def serialize(message: Message) -> str:
    """The compact JSON text frame for ``message``.

    Raises:
        LocalProtocolError: code ``message_too_large`` when the frame would exceed
            :data:`MAX_FRAME_BYTES`; code ``bad_message`` when ``message`` is not a signaling
            message or its ``data`` was mutated into something that is not JSON.
    """
    specs = _FIELDS.get(type(message))
    if specs is None:
        raise LocalProtocolError(
            f"not a signaling message: {type(message).__name__}", code=ErrorCode.BAD_MESSAGE
        )
    obj: dict[str, Any] = {"type": message.TYPE.value}
    for name, spec in specs.items():
        value = getattr(message, name)
        if value is None and spec.omit_none:
            continue
        obj[name] = value
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        size = len(text.encode("utf-8"))
    except (ValueError, TypeError, RecursionError) as exc:
        raise LocalProtocolError(
            f"{message.TYPE.value} cannot be encoded: {exc}", code=ErrorCode.BAD_MESSAGE
        ) from exc
    if size > MAX_FRAME_BYTES:
        raise LocalProtocolError(
            f"{message.TYPE.value} frame is {size} bytes, more than {MAX_FRAME_BYTES}",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )
    return text


def is_share_id(value: object) -> bool:
    """Whether ``value`` is a well-formed share id (``[A-Za-z0-9_-]{16,64}``)."""
    return type(value) is str and _SHARE_ID.fullmatch(value) is not None


def is_code(value: object) -> bool:
    """Whether ``value`` is a well-formed code (6 ASCII digits)."""
    return type(value) is str and _CODE.fullmatch(value) is not None


def is_session_id(value: object) -> bool:
    """Whether ``value`` is a well-formed session id (``[A-Za-z0-9_-]{1,64}``)."""
    return type(value) is str and _SESSION_ID.fullmatch(value) is not None


def is_room_id(value: object) -> bool:
    """Whether ``value`` is a well-formed room id (``[A-Za-z0-9_-]{16,64}``)."""
    return type(value) is str and _ROOM_ID.fullmatch(value) is not None


def is_resume_token(value: object) -> bool:
    """Whether ``value`` is a well-formed resume token (``[A-Za-z0-9_-]{32,64}``)."""
    return type(value) is str and _RESUME_TOKEN.fullmatch(value) is not None
