"""Session resume over real sockets: ``hello`` gives a token; a socket whose TCP connection dies
comes back with ``resume`` within the grace period and keeps its shares and sessions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import wrap_client_stream

from .conftest import RawClient

SHARE = "share_0123456789abcdef"
KEY = "host-key-0123456789"


class Killable(RawClient):
    def __init__(self, ws: Any, stream: trio.SocketStream, scope: trio.CancelScope) -> None:
        super().__init__(ws)
        self.stream = stream
        self.scope = scope

    async def kill(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.scope.cancel()
        await self.stream.aclose()


@asynccontextmanager
async def killable(port: int) -> AsyncIterator[Killable]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", "/signal/v1")
        yield Killable(ws, stream, nursery.cancel_scope)
        nursery.cancel_scope.cancel()


async def hello(client: Any) -> str:
    reply = await client.request({"type": "hello", "id": "h"})
    assert reply["type"] == "welcome" and reply["id"] == "h" and reply["grace"] > 0
    token = reply["token"]
    assert isinstance(token, str) and len(token) == 43
    return token


async def session_between(sender: Any, receiver: Any) -> str:
    hosted = await sender.request(
        {"type": "host", "share": SHARE, "host_key": KEY, "code": True, "id": 1}
    )
    joined = await receiver.request({"type": "join", "code": hosted["code"]})
    assert (await sender.receive())["type"] == "peer"
    return str(joined["session"])


async def test_killed_socket_resumes_and_relay_continues(connect, signaling: Any) -> None:
    async with connect() as receiver:
        async with killable(signaling.port) as old:
            reply = await old.request({"type": "hello"})
            assert reply["type"] == "welcome" and reply["grace"] == 30
            token = await hello(old)  # a second hello replaces the token
            assert token != reply["token"]
            session = await session_between(old, receiver)
            await old.send({"type": "relay", "session": session, "data": {"n": 1}})
            assert (await receiver.receive())["data"] == {"n": 1}
            await old.kill()
        # meanwhile: the receiver keeps relaying; nothing tells it the host went away
        for n in (2, 3):
            await receiver.send({"type": "relay", "session": session, "data": {"n": n}})
        await receiver.assert_silent(0.2)
        stats = await signaling.server.statistics()
        assert (stats.shares, stats.sessions) == (1, 1)

        async with connect() as new:
            resumed = await new.request({"type": "resume", "token": token, "id": 5})
            assert resumed["type"] == "resumed" and resumed["id"] == 5
            assert resumed["token"] != token
            for n in (2, 3):  # queued while the host was away, in order
                assert await new.receive() == {
                    "type": "relay",
                    "session": session,
                    "data": {"n": n},
                }
            await new.send({"type": "relay", "session": session, "data": {"n": 4}})
            assert (await receiver.receive())["data"] == {"n": 4}
            await receiver.send({"type": "relay", "session": session, "data": {"n": 5}})
            assert (await new.receive())["data"] == {"n": 5}
            # the share is still hosted by the resumed socket
            again = await receiver.request({"type": "join", "share": SHARE})
            assert again["type"] == "joined"
            assert (await new.receive())["type"] == "peer"
            # the old tokens are spent
            async with connect() as thief:
                first = await thief.request({"type": "resume", "token": reply["token"]})
                assert first["code"] == "resume_failed"
                reply = await thief.request({"type": "resume", "token": token, "id": 6})
                assert reply == {
                    "type": "error",
                    "code": "resume_failed",
                    "message": "cannot resume that",
                    "id": 6,
                }
        # a clean close of the resumed socket ends its sessions at once
        left = {(await receiver.receive())["type"], (await receiver.receive())["type"]}
        assert left == {"left"}


@pytest.mark.parametrize("server_options", [{"resume_grace": 0.3}])
async def test_state_is_dropped_after_the_grace_period(connect, signaling: Any) -> None:
    async with connect() as receiver:
        async with killable(signaling.port) as old:
            token = await hello(old)
            session = await session_between(old, receiver)
            await old.kill()
        with trio.fail_after(3):
            assert await receiver.receive() == {"type": "left", "session": session}
        async with connect() as late:
            reply = await late.request({"type": "resume", "token": token})
            assert reply["code"] == "resume_failed"
        assert (await signaling.server.statistics()).shares == 0


async def test_clean_close_is_not_parked(connect, signaling: Any) -> None:
    async with connect() as receiver:
        async with connect() as sender:
            token = await hello(sender)
            session = await session_between(sender, receiver)
        with trio.fail_after(3):
            assert await receiver.receive() == {"type": "left", "session": session}
        async with connect() as late:
            assert (await late.request({"type": "resume", "token": token}))["code"] == (
                "resume_failed"
            )


async def test_resume_takes_over_a_socket_that_still_looks_alive(connect, signaling: Any) -> None:
    async with connect() as receiver, connect() as old, connect() as new:
        token = await hello(old)
        session = await session_between(old, receiver)
        resumed = await new.request({"type": "resume", "token": token})
        assert resumed["type"] == "resumed"
        with trio.fail_after(3):  # the old socket is dropped
            while True:
                try:
                    await old.ws.get_message()
                except Exception:
                    break
        await receiver.send({"type": "relay", "session": session, "data": {"x": 1}})
        assert (await new.receive())["data"] == {"x": 1}
        await receiver.assert_silent()


async def test_resume_failures_look_alike(connect) -> None:
    async with connect() as client, connect() as other:
        token = await hello(other)
        for bad in ("x" * 43, "short", "no such token at all, really, none......"):
            reply = await client.request({"type": "resume", "token": bad, "id": 1})
            assert reply == {
                "type": "error",
                "code": "resume_failed",
                "message": "cannot resume that",
                "id": 1,
            }
        await client.request(
            {"type": "host", "share": SHARE, "host_key": KEY, "code": False}
        )  # not fresh any more: cannot resume even with a valid token
        reply = await client.request({"type": "resume", "token": token, "id": 2})
        assert reply["code"] == "resume_failed"
        assert await other.request({"type": "ping"}) == {"type": "pong"}  # untouched
        reply = await client.request(json.dumps({"type": "resume", "token": 5}))
        assert reply["code"] == "bad_message"
