"""DirectTransport over real loopback TCP sockets: sealed records, clean and unclean ends."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from daemon.crypto import SessionKey
from daemon.direct import DirectKeys, DirectPathBroken, DirectTransport, ProofHandshake, Side
from daemon.direct.records import MAX_RECORD

KEYS = DirectKeys.from_session(SessionKey(os.urandom(32)))


async def _prove(stream: trio.SocketStream, handshake: ProofHandshake) -> tuple[bytes, bytes]:
    await stream.send_all(handshake.start())
    while not handshake.done:
        need, data = handshake.bytes_needed, b""
        while len(data) < need:
            data += await stream.receive_some(need - len(data))
        reply = handshake.receive(data)
        if reply:
            await stream.send_all(reply)
    return handshake.stream_keys()


async def tcp_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    dialed = await trio.open_tcp_stream("127.0.0.1", port)
    accepted = await listeners[0].accept()
    await listeners[0].aclose()
    return dialed, accepted


async def transport_pair(listener_keys: DirectKeys = KEYS) -> tuple[DirectTransport, DirectTransport]:
    """Two ends of one proven connection (dialer = answerer, listener = offerer)."""
    dialed, accepted = await tcp_pair()
    out: dict[str, tuple[bytes, bytes]] = {}

    async def prove(name: str, stream: trio.SocketStream, handshake: ProofHandshake) -> None:
        out[name] = await _prove(stream, handshake)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(prove, "d", dialed, ProofHandshake(KEYS, side=Side.DIALER, role="answerer"))
        nursery.start_soon(prove, "l", accepted, ProofHandshake(listener_keys, side=Side.LISTENER, role="offerer"))
    return (DirectTransport(dialed, send_key=out["d"][0], receive_key=out["d"][1]),
            DirectTransport(accepted, send_key=out["l"][0], receive_key=out["l"][1]))


async def test_messages_cross_both_ways_and_count() -> None:
    a, b = await transport_pair()
    await a.send(b"hello")
    await b.send(b"world")
    assert await b.receive() == b"hello" and await a.receive() == b"world"
    assert (a.bytes_sent, b.bytes_received) == (5, 5)
    assert a.route == "direct" and a.route_detail.startswith("tcp 127.0.0.1:")
    a.close()
    b.close()


async def test_large_messages_stream_through() -> None:
    a, b = await transport_pair()
    messages = [os.urandom(MAX_RECORD), os.urandom(1), os.urandom(MAX_RECORD - 7)] * 4
    received: list[bytes] = []

    async def reader() -> None:
        while True:
            try:
                received.append(await b.receive())
            except trio.EndOfChannel:
                await b.aclose()
                return

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            for message in messages:
                await a.send(message)
            await a.aclose()
    assert received == messages


async def test_oversized_messages_are_refused() -> None:
    a, b = await transport_pair()
    with pytest.raises(ValueError):
        await a.send(bytes(a.max_message_size + 1))
    a.close()
    b.close()


async def test_a_clean_close_ends_the_channel_on_both_sides() -> None:
    a, b = await transport_pair()
    await a.send(b"last")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.aclose)
        assert await b.receive() == b"last"
        with pytest.raises(trio.EndOfChannel):
            await b.receive()
        await b.aclose()
    with pytest.raises(DirectPathBroken):
        await a.send(b"after close")


async def test_an_unclean_close_is_a_broken_path_not_an_end() -> None:
    a, b = await transport_pair()
    await a.send(b"some")
    a.close()  # no FINAL record: a crash, a killed process
    assert await b.receive() == b"some"
    with pytest.raises(DirectPathBroken):
        await b.receive()
    b.close()


async def test_a_reset_is_a_broken_path() -> None:
    a, b = await transport_pair()
    a._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    a.close()  # RST
    with pytest.raises(DirectPathBroken):
        await b.receive()
    with pytest.raises(DirectPathBroken):
        for _ in range(100):
            await b.send(bytes(65536))
    b.close()


async def test_injected_bytes_break_the_stream() -> None:
    """Bytes that did not come from the peer's sealer (an attacker splicing into the TCP stream)."""
    a, b = await transport_pair()
    await a.send(b"genuine")
    await a._stream.send_all(b"\x00\x00\x00\x20" + os.urandom(32))
    assert await b.receive() == b"genuine"
    with pytest.raises(DirectPathBroken, match="bad record"):
        await b.receive()
    a.close()
    b.close()


async def test_a_wrong_key_never_gets_a_transport() -> None:
    other = DirectKeys.from_session(SessionKey(os.urandom(32)))
    with pytest.raises(BaseException) as caught:
        await transport_pair(listener_keys=other)
    assert "did not prove the session key" in repr(caught.value)
