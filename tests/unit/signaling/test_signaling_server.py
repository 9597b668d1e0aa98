"""Signaling server over real sockets: a server on 127.0.0.1:0 and raw trio-websocket clients."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request

from daemon.signaling import Limits, SignalingConnectError, open_signaling


SHARE = "share_0123456789abcdef"
OTHER_SHARE = "share_fedcba9876543210"
KEY = "host-key-0123456789"
JOIN_FAILED = {"type": "error", "code": "join_failed", "message": "no such code or share"}


async def host(client: Any, share: str = SHARE, *, code: bool = True, key: str = KEY) -> dict:
    reply = await client.request(
        {"type": "host", "share": share, "host_key": key, "code": code, "id": 1}
    )
    assert reply["type"] == "hosted", reply
    return reply


async def join_failed(client: Any, **fields: object) -> None:
    reply = await client.request({"type": "join", "id": "j", **fields})
    assert reply == {**JOIN_FAILED, "id": "j"}


async def closed_with(client: Any, timeout: float = 5.0) -> int | None:
    """Read until the server closes the socket; the close code."""
    with trio.fail_after(timeout):
        with pytest.raises(ConnectionClosed) as info:
            while True:
                await client.ws.get_message()
    return info.value.reason.code if info.value.reason else None


async def test_share_by_code_relay_and_leave(connect, signaling: Any) -> None:
    async with connect() as sender, connect() as receiver:
        hosted = await host(sender)
        assert hosted["share"] == SHARE and hosted["id"] == 1
        assert len(hosted["code"]) == 6 and hosted["code"].isdigit()
        assert hosted["expires_at"] == signaling.clock.now + 300

        joined = await receiver.request({"type": "join", "code": hosted["code"], "id": 2})
        assert joined["type"] == "joined" and joined["share"] == SHARE and joined["id"] == 2
        session = joined["session"]
        assert await sender.receive() == {"type": "peer", "session": session, "share": SHARE}

        await sender.send({"type": "relay", "session": session, "data": {"sdp": "offer"}})
        relayed = {"type": "relay", "session": session, "data": {"sdp": "offer"}}
        assert await receiver.receive() == relayed
        answer = {"sdp": "answer", "n": [1]}
        await receiver.send({"type": "relay", "session": session, "data": answer})
        assert await sender.receive() == {"type": "relay", "session": session, "data": answer}
        stats = await signaling.server.statistics()
        assert (stats.connections, stats.shares, stats.codes, stats.sessions) == (2, 1, 0, 1)

        assert await receiver.request({"type": "leave", "session": session, "id": 3}) == {
            "type": "left",
            "session": session,
            "id": 3,
        }
        assert await sender.receive() == {"type": "left", "session": session}
        reply = await sender.request({"type": "relay", "session": session, "data": {}, "id": 4})
        assert reply == {
            "type": "error",
            "code": "unknown_session",
            "message": "no such session",
            "id": 4,
        }
        assert (await signaling.server.statistics()).sessions == 0


async def test_code_is_single_use_and_failures_look_identical(connect) -> None:
    async with connect() as sender, connect() as first, connect() as second:
        code = (await host(sender))["code"]
        assert (await first.request({"type": "join", "code": code}))["type"] == "joined"
        await join_failed(second, code=code)  # used
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        await join_failed(second, code=wrong)  # never issued
        await join_failed(second, code="12345")  # malformed
        await join_failed(second, code="abcdef")
        await join_failed(second, share="no-such-share-0000")
        await join_failed(second, share="bad share")


async def test_expired_code_gets_the_same_reply(connect, signaling: Any) -> None:
    async with connect() as sender, connect() as receiver:
        code = (await host(sender))["code"]
        signaling.clock.advance(299.9)
        assert (await signaling.server.statistics()).codes == 1
        signaling.clock.advance(0.1)
        await join_failed(receiver, code=code)
        assert (await signaling.server.statistics()).codes == 0
        # the share itself stays joinable by id
        assert (await receiver.request({"type": "join", "share": SHARE}))["type"] == "joined"


async def test_join_by_share_id_while_hosted_only(connect) -> None:
    async with connect() as receiver:
        async with connect() as sender:
            hosted = await host(sender, code=False)
            assert hosted["code"] is None and hosted["expires_at"] is None
            joined = await receiver.request({"type": "join", "share": SHARE})
            assert joined["type"] == "joined"
            assert (await sender.receive())["type"] == "peer"
            again = await receiver.request({"type": "join", "share": SHARE})  # resume twice: fine
            assert again["type"] == "joined" and again["session"] != joined["session"]
            assert (await sender.receive())["type"] == "peer"

            assert await sender.request({"type": "unhost", "share": SHARE, "id": 5}) == {
                "type": "unhosted",
                "share": SHARE,
                "id": 5,
            }
            await join_failed(receiver, share=SHARE)
            reply = await sender.request({"type": "unhost", "share": SHARE})
            assert reply["type"] == "error" and reply["code"] == "unknown_share"
            await host(sender)
        # host socket closed: both sessions end, the share is gone
        left = {(await receiver.receive())["session"], (await receiver.receive())["session"]}
        assert left == {joined["session"], again["session"]}
        await join_failed(receiver, share=SHARE)


async def test_unhost_kills_the_code(connect) -> None:
    async with connect() as sender, connect() as receiver:
        code = (await host(sender))["code"]
        await sender.request({"type": "unhost", "share": SHARE})
        await join_failed(receiver, code=code)


async def test_rehost_needs_the_same_host_key(connect, signaling: Any) -> None:
    async with connect() as old, connect() as new, connect() as receiver:
        old_code = (await host(old))["code"]
        reply = await new.request(
            {
                "type": "host",
                "share": SHARE,
                "host_key": "another-key-0123456",
                "code": True,
                "id": 9,
            }
        )
        assert reply == {
            "type": "error",
            "code": "host_key_mismatch",
            "message": "share is hosted with another host_key",
            "id": 9,
        }
        # the failed attempt changed nothing
        assert (await signaling.server.statistics()).codes == 1

        new_code = (await host(new))["code"]  # same key from a new socket: replaces
        assert await old.receive() == {"type": "unhosted", "share": SHARE}
        if new_code != old_code:
            await join_failed(receiver, code=old_code)
        assert (await receiver.request({"type": "join", "code": new_code}))["type"] == "joined"
        assert (await new.receive())["type"] == "peer"
        await old.assert_silent()
        assert (await signaling.server.statistics()).shares == 1


@pytest.mark.parametrize(
    ("frame", "request_id"),
    [
        ("{nope", None),
        ("[1,2]", None),
        ('{"type":"dance","id":11}', 11),
        ('{"type":"host","share":"' + SHARE + '","id":"x"}', "x"),
        ('{"type":"join","code":123456,"id":12}', 12),
        ('{"type":"relay","session":"s","data":{},"extra":1,"id":13}', 13),
        ('{"type":"relay","session":"s","data":{"a":NaN}}', None),
        ('{"type":"hosted","share":"' + SHARE + '","code":null,"expires_at":null}', None),
    ],
)
async def test_bad_messages_get_an_error_and_the_connection_survives(
    connect, frame: str, request_id: object
) -> None:
    async with connect() as client:
        reply = await client.request(frame)
        assert reply["type"] == "error" and reply["code"] == "bad_message"
        assert isinstance(reply["message"], str) and reply["message"]
        assert reply.get("id") == request_id
        assert await client.request({"type": "ping", "id": 1}) == {"type": "pong", "id": 1}
        assert await client.request({"type": "ping"}) == {"type": "pong"}


async def test_oversize_frame_closes_1009(connect) -> None:
    async with connect() as client:
        await client.send({"type": "relay", "session": "s", "data": {"p": "a" * 70_000}})
        assert await closed_with(client) == 1009


async def test_oversize_in_bytes_closes_1009(connect) -> None:
    async with connect() as client:  # 40 000 characters, 80 000 UTF-8 bytes
        frame = {"type": "relay", "session": "s", "data": {"p": "é" * 40_000}}
        await client.ws.send_message(json.dumps(frame, ensure_ascii=False))
        assert await closed_with(client) == 1009


async def test_binary_frame_closes_1003(connect) -> None:
    async with connect() as client:
        await client.ws.send_message(b'{"type":"ping"}')
        assert await closed_with(client) == 1003


async def test_wrong_path_is_rejected_at_handshake(signaling: Any, connect_url: Any) -> None:
    for path in ("/", "/signal", "/signal/v2", "/signal/v1/x"):
        with pytest.raises(SignalingConnectError) as info:
            async with open_signaling(f"ws://127.0.0.1:{signaling.port}{path}"):
                pass  # pragma: no cover
        assert isinstance(info.value.__cause__, ConnectionRejected)
        assert info.value.__cause__.status_code == 404
    async with connect_url(f"{signaling.url}?client=test") as client:  # a query is fine
        assert await client.request({"type": "ping"}) == {"type": "pong"}


async def test_socket_close_tells_the_other_end_and_drops_shares(connect, signaling: Any) -> None:
    async with connect() as sender:
        async with connect() as receiver:
            code = (await host(sender))["code"]
            session = (await receiver.request({"type": "join", "code": code}))["session"]
            assert (await sender.receive())["type"] == "peer"
        assert await sender.receive() == {"type": "left", "session": session}
        stats = await signaling.server.statistics()
        assert (stats.connections, stats.shares, stats.sessions) == (1, 1, 0)
    with trio.fail_after(2):
        while (await signaling.server.statistics()).connections:
            await trio.sleep(0.01)
    stats = await signaling.server.statistics()
    assert (stats.shares, stats.codes, stats.sessions) == (0, 0, 0)


async def test_relay_needs_a_session_of_ones_own(connect) -> None:
    async with connect() as sender, connect() as receiver, connect() as intruder:
        code = (await host(sender))["code"]
        session = (await receiver.request({"type": "join", "code": code}))["session"]
        await host(intruder, OTHER_SHARE, code=False)
        for message in (
            {"type": "relay", "session": session, "data": {"x": 1}, "id": 1},
            {"type": "leave", "session": session, "id": 1},
        ):
            reply = await intruder.request(message)
            assert reply["code"] == "unknown_session"
        await sender.receive()  # peer
        await sender.assert_silent()


async def test_host_cannot_join_its_own_share(connect) -> None:
    async with connect() as sender:
        code = (await host(sender))["code"]
        await join_failed(sender, code=code)
        await join_failed(sender, share=SHARE)


@pytest.mark.parametrize("limits", [Limits(ip_failed_join_budget=3, code_attempt_cap=2)])
async def test_per_ip_budget_and_per_code_cap(connect, signaling: Any) -> None:
    async with connect() as sender, connect() as guesser:
        code = (await host(sender))["code"]
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for _ in range(3):
            await join_failed(guesser, code=wrong)
        await join_failed(guesser, code=code)  # budget used up: even the right code fails
        assert (await signaling.server.statistics()).codes == 1
        await join_failed(guesser, code=code)  # second refused attempt: cap reached, code revoked
        assert (await signaling.server.statistics()).codes == 0
        signaling.clock.advance(600)  # a new window
        await join_failed(guesser, code=code)
        assert (await guesser.request({"type": "join", "share": SHARE}))["type"] == "joined"


@pytest.mark.parametrize("server_options", [{"join_timeout": 0.3}])
async def test_idle_sockets_are_closed_after_join_timeout(connect) -> None:
    async with connect() as idle, connect() as sender:
        await host(sender, code=False)
        assert await idle.request({"type": "ping"}) == {"type": "pong"}  # not useful
        assert await closed_with(idle, timeout=3) == 4000
        assert await sender.request({"type": "ping"}) == {"type": "pong"}


@pytest.mark.parametrize("server_options", [{"heartbeat_interval": 0.1}])
async def test_heartbeat_keeps_responsive_clients(connect) -> None:
    async with connect() as client:
        await trio.sleep(0.6)  # long enough for three missed pings (0.1 s apart) to close it
        assert await client.request({"type": "ping"}) == {"type": "pong"}


@pytest.mark.parametrize("server_options", [{"heartbeat_interval": 0.1}])
async def test_heartbeat_closes_a_peer_that_stops_answering(signaling: Any) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", signaling.port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host="127.0.0.1", target="/signal/v1")))
    with trio.fail_after(5):
        accepted = False
        while not accepted:
            ws.receive_data(await stream.receive_some())
            accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
    start = trio.current_time()
    await trio.sleep(0.3)  # never read, so never answer pings
    assert (await signaling.server.statistics()).connections == 1
    events = []
    with trio.fail_after(5):
        while data := await stream.receive_some():  # EOF once the server gives up
            ws.receive_data(data)
            events.extend(ws.events())
    elapsed = trio.current_time() - start
    assert sum(isinstance(e, Ping) for e in events) >= 3
    closes = [e for e in events if isinstance(e, CloseConnection)]
    assert [c.code for c in closes] == [4001]
    assert 0.3 < elapsed < 2.0
    await stream.aclose()


@pytest.mark.parametrize("limits", [Limits(mailbox_size=2)])
async def test_a_reader_too_slow_is_disconnected(connect, signaling: Any) -> None:
    async with connect() as sender, connect() as slow:
        code = (await host(sender))["code"]
        session = (await slow.request({"type": "join", "code": code}))["session"]
        assert (await sender.receive())["type"] == "peer"
        blob = {"type": "relay", "session": session, "data": {"p": "x" * 60_000}}
        with trio.fail_after(10):
            while True:  # slow never reads; kernel buffers fill, then its queue overflows
                try:
                    await sender.send(blob)
                except ConnectionClosed:  # pragma: no cover
                    raise
                with trio.move_on_after(0.001):
                    message = await sender.receive()
                    assert message == {"type": "left", "session": session}
                    break
    with trio.fail_after(5):
        while (await signaling.server.statistics()).connections:
            await trio.sleep(0.01)
