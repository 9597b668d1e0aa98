"""Transfer activity: speed over a sliding window, ETA, throttled progress events, arrivals."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from daemon.facade import Arrival, TransferStatus
from daemon.runtime.activity import RateMeter, TransferActivity
from daemon.runtime.events import EventBus
from daemon.state import Direction, FileRecord, StateDB, TransferState


def test_rate_meter_averages_over_the_window_and_decays_when_idle() -> None:
    meter = RateMeter(window=5.0)
    assert meter.rate(0.0) == 0.0
    meter.sample(0.0, 0)
    assert meter.rate(1.0) == 0.0, "one sample is no rate"
    for t in range(1, 11):
        meter.sample(float(t), t * 1000)  # 1000 B/s
    assert meter.rate(10.0) == pytest.approx(1000, rel=0.01)
    assert meter.rate(12.0) == pytest.approx(3000 / 5, rel=0.01), "slowing down once nothing moves"
    assert meter.rate(16.0) == 0.0, "idle for a whole window"
    meter.sample(17.0, 0)  # the counter went back (a new attempt)
    assert meter.rate(17.0) == 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup(tmp_path: Path):
    db = StateDB(tmp_path / "state.db")
    bus = EventBus()
    clock = Clock()
    activity = TransferActivity(db, bus, clock=clock, interval=0.5, window=5.0)
    db.observe(activity.observe)
    yield db, bus, clock, activity
    db.close()


async def drain(subscription) -> list:
    out = []
    while (event := await subscription.receive(0)) is not None:
        out.append(event)
    return out


async def test_state_changes_publish_at_once_progress_at_most_every_interval(setup) -> None:
    db, bus, clock, activity = setup
    files = [FileRecord(index=0, path="a.bin", size=1000, sha256="a" * 64)]
    async with trio.open_nursery() as nursery:
        await nursery.start(activity.run)
        with bus.subscribe() as subscription:
            db.add_transfer("t1", Direction.RECEIVE, files=files)
            db.set_state("t1", TransferState.ACTIVE)
            clock.now += 0.5
            db.set_progress("t1", 100, 100)  # an interval after the last event: at once
            clock.now += 0.1
            db.set_progress("t1", 200, 100)  # held back
            db.set_progress("t1", 300, 100)  # held back, replaces the one before
            events = await drain(subscription)
            assert [(e.kind, e.payload.record.state, e.payload.record.bytes_done) for e in events] == [
                ("transfer", TransferState.CONNECTING, 0), ("transfer", TransferState.ACTIVE, 0),
                ("transfer", TransferState.ACTIVE, 100)]
            clock.now += 0.5
            with trio.fail_after(2):
                flushed = await subscription.receive(2)
            assert flushed.payload.record.bytes_done == 300, "held-back progress is flushed, the latest"
            status = flushed.payload
            assert isinstance(status, TransferStatus) and status.speed > 0 and status.eta is not None
            db.set_state("t1", TransferState.DONE)
            done = await subscription.receive(1)
            assert done.payload.record.state is TransferState.DONE and done.payload.speed == 0.0
            assert done.payload.eta is None
        nursery.cancel_scope.cancel()


async def test_speed_and_eta_from_progress(setup) -> None:
    db, bus, clock, activity = setup
    db.add_transfer("t1", Direction.SEND, files=[FileRecord(index=0, path="a", size=10_000, sha256="a" * 64)])
    db.set_state("t1", TransferState.ACTIVE)
    for step in range(5):
        db.set_progress("t1", (step + 1) * 1000, 1000)
        clock.now += 1.0
    status = activity.status(db.get_transfer("t1"))
    assert status.speed == pytest.approx(1000, rel=0.25)
    assert status.eta == pytest.approx(5000 / status.speed, rel=0.01)


async def test_arrivals_are_published_with_the_final_path(setup) -> None:
    db, bus, clock, activity = setup
    with bus.subscribe() as subscription:
        db.add_transfer("t1", Direction.RECEIVE)
        db.set_manifest("t1", "s", [FileRecord(index=0, path="d/a.txt", size=3, sha256="f" * 64)])
        db.set_final_path("t1", 0, "d/a (1).txt")
        arrivals = [e.payload for e in await drain(subscription) if e.kind == "arrival"]
    assert arrivals == [Arrival(transfer_id="t1", path="d/a (1).txt", size=3, sha256="f" * 64)]


async def test_writes_from_a_worker_thread_reach_the_bus(setup) -> None:
    db, bus, clock, activity = setup
    db.add_transfer("t1", Direction.RECEIVE)
    db.set_manifest("t1", "s", [FileRecord(index=0, path="a.txt", size=3, sha256="f" * 64)])
    async with trio.open_nursery() as nursery:
        await nursery.start(activity.run)
        with bus.subscribe() as subscription:
            await trio.to_thread.run_sync(db.set_final_path, "t1", 0, "a.txt")
            with trio.fail_after(2):
                event = await subscription.receive(2)
            assert event.kind == "arrival" and event.payload.path == "a.txt"
        nursery.cancel_scope.cancel()
