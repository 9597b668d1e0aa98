"""The direct-path negotiation: two sides over an in-memory stand-in for the authenticated data
channel, racing real TCP connections on 127.0.0.1."""

from __future__ import annotations

import json
import math
import os

import pytest
import trio

from daemon.crypto import SessionKey
from daemon.direct import DirectOffer, negotiate_direct
from daemon.direct.addresses import dial_plan, listen_addresses
from daemon.direct.messages import Candidate, encode_direct
from daemon.protocol.frames import encode_control_frame
from daemon.transfer.errors import TransferFailed

LOOPBACK = ("127.0.0.1",)


class MemoryChannel:
    """One end of an in-memory message pipe: the ``MessageTransport`` seam the data channel fills."""

    max_message_size = 65536
    route = "host"
    route_detail = "host/host"

    def __init__(self, send: trio.MemorySendChannel[bytes], receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._send, self._receive = send, receive

    async def send(self, data: bytes) -> None:
        await self._send.send(data)

    async def receive(self) -> bytes:
        return await self._receive.receive()


def channel_pair() -> tuple[MemoryChannel, MemoryChannel]:
    a_send, b_receive = trio.open_memory_channel[bytes](math.inf)
    b_send, a_receive = trio.open_memory_channel[bytes](math.inf)
    return MemoryChannel(a_send, a_receive), MemoryChannel(b_send, b_receive)


async def negotiate_both(*, offerer: dict | None = None, answerer: dict | None = None,
                         keys: tuple[SessionKey, SessionKey] | None = None):
    key = SessionKey(os.urandom(32))
    keys = keys or (key, key)
    a, b = channel_pair()
    results: dict[str, object] = {}

    async def side(name: str, channel: MemoryChannel, session_key: SessionKey, options: dict) -> None:
        options = {"enabled": True, "addresses": LOOPBACK, **options}
        results[name] = await negotiate_direct(channel, session_key, name, **options)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(side, "offerer", a, keys[0], offerer or {})
            nursery.start_soon(side, "answerer", b, keys[1], answerer or {})
    return results["offerer"], results["answerer"]


async def test_both_enabled_on_loopback_go_direct_on_one_connection() -> None:
    offerer, answerer = await negotiate_both()
    assert offerer.direct is not None and answerer.direct is not None
    assert offerer.route == answerer.route == "direct"
    local, remote = offerer.route_detail.removeprefix("tcp ").split(" -> ")
    assert answerer.route_detail == f"tcp {remote} -> {local}"
    await offerer.transport.send(b"ping")
    assert await answerer.transport.receive() == b"ping"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(offerer.aclose)
        nursery.start_soon(answerer.aclose)


@pytest.mark.parametrize("who", ["offerer", "answerer"])
async def test_either_side_saying_no_keeps_the_data_channel(who: str) -> None:
    options = {who: {"enabled": False}}
    offerer, answerer = await negotiate_both(**options)
    assert offerer.direct is None and answerer.direct is None
    assert offerer.route == answerer.route == "host"
    assert "disabled" in offerer.reason and "disabled" in answerer.reason


@pytest.mark.parametrize("who", ["offerer", "answerer"])
async def test_a_side_with_no_usable_address_agrees_on_the_data_channel(who: str) -> None:
    """One side's only address is not ours (it cannot listen) and is not loopback (it may not
    dial the other's loopback candidate): both agree on the data channel after the race."""
    offerer, answerer = await negotiate_both(**{who: {"addresses": ("192.0.2.1",), "timeout": 1.0}},
                                             **{"answerer" if who == "offerer" else "offerer": {"timeout": 1.0}})
    assert offerer.direct is None and answerer.direct is None


async def test_a_dialer_only_side_reaches_the_listener() -> None:
    offerer, answerer = await negotiate_both(answerer={"addresses": LOOPBACK})
    assert offerer.direct is not None and answerer.direct is not None
    offerer.close()
    answerer.close()


async def test_different_session_keys_never_connect() -> None:
    """A peer that does not hold the session key (here: both hold different ones) proves nothing;
    both fall back to the data channel once the race times out."""
    keys = (SessionKey(os.urandom(32)), SessionKey(os.urandom(32)))
    with trio.fail_after(15):
        offerer, answerer = await negotiate_both(keys=keys, offerer={"timeout": 1.0}, answerer={"timeout": 1.0})
    assert offerer.direct is None and answerer.direct is None
    # Nothing of the negotiation is left on the channel for the transfer protocol to read (the
    # answerer's closing direct_select{null} was consumed by the offerer).
    await answerer.transport.send(b"the transfer starts")
    assert await offerer.transport.receive() == b"the transfer starts"
    await offerer.transport.send(b"and answers")
    assert await answerer.transport.receive() == b"and answers"


async def test_a_peer_that_does_not_negotiate_gets_its_frames_back() -> None:
    """An older peer starts the transfer protocol at once: its frames reach the transfer driver."""
    a, b = channel_pair()
    hello = encode_control_frame(b'{"type":"hello","version":1}')
    await b.send(hello)
    path = await negotiate_direct(a, SessionKey(os.urandom(32)), "offerer", enabled=True, addresses=LOOPBACK)
    assert path.direct is None and "does not offer" in path.reason
    assert await path.transport.receive() == hello
    assert path.transport.max_message_size == 65536 and path.route == "host"
    first = await b.receive()
    assert b"direct_offer" in first  # what we said: the older peer's problem, not ours


async def test_a_peer_breaking_the_negotiation_fails_the_transfer() -> None:
    a, b = channel_pair()
    await b.send(encode_direct(DirectOffer(enabled=True, candidates=(Candidate(ip="127.0.0.1", port=9),))))
    await b.send(encode_direct(DirectOffer(enabled=True)))  # where a direct_select is due
    with pytest.raises(TransferFailed):
        await negotiate_direct(a, SessionKey(os.urandom(32)), "answerer", enabled=True, addresses=LOOPBACK)


async def test_strangers_on_the_listener_are_dropped_without_effect() -> None:
    """While the two peers race, a stranger connects to the offerer's listener and sends junk: it
    gets the listener's HELLO and nothing else, and the peers connect all the same."""
    key = SessionKey(os.urandom(32))
    a, b = channel_pair()
    results: dict[str, object] = {}
    stranger_got = bytearray()

    async def offerer() -> None:
        results["offerer"] = await negotiate_direct(a, key, "offerer", enabled=True, addresses=LOOPBACK)

    async def stranger(port: int) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(64))
        try:
            while data := await stream.receive_some(100):
                stranger_got.extend(data)
        except trio.BrokenResourceError:  # closed with our junk unread: a reset
            pass

    async def answerer(nursery: trio.Nursery) -> None:
        offer = await b.receive()  # peek at the offerer's candidate, attack it, then take part as usual
        nursery.start_soon(stranger, json.loads(offer[5:])["candidates"][0]["port"])
        await trio.sleep(0.2)
        pending = [offer]

        class Replay(MemoryChannel):
            async def receive(self) -> bytes:
                return pending.pop() if pending else await super().receive()

        results["answerer"] = await negotiate_direct(Replay(b._send, b._receive), key, "answerer", enabled=True,
                                                     addresses=LOOPBACK)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(offerer)
            nursery.start_soon(answerer, nursery)
    assert bytes(stranger_got[:8]) == b"DSTPDIR1" and len(stranger_got) == 40  # a HELLO, no proof, closed
    assert results["offerer"].direct is not None and results["answerer"].direct is not None


def test_loopback_candidates_are_dialled_only_when_loopback_is_configured() -> None:
    loopback, lan = Candidate(ip="127.0.0.1", port=4000), Candidate(ip="192.168.1.9", port=4000)
    link_local = Candidate(ip="fe80::1", port=4000)
    assert dial_plan([loopback, lan, link_local], None) == [(lan, None)]
    assert dial_plan([loopback, lan, link_local], ("127.0.0.1",)) == [(loopback, "127.0.0.1")]
    assert dial_plan([loopback, lan], ("192.168.1.5", "127.0.0.1")) == [(loopback, "127.0.0.1"), (lan, "192.168.1.5")]
    assert dial_plan([Candidate(ip="2001:db8::1", port=1)], ("192.168.1.5",)) == []


def test_listen_addresses_honour_the_configuration_and_never_add_loopback() -> None:
    assert listen_addresses(("127.0.0.1", "::1", "127.0.0.1")) == ("127.0.0.1", "::1")
    assert listen_addresses(("0.0.0.0", "::", "fe80::1", "10.1.2.3")) == ("10.1.2.3",)
    enumerated = listen_addresses(None)
    assert all(not a.startswith(("127.", "fe80")) and a != "::1" for a in enumerated)
