"""Live progress without a daemon: the SSE parser, the event-or-poll update source over
``httpx.MockTransport``, the rate meter and the plain (non-terminal) view."""

from __future__ import annotations

import io
import itertools
import json

import httpx

from daemon.runtime.cli_client import ApiClient
from daemon.runtime.cli_progress import LiveView, PlainView, RateMeter, ServerEvent, iter_sse, transfer_updates


def test_iter_sse_follows_the_event_stream_rules() -> None:
    lines = [": connected", "retry: 3000", "", "id: 1", "event: transfer", 'data: {"id": "t1"}', "",
             ": keepalive", "", "event: arrival", "data: line one", "data:line two", "", "data: plain", "",
             "event: empty", "", "id: 7", "event: share", "data: {}"]  # the last one never completes
    assert list(iter_sse(lines)) == [ServerEvent("transfer", '{"id": "t1"}', "1"),
                                     ServerEvent("arrival", "line one\nline two", "1"),
                                     ServerEvent("message", "plain", "1")]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(state: str, done: int, total: int = 1000, **extra) -> dict:
    return {"id": "t1", "state": state, "bytes_done": done, "bytes_total": total,
            "files": [{"path": "a.bin"}], **extra}


def sse(*events: tuple[str, dict]) -> bytes:
    return b"".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode() for kind, data in events)


def test_updates_come_from_events_after_a_snapshot() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/api/v1/events":
            body = b": connected\n\n" + sse(("transfer", record("active", 10)), ("device", {"id": "d"}),
                                            ("transfer", record("done", 1000)))
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
        return httpx.Response(200, json=record("connecting", 0))

    with ApiClient("http://d", "t", transport=httpx.MockTransport(handler)) as client:
        snapshot = lambda: [client.get("/transfers/t1")]  # noqa: E731
        got = list(itertools.islice(transfer_updates(client, snapshot, sleep=_no_sleep), 3))
    assert [[r["state"] for r in batch] for batch in got] == [["connecting"], ["active"], ["done"]]
    assert calls == ["/api/v1/events", "/api/v1/transfers/t1"]


def test_without_an_event_stream_it_polls() -> None:
    states = iter(["connecting", "active", "active", "done"])
    sleeps = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/events":
            return httpx.Response(404, json={"status_code": 404, "detail": "Not Found"})
        return httpx.Response(200, json=record(next(states), 0))

    with ApiClient("http://d", "t", transport=httpx.MockTransport(handler)) as client:
        snapshot = lambda: [client.get("/transfers/t1")]  # noqa: E731
        got = list(itertools.islice(transfer_updates(client, snapshot, poll_interval=0.25, sleep=sleeps.append), 4))
    assert [batch[0]["state"] for batch in got] == ["connecting", "active", "active", "done"]
    assert sleeps == [0.25] * 3


def test_a_stream_that_keeps_breaking_falls_back_to_polling() -> None:
    paths = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/api/v1/events":
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b": hello\n\n")
        return httpx.Response(200, json=record("active", len(paths)))

    with ApiClient("http://d", "t", transport=httpx.MockTransport(handler)) as client:
        snapshot = lambda: [client.get("/transfers/t1")]  # noqa: E731
        list(itertools.islice(transfer_updates(client, snapshot, sleep=_no_sleep), 5))
    assert paths.count("/api/v1/events") == 3, paths
    assert paths[-2:] == ["/api/v1/transfers/t1"] * 2, "polling after the third broken stream"


def _no_sleep(_seconds: float) -> None:
    pass


def test_rate_meter_windows_and_restarts() -> None:
    clock = FakeClock()
    meter = RateMeter(window=5.0, clock=clock)
    assert meter.speed is None
    for t, done in ((0, 0), (1, 1000), (2, 2000)):
        clock.now = t
        meter.sample(done)
    assert meter.speed == 1000 and meter.eta(5000) == 5
    clock.now = 3
    meter.sample(100)  # resumed from an earlier offset: old samples no longer count
    assert meter.speed is None


def test_plain_view_prints_changes_at_most_once_a_second_and_always_the_end() -> None:
    clock = FakeClock()
    out = io.StringIO()
    view = PlainView(out, clock=clock, describe=lambda r: r["files"][0]["path"])
    view.update(record("connecting", 0))
    clock.now = 0.1
    view.update(record("active", 100, speed=1000.0, eta=0.9))
    clock.now = 0.5
    view.update(record("active", 500, speed=1000.0, eta=0.5))  # too soon: skipped
    clock.now = 1.2
    view.update(record("active", 500, speed=1000.0, eta=0.5))
    clock.now = 2.5
    view.update(record("active", 500, speed=0.0, eta=None))  # nothing moved: skipped
    clock.now = 2.6
    view.update(record("done", 1000, speed=0.0, eta=None))
    view.update(record("done", 1000))
    assert out.getvalue().splitlines() == [
        "a.bin: connecting  0 bytes / 1.0 kB (0%)",
        "a.bin: active  100 bytes / 1.0 kB (10%)  1.0 kB/s  eta <1s",
        "a.bin: active  500 bytes / 1.0 kB (50%)  1.0 kB/s  eta <1s",
        "a.bin: done  1.0 kB / 1.0 kB (100%)",
    ]


def test_plain_view_measures_speed_when_the_daemon_does_not_say() -> None:
    clock = FakeClock()
    out = io.StringIO()
    view = PlainView(out, clock=clock)
    for t, done in ((0, 0), (1, 2_000_000), (2, 4_000_000)):
        clock.now = t
        view.update(record("active", done, total=10_000_000))
    assert out.getvalue().splitlines()[-1] == "a.bin: active  4.0 MB / 10.0 MB (40%)  2.0 MB/s  eta 3s"


def test_live_view_draws_bars_in_a_terminal() -> None:
    out = io.StringIO()
    view = LiveView(out)
    view.update(record("active", 250, speed=100.0, eta=7.5))
    view.update({**record("active", 10), "id": "t2", "files": [{"path": "b.bin"}, {"path": "c.bin"}]})
    view.close()
    text = out.getvalue()
    assert "a.bin" in text and "active" in text and "0.2/1.0 kB" in text and "100 bytes/s eta 8s" in text
    assert "b.bin (+1 more)" in text
