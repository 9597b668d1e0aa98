"""The direct-path negotiation messages, carried as CONTROL frames over the authenticated data channel.

Sans-I/O. Right after authentication each side sends exactly one ``direct_offer``; then, when the
two offers allow a direct path, the offerer sends one ``direct_select`` naming the connection it
picked (or none) and the answerer replies with one ``direct_select`` confirming it (or none)::

    {"type": "direct_offer", "version": 1, "enabled": true,
     "candidates": [{"ip": "192.168.1.20", "port": 40213}]}
    {"type": "direct_select", "id": "3f9c...32 hex digits" | null}

Everything received is hostile input and validated strictly: the schema is closed (no unknown,
missing or mistyped field, no duplicate key, no NaN), a body is at most :data:`MAX_BODY` bytes,
``ip`` is an IP literal in its canonical text form (no host names, no zone ids), ``port`` is an
int in 1..65535, at most :data:`MAX_CANDIDATES` candidates, no duplicates. A failure raises
``RemoteProtocolError`` (codes ``bad_json``, ``unknown_message``, ``bad_message``, ``version``,
``frame_too_large``); our own bad arguments raise ``LocalProtocolError``.

:func:`peek_direct` tells a direct message from any other CONTROL frame without raising, so that a
peer that does not take part in the negotiation (it starts the transfer protocol straight away) is
recognised rather than refused.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import encode_control_frame
from daemon.protocol.messages import parse_control_json

__all__ = [
    "DIRECT_VERSION",
    "MAX_BODY",
    "MAX_CANDIDATES",
    "Candidate",
    "DirectOffer",
    "DirectSelect",
    "DirectMessage",
    "encode_direct",
    "decode_direct",
    "peek_direct",
]

DIRECT_VERSION = 1
MAX_BODY = 2048
"""Largest CONTROL body of a direct message, in bytes (8 IPv6 candidates need ~600)."""
MAX_CANDIDATES = 8
"""Most candidates one offer may carry."""

_ID_RE = re.compile(r"[0-9a-f]{32}")
_TYPES = ("direct_offer", "direct_select")


def _fail(message: str) -> LocalProtocolError:
    return LocalProtocolError(message, code="bad_message")


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """One TCP endpoint a peer listens on: an IP literal (canonical form) and a port."""

    ip: str
    port: int

    def __post_init__(self) -> None:
        if type(self.ip) is not str or not 2 <= len(self.ip) <= 39 or "%" in self.ip:
            raise _fail("candidate ip must be an IP address literal")
        try:
            parsed = ipaddress.ip_address(self.ip)
        except ValueError:
            raise _fail(f"candidate ip {self.ip!r:.60} is not an IP address literal") from None
        if str(parsed) != self.ip:  # no zone ids, leading zeros, mapped or upper-case spellings
            raise _fail(f"candidate ip {self.ip!r} is not in canonical form ({parsed})")
        mapped = parsed.version == 6 and parsed.ipv4_mapped is not None
        if parsed.is_unspecified or parsed.is_multicast or mapped or (parsed.version == 4 and parsed == _BROADCAST):
            raise _fail(f"candidate ip {self.ip} cannot be connected to")
        if type(self.port) is not int or not 1 <= self.port <= 65535:
            raise _fail("candidate port must be an integer in 1..65535")

    @property
    def address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.ip)


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectOffer:
    """``enabled``: this side takes part (listens and/or dials); ``candidates``: where it listens
    (possibly none: it can still dial the other side's)."""

    enabled: bool
    candidates: tuple[Candidate, ...] = ()

    def __post_init__(self) -> None:
        if type(self.enabled) is not bool:
            raise _fail("enabled must be a boolean")
        if type(self.candidates) is not tuple or not all(type(c) is Candidate for c in self.candidates):
            raise _fail("candidates must be a tuple of Candidate")
        if len(self.candidates) > MAX_CANDIDATES:
            raise _fail(f"at most {MAX_CANDIDATES} candidates")
        if len(set(self.candidates)) != len(self.candidates):
            raise _fail("duplicate candidates")
        if self.candidates and not self.enabled:
            raise _fail("a disabled offer carries no candidates")


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectSelect:
    """The connection to carry the transfer (its id, 32 lower-case hex digits), or None: stay on
    the data channel."""

    id: str | None

    def __post_init__(self) -> None:
        if self.id is not None and (type(self.id) is not str or not _ID_RE.fullmatch(self.id)):
            raise _fail("id must be null or 32 lower-case hex digits")


DirectMessage = DirectOffer | DirectSelect


def encode_direct(message: DirectMessage) -> bytes:
    """One CONTROL frame carrying ``message``."""
    if isinstance(message, DirectOffer):
        obj: dict[str, Any] = {"type": "direct_offer", "version": DIRECT_VERSION, "enabled": message.enabled,
                               "candidates": [{"ip": c.ip, "port": c.port} for c in message.candidates]}
    elif isinstance(message, DirectSelect):
        obj = {"type": "direct_select", "id": message.id}
    else:
        raise LocalProtocolError(f"not a direct message: {type(message).__name__}", code="bad_argument")
    body = json.dumps(obj, separators=(",", ":")).encode("ascii")
    if len(body) > MAX_BODY:  # cannot happen with MAX_CANDIDATES valid candidates; checked anyway
        raise LocalProtocolError("direct message too large", code="frame_too_large")
    return encode_control_frame(body)


def peek_direct(body: bytes) -> bool:
    """Whether a CONTROL body claims to be a direct message (its ``"type"`` starts ``direct_``).
    Never raises: a body that is not even JSON is simply not one."""
    if len(body) > MAX_BODY:
        return False
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return type(obj) is dict and type(obj.get("type")) is str and obj["type"].startswith("direct_")


def decode_direct(body: bytes) -> DirectMessage:
    """Parse and validate one CONTROL body. Raises ``RemoteProtocolError``."""
    if len(body) > MAX_BODY:
        raise RemoteProtocolError(f"direct message of {len(body)} bytes exceeds {MAX_BODY}", code="frame_too_large")
    obj = parse_control_json(body)
    kind = obj.get("type")
    if kind not in _TYPES:
        raise RemoteProtocolError(f"unknown direct message type {kind!r:.60}", code="unknown_message")
    try:
        if kind == "direct_offer":
            return _offer(obj)
        _keys(obj, {"type", "id"})
        return DirectSelect(id=obj["id"])
    except LocalProtocolError as exc:
        raise RemoteProtocolError(f"invalid {kind}: {exc}", code=exc.code) from None


def _keys(obj: dict[str, Any], expected: set[str]) -> None:
    if set(obj) != expected:
        raise _fail(f"fields must be exactly {sorted(expected)}, got {sorted(obj)[:10]}")


def _offer(obj: dict[str, Any]) -> DirectOffer:
    _keys(obj, {"type", "version", "enabled", "candidates"})
    version = obj["version"]
    if type(version) is not int:
        raise _fail("version must be an integer")
    if version != DIRECT_VERSION:
        raise LocalProtocolError(f"peer speaks direct version {version}, we speak {DIRECT_VERSION}", code="version")
    items = obj["candidates"]
    if type(items) is not list:
        raise _fail("candidates must be a list")
    if len(items) > MAX_CANDIDATES:
        raise _fail(f"at most {MAX_CANDIDATES} candidates")
    candidates = []
    for item in items:
        if type(item) is not dict:
            raise _fail("a candidate must be an object")
        _keys(item, {"ip", "port"})
        candidates.append(Candidate(ip=item["ip"], port=item["port"]))
    return DirectOffer(enabled=obj["enabled"], candidates=tuple(candidates))
