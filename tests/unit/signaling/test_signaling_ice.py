"""ICE servers handed out through signaling: to both ends, after the join, once per session."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from daemon.ice import IceServer
from daemon.signaling import MemorySessionStore, SignalingServer, SignalSession, open_signaling
from daemon.signaling.client import SignalingClient

SHARE = "share_0123456789abcdef"
KEY = "host-key-0123456789"


class Minting:
    """An ``ice_servers`` callable that records the sessions it was asked about."""

    def __init__(self) -> None:
        self.sessions: list[str] = []

    def __call__(self, session: str) -> list[dict[str, Any]]:
        self.sessions.append(session)
        return [
            {"urls": ["stun:192.0.2.1:3478"]},
            {"urls": ["turn:192.0.2.1:3479"], "username": f"1700000600:{session}",
             "credential": f"cred-{len(self.sessions)}"},
        ]


async def next_incoming(client: SignalingClient) -> SignalSession:
    with trio.fail_after(5):
        async for session in client.incoming():
            return session
    raise AssertionError("incoming ended")  # pragma: no cover


async def serve(nursery: trio.Nursery, ice_servers: Any) -> str:
    server = SignalingServer(MemorySessionStore(), ice_servers=ice_servers, close_timeout=1.0)
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    return f"ws://127.0.0.1:{port}/signal/v1"


async def test_both_ends_get_the_sessions_servers(nursery: trio.Nursery) -> None:
    minting = Minting()
    url = await serve(nursery, minting)
    async with open_signaling(url) as host, open_signaling(url) as joiner:
        hosted = await host.host(SHARE, KEY, code=True)
        assert minting.sessions == []  # nothing before a join succeeded
        assert hosted.code is not None
        theirs = await joiner.join(code=hosted.code)
        ours = await next_incoming(host)
        expected = (
            IceServer(urls=("stun:192.0.2.1:3478",)),
            IceServer(urls=("turn:192.0.2.1:3479",), username=f"1700000600:{theirs.session}",
                      credential="cred-1"),
        )
        assert theirs.ice_servers == expected and ours.ice_servers == expected
        assert minting.sessions == [theirs.session]  # one mint per session

        again = await joiner.join(share=SHARE)  # another session: fresh credentials
        assert again.ice_servers[1].credential == "cred-2"
        assert minting.sessions == [theirs.session, again.session]


async def test_failed_joins_get_nothing(nursery: trio.Nursery, connect_url: Any) -> None:
    minting = Minting()
    url = await serve(nursery, minting)
    async with connect_url(url) as raw:
        reply = await raw.request({"type": "join", "code": "000000", "id": 1})
        assert reply["code"] == "join_failed" and "ice" not in reply
    assert minting.sessions == []


@pytest.mark.parametrize("ice_servers", [None, lambda session: []])
async def test_no_servers_no_field(nursery: trio.Nursery, connect_url: Any, ice_servers: Any) -> None:
    url = await serve(nursery, ice_servers)
    async with connect_url(url) as host, connect_url(url) as joiner:
        hosted = await host.request({"type": "host", "share": SHARE, "host_key": KEY, "code": True})
        joined = await joiner.request({"type": "join", "code": hosted["code"], "id": 2})
        peer = await host.receive()
        assert set(joined) == {"type", "session", "share", "id"}
        assert set(peer) == {"type", "session", "share"}
    async with open_signaling(url) as host, open_signaling(url) as joiner:
        hosted = await host.host(SHARE, KEY, code=True)
        assert hosted.code is not None
        assert (await joiner.join(code=hosted.code)).ice_servers == ()
        assert (await next_incoming(host)).ice_servers == ()


def _raises(session: str) -> list[dict[str, Any]]:
    raise OSError("secret file vanished")


def _invalid(session: str) -> list[dict[str, Any]]:
    return [{"urls": ["http://not-ice"], "username": "u", "credential": "SECRET-VALUE"}]


@pytest.mark.parametrize("ice_servers", [_raises, _invalid])
async def test_a_broken_callable_does_not_break_joins(
    nursery: trio.Nursery, connect_url: Any, ice_servers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = await serve(nursery, ice_servers)
    with caplog.at_level(logging.ERROR, logger="daemon.signaling.connection"):
        async with connect_url(url) as host, connect_url(url) as joiner:
            hosted = await host.request({"type": "host", "share": SHARE, "host_key": KEY, "code": True})
            joined = await joiner.request({"type": "join", "code": hosted["code"]})
            peer = await host.receive()
            assert joined["type"] == "joined" and "ice" not in joined
            assert peer["type"] == "peer" and "ice" not in peer
    assert "no ICE servers for signaling session" in caplog.text
    assert "SECRET-VALUE" not in caplog.text


async def test_raw_frames_carry_ice(nursery: trio.Nursery, connect_url: Any) -> None:
    url = await serve(nursery, Minting())
    async with connect_url(url) as host, connect_url(url) as joiner:
        hosted = await host.request({"type": "host", "share": SHARE, "host_key": KEY, "code": True})
        joined = await joiner.request({"type": "join", "code": hosted["code"], "id": 9})
        peer = await host.receive()
        assert list(joined) == ["type", "session", "share", "ice", "id"]
        assert peer["ice"] == joined["ice"] and len(joined["ice"]) == 2
