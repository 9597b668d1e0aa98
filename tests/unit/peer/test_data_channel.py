"""Two real aiortc peers in one process, joined by an in-memory signal pipe, on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
import trio

from daemon.ice import IceConfig
from daemon.peer import NoRoute, PeerError, Role, open_data_channel
from daemon.runtime import bridge

LOOPBACK = IceConfig(addresses=("127.0.0.1",))


class Pipe:
    """One end of an in-memory signaling session."""

    def __init__(self, send: trio.MemorySendChannel, receive: trio.MemoryReceiveChannel) -> None:
        self._send, self._receive = send, receive

    async def send(self, data: dict[str, Any]) -> None:
        await self._send.send(data)

    async def receive(self) -> dict[str, Any]:
        return await self._receive.receive()


def pipe_pair() -> tuple[Pipe, Pipe]:
    a_send, b_receive = trio.open_memory_channel[dict](10)
    b_send, a_receive = trio.open_memory_channel[dict](10)
    return Pipe(a_send, a_receive), Pipe(b_send, b_receive)


def test_messages_cross_intact_in_order_with_backpressure() -> None:
    messages = [os.urandom(n) for n in (1, 1000, 65536, 262144, 200_000)] * 4

    async def main() -> tuple[str, str, int]:
        offer_end, answer_end = pipe_pair()
        received: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def offerer() -> None:
                async with open_data_channel(offer_end, Role.OFFERER, LOOPBACK, receive_limit=1 << 20) as ch:
                    for message in messages:
                        await ch.send(message)
                    assert await ch.receive() == b"thanks"

            async def answerer() -> None:
                async with open_data_channel(answer_end, Role.ANSWERER, LOOPBACK, receive_limit=8 << 20) as ch:
                    while len(received) < len(messages):
                        received.append(await ch.receive())
                    await ch.send(b"thanks")
                    await ch.wait_flushed()
                    await trio.sleep(0.2)

            nursery.start_soon(offerer)
            nursery.start_soon(answerer)
        digest = lambda ms: hashlib.sha256(b"".join(ms)).hexdigest()  # noqa: E731
        return digest(messages), digest(received), len(received)

    sent, got, count = bridge.run(main)
    assert got == sent and count == len(messages)


def test_oversize_message_is_refused_before_sending() -> None:
    async def main() -> None:
        offer_end, answer_end = pipe_pair()
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def answerer() -> None:
                async with open_data_channel(answer_end, Role.ANSWERER, LOOPBACK, receive_limit=1 << 20):
                    await done.wait()

            nursery.start_soon(answerer)
            async with open_data_channel(offer_end, Role.OFFERER, LOOPBACK, receive_limit=1 << 20) as ch:
                assert ch.max_message_size == 262144
                with pytest.raises(PeerError, match="exceeds the peer's limit"):
                    await ch.send(b"x" * (262144 + 1))
            done.set()

    bridge.run(main)


def test_a_flooding_peer_is_cut_off_at_the_receive_limit() -> None:
    async def main() -> None:
        offer_end, answer_end = pipe_pair()
        async with trio.open_nursery() as nursery:

            async def flooder() -> None:
                async with open_data_channel(offer_end, Role.OFFERER, LOOPBACK, receive_limit=1 << 20) as ch:
                    try:
                        for _ in range(64):
                            await ch.send(b"x" * 65536)
                        await trio.sleep(5)
                    except PeerError:
                        pass

            nursery.start_soon(flooder)
            async with open_data_channel(answer_end, Role.ANSWERER, LOOPBACK, receive_limit=256 * 1024) as ch:
                await trio.sleep(1.0)  # read nothing: let the queue overflow
                with pytest.raises(PeerError, match="flow control"):
                    while True:
                        await ch.receive()
            nursery.cancel_scope.cancel()

    bridge.run(main)


@pytest.mark.parametrize(
    "reply",
    [{"kind": "offer", "sdp": "v=0\r\nnonsense"}, {"kind": "answer"}, {"kind": "answer", "sdp": "x" * 100},
     {"kind": "answer", "sdp": "v=0\r\n" + "a=x\r\n" * 10000}, "not even a dict"],
)
def test_hostile_sdp_answers_fail_cleanly(reply: Any) -> None:
    async def main() -> None:
        offer_end, answer_end = pipe_pair()
        async with trio.open_nursery() as nursery:

            async def hostile() -> None:
                await answer_end.receive()  # the offer
                await answer_end.send(reply)

            nursery.start_soon(hostile)
            with pytest.raises(PeerError):
                async with open_data_channel(offer_end, Role.OFFERER, LOOPBACK, receive_limit=1 << 20):
                    pass

    bridge.run(main)


def test_no_answer_times_out_with_a_clear_error() -> None:
    async def main() -> None:
        offer_end, _answer_end = pipe_pair()
        with pytest.raises(PeerError, match="did not complete the WebRTC handshake within 1 s") as info:
            async with open_data_channel(offer_end, Role.OFFERER, LOOPBACK, receive_limit=1 << 20, timeout=1):
                pass
        assert not isinstance(info.value, NoRoute), "no answer is not a network verdict"

    bridge.run(main)
