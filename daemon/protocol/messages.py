"""Transfer protocol v1 control messages: typed values and their strict JSON codec.

Every CONTROL frame body is one JSON object ``{"type": <name>, <fields>...}``. The
schema is closed: an unknown ``type``, a missing, extra or mistyped field, a duplicate
key, ``NaN``/``Infinity``, a float where an int is expected or a ``bool`` posing as an int
are all rejected. Field names on the wire equal the dataclass field names below.

Each message is a frozen, slotted, keyword-only dataclass that validates itself on
construction and raises ``LocalProtocolError(code="bad_message")`` (our own mistake).
:func:`decode_message` turns any such failure in received bytes into
``RemoteProtocolError`` with the codes ``bad_json`` (not UTF-8 JSON, or not an object),
``unknown_message``, ``bad_message`` and ``version`` (a ``hello`` with another version).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import encode_control_frame
from daemon.protocol.transfer_compression import MAX_CODECS, is_codec_name

__all__ = [
    "PROTOCOL_VERSION",
    "MIN_WINDOW",
    "MAX_FILES",
    "MAX_PATH_CHARS",
    "MAX_FILE_SIZE",
    "MAX_TEXT_CHARS",
    "FileEntry",
    "Hello",
    "Offer",
    "Accept",
    "Reject",
    "Ack",
    "Verified",
    "Done",
    "Cancel",
    "Error",
    "Message",
    "encode_message",
    "decode_message",
    "clip_text",
    "parse_control_json",
    "is_error_code",
]

PROTOCOL_VERSION = 1
MIN_WINDOW = 64 * 1024
MAX_FILES = 100_000
MAX_PATH_CHARS = 4096
MAX_FILE_SIZE = (1 << 63) - 1
MAX_TEXT_CHARS = 1024
"""Longest ``reason`` / ``message`` string."""

_TRANSFER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ERROR_CODE = re.compile(r"[a-z0-9_.-]{1,64}")


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code="bad_message")


def _check_int(name: str, value: object, low: int, high: int = MAX_FILE_SIZE) -> None:
    if type(value) is not int:
        raise _fail(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _fail(f"{name}={value} is outside {low}..{high}")


def _check_text(name: str, value: object, max_chars: int = MAX_TEXT_CHARS) -> None:
    if type(value) is not str:
        raise _fail(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > max_chars:
        raise _fail(f"{name} is longer than {max_chars} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(f"{name} is not encodable as UTF-8") from None


def _as_tuple(name: str, value: object) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(f"{name} must be a sequence")
    return tuple(value)


def clip_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """``text`` shortened to fit a ``reason``/``message`` field, unencodable characters
    replaced (for building messages from arbitrary exception text)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def is_error_code(code: object) -> bool:
    """``code`` is a valid ``error.code``: 1..64 of ``[a-z0-9_.-]``."""
    return type(code) is str and _ERROR_CODE.fullmatch(code) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """One file of a manifest.

    ``path``: 1..4096 characters, relative, ``/``-separated. The protocol checks only type
    and length; the receiver's storage layer sanitizes names. ``size``: 0..2**63-1.
    ``sha256``: 64 lowercase hex digits.
    """

    path: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        _check_text("path", self.path, MAX_PATH_CHARS)
        if not self.path:
            raise _fail("path is empty")
        _check_int("size", self.size, 0)
        if type(self.sha256) is not str or not _SHA256_HEX.fullmatch(self.sha256):
            raise _fail("sha256 must be 64 lowercase hex digits")


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """First message of both sides.

    ``sealed``: this side seals DATA frames (app-layer encryption, SEALED_DATA frames); both
    sides must say the same. Optional on the wire: written only when true, absent means false,
    so a plaintext ``hello`` is ``{"type":"hello","version":1}``.

    ``compress``: the DATA codecs this side has (``("zstd",)``), 1..8 distinct names of 1..32
    ``[a-z0-9_-]``; COMPRESSED_DATA frames are used only with a codec both sides list. Optional on
    the wire: written only when not empty (an empty list on the wire is ``bad_message``).
    """

    TYPE: ClassVar[str] = "hello"
    version: int = PROTOCOL_VERSION
    sealed: bool = False
    compress: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if type(self.version) is not int or self.version != PROTOCOL_VERSION:
            raise _fail(f"this implementation speaks version {PROTOCOL_VERSION} only")
        if type(self.sealed) is not bool:
            raise _fail("sealed must be a boolean")
        codecs = _as_tuple("compress", self.compress)
        object.__setattr__(self, "compress", codecs)
        if len(codecs) > MAX_CODECS or not all(is_codec_name(name) for name in codecs):
            raise _fail(f"compress holds at most {MAX_CODECS} names of 1..32 [a-z0-9_-]")
        if len(set(codecs)) != len(codecs):
            raise _fail("duplicate name in compress")


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """Sender -> receiver: the manifest. ``files`` holds 1..100000 entries with distinct
    paths (any sequence is accepted and stored as a tuple)."""

    TYPE: ClassVar[str] = "offer"
    transfer_id: str
    files: tuple[FileEntry, ...]

    def __post_init__(self) -> None:
        if type(self.transfer_id) is not str or not _TRANSFER_ID.fullmatch(self.transfer_id):
            raise _fail("transfer_id must be 1..64 characters of [A-Za-z0-9_-]")
        files = _as_tuple("files", self.files)
        object.__setattr__(self, "files", files)
        if not 1 <= len(files) <= MAX_FILES:
            raise _fail(f"an offer holds 1..{MAX_FILES} files, got {len(files)}")
        if not all(type(entry) is FileEntry for entry in files):
            raise _fail("files must be FileEntry values")
        if len({entry.path for entry in files}) != len(files):
            raise _fail("duplicate path in offer")


@dataclass(frozen=True, slots=True, kw_only=True)
class Accept:
    """Receiver -> sender: one durable offset per offered file, and the flow-control
    window in bytes (>= 64 KiB). Whether the offsets fit the offer is checked by the
    state machines, not here."""

    TYPE: ClassVar[str] = "accept"
    offsets: tuple[int, ...]
    window: int

    def __post_init__(self) -> None:
        offsets = _as_tuple("offsets", self.offsets)
        object.__setattr__(self, "offsets", offsets)
        if not 1 <= len(offsets) <= MAX_FILES:
            raise _fail(f"accept holds 1..{MAX_FILES} offsets, got {len(offsets)}")
        for offset in offsets:
            _check_int("offset", offset, 0)
        _check_int("window", self.window, MIN_WINDOW)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """Receiver -> sender: the offer is declined."""

    TYPE: ClassVar[str] = "reject"
    reason: str

    def __post_init__(self) -> None:
        _check_text("reason", self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ack:
    """Receiver -> sender: bytes ``[0, offset)`` of ``file`` are durable."""

    TYPE: ClassVar[str] = "ack"
    file: int
    offset: int

    def __post_init__(self) -> None:
        _check_int("file", self.file, 0, MAX_FILES - 1)
        _check_int("offset", self.offset, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """Receiver -> sender: ``file`` matched its hash and is final."""

    TYPE: ClassVar[str] = "verified"
    file: int

    def __post_init__(self) -> None:
        _check_int("file", self.file, 0, MAX_FILES - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """Receiver -> sender: every file is verified."""

    TYPE: ClassVar[str] = "done"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel:
    """Either side: stop the transfer (not an error)."""

    TYPE: ClassVar[str] = "cancel"
    reason: str

    def __post_init__(self) -> None:
        _check_text("reason", self.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """Either side: a fatal error. ``code`` is 1..64 of ``[a-z0-9_.-]``."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str

    def __post_init__(self) -> None:
        if not is_error_code(self.code):
            raise _fail("code must be 1..64 characters of [a-z0-9_.-]")
        _check_text("message", self.message)


Message = Hello | Offer | Accept | Reject | Ack | Verified | Done | Cancel | Error

_MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls for cls in (Hello, Offer, Accept, Reject, Ack, Verified, Done, Cancel, Error)
}
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(field.name for field in fields(cls)) for cls in (FileEntry, *_MESSAGE_TYPES.values())
}
_OPTIONAL_FIELDS: dict[type[Any], frozenset[str]] = {Hello: frozenset({"sealed", "compress"})}
"""Fields that may be absent on the wire (they then take their default, and the encoder leaves
them out while they hold it)."""


def encode_message(message: Message) -> bytes:
    """The complete CONTROL frame carrying ``message``.

    Raises ``LocalProtocolError(code="frame_too_large")`` if the JSON exceeds 1 MiB.
    """
    obj: dict[str, Any] = {"type": message.TYPE}
    for name in _FIELD_NAMES[type(message)]:
        obj[name] = getattr(message, name)
    if isinstance(message, Offer):
        obj["files"] = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in message.files]
    elif isinstance(message, Accept):
        obj["offsets"] = list(message.offsets)
    elif isinstance(message, Hello):
        if not message.sealed:
            del obj["sealed"]
        if message.compress:
            obj["compress"] = list(message.compress)
        else:
            del obj["compress"]
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return encode_control_frame(text.encode("utf-8"))


def decode_message(body: bytes) -> Message:
    """Parse and validate one CONTROL body. Raises ``RemoteProtocolError``."""
    obj = parse_control_json(body)
    kind = obj.get("type")
    cls = _MESSAGE_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise RemoteProtocolError(f"unknown message type {kind!r:.80}", code="unknown_message")
    version = obj.get("version")
    if cls is Hello and type(version) is int and version != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            f"peer speaks version {version!s:.20}, we speak {PROTOCOL_VERSION}",
            code="version",
        )
    try:
        message: Message = _build(cls, obj, extra={"type"})
        return message
    except LocalProtocolError as exc:
        raise RemoteProtocolError(f"invalid {kind}: {exc}", code=exc.code) from exc


def parse_control_json(body: bytes) -> dict[str, Any]:
    """One CONTROL body as a JSON object: strict UTF-8 JSON, no duplicate keys, no NaN/Infinity.

    Raises ``RemoteProtocolError(code="bad_json")``.
    """
    try:
        obj = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RemoteProtocolError(f"control body is not JSON: {exc}", code="bad_json") from exc
    if type(obj) is not dict:
        raise RemoteProtocolError("control body is not a JSON object", code="bad_json")
    return obj


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _build(cls: type[Any], obj: object, *, extra: set[str] | frozenset[str] = frozenset()) -> Any:
    """Construct ``cls`` from a JSON object whose keys are exactly its fields (+ ``extra``)."""
    if type(obj) is not dict:
        raise _fail(f"{cls.__name__} must be a JSON object")
    expected = set(_FIELD_NAMES[cls])
    keys = set(obj) - set(extra)
    missing = expected - keys - _OPTIONAL_FIELDS.get(cls, frozenset())
    if missing or not keys <= expected:
        unknown = sorted(keys - expected)
        raise _fail(f"{cls.__name__}: missing fields {sorted(missing)}, unknown fields {unknown}")
    values = {name: obj[name] for name in expected & keys}
    if cls is Offer:
        values["files"] = _json_list("files", values["files"], lambda item: _build(FileEntry, item))
    elif cls is Accept:
        values["offsets"] = _json_list("offsets", values["offsets"], lambda item: item)
    elif cls is Hello and "compress" in values:
        values["compress"] = _json_list("compress", values["compress"], lambda item: item)
        if not values["compress"]:
            raise _fail("compress is written only when it names a codec")
    return cls(**values)


def _json_list(name: str, value: object, convert: Callable[[Any], Any]) -> tuple[Any, ...]:
    if type(value) is not list:
        raise _fail(f"{name} must be a JSON array")
    if len(value) > MAX_FILES:
        raise _fail(f"{name} holds more than {MAX_FILES} items")
    return tuple(convert(item) for item in value)
