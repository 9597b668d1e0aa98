"""``presence`` over real sockets: which known share ids are hosted right now, its rate limits
(per socket and per client address), and the trio client's ``presence``."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed

from daemon.protocol.errors import LocalProtocolError
from daemon.signaling import Limits, LimitKind, SignalingError, open_signaling

from .test_signaling_resume import hello, killable

SHARE = "share_0123456789abcdef"
INBOX = "inbox-abcdefghijklmnopqrst"
UNKNOWN = "share_fedcba9876543210"
KEY = "host-key-0123456789"
RATE_LIMITED = {
    "type": "error",
    "code": "rate_limited",
    "message": "too many presence requests, try again later",
}


async def host(client: Any, share: str) -> None:
    reply = await client.request(
        {"type": "host", "share": share, "host_key": KEY, "code": False, "id": "h"}
    )
    assert reply["type"] == "hosted", reply


async def presence(client: Any, shares: list[str], request_id: Any = 1) -> dict[str, Any]:
    return await client.request({"type": "presence", "shares": shares, "id": request_id})


async def test_presence_lists_the_hosted_subset_sorted(connect) -> None:
    async with connect() as sender, connect() as device, connect() as asker:
        await host(sender, SHARE)
        await host(device, INBOX)
        reply = await presence(asker, [UNKNOWN, SHARE, INBOX, SHARE], "p1")
        assert reply == {"type": "presence", "online": [INBOX, SHARE], "id": "p1"}
        assert await presence(asker, []) == {"type": "presence", "online": [], "id": 1}
        # a host may ask too, about its own shares included
        assert await presence(sender, [SHARE]) == {"type": "presence", "online": [SHARE], "id": 1}
        assert await asker.request({"type": "presence", "shares": [UNKNOWN]}) == {
            "type": "presence",
            "online": [],
        }

        await device.request({"type": "unhost", "share": INBOX})
        assert (await presence(asker, [SHARE, INBOX]))["online"] == [SHARE]
        await sender.ws.aclose()
        with trio.fail_after(5):
            while (await presence(asker, [SHARE, INBOX], 2))["online"]:
                await trio.sleep(0.01)


async def test_malformed_presence_is_a_bad_message_and_the_socket_survives(connect) -> None:
    async with connect() as sender, connect() as asker:
        await host(sender, SHARE)
        too_many = [f"share_{i:011d}" for i in range(33)]
        for shares, request_id in ((too_many, 1), (["short"], 2), (SHARE, 3), ([SHARE, 5], 4)):
            reply = await presence(asker, shares, request_id)  # type: ignore[arg-type]
            assert reply["type"] == "error" and reply["code"] == "bad_message", reply
            assert reply["id"] == request_id
        exactly = [f"share_{i:011d}" for i in range(31)] + [SHARE]
        assert (await presence(asker, exactly, 5))["online"] == [SHARE]


SMALL = Limits(presence_requests=3, presence_requests_per_ip=5, presence_window=60)


@pytest.mark.parametrize("limits", [SMALL])
async def test_presence_is_rate_limited_per_socket(connect, signaling: Any) -> None:
    async with connect() as sender, connect() as asker:
        await host(sender, SHARE)
        for request_id in range(3):
            assert (await presence(asker, [SHARE], request_id))["online"] == [SHARE]
        assert await presence(asker, [SHARE], "over") == {**RATE_LIMITED, "id": "over"}
        signaling.clock.advance(30)
        assert (await presence(asker, [SHARE], 9))["code"] == "rate_limited"  # still refused
        # the socket survives and everything else works
        assert await asker.request({"type": "ping", "id": 4}) == {"type": "pong", "id": 4}
        signaling.clock.advance(30)  # refusals were not charged: the first three slid out
        assert (await presence(asker, [SHARE], 5))["online"] == [SHARE]
        stats = await signaling.server.statistics()
        assert stats.limit_hits[LimitKind.PRESENCE_RATE] == 2
        assert stats.limit_hits[LimitKind.PRESENCE_RATE_PER_IP] == 0


@pytest.mark.parametrize("limits", [SMALL])
async def test_presence_is_rate_limited_per_address(connect, signaling: Any) -> None:
    async with connect() as first, connect() as second:
        for request_id in range(3):
            assert (await presence(first, [SHARE], request_id))["type"] == "presence"
        for request_id in range(2):
            assert (await presence(second, [SHARE], request_id))["type"] == "presence"
        assert (await presence(second, [SHARE]))["code"] == "rate_limited"
    async with connect() as again:  # reconnecting does not reset the address's window
        assert (await presence(again, [SHARE]))["code"] == "rate_limited"
    async with connect(local_address="127.0.0.2") as elsewhere:
        assert (await presence(elsewhere, [SHARE]))["type"] == "presence"
    stats = await signaling.server.statistics()
    assert stats.limit_hits[LimitKind.PRESENCE_RATE_PER_IP] == 2
    signaling.clock.advance(60)
    async with connect() as later:
        assert (await presence(later, [SHARE]))["type"] == "presence"


@pytest.mark.parametrize("server_options", [{"join_timeout": 0.3}])
async def test_presence_does_not_keep_an_idle_socket_open(connect) -> None:
    async with connect() as asker:
        assert (await presence(asker, [SHARE]))["type"] == "presence"
        with trio.fail_after(3), pytest.raises(ConnectionClosed) as info:
            while True:
                await asker.ws.get_message()
        assert info.value.reason is not None and info.value.reason.code == 4000


@pytest.mark.parametrize("server_options", [{"resume_grace": 5.0}])
async def test_a_lost_host_stays_present_through_its_grace(connect, signaling: Any) -> None:
    async with connect() as asker, killable(signaling.port) as device:
        await host(device, INBOX)
        await hello(device)
        await device.kill()
        await trio.sleep(0.1)
        assert (await presence(asker, [INBOX]))["online"] == [INBOX]


@pytest.mark.parametrize("limits", [SMALL])
async def test_client_presence(signaling: Any) -> None:
    async with open_signaling(signaling.url) as device, open_signaling(signaling.url) as asker:
        await device.host(INBOX, KEY, code=False)
        assert await asker.presence([INBOX, UNKNOWN]) == {INBOX}
        assert await asker.presence(iter([UNKNOWN])) == set()
        assert await asker.presence([]) == set()
        with pytest.raises(LocalProtocolError):
            await asker.presence(f"share_{i:011d}" for i in range(33))
        with pytest.raises(LocalProtocolError):
            await asker.presence(["not a share id"])
        with pytest.raises(SignalingError) as info:  # the 4th in a window of 3
            await asker.presence([INBOX])
        assert info.value.code == "rate_limited"
        await asker.ping()  # still connected
