"""The embedded STUN responder's codec (RFC 5389), sans-I/O: a datagram in, a reply or nothing out.

Only one kind of message gets an answer: a well-formed **Binding request** (class request, method
0x001, magic cookie ``0x2112A442``, 96-bit transaction id, a length that is a multiple of 4 and
matches the datagram, well-formed attribute TLVs, a correct FINGERPRINT if one is present, and no
comprehension-required attribute). The answer is a Binding success response carrying exactly two
attributes: XOR-MAPPED-ADDRESS (the request's source, IPv4 or IPv6) and FINGERPRINT. No SOFTWARE,
no MAPPED-ADDRESS, nothing that identifies the server or grows the reply.

Everything else gets **no reply at all**: indications, responses, other methods, classic RFC 3489
messages without the magic cookie, malformed or truncated datagrams, and requests carrying a
comprehension-required attribute (0x0000-0x7FFF). RFC 5389 would answer the last case with a 420
error response; we implement no comprehension-required attribute (no authentication, no
CHANGE-REQUEST), a plain STUN client sends none, and staying silent keeps the responder from
answering anything but the one message it exists for. :func:`parse_binding_request` says which
rule a datagram broke (:class:`Ignore`) so a server can count them.

No clock, no randomness, no sockets: :mod:`daemon.runtime.stun_server` drives this.
"""

from __future__ import annotations

import binascii
import enum
import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAGIC_COOKIE",
    "BINDING_REQUEST",
    "BINDING_SUCCESS",
    "XOR_MAPPED_ADDRESS",
    "FINGERPRINT",
    "BindingRequest",
    "Ignore",
    "parse_binding_request",
    "binding_success_response",
    "answer",
    "fingerprint",
]

MAGIC_COOKIE: Final = 0x2112A442
HEADER_LENGTH: Final = 20
BINDING_REQUEST: Final = 0x0001
"""Message type: method Binding (0x001), class request."""
BINDING_SUCCESS: Final = 0x0101
"""Message type: method Binding, class success response."""
XOR_MAPPED_ADDRESS: Final = 0x0020
FINGERPRINT: Final = 0x8028
_FINGERPRINT_XOR: Final = 0x5354554E
_COMPREHENSION_OPTIONAL: Final = 0x8000
"""Attribute types below this must be understood by the receiver (RFC 5389 section 15)."""
_FAMILY_IPV4: Final = 0x01
_FAMILY_IPV6: Final = 0x02
_HEADER = struct.Struct("!HHI12s")
_ATTRIBUTE_HEADER = struct.Struct("!HH")


class Ignore(enum.Enum):
    """Why a datagram gets no reply."""

    NOT_STUN = "not_stun"
    """Shorter than a header, top two bits set, or no magic cookie (e.g. RFC 3489)."""
    MALFORMED = "malformed"
    """The length field or the attribute TLVs do not fit the datagram."""
    BAD_FINGERPRINT = "bad_fingerprint"
    """A FINGERPRINT that is wrong, of the wrong size, or not the last attribute."""
    NOT_A_REQUEST = "not_a_request"
    """An indication, a success or an error response."""
    NOT_BINDING = "not_binding"
    """A request for another method (Allocate, Refresh, ...)."""
    UNSUPPORTED_ATTRIBUTE = "unsupported_attribute"
    """A comprehension-required attribute (we understand none in a request)."""


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """A Binding request worth answering."""

    transaction_id: bytes
    """The 96-bit (12-byte) transaction id to echo."""


def fingerprint(message: bytes) -> int:
    """The FINGERPRINT value for ``message``: everything before the FINGERPRINT attribute, with
    a length field that already counts it (CRC-32 XOR ``0x5354554E``)."""
    return binascii.crc32(message) ^ _FINGERPRINT_XOR


def parse_binding_request(datagram: bytes) -> BindingRequest | Ignore:
    """Classify one received datagram: a :class:`BindingRequest` to answer, or why not.

    Never raises for any input.
    """
    if len(datagram) < HEADER_LENGTH or datagram[0] & 0xC0:
        return Ignore.NOT_STUN
    message_type, length, cookie, transaction_id = _HEADER.unpack_from(datagram)
    if cookie != MAGIC_COOKIE:
        return Ignore.NOT_STUN
    if length % 4 or length != len(datagram) - HEADER_LENGTH:
        return Ignore.MALFORMED
    attribute_types = []
    offset = HEADER_LENGTH
    while offset < len(datagram):
        if len(datagram) - offset < _ATTRIBUTE_HEADER.size:
            return Ignore.MALFORMED
        attribute_type, attribute_length = _ATTRIBUTE_HEADER.unpack_from(datagram, offset)
        end = offset + _ATTRIBUTE_HEADER.size + attribute_length + (-attribute_length % 4)
        if end > len(datagram):
            return Ignore.MALFORMED
        if attribute_type == FINGERPRINT and not _fingerprint_ok(datagram, offset, end):
            return Ignore.BAD_FINGERPRINT
        attribute_types.append(attribute_type)
        offset = end
    if (message_type & 0x0110) != 0:  # the class bits C1 (0x100) and C0 (0x010): 00 is request
        return Ignore.NOT_A_REQUEST
    if message_type != BINDING_REQUEST:
        return Ignore.NOT_BINDING
    if any(t < _COMPREHENSION_OPTIONAL for t in attribute_types):
        return Ignore.UNSUPPORTED_ATTRIBUTE
    return BindingRequest(transaction_id=transaction_id)


def _fingerprint_ok(datagram: bytes, offset: int, end: int) -> bool:
    """FINGERPRINT at ``offset`` is 4 bytes, the last attribute, and matches the message."""
    if end != len(datagram) or end - offset != 8:
        return False
    (value,) = struct.unpack_from("!I", datagram, offset + 4)
    return value == fingerprint(datagram[:offset])


def binding_success_response(transaction_id: bytes, address: str, port: int) -> bytes:
    """The Binding success response telling the client it came from ``address``:``port``.

    ``address`` is the datagram's source as the socket reported it: an IPv4-mapped IPv6 address
    is answered as IPv4 and an IPv6 scope (``%eth0``) is dropped. Raises ValueError for a
    transaction id that is not 12 bytes, a port outside 0..65535 or an unparsable address.
    """
    if len(transaction_id) != 12:
        raise ValueError("a STUN transaction id is 12 bytes")
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} is out of range")
    ip = ipaddress.ip_address(address.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    x_port = port ^ (MAGIC_COOKIE >> 16)
    if isinstance(ip, ipaddress.IPv4Address):
        family, key = _FAMILY_IPV4, MAGIC_COOKIE.to_bytes(4, "big")
    else:
        family, key = _FAMILY_IPV6, MAGIC_COOKIE.to_bytes(4, "big") + transaction_id
    x_address = bytes(a ^ k for a, k in zip(ip.packed, key, strict=True))
    value = struct.pack("!BBH", 0, family, x_port) + x_address
    mapped = _ATTRIBUTE_HEADER.pack(XOR_MAPPED_ADDRESS, len(value)) + value
    length = len(mapped) + 8  # + FINGERPRINT
    head = _HEADER.pack(BINDING_SUCCESS, length, MAGIC_COOKIE, transaction_id) + mapped
    return head + _ATTRIBUTE_HEADER.pack(FINGERPRINT, 4) + struct.pack("!I", fingerprint(head))


def answer(datagram: bytes, address: str, port: int) -> bytes | None:
    """The reply to ``datagram`` received from ``address``:``port``, or None for no reply."""
    request = parse_binding_request(datagram)
    if isinstance(request, Ignore):
        return None
    return binding_success_response(request.transaction_id, address, port)
