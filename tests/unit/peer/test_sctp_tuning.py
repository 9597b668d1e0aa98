"""daemon.peer.sctp_tuning: the faster reassembly agrees with aiortc's, and a tuned connection stays
correct when datagrams are lost (retransmissions, gap SACKs, fast recovery)."""

from __future__ import annotations

import hashlib
import os
import random

import pytest
import trio
from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    SCTP_TSN_MODULO,
    DataChunk,
    InboundStream,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.peer import Role, open_data_channel, sctp_tuning
from daemon.runtime import bridge

from .test_data_channel import LOOPBACK, pipe_pair


def _fragments(sizes: list[int], first_tsn: int, unordered: set[int]) -> list[DataChunk]:
    """DATA chunks of one stream: message i has ``sizes[i]`` fragments, consecutive TSNs."""
    chunks, tsn, seq = [], first_tsn, 0
    for index, count in enumerate(sizes):
        for fragment in range(count):
            chunk = DataChunk()
            chunk.flags = (SCTP_DATA_FIRST_FRAG if fragment == 0 else 0) | (
                SCTP_DATA_LAST_FRAG if fragment == count - 1 else 0)
            if index in unordered:
                chunk.flags |= SCTP_DATA_UNORDERED
            chunk.tsn = tsn % SCTP_TSN_MODULO
            chunk.stream_id = 1
            chunk.stream_seq = 0 if index in unordered else seq
            chunk.protocol = 53
            chunk.user_data = f"{index}:{fragment};".encode()
            chunks.append(chunk)
            tsn += 1
        if index not in unordered:
            seq = (seq + 1) % 65536
    return chunks


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=1, max_size=12),
    first_tsn=st.sampled_from([0, 1000, SCTP_TSN_MODULO - 5]),
    unordered=st.sets(st.integers(0, 11), max_size=3),
    seed=st.integers(0, 2**32),
    shuffle_window=st.integers(0, 6),
    prune_at=st.one_of(st.none(), st.integers(0, 40)),
)
def test_reassembly_delivers_exactly_what_aiortc_delivers(sizes, first_tsn, unordered, seed, shuffle_window,
                                                          prune_at) -> None:
    chunks = _fragments(sizes, first_tsn, unordered)
    order = list(range(len(chunks)))
    rng = random.Random(seed)
    for i in range(len(order)):  # local reordering, as on a network: chunk i moves up to shuffle_window
        j = min(len(order) - 1, i + rng.randint(0, shuffle_window))
        order[i], order[j] = order[j], order[i]
    stock, tuned = InboundStream(), sctp_tuning._InboundStream()
    for step, index in enumerate(order):
        for stream in (stock, tuned):
            stream.add_chunk(chunks[index])
        assert list(tuned.pop_messages()) == list(stock.pop_messages())
        assert [c.tsn for c in tuned.reassembly] == [c.tsn for c in stock.reassembly]
        assert tuned.sequence_number == stock.sequence_number
        if prune_at is not None and step == prune_at:  # a FORWARD TSN up to the latest chunk
            tsn = chunks[index].tsn
            assert tuned.prune_chunks(tsn) == stock.prune_chunks(tsn)


def test_install_switches_the_class_and_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiortc.rtcpeerconnection
    from aiortc.rtcsctptransport import RTCSctpTransport

    try:
        monkeypatch.setenv("DOORSTEP_SCTP_TUNING", "off")
        sctp_tuning.install()
        assert aiortc.rtcpeerconnection.RTCSctpTransport is RTCSctpTransport
        monkeypatch.setenv("DOORSTEP_SCTP_TUNING", "sack,burst")
        sctp_tuning.install()
        assert sctp_tuning.installed_features() == {"sack", "burst"}
        assert aiortc.rtcpeerconnection.RTCSctpTransport is sctp_tuning.TunedSctpTransport
        with pytest.raises(ValueError):
            sctp_tuning.install(["bogus"])
    finally:
        monkeypatch.delenv("DOORSTEP_SCTP_TUNING")
        sctp_tuning.install()
    assert sctp_tuning.installed_features() == sctp_tuning.FEATURES


def test_a_tuned_connection_survives_lost_datagrams(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop 2% of the datagrams in both directions once the channel is open: every message still
    arrives intact and in order (retransmissions, gap SACKs and fast recovery with the tuning on)."""
    import aioice.ice

    rng = random.Random(7)
    lossy = {"on": False}
    original = aioice.ice.StunProtocol.send_data

    async def send_data(self, data: bytes, addr) -> None:
        if lossy["on"] and rng.random() < 0.02:
            return
        await original(self, data, addr)

    monkeypatch.setattr(aioice.ice.StunProtocol, "send_data", send_data)
    messages = [os.urandom(rng.choice((1, 1500, 65536, 262144))) for _ in range(40)]

    async def main() -> list[bytes]:
        offer_end, answer_end = pipe_pair()
        received: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def offerer() -> None:
                async with open_data_channel(offer_end, Role.OFFERER, LOOPBACK, receive_limit=1 << 20) as ch:
                    lossy["on"] = True
                    for message in messages:
                        await ch.send(message)
                    while (reply := await ch.receive()) != b"thanks":
                        assert reply == b"ack"

            async def answerer() -> None:
                async with open_data_channel(answer_end, Role.ANSWERER, LOOPBACK, receive_limit=16 << 20) as ch:
                    while len(received) < len(messages):
                        received.append(await ch.receive())
                        if len(received) % 8 == 0:
                            await ch.send(b"ack")  # traffic the other way too, under the same loss
                    lossy["on"] = False  # the last word must not wait for a retransmission timeout
                    await ch.send(b"thanks")
                    with trio.move_on_after(15):  # until the offerer, having read it, hangs up
                        with pytest.raises(trio.EndOfChannel):
                            while True:
                                await ch.receive()

            nursery.start_soon(offerer)
            nursery.start_soon(answerer)
        return received

    received = bridge.run(main)
    lossy["on"] = False
    assert [hashlib.sha256(m).digest() for m in received] == [hashlib.sha256(m).digest() for m in messages]
