"""The STUN responder's codec: RFC 5769 vectors, what gets an answer, what gets none, fuzzing."""

from __future__ import annotations

import binascii
import ipaddress
import struct

import aioice.stun
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.ice.stun import (
    BindingRequest,
    Ignore,
    answer,
    binding_success_response,
    fingerprint,
    parse_binding_request,
)

# RFC 5769 (STUN test vectors), byte for byte. Transaction id b7e7a701bc34d686fa87dfae, password
# "VOkJxbRl1RmTxUk/WvJxBt", mapped address 192.0.2.1:32853 and
# 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
RFC5769_REQUEST = bytes.fromhex(  # 2.1 Sample Request
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"  # SOFTWARE "STUN test client"
    "002400046e0001ff"  # PRIORITY (comprehension-required)
    "80290008932ff9b151263b36"  # ICE-CONTROLLED
    "000600096576746a3a68367659202020"  # USERNAME "evtj:h6vY" (comprehension-required)
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"  # MESSAGE-INTEGRITY
    "80280004e57a3bcf"  # FINGERPRINT
)
RFC5769_IPV4_RESPONSE = bytes.fromhex(  # 2.2 Sample IPv4 Response
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)
RFC5769_IPV6_RESPONSE = bytes.fromhex(  # 2.3 Sample IPv6 Response
    "010100482112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
    "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
    "80280004c8fb0b4c"
)
XOR_MAPPED_IPV4 = bytes.fromhex("002000080001a147e112a643")
XOR_MAPPED_IPV6 = bytes.fromhex("002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9")
IPV6 = "2001:db8:1234:5678:11:2233:4455:6677"


def request(message_type: int = 0x0001, attributes: bytes = b"", *, tid: bytes = TID) -> bytes:
    return struct.pack("!HHI12s", message_type, len(attributes), 0x2112A442, tid) + attributes


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def with_fingerprint(message: bytes) -> bytes:
    body = bytearray(message)
    struct.pack_into("!H", body, 2, len(message) - 20 + 8)
    crc = binascii.crc32(bytes(body)) ^ 0x5354554E
    return bytes(body) + struct.pack("!HHI", 0x8028, 4, crc)


def attribute_types(message: bytes) -> list[int]:
    out, offset = [], 20
    while offset < len(message):
        kind, length = struct.unpack_from("!HH", message, offset)
        out.append(kind)
        offset += 4 + length + (-length % 4)
    return out


# --- RFC 5769 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE])
def test_fingerprint_reproduces_the_rfc5769_vectors(vector: bytes) -> None:
    assert fingerprint(vector[:-8]) == struct.unpack("!I", vector[-4:])[0]


@pytest.mark.parametrize(
    ("address", "xor_mapped"), [("192.0.2.1", XOR_MAPPED_IPV4), (IPV6, XOR_MAPPED_IPV6)]
)
def test_response_is_the_rfc5769_response_minus_software_and_integrity(
    address: str, xor_mapped: bytes
) -> None:
    reply = binding_success_response(TID, address, 32853)
    length = len(xor_mapped) + 8
    head = struct.pack("!HHI12s", 0x0101, length, 0x2112A442, TID) + xor_mapped
    crc = binascii.crc32(head) ^ 0x5354554E
    assert reply == head + struct.pack("!HHI", 0x8028, 4, crc)
    assert attribute_types(reply) == [0x0020, 0x8028]  # no SOFTWARE, no MAPPED-ADDRESS, nothing else


def test_rfc5769_sample_request_is_valid_stun_but_not_answered() -> None:
    """PRIORITY, USERNAME and MESSAGE-INTEGRITY are comprehension-required: we understand none
    in a request (no authentication), so the ICE connectivity check gets no reply."""
    assert parse_binding_request(RFC5769_REQUEST) is Ignore.UNSUPPORTED_ATTRIBUTE
    corrupted = bytearray(RFC5769_REQUEST)
    corrupted[-1] ^= 1
    assert parse_binding_request(bytes(corrupted)) is Ignore.BAD_FINGERPRINT


@pytest.mark.parametrize("vector", [RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE])
def test_rfc5769_responses_are_not_answered(vector: bytes) -> None:
    assert parse_binding_request(vector) is Ignore.NOT_A_REQUEST
    assert answer(vector, "192.0.2.1", 1) is None


# --- what gets an answer ---------------------------------------------------------------------------


def test_minimal_binding_request_is_answered_with_the_source_address() -> None:
    assert parse_binding_request(request()) == BindingRequest(transaction_id=TID)
    reply = answer(request(), "203.0.113.7", 54321)
    assert reply is not None
    parsed = aioice.stun.parse_message(reply)  # checks FINGERPRINT too
    assert parsed.message_method == aioice.stun.Method.BINDING
    assert parsed.message_class == aioice.stun.Class.RESPONSE
    assert parsed.transaction_id == TID
    assert set(parsed.attributes) == {"XOR-MAPPED-ADDRESS", "FINGERPRINT"}
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == ("203.0.113.7", 54321)


def test_request_built_by_aioice_with_fingerprint_is_answered() -> None:
    message = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.REQUEST
    )
    message.attributes["SOFTWARE"] = "aioice"
    message.add_fingerprint()
    reply = answer(bytes(message), "198.51.100.2", 3478)
    assert reply is not None
    parsed = aioice.stun.parse_message(reply)
    assert parsed.transaction_id == message.transaction_id
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == ("198.51.100.2", 3478)


def test_comprehension_optional_attributes_are_fine() -> None:
    unknown_optional = attribute(0xC057, b"\x00\x01\x00\x0a")  # GOOG-NETWORK-INFO, say
    software = attribute(0x8022, b"odd length")
    assert parse_binding_request(request(attributes=unknown_optional + software)) == BindingRequest(TID)
    signed = with_fingerprint(request(attributes=software))
    assert parse_binding_request(signed) == BindingRequest(TID)


def test_ipv4_mapped_source_is_answered_as_ipv4_and_scope_is_dropped() -> None:
    reply = answer(request(), "::ffff:192.0.2.1", 32853)
    assert reply is not None and XOR_MAPPED_IPV4 in reply
    reply = answer(request(), "fe80::1%eth0", 9)
    assert reply is not None
    assert aioice.stun.parse_message(reply).attributes["XOR-MAPPED-ADDRESS"] == ("fe80::1", 9)


def test_response_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        binding_success_response(b"short", "192.0.2.1", 1)
    with pytest.raises(ValueError):
        binding_success_response(TID, "192.0.2.1", 65536)
    with pytest.raises(ValueError):
        binding_success_response(TID, "not an address", 1)


# --- what gets none --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", Ignore.NOT_STUN),
        (request()[:19], Ignore.NOT_STUN),
        (b"\xc0" + request()[1:], Ignore.NOT_STUN),  # top two bits set (RTP, DTLS, ...)
        (request()[:4] + b"\x00\x00\x00\x00" + TID, Ignore.NOT_STUN),  # RFC 3489: no cookie
        (request(0x0011), Ignore.NOT_A_REQUEST),  # Binding indication
        (request(0x0101), Ignore.NOT_A_REQUEST),  # Binding success response
        (request(0x0111), Ignore.NOT_A_REQUEST),  # Binding error response
        (request(0x0003), Ignore.NOT_BINDING),  # Allocate request (TURN)
        (request(0x0004), Ignore.NOT_BINDING),  # Refresh request
        (request() + b"\0\0\0\0", Ignore.MALFORMED),  # length field says 0, datagram longer
        (request(attributes=b"\x80\x22\x00\x02ab"), Ignore.MALFORMED),  # length 6
        (request(attributes=b"\x80\x22\x00\x08abcd"), Ignore.MALFORMED),  # value overruns
        (request(attributes=b"\x80\x22\x00\x02ab\x00\x00" + b"\x80\x22"), Ignore.MALFORMED),
        (request(attributes=attribute(0x0003, b"\0\0\0\x06")), Ignore.UNSUPPORTED_ATTRIBUTE),
        (request(attributes=attribute(0x0006, b"user")), Ignore.UNSUPPORTED_ATTRIBUTE),
        (request(attributes=attribute(0x8028, b"\0\0\0\0")), Ignore.BAD_FINGERPRINT),
        (request(attributes=attribute(0x8028, b"\0" * 8)), Ignore.BAD_FINGERPRINT),
    ],
    ids=lambda value: value.value if isinstance(value, Ignore) else None,
)
def test_not_answered(datagram: bytes, reason: Ignore) -> None:
    assert parse_binding_request(datagram) is reason
    assert answer(datagram, "192.0.2.1", 1) is None


def test_fingerprint_must_be_last() -> None:
    signed = with_fingerprint(request())
    moved = request(attributes=signed[20:] + attribute(0x8022, b"late"))
    assert parse_binding_request(moved) is Ignore.BAD_FINGERPRINT


def test_length_must_be_a_multiple_of_four() -> None:
    datagram = bytearray(request(attributes=attribute(0x8022, b"abcd")))
    datagram[3] = 7
    assert parse_binding_request(bytes(datagram[:27])) is Ignore.MALFORMED


# --- fuzzing: nothing ever raises --------------------------------------------------------------


@settings(max_examples=2000)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(datagram: bytes) -> None:
    result = parse_binding_request(datagram)
    assert isinstance(result, (BindingRequest, Ignore))
    reply = answer(datagram, "192.0.2.1", 1)
    assert (reply is None) == isinstance(result, Ignore)


_attributes = st.lists(
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=6
).map(lambda items: b"".join(attribute(kind, value) for kind, value in items))


@settings(max_examples=1000)
@given(
    message_type=st.integers(0, 0x3FFF),
    attributes=_attributes,
    tid=st.binary(min_size=12, max_size=12),
    sign=st.booleans(),
    cut=st.integers(0, 64),
    flip=st.one_of(st.none(), st.tuples(st.integers(0, 200), st.integers(1, 255))),
)
def test_structured_stun_never_crashes_and_answers_only_binding_requests(
    message_type: int, attributes: bytes, tid: bytes, sign: bool, cut: int, flip: tuple[int, int] | None
) -> None:
    datagram = request(message_type, attributes, tid=tid)
    if sign:
        datagram = with_fingerprint(datagram)
    datagram = bytearray(datagram[: max(0, len(datagram) - cut)] if cut < 8 else datagram)
    if flip is not None and flip[0] < len(datagram):
        datagram[flip[0]] ^= flip[1]
    result = parse_binding_request(bytes(datagram))
    if isinstance(result, BindingRequest):
        assert struct.unpack_from("!H", datagram)[0] == 0x0001
        assert all(kind >= 0x8000 for kind in attribute_types(bytes(datagram)))
        reply = answer(bytes(datagram), "192.0.2.1", 7)
        assert reply is not None and aioice.stun.parse_message(reply).transaction_id == result.transaction_id


@settings(max_examples=500)
@given(
    tid=st.binary(min_size=12, max_size=12),
    address=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    port=st.integers(0, 65535),
)
def test_every_address_round_trips_through_aioice(
    tid: bytes, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    reply = binding_success_response(tid, str(address), port)
    parsed = aioice.stun.parse_message(reply)
    expected = address
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        expected = address.ipv4_mapped
    mapped_host, mapped_port = parsed.attributes["XOR-MAPPED-ADDRESS"]
    assert (ipaddress.ip_address(mapped_host), mapped_port) == (expected, port)
    assert parsed.transaction_id == tid and len(reply) == (40 if expected.version == 4 else 52)
