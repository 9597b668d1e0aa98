"""The daemon's embedded STUN responder and the ICE servers its signaling hands to peers."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import aioice.stun
import pytest

from daemon.ice import IceServer
from daemon.signaling import open_signaling
from tests.integration.harness import Daemon

pytestmark = pytest.mark.integration


def _query(port: int) -> tuple[tuple[str, int], aioice.stun.Message]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        request = aioice.stun.Message(
            message_method=aioice.stun.Method.BINDING, message_class=aioice.stun.Class.REQUEST
        )
        sock.sendto(bytes(request), ("127.0.0.1", port))
        reply = aioice.stun.parse_message(sock.recv(2048))
        assert reply.transaction_id == request.transaction_id
        return sock.getsockname(), reply


def _share_code(daemon: Daemon) -> str:
    response = daemon.api("PUT", "/api/v1/shares/hello.txt", content=b"hello\n")
    assert response.status_code in (200, 201), response.text
    return response.json()["code"]


async def test_stun_responder_answers_and_sessions_get_its_url(daemon: Daemon) -> None:
    port = daemon.runtime["stun_port"]
    source, reply = _query(port)
    assert reply.attributes["XOR-MAPPED-ADDRESS"] == source

    async with open_signaling(daemon.signal_url) as client:
        session = await client.join(code=_share_code(daemon))
        assert session.ice_servers == (IceServer(urls=(f"stun:127.0.0.1:{port}",)),)
        await session.leave()
    stun = daemon.api("GET", "/api/v1/stats").json()["stun"]
    assert stun["received_total"] >= 1 and stun["answered_total"] >= 1
    assert 'doorstep_stun_answered_total ' in daemon.api("GET", "/metrics").text


async def test_stun_disabled(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = start_daemon("quiet", DOORSTEP_STUN_ENABLED="false")
    assert daemon.runtime["stun_port"] is None
    assert "stun" not in daemon.api("GET", "/api/v1/stats").json()
    async with open_signaling(daemon.signal_url) as client:
        session = await client.join(code=_share_code(daemon))
        assert session.ice_servers == ()
        await session.leave()
