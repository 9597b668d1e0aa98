"""Fixtures: a real signaling server on 127.0.0.1 (port 0) with a fake clock, and raw clients."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, wrap_client_stream

from daemon.signaling import Limits, MemorySessionStore, SignalingServer


class FakeClock:
    """Unix-time clock the tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ServerHandle:
    def __init__(self, server: SignalingServer, port: int, clock: FakeClock) -> None:
        self.server = server
        self.port = port
        self.clock = clock
        self.url = f"ws://127.0.0.1:{port}/signal/v1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
def server_options() -> dict[str, Any]:
    """Override in a test module (or parametrize) to tune the server."""
    return {}


@pytest.fixture
async def signaling(
    nursery: trio.Nursery, clock: FakeClock, limits: Limits, server_options: dict[str, Any]
) -> ServerHandle:
    options = {"heartbeat_interval": 30.0, "join_timeout": 60.0, "close_timeout": 1.0}
    options.update(server_options)
    server = SignalingServer(
        MemorySessionStore(limits=limits), limits=limits, clock=clock, **options
    )
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    return ServerHandle(server, port, clock)


class RawClient:
    """A bare trio-websocket client speaking JSON, for protocol-level tests."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send_message(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        with trio.fail_after(timeout):
            frame = await self.ws.get_message()
        assert isinstance(frame, str)
        result = json.loads(frame)
        assert isinstance(result, dict)
        return result

    async def request(self, message: dict[str, Any] | str) -> dict[str, Any]:
        await self.send(message)
        return await self.receive()

    async def assert_silent(self, seconds: float = 0.05) -> None:
        with trio.move_on_after(seconds):
            frame = await self.ws.get_message()
            raise AssertionError(f"unexpected frame {frame!r}")


@asynccontextmanager
async def raw_client(
    url: str,
    *,
    local_address: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[RawClient]:
    """A raw client owning its TCP stream: trio-websocket's client leaves the stream open when
    the server closes first (which many tests provoke). ``local_address`` binds the client
    socket (any 127.x.y.z works on Linux loopback), so tests can play several client addresses.
    """
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    resource = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(parts.hostname, parts.port, local_address=local_address)
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(
            nursery,
            stream,
            f"{parts.hostname}:{parts.port}",
            resource,
            extra_headers=headers,
        )
        try:
            yield RawClient(ws)
        finally:
            with trio.move_on_after(2):
                await ws.aclose()
            nursery.cancel_scope.cancel()


@pytest.fixture
def connect(signaling: ServerHandle):
    """``async with connect(local_address=..., headers=...) as client:`` a raw client of the
    test server."""
    return lambda **options: raw_client(signaling.url, **options)


@pytest.fixture
def connect_url():
    """``async with connect_url(url) as client:`` a raw client of any URL."""
    return raw_client
