"""SignalingClient against a real server on 127.0.0.1:0."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from daemon.protocol.errors import LocalProtocolError
from daemon.protocol.signaling import Join
from daemon.signaling import (
    JoinFailed,
    MemorySessionStore,
    SessionClosed,
    SignalingClosed,
    SignalingConnectError,
    SignalingError,
    SignalingServer,
    SignalSession,
    open_signaling,
)
from daemon.signaling.client import SignalingClient

SHARE = "share_0123456789abcdef"
KEY = "host-key-0123456789"


async def next_incoming(client: SignalingClient) -> SignalSession:
    with trio.fail_after(5):
        async for session in client.incoming():
            return session
    raise AssertionError("incoming ended")  # pragma: no cover


async def test_share_by_code_round_trip(signaling: Any) -> None:
    async with open_signaling(signaling.url) as sender, open_signaling(signaling.url) as receiver:
        hosted = await sender.host(SHARE, KEY, code=True)
        assert hosted.share == SHARE and hosted.code is not None and len(hosted.code) == 6
        assert hosted.expires_at == signaling.clock.now + 300
        assert sender.hosted_shares == {SHARE}

        theirs = await receiver.join(code=hosted.code)
        ours = await next_incoming(sender)
        assert (ours.session, ours.share) == (theirs.session, SHARE)
        assert theirs.share == SHARE

        await ours.send({"sdp": "offer", "candidates": [1, 2]})
        await ours.send({"n": 2})
        assert await theirs.receive() == {"sdp": "offer", "candidates": [1, 2]}
        assert await theirs.receive() == {"n": 2}
        await theirs.send({"sdp": "answer"})
        assert await ours.receive() == {"sdp": "answer"}

        await theirs.send({"last": True})
        await theirs.leave()
        await theirs.leave()  # idempotent
        assert await ours.receive() == {"last": True}  # queued before `left`: still delivered
        with pytest.raises(SessionClosed):
            await ours.receive()
        with pytest.raises(SessionClosed):
            await ours.send({"x": 1})
        with pytest.raises(SessionClosed):
            await theirs.receive()
        await ours.leave()  # already over: no-op

        with pytest.raises(JoinFailed) as info:
            await receiver.join(code=hosted.code)  # single use
        assert info.value.code == "join_failed" and info.value.message == "no such code or share"
        await sender.ping()
    stats = await signaling.server.statistics()
    with trio.fail_after(2):
        while stats.connections:
            await trio.sleep(0.01)
            stats = await signaling.server.statistics()
    assert (stats.shares, stats.codes, stats.sessions) == (0, 0, 0)


async def test_resume_by_share_id_and_host_disconnect(signaling: Any) -> None:
    async with open_signaling(signaling.url) as receiver:
        async with open_signaling(signaling.url) as sender:
            await sender.host(SHARE, KEY, code=False)
            async with await receiver.join(share=SHARE) as theirs:
                ours = await next_incoming(sender)
                await ours.send({"hello": 1})
                assert await theirs.receive() == {"hello": 1}
        # the sender's socket closed: the receiver's session ended
        with pytest.raises(SessionClosed):
            with trio.fail_after(5):
                await theirs.receive()
        with pytest.raises(JoinFailed):
            await receiver.join(share=SHARE)


async def test_errors_are_typed(signaling: Any) -> None:
    async with open_signaling(signaling.url) as first, open_signaling(signaling.url) as second:
        await first.host(SHARE, KEY, code=False)
        with pytest.raises(SignalingError) as info:
            await second.host(SHARE, "wrong-key-0123456789", code=True)
        assert info.value.code == "host_key_mismatch"
        assert not isinstance(info.value, JoinFailed)
        with pytest.raises(SignalingError) as info:
            await second.unhost(SHARE)
        assert info.value.code == "unknown_share"
        with pytest.raises(LocalProtocolError):
            await second.join(code="123456", share=SHARE)
        with pytest.raises(LocalProtocolError):
            await second.host("short", KEY, code=True)
        for bad_code in ("1", "abcdef", "000000"):
            with pytest.raises(JoinFailed):
                await second.join(code=bad_code)


async def test_rehost_from_a_new_socket_replaces(signaling: Any) -> None:
    async with open_signaling(signaling.url) as old, open_signaling(signaling.url) as new:
        await old.host(SHARE, KEY, code=False)
        await new.host(SHARE, KEY, code=False)
        with trio.fail_after(5):
            while old.hosted_shares:
                await trio.sleep(0.01)
        async with open_signaling(signaling.url) as receiver:
            await receiver.join(share=SHARE)
            assert (await next_incoming(new)).share == SHARE


async def test_oversize_data_is_refused_locally(signaling: Any) -> None:
    async with open_signaling(signaling.url) as sender, open_signaling(signaling.url) as receiver:
        await sender.host(SHARE, KEY, code=False)
        session = await receiver.join(share=SHARE)
        with pytest.raises(LocalProtocolError):
            await session.send({"blob": "x" * 70_000})
        with pytest.raises(LocalProtocolError):
            await session.send({"bad": float("nan")})
        await session.send({"ok": True})
        assert await (await next_incoming(sender)).receive() == {"ok": True}


async def test_connect_errors(signaling: Any) -> None:
    with pytest.raises(SignalingConnectError) as info:
        async with open_signaling(f"ws://127.0.0.1:{signaling.port}/nope"):
            pass  # pragma: no cover
    assert "404" in str(info.value)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(SignalingConnectError):
        async with open_signaling(f"ws://127.0.0.1:{port}/signal/v1"):
            pass  # pragma: no cover
    with pytest.raises(ValueError):
        async with open_signaling("http://127.0.0.1/signal/v1"):
            pass  # pragma: no cover


async def test_body_exceptions_propagate_unwrapped(signaling: Any) -> None:
    with pytest.raises(KeyError):
        async with open_signaling(signaling.url):
            raise KeyError("mine")
    with pytest.raises(JoinFailed):
        async with open_signaling(signaling.url) as client:
            await client.join(code="000000")


async def test_closing_the_client_wakes_everyone(signaling: Any) -> None:
    results: list[str] = []

    async def wait_receive(session: SignalSession) -> None:
        try:
            await session.receive()
        except SessionClosed:
            results.append("session closed")

    async def wait_incoming(client: SignalingClient) -> None:
        async for _ in client.incoming():
            pass  # pragma: no cover
        results.append("incoming ended")

    async with trio.open_nursery() as nursery:
        async with open_signaling(signaling.url) as sender:
            await sender.host(SHARE, KEY, code=False)
            async with open_signaling(signaling.url) as receiver:
                session = await receiver.join(share=SHARE)
                nursery.start_soon(wait_receive, session)
                ours = await next_incoming(sender)
                nursery.start_soon(wait_receive, ours)
                nursery.start_soon(wait_incoming, sender)
                await trio.sleep(0.05)
            # the receiver's context is closed: its session and the host's end of it are over
            with pytest.raises(SignalingClosed):
                await receiver.ping()
            with trio.fail_after(5):
                while len(results) < 2:
                    await trio.sleep(0.01)
            assert results == ["session closed", "session closed"]
        with trio.fail_after(5):
            while len(results) < 3:
                await trio.sleep(0.01)
    assert results[-1] == "incoming ended"


async def test_server_shutdown_closes_clients(clock: Any) -> None:
    async with trio.open_nursery() as nursery:
        server = SignalingServer(MemorySessionStore(), clock=clock)
        server_scope = trio.CancelScope()

        async def run_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            with server_scope:
                await server.serve("127.0.0.1", 0, task_status=task_status)

        port = await nursery.start(run_server)
        url = f"ws://127.0.0.1:{port}/signal/v1"
        async with open_signaling(url) as sender, open_signaling(url) as receiver:
            await sender.host(SHARE, KEY, code=True)
            session = await receiver.join(share=SHARE)
            server_scope.cancel()
            with trio.fail_after(5):
                with pytest.raises(SessionClosed):
                    await session.receive()
            with pytest.raises(SignalingClosed) as info:
                await receiver.ping()
            assert info.value.close_code == 1001
            assert receiver.closed


async def test_a_join_nobody_waits_for_any_more_is_left(signaling: Any) -> None:
    """What a join cancelled after the server accepted it amounts to: a ``joined`` with an id
    no request waits for. The client leaves that session at once."""
    async with open_signaling(signaling.url) as sender, open_signaling(signaling.url) as receiver:
        await sender.host(SHARE, KEY, code=False)
        await receiver._send(Join(share=SHARE, id=10_000))  # no waiter for this id
        ours = await next_incoming(sender)
        with trio.fail_after(5), pytest.raises(SessionClosed):
            await ours.receive()
        assert (await signaling.server.statistics()).sessions == 0
        await receiver.ping()


class KillableProxy:
    """A TCP relay to the signaling server whose connections the test can cut at once."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scopes: list[trio.CancelScope] = []
        self.refusing = False
        """While True, new connections are cut at once (the server looks unreachable)."""

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        if self.refusing:
            await client.aclose()
            return
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await client.aclose()
            return
        async with client, server:
            with trio.CancelScope() as scope:
                self._scopes.append(scope)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pipe, client, server, scope)
                    nursery.start_soon(self._pipe, server, client, scope)

    @staticmethod
    async def _pipe(
        source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        """Copy until either side ends, then end both directions (an abrupt cut)."""
        try:
            async for chunk in source:
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    def kill(self) -> None:
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()


async def test_client_resumes_after_its_tcp_connection_is_killed(
    signaling: Any, nursery: trio.Nursery
) -> None:
    proxy = KillableProxy(signaling.port)
    await nursery.start(proxy.serve)
    via_proxy = f"ws://127.0.0.1:{proxy.port}/signal/v1"
    sender_context = open_signaling(via_proxy, resume=True, connect_timeout=0.5)
    async with sender_context as sender, open_signaling(signaling.url) as receiver:
        hosted = await sender.host(SHARE, KEY, code=True)
        assert hosted.code is not None
        theirs = await receiver.join(code=hosted.code)
        ours = await next_incoming(sender)
        await ours.send({"n": 1})
        assert await theirs.receive() == {"n": 1}

        proxy.refusing = True
        proxy.kill()  # both TCP connections of the relay die, no closing handshake
        with trio.fail_after(5):  # both notice: the server parks the sender's state
            while sender.online or (await signaling.server.statistics()).connections != 1:
                await trio.sleep(0.01)
        await theirs.send({"n": 2})  # queued by the server for the lost socket
        with trio.fail_after(5):
            send_done = trio.Event()

            async def send_while_offline() -> None:
                await ours.send({"n": 3})  # waits for the resume, then goes through
                send_done.set()

            nursery.start_soon(send_while_offline)
            await trio.sleep(0.2)
            assert not send_done.is_set() and sender.resumes == 0
            proxy.refusing = False  # reachable again: the backoff loop gets through
            await send_done.wait()
            assert await ours.receive() == {"n": 2}
            assert await theirs.receive() == {"n": 3}
        assert sender.resumes == 1 and not sender.closed
        await theirs.send({"n": 4})
        await ours.send({"n": 5})
        with trio.fail_after(5):
            assert await ours.receive() == {"n": 4}
            assert await theirs.receive() == {"n": 5}
        await sender.ping()
        assert sender.hosted_shares == {SHARE}
        again = await receiver.join(share=SHARE)  # still hosted after the resume
        assert (await next_incoming(sender)).session == again.session
