"""The STUN responder on real UDP sockets (loopback): answers, silence, per-source rate limits."""

from __future__ import annotations

import socket

import aioice.stun
import pytest
import trio

from daemon.ice.stun import Ignore
from daemon.runtime.config import Listen
from daemon.runtime.stun_server import StunServer, serve_stun, source_key


class FrozenClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def binding_request() -> aioice.stun.Message:
    return aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.REQUEST
    )


async def replies(sock: trio.socket.SocketType, wait: float = 0.3) -> list[aioice.stun.Message]:
    """Every datagram that arrives within ``wait`` seconds of the last one, parsed."""
    out = []
    while True:
        with trio.move_on_after(wait):
            data = await sock.recv(2048)
            out.append(aioice.stun.parse_message(data))
            continue
        return out


async def udp_client(host: str = "127.0.0.1", family: int = socket.AF_INET) -> trio.socket.SocketType:
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    await sock.bind((host, 0))
    return sock


async def test_answers_with_the_clients_address(nursery: trio.Nursery) -> None:
    port = await nursery.start(serve_stun, Listen("127.0.0.1", 0), 20)
    with await udp_client() as client:
        request = binding_request()
        await client.sendto(bytes(request), ("127.0.0.1", port))
        with trio.fail_after(5):
            reply = aioice.stun.parse_message(await client.recv(2048))
        assert reply.message_class == aioice.stun.Class.RESPONSE
        assert reply.transaction_id == request.transaction_id
        assert reply.attributes["XOR-MAPPED-ADDRESS"] == client.getsockname()
        assert set(reply.attributes) == {"XOR-MAPPED-ADDRESS", "FINGERPRINT"}


async def test_wildcard_listen_answers_ipv4_clients_as_ipv4(nursery: trio.Nursery) -> None:
    port = await nursery.start(serve_stun, Listen("", 0), 20)
    with await udp_client() as client:
        await client.sendto(bytes(binding_request()), ("127.0.0.1", port))
        with trio.fail_after(5):
            reply = aioice.stun.parse_message(await client.recv(2048))
        assert reply.attributes["XOR-MAPPED-ADDRESS"] == client.getsockname()


async def test_ipv6_client(nursery: trio.Nursery) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = await udp_client("::1", socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = await nursery.start(serve_stun, Listen("::1", 0), 20)
    with probe as client:
        await client.sendto(bytes(binding_request()), ("::1", port))
        with trio.fail_after(5):
            reply = aioice.stun.parse_message(await client.recv(2048))
        assert reply.attributes["XOR-MAPPED-ADDRESS"] == client.getsockname()[:2]


async def test_everything_else_gets_no_reply(nursery: trio.Nursery) -> None:
    server = StunServer(rate=20)
    port = await nursery.start(server.serve, Listen("127.0.0.1", 0))
    indication = aioice.stun.Message(
        message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.INDICATION
    )
    allocate = aioice.stun.Message(
        message_method=aioice.stun.Method.ALLOCATE, message_class=aioice.stun.Class.REQUEST
    )
    with await udp_client() as client:
        for datagram in (b"", b"hello", bytes(indication), bytes(allocate), b"\x00" * 4000):
            await client.sendto(datagram, ("127.0.0.1", port))
        assert await replies(client) == []
        await client.sendto(bytes(binding_request()), ("127.0.0.1", port))  # still serving
        assert len(await replies(client)) == 1
    stats = server.statistics()
    assert stats.answered == 1 and stats.rate_limited == 0
    assert stats.ignored[Ignore.NOT_A_REQUEST] == 1 and stats.ignored[Ignore.NOT_BINDING] == 1
    assert stats.received == 6 and stats.ignored[Ignore.NOT_STUN] == 3  # 4000 bytes: truncated
    assert stats.report()["answered_total"] == 1


async def test_a_flood_from_one_source_is_cut_to_the_rate(nursery: trio.Nursery) -> None:
    clock = FrozenClock()
    server = StunServer(rate=5, clock=clock)  # burst 10
    port = await nursery.start(server.serve, Listen("127.0.0.1", 0))
    with await udp_client() as flooder, await udp_client("127.0.0.2") as neighbour:
        for _ in range(200):
            await flooder.sendto(bytes(binding_request()), ("127.0.0.1", port))
        assert len(await replies(flooder)) == 10
        await neighbour.sendto(bytes(binding_request()), ("127.0.0.1", port))
        assert len(await replies(neighbour)) == 1  # another source has its own budget
        clock.now += 1.0  # five more tokens
        for _ in range(50):
            await flooder.sendto(bytes(binding_request()), ("127.0.0.1", port))
        assert len(await replies(flooder)) == 5
    stats = server.statistics()
    assert (stats.answered, stats.rate_limited, stats.tracked_sources) == (16, 235, 2)


async def test_flood_at_real_speed_stays_near_the_rate(nursery: trio.Nursery) -> None:
    port = await nursery.start(serve_stun, Listen("127.0.0.1", 0), 10)  # burst 20
    with await udp_client() as client:
        start = trio.current_time()
        for _ in range(300):
            await client.sendto(bytes(binding_request()), ("127.0.0.1", port))
        answered = len(await replies(client))
        elapsed = trio.current_time() - start
        assert 20 <= answered <= 20 + 10 * elapsed + 1


def test_global_limit_and_bounded_sources() -> None:
    clock = FrozenClock()
    server = StunServer(rate=100, global_rate=5, max_sources=3, clock=clock)  # global burst 10
    request = bytes(binding_request())
    answered = [server.handle(request, f"192.0.2.{i}", 1000) is not None for i in range(40)]
    assert sum(answered) == 10 and answered[:10] == [True] * 10
    assert server.statistics().tracked_sources == 3


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_source_key(address: str, key: str) -> None:
    assert source_key(address) == key


async def test_bind_failure_raises(nursery: trio.Nursery) -> None:
    port = await nursery.start(serve_stun, Listen("127.0.0.1", 0), 20)
    with pytest.raises(OSError):
        await nursery.start(serve_stun, Listen("127.0.0.1", port), 20)
