"""The direct-path negotiation messages: round trips, and hostile bodies refused cleanly."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.direct.messages import (
    MAX_BODY, MAX_CANDIDATES, Candidate, DirectOffer, DirectSelect, decode_direct, encode_direct, peek_direct,
)
from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import ControlFrame, FrameDecoder


def body_of(frame: bytes) -> bytes:
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    parsed = decoder.next_frame()
    assert isinstance(parsed, ControlFrame)
    return parsed.body


def offer_json(**fields: object) -> bytes:
    obj: dict[str, object] = {"type": "direct_offer", "version": 1, "enabled": True,
                              "candidates": [{"ip": "192.168.1.20", "port": 40000}]}
    obj.update(fields)
    return json.dumps(obj).encode()


ipv4 = st.ip_addresses(v=4).filter(lambda a: not (a.is_unspecified or a.is_multicast or str(a) == "255.255.255.255"))
ipv6 = st.ip_addresses(v=6).filter(lambda a: not (a.is_unspecified or a.is_multicast or a.ipv4_mapped))
candidates = st.builds(lambda ip, port: Candidate(ip=str(ip), port=port), ipv4 | ipv6, st.integers(1, 65535))


@given(st.lists(candidates, max_size=MAX_CANDIDATES, unique=True))
def test_offers_round_trip(found: list[Candidate]) -> None:
    offer = DirectOffer(enabled=True, candidates=tuple(found))
    frame = encode_direct(offer)
    assert len(body_of(frame)) <= MAX_BODY
    assert decode_direct(body_of(frame)) == offer


@pytest.mark.parametrize("message", [DirectOffer(enabled=False), DirectSelect(id=None), DirectSelect(id="ab" * 16)])
def test_small_messages_round_trip(message: object) -> None:
    body = body_of(encode_direct(message))  # type: ignore[arg-type]
    assert peek_direct(body) and decode_direct(body) == message


@pytest.mark.parametrize("ip", [
    "example.com", "localhost", "192.168.001.1", "1.2.3", "0.0.0.0", "::", "224.0.0.1", "ff02::1",
    "255.255.255.255", "::ffff:10.0.0.1", "fe80::1%eth0", "FE80::1", "10.0.0.1 ", "", "1.2.3.4/24",
])
def test_candidate_addresses_must_be_canonical_unicast_literals(ip: str) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_direct(offer_json(candidates=[{"ip": ip, "port": 4000}]))
    assert caught.value.code == "bad_message"


@pytest.mark.parametrize("port", [0, -1, 65536, 1.0, "80", True, None, 2**70])
def test_ports_are_integers_in_range(port: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_direct(offer_json(candidates=[{"ip": "10.0.0.1", "port": port}]))


@pytest.mark.parametrize("body", [
    offer_json(candidates=[{"ip": f"10.0.0.{i}", "port": 4000} for i in range(1, MAX_CANDIDATES + 2)]),
    offer_json(candidates=[{"ip": "10.0.0.1", "port": 4000}] * 2),
    offer_json(candidates=[{"ip": "10.0.0.1", "port": 4000, "extra": 1}]),
    offer_json(candidates=[{"ip": "10.0.0.1"}]),
    offer_json(candidates=[["10.0.0.1", 4000]]),
    offer_json(candidates={"ip": "10.0.0.1"}),
    offer_json(enabled=1),
    offer_json(enabled=False),  # a disabled offer with candidates
    offer_json(version=1.0),
    offer_json(extra=True),
    b'{"type":"direct_offer","version":1,"enabled":true,"candidates":[],"enabled":false}',
    b'{"type":"direct_select","id":"AB' + b"0" * 30 + b'"}',
    b'{"type":"direct_select","id":"abc"}',
    b'{"type":"direct_select","id":null,"more":1}',
    b'{"type":"direct_select"}',
    b'{"type":"direct_nonsense"}',
    b'{"type":"direct_offer","version":NaN,"enabled":true,"candidates":[]}',
    b'[1,2]', b'\xff\xfe', b'',
])
def test_hostile_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_direct(body)


def test_another_version_is_reported_as_such() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_direct(offer_json(version=2))
    assert caught.value.code == "version"


def test_oversized_bodies_are_refused_before_parsing() -> None:
    padded = b'{"type":"direct_select","id":null' + b" " * MAX_BODY + b"}"
    assert not peek_direct(padded)
    with pytest.raises(RemoteProtocolError) as caught:
        decode_direct(padded)
    assert caught.value.code == "frame_too_large"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_fail_cleanly(body: bytes) -> None:
    peek_direct(body)
    try:
        decode_direct(body)
    except RemoteProtocolError:
        pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                     max_size=4), max_leaves=20))
def test_arbitrary_json_fields_fail_cleanly(value: object) -> None:
    for body in (offer_json(candidates=value), offer_json(enabled=value), offer_json(version=value),
                 json.dumps({"type": "direct_select", "id": value}).encode()):
        try:
            decode_direct(body)
        except RemoteProtocolError:
            pass


def test_transfer_messages_are_not_direct_messages() -> None:
    assert not peek_direct(b'{"type":"hello","version":1}')
    assert not peek_direct(b"not json")


def test_our_own_mistakes_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        DirectOffer(enabled=True, candidates=tuple(Candidate(ip=f"10.0.0.{i}", port=1) for i in range(9)))
    with pytest.raises(LocalProtocolError):
        Candidate(ip="10.0.0.1", port=0)
