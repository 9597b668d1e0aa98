"""Abuse limits over real sockets: failed-join budgets, connection caps, Origin allowlist,
and the counters the server exposes for them."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected

from daemon.signaling import Limits, LimitKind

SHARE = "share_0123456789abcdef"
KEY = "host-key-0123456789"
JOIN_FAILED_FRAME = '{"type":"error","code":"join_failed","message":"no such code or share","id":1}'


async def host(client: Any) -> str:
    reply = await client.request(
        {"type": "host", "share": SHARE, "host_key": KEY, "code": True, "id": 1}
    )
    assert reply["type"] == "hosted", reply
    code = reply["code"]
    assert isinstance(code, str)
    return code


def wrong(code: str, offset: int) -> str:
    return f"{(int(code) + 1 + offset) % 10**6:06d}"


async def raw_join(client: Any, **fields: str) -> str:
    """Send a join with id 1; the exact reply frame."""
    await client.send({"type": "join", "id": 1, **fields})
    with trio.fail_after(5):
        frame = await client.ws.get_message()
    assert isinstance(frame, str)
    return frame


async def refusal(connect: Any, **options: Any) -> int:
    """The HTTP status the server refuses this handshake with (fails if it is accepted)."""
    statuses = []
    try:
        async with connect(**options):
            pass
    except* ConnectionRejected as group:
        statuses = [e.status_code for e in group.exceptions if isinstance(e, ConnectionRejected)]
    assert len(statuses) == 1, "the handshake was accepted"
    return statuses[0]


async def wait_until_closed(signaling: Any, count: int) -> None:
    with trio.fail_after(5):
        while (await signaling.server.statistics()).connections_closed < count:
            await trio.sleep(0.01)


@pytest.mark.parametrize("limits", [Limits(max_connections_per_ip=128)])
async def test_hundred_guessing_sockets_from_one_address(connect, signaling: Any) -> None:
    store = signaling.server.store
    async with AsyncExitStack() as stack:
        sender = await stack.enter_async_context(connect())
        code = await host(sender)
        guessers = [await stack.enter_async_context(connect()) for _ in range(100)]
        replies = [await raw_join(g, code=wrong(code, i)) for i, g in enumerate(guessers)]
        # the budget (20) ended guessing: even the right code now fails, identically
        replies.append(await raw_join(guessers[50], code=code))
        replies.append(await raw_join(guessers[99], share=SHARE))
        assert replies == [JOIN_FAILED_FRAME] * 102  # nobody learnt anything different

        now = signaling.clock.now
        assert not await store.join_budget_ok("127.0.0.1", now=now)
        assert len(store._global_failures) == 20  # the attempts the address budget admitted
        stats = await signaling.server.statistics()
        assert (stats.joins_ok, stats.joins_failed) == (0, 102)
        assert stats.limit_hits[LimitKind.IP_BUDGET] == 82
        assert stats.limit_hits[LimitKind.GLOBAL_BUDGET] == 0
        assert stats.codes == 1  # one refused attempt against it; the cap is 5

        # another address is not affected, and the code still works there
        receiver = await stack.enter_async_context(connect(local_address="127.0.0.2"))
        joined = await receiver.request({"type": "join", "code": code, "id": 2})
        assert joined["type"] == "joined"
        assert (await signaling.server.statistics()).joins_ok == 1

        # the window slides: locked until fewer than 20 of its attempts are under 600 s old
        signaling.clock.advance(599)
        assert await raw_join(guessers[0], code=wrong(code, 0)) == JOIN_FAILED_FRAME
        assert (await signaling.server.statistics()).limit_hits[LimitKind.IP_BUDGET] == 83
        signaling.clock.advance(1)
        assert await store.join_budget_ok("127.0.0.1", now=signaling.clock.now)


@pytest.mark.parametrize(
    "limits",
    [Limits(ip_failed_join_budget=5, global_failed_join_budget=12, code_attempt_cap=3)],
)
async def test_global_budget_stops_guessing_from_many_addresses(connect, signaling: Any) -> None:
    async with AsyncExitStack() as stack:
        sender = await stack.enter_async_context(connect())
        code = await host(sender)
        replies = []
        for n, address in enumerate(("127.0.0.2", "127.0.0.3", "127.0.0.4")):
            guesser = await stack.enter_async_context(connect(local_address=address))
            for i in range(5):
                replies.append(await raw_join(guesser, code=wrong(code, 5 * n + i)))
        legit = await stack.enter_async_context(connect(local_address="127.0.0.5"))
        replies.append(await raw_join(legit, code=code))  # global budget used up: refused
        assert replies == [JOIN_FAILED_FRAME] * 16
        stats = await signaling.server.statistics()
        assert stats.limit_hits[LimitKind.GLOBAL_BUDGET] == 4
        assert stats.limit_hits[LimitKind.IP_BUDGET] == 0
        # the refusals charged the code too; two more and it is revoked
        for _ in range(2):
            assert await raw_join(legit, code=code) == JOIN_FAILED_FRAME
        stats = await signaling.server.statistics()
        assert stats.codes == 0 and stats.limit_hits[LimitKind.CODE_ATTEMPT_CAP] == 1
        # joins by share id are not blocked by the global budget (address budget permitting)
        fresh = await stack.enter_async_context(connect(local_address="127.0.0.6"))
        assert (await fresh.request({"type": "join", "share": SHARE}))["type"] == "joined"
        assert (await sender.receive())["type"] == "peer"
        # the window slides on: codes work again
        signaling.clock.advance(600)
        new_code = await host(sender)
        assert (await fresh.request({"type": "join", "code": new_code}))["type"] == "joined"


@pytest.mark.parametrize("limits", [Limits(max_connections_per_ip=2, max_connections=3)])
async def test_connection_caps_refuse_at_handshake(connect, signaling: Any) -> None:
    async with connect() as first:
        async with connect():
            assert await refusal(connect) == 429  # a third from 127.0.0.1
            async with connect(local_address="127.0.0.2"):
                assert await refusal(connect, local_address="127.0.0.3") == 503  # full
        await wait_until_closed(signaling, 2)
        async with connect() as again:  # slots were freed
            assert await again.request({"type": "ping"}) == {"type": "pong"}
        assert await first.request({"type": "ping"}) == {"type": "pong"}
    await wait_until_closed(signaling, 4)
    stats = await signaling.server.statistics()
    assert (stats.connections_opened, stats.connections_closed) == (4, 4)
    assert stats.connections_refused == 2
    assert stats.limit_hits[LimitKind.CONNECTIONS_PER_IP] == 1
    assert stats.limit_hits[LimitKind.CONNECTIONS] == 1


@pytest.mark.parametrize(
    "limits", [Limits(allowed_origins=frozenset({"https://doorstep.local:8443"}))]
)
async def test_origin_allowlist(connect, signaling: Any) -> None:
    for origin in (b"https://evil.example", b"null", b"https://doorstep.local", b""):
        assert await refusal(connect, headers=[(b"Origin", origin)]) == 403
    two = [(b"Origin", b"https://doorstep.local:8443"), (b"Origin", b"https://evil.example")]
    assert await refusal(connect, headers=two) == 403
    async with connect(headers=[(b"Origin", b"HTTPS://Doorstep.Local:8443")]) as browser:
        assert await browser.request({"type": "ping"}) == {"type": "pong"}
    async with connect() as native:  # no Origin: a native client
        assert await native.request({"type": "ping"}) == {"type": "pong"}
    stats = await signaling.server.statistics()
    assert stats.limit_hits[LimitKind.ORIGIN] == 5 and stats.connections_refused == 5


async def test_by_default_no_browser_origin_is_allowed(connect, signaling: Any) -> None:
    assert await refusal(connect, headers=[(b"Origin", b"http://127.0.0.1:8080")]) == 403
    stats = await signaling.server.statistics()
    assert set(stats.limit_hits) == set(LimitKind)
    assert stats.connections_opened == 0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ],
)
def test_budgets_and_caps_charge_ipv6_per_64(address: str, key: str) -> None:
    from trio_websocket import Endpoint

    from daemon.signaling.server import _client_ip

    assert _client_ip(Endpoint(address, 4242, False)) == key
