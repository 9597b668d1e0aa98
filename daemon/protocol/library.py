"""Library protocol v1: the small request/response exchange a paired device uses to browse and
pull another device's published folders (sans-I/O; stdlib only).

It runs on the data channel of a ``library-<device id>`` session, after device-mode
authentication, one CONTROL frame (:mod:`.frames`) per message. The browsing device (the
*client*) sends requests, the publishing device (the *server*) answers each with exactly one
reply::

    client                                  server
    list_libraries {}                 -->   libraries {libraries: [...]}
    list {library, prefix, after, limit} -> entries {library, entries: [...], more}
    pull {library, share, files: [...]} -->  sending {share, count, size}
                                             ... then the transfer protocol (docs/protocol.md),
                                             the server sending, ``share`` as its transfer id
    bye {}                            -->   (the server closes)
    any request                       -->   error {code, message}

Every message is a closed JSON object, as in :mod:`.messages`: unknown types, missing, extra or
mistyped fields, duplicate keys, NaN, bools posing as ints are refused. Paths are relative,
'/'-separated, without empty, ``.`` or ``..`` components, backslashes or control characters
(:func:`check_relpath`), so a hostile peer's listing cannot name anything outside the library;
the receiving storage layer still sanitizes every name it places.

Bounds: a CONTROL body is at most 1 MiB (:data:`~.frames.MAX_CONTROL_BODY`); a page of entries
at most :data:`MAX_PAGE`; a pull at most :data:`MAX_PULL_FILES` files; a list of libraries at
most :data:`MAX_LIBRARIES`. Encoding a message that would not fit raises
``LocalProtocolError(code="too_large")`` (the server then sends a smaller page).

Errors follow the h11 convention: constructing an invalid message raises ``LocalProtocolError``
(code ``bad_message``); decoding invalid bytes raises ``RemoteProtocolError`` (``bad_json``,
``unknown_message``, ``bad_message``, or ``unexpected_message`` for a request where a reply was
due and the other way round).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import MAX_CONTROL_BODY, encode_control_frame
from daemon.protocol.messages import MAX_FILE_SIZE, MAX_PATH_CHARS, MAX_TEXT_CHARS, parse_control_json

__all__ = [
    "MAX_PAGE", "MAX_PULL_FILES", "MAX_LIBRARIES", "MAX_PATH_CHARS", "MAX_COMPONENTS", "MAX_SIZE",
    "LibraryInfo", "Entry", "Wanted",
    "ListLibraries", "ListEntries", "Pull", "Bye", "Libraries", "Entries", "Sending", "Failure",
    "Request", "Reply", "check_relpath", "check_library_name", "is_under",
    "encode", "decode_request", "decode_reply",
]

MAX_PAGE = 2000
"""Entries in one ``entries`` reply (and the largest ``limit``)."""
MAX_PULL_FILES = 1000
"""Files in one ``pull``."""
MAX_LIBRARIES = 256
MAX_COMPONENTS = 64
MAX_SIZE = MAX_FILE_SIZE
MAX_TEXT = MAX_TEXT_CHARS

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.-]{0,62}[A-Za-z0-9_-])?")
_SHARE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[a-z0-9_.-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code="bad_message")


def check_relpath(path: object, *, what: str = "path") -> str:
    """Return ``path`` if it is a usable library path: a str of 1..4096 characters, UTF-8
    encodable, '/'-separated, at most 64 components, none empty, ``.`` or ``..``, without
    backslashes or control characters. Raises ``LocalProtocolError(code="bad_message")``."""
    if type(path) is not str:
        raise _fail(f"{what} must be a string")
    if not 1 <= len(path) <= MAX_PATH_CHARS:
        raise _fail(f"{what} must have 1..{MAX_PATH_CHARS} characters")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(f"{what} is not encodable as UTF-8") from None
    if _CONTROL.search(path):
        raise _fail(f"{what} contains a control character or a backslash")
    parts = path.split("/")
    if len(parts) > MAX_COMPONENTS or any(part in ("", ".", "..") for part in parts):
        raise _fail(f"{what} is not a relative path of at most {MAX_COMPONENTS} plain components: {path[:100]!r}")
    return path


def check_library_name(name: object) -> str:
    """Return ``name`` if it names a library: 1..64 of letters, digits, space, ``_.-``, starting
    with a letter or digit and not ending with a space or dot (it becomes a folder name on the
    receiving device). Raises ``LocalProtocolError(code="bad_message")``."""
    if type(name) is not str or _NAME.fullmatch(name) is None:
        raise _fail(f"not a library name: {str(name)[:80]!r}")
    return name


def is_under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it ('' is the root)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _int(name: str, value: object, low: int, high: int = MAX_SIZE) -> None:
    if type(value) is not int or not low <= value <= high:
        raise _fail(f"{name} must be an integer in {low}..{high}")


def _text(name: str, value: object) -> None:
    if type(value) is not str or len(value) > MAX_TEXT:
        raise _fail(f"{name} must be a string of at most {MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(f"{name} is not encodable as UTF-8") from None


def _sha(name: str, value: object) -> None:
    if type(value) is not str or _SHA256.fullmatch(value) is None:
        raise _fail(f"{name} must be 64 lowercase hex digits")


def _seq(name: str, value: object, cls: type, high: int) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(f"{name} must be a list")
    if len(value) > high:
        raise _fail(f"{name} has more than {high} items")
    items = tuple(value)
    if any(not isinstance(item, cls) for item in items):
        raise _fail(f"{name} must hold {cls.__name__} values")
    return items


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LibraryInfo:
    """A library as listed: its name, how many files and bytes its catalogue holds."""

    name: str
    files: int
    size: int

    def __post_init__(self) -> None:
        check_library_name(self.name)
        _int("files", self.files, 0)
        _int("size", self.size, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One catalogue entry: path (relative to the library), size, mtime (ns), SHA-256 (hex)."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    def __post_init__(self) -> None:
        check_relpath(self.path)
        _int("size", self.size, 0)
        _int("mtime_ns", self.mtime_ns, -MAX_SIZE)
        _sha("sha256", self.sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class Wanted:
    """A file asked for: its path and the SHA-256 the client saw listed."""

    path: str
    sha256: str

    def __post_init__(self) -> None:
        check_relpath(self.path)
        _sha("sha256", self.sha256)


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ListLibraries:
    TYPE: ClassVar[str] = "list_libraries"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListEntries:
    """Entries of ``library`` at or below ``prefix`` ('' = all) whose path sorts after ``after``
    ('' = from the start), at most ``limit``."""

    TYPE: ClassVar[str] = "list"
    library: str
    prefix: str = ""
    after: str = ""
    limit: int = MAX_PAGE

    def __post_init__(self) -> None:
        check_library_name(self.library)
        if self.prefix != "":
            check_relpath(self.prefix, what="prefix")
        if self.after != "":
            check_relpath(self.after, what="after")
        _int("limit", self.limit, 1, MAX_PAGE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pull:
    """Send ``files`` of ``library`` as the transfer ``share`` (chosen by the client, so that an
    interrupted pull asked again resumes)."""

    TYPE: ClassVar[str] = "pull"
    library: str
    share: str
    files: tuple[Wanted, ...]

    def __post_init__(self) -> None:
        check_library_name(self.library)
        if type(self.share) is not str or _SHARE.fullmatch(self.share) is None:
            raise _fail("share must be 1..64 of [A-Za-z0-9_-]")
        files = _seq("files", self.files, Wanted, MAX_PULL_FILES)
        if not files:
            raise _fail("a pull names at least one file")
        if len({f.path for f in files}) != len(files):
            raise _fail("a pull names a file twice")
        object.__setattr__(self, "files", files)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bye:
    TYPE: ClassVar[str] = "bye"


@dataclass(frozen=True, slots=True, kw_only=True)
class Libraries:
    TYPE: ClassVar[str] = "libraries"
    libraries: tuple[LibraryInfo, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "libraries", _seq("libraries", self.libraries, LibraryInfo, MAX_LIBRARIES))


@dataclass(frozen=True, slots=True, kw_only=True)
class Entries:
    """A page of entries, sorted by path; ``more``: ask again with ``after`` = the last path."""

    TYPE: ClassVar[str] = "entries"
    library: str
    entries: tuple[Entry, ...]
    more: bool

    def __post_init__(self) -> None:
        check_library_name(self.library)
        entries = _seq("entries", self.entries, Entry, MAX_PAGE)
        if any(a.path >= b.path for a, b in zip(entries, entries[1:])):
            raise _fail("entries must be sorted by path, each path once")
        if type(self.more) is not bool:
            raise _fail("more must be a boolean")
        object.__setattr__(self, "entries", entries)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sending:
    """The pull is accepted: the transfer protocol follows, ``count`` files, ``size`` bytes."""

    TYPE: ClassVar[str] = "sending"
    share: str
    count: int
    size: int

    def __post_init__(self) -> None:
        if type(self.share) is not str or _SHARE.fullmatch(self.share) is None:
            raise _fail("share must be 1..64 of [A-Za-z0-9_-]")
        _int("count", self.count, 1, MAX_PULL_FILES)
        _int("size", self.size, 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """The request is refused: ``not_found`` (no such library, or not published to you),
    ``changed`` (files changed since they were listed; list again), ``bad_request``, ``busy``."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str

    def __post_init__(self) -> None:
        if type(self.code) is not str or _CODE.fullmatch(self.code) is None:
            raise _fail("code must be 1..64 of [a-z0-9_.-]")
        _text("message", self.message)


Request = ListLibraries | ListEntries | Pull | Bye
Reply = Libraries | Entries | Sending | Failure
_REQUESTS: dict[str, type] = {cls.TYPE: cls for cls in (ListLibraries, ListEntries, Pull, Bye)}
_REPLIES: dict[str, type] = {cls.TYPE: cls for cls in (Libraries, Entries, Sending, Failure)}
_NESTED: dict[tuple[type, str], type] = {
    (Pull, "files"): Wanted, (Libraries, "libraries"): LibraryInfo, (Entries, "entries"): Entry,
}


# -- codec ------------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _to_json(getattr(value, f.name)) for f in fields(value)}
    return value


def encode(message: Request | Reply) -> bytes:
    """One CONTROL frame carrying ``message``. Raises ``LocalProtocolError(code="too_large")``
    when its body exceeds 1 MiB."""
    body = json.dumps({"type": message.TYPE, **_to_json(message)}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_CONTROL_BODY:
        raise LocalProtocolError(f"a {message.TYPE} message of {len(body)} bytes does not fit a frame",
                                 code="too_large")
    return encode_control_frame(body)


def _build(cls: type, obj: object) -> Any:
    if type(obj) is not dict:
        raise _fail(f"{cls.__name__} must be a JSON object")
    names = {f.name for f in fields(cls)}
    if not set(obj) <= names:
        raise _fail(f"{cls.__name__}: unknown fields {sorted(set(obj) - names)}")
    values = {}
    for name, value in obj.items():
        nested = _NESTED.get((cls, name))
        if nested is not None:
            if isinstance(value, (str, bytes, dict)) or not isinstance(value, list):
                raise _fail(f"{name} must be a list")
            if len(value) > MAX_PULL_FILES + MAX_PAGE:
                raise _fail(f"{name} is too long")
            value = tuple(_build(nested, item) for item in value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:  # a missing field
        raise _fail(f"{cls.__name__}: {exc}") from None


def _decode(body: bytes, expected: dict[str, type], other: dict[str, type]) -> Any:
    obj = parse_control_json(body)
    kind = obj.pop("type", None)
    if kind in other:
        raise RemoteProtocolError(f"a {kind!r} message is not expected here", code="unexpected_message")
    cls = expected.get(kind) if type(kind) is str else None
    if cls is None:
        raise RemoteProtocolError(f"unknown library message type {str(kind)[:40]!r}", code="unknown_message")
    try:
        return _build(cls, obj)
    except LocalProtocolError as exc:
        raise RemoteProtocolError(str(exc), code="bad_message") from None


def decode_request(body: bytes) -> Request:
    """A CONTROL body received by the server. Raises ``RemoteProtocolError``."""
    return _decode(body, _REQUESTS, _REPLIES)


def decode_reply(body: bytes) -> Reply:
    """A CONTROL body received by the client. Raises ``RemoteProtocolError``."""
    return _decode(body, _REPLIES, _REQUESTS)
