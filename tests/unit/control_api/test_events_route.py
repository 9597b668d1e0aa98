"""``GET /api/v1/events`` framing: replay after Last-Event-ID as SSE, keep-alive comments, and the
end of the stream for a listener dropped as too slow."""

from __future__ import annotations

import json

import trio
from litestar import Litestar

from control_api.errors import exception_handlers
from control_api.routes_events import event_routes
from daemon.facade import Arrival, TransferStatus
from daemon.runtime.events import EventBus
from daemon.state import Direction, TransferRecord, TransferState


class FakeAppliance:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def subscribe(self, last_event_id=None):
        return self.bus.subscribe(last_event_id)


def _app(bus: EventBus, keepalive: float = 15.0) -> Litestar:
    return Litestar(route_handlers=event_routes(FakeAppliance(bus), lambda *_: None, keepalive=keepalive),
                    exception_handlers=exception_handlers())


async def _get(app: Litestar, headers: dict[str, str], *, events: int) -> tuple[int, dict[str, str], list[dict]]:
    """GET /api/v1/events straight through ASGI; the client goes away after ``events`` messages
    (or when the server ends the stream). Returns status, headers and the parsed messages."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/api/v1/events", "raw_path": b"/api/v1/events", "query_string": b"", "root_path": "",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    gone = trio.Event()
    asked = []
    start: dict = {}
    body = bytearray()

    async def receive() -> dict:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))
            if body.count(b"\r\n\r\n") >= events or not message.get("more_body", False):
                gone.set()

    with trio.fail_after(5):
        await app(scope, receive, send)
    messages = []
    for block in bytes(body).decode().split("\r\n\r\n"):
        if not block:
            continue
        message: dict = {}
        for line in block.split("\r\n"):
            if line.startswith(":"):
                message.setdefault("comments", []).append(line)
            else:
                field, _, value = line.partition(": ")
                message[field] = value
        messages.append(message)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, messages


def _record(state: TransferState) -> TransferRecord:
    return TransferRecord(id="t1", direction=Direction.RECEIVE, state=state, share_id="s", signal_url="push:dev",
                          created_at=1.0, updated_at=2.0, bytes_done=5, bytes_total=10, bytes_moved=5, error=None,
                          files=())


async def test_replay_after_last_event_id_in_sse_framing() -> None:
    bus = EventBus()
    bus.publish("transfer", TransferStatus(record=_record(TransferState.ACTIVE), speed=1.5, eta=3.0))
    bus.publish("arrival", Arrival(transfer_id="t1", path="d/a.txt", size=10, sha256="f" * 64))
    bus.publish("transfer", TransferStatus(record=_record(TransferState.DONE), speed=0.0, eta=None))
    status, headers, (hello, arrival, done) = await _get(_app(bus), {"Last-Event-ID": "1"}, events=3)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert hello == {"comments": [": connected"], "retry": "3000"}
    assert (arrival["id"], arrival["event"]) == ("2", "arrival")
    assert json.loads(arrival["data"]) == {"transfer": "t1", "path": "d/a.txt", "size": 10, "sha256": "f" * 64}
    assert (done["id"], done["event"]) == ("3", "transfer")
    body = json.loads(done["data"])
    assert (body["id"], body["state"], body["device"], body["speed"], body["eta"]) == ("t1", "done", "dev", 0.0, None)
    assert bus.statistics()["subscribers"] == 0, "the subscription ends with the request"


async def test_live_events_and_keepalive_comments_while_idle() -> None:
    bus = EventBus()
    app = _app(bus, keepalive=0.05)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: trio.sleep(0.2))

        async def publish_later() -> None:
            await trio.sleep(0.15)
            bus.publish("arrival", Arrival(transfer_id="t", path="p", size=0, sha256="0" * 64))

        nursery.start_soon(publish_later)
        _status, _headers, messages = await _get(app, {}, events=6)
    assert {"comments": [": keepalive"]} in messages
    assert any(m.get("event") == "arrival" for m in messages)


async def test_a_bad_last_event_id_is_a_json_400() -> None:
    status, headers, messages = await _get(_app(EventBus()), {"Last-Event-ID": "soon"}, events=1)
    assert status == 400 and headers["content-type"].startswith("application/json")


async def test_the_stream_ends_when_the_listener_is_dropped() -> None:
    bus = EventBus(queue=1)
    for _ in range(3):
        bus.publish("arrival", Arrival(transfer_id="t", path="p", size=0, sha256="0" * 64))
    # Replaying 3 events into a queue of 1 drops the listener: the stream ends on its own.
    _status, _headers, messages = await _get(_app(bus), {"Last-Event-ID": "0"}, events=99)
    assert messages == [{"comments": [": connected"], "retry": "3000"}]
