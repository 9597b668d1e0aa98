"""The event bus: ids, fan-out, replay after Last-Event-ID, keep-alive timeouts, slow listeners dropped."""

from __future__ import annotations

import pytest
import trio

from daemon.facade import EventStreamLost
from daemon.runtime.events import EventBus, SubscriberTooSlow


async def test_every_subscriber_gets_every_event_in_order_with_increasing_ids() -> None:
    bus = EventBus()
    with bus.subscribe() as first, bus.subscribe() as second:
        published = [bus.publish("transfer", n) for n in range(3)]
        for subscription in (first, second):
            got = [await subscription.receive(1) for _ in range(3)]
            assert [(e.id, e.kind, e.payload) for e in got] == [(1, "transfer", 0), (2, "transfer", 1),
                                                                (3, "transfer", 2)]
        assert [e.id for e in published] == [1, 2, 3]
    assert bus.statistics()["subscribers"] == 0


async def test_receive_times_out_with_none_for_a_keepalive() -> None:
    bus = EventBus()
    with bus.subscribe() as subscription:
        with trio.fail_after(1):
            assert await subscription.receive(0.05) is None


async def test_a_waiting_receiver_wakes_on_publish() -> None:
    bus = EventBus()
    got = []
    with bus.subscribe() as subscription:
        async with trio.open_nursery() as nursery:
            async def wait() -> None:
                got.append(await subscription.receive(5))

            nursery.start_soon(wait)
            await trio.sleep(0.01)
            bus.publish("share", "x")
    assert [e.payload for e in got] == ["x"]


async def test_replay_after_last_event_id_from_the_ring() -> None:
    bus = EventBus(history=3)
    for n in range(5):
        bus.publish("arrival", n)  # ids 1..5; the ring keeps 3, 4, 5
    with bus.subscribe(last_event_id=3) as subscription:
        assert [(await subscription.receive(0)).id for _ in range(2)] == [4, 5]
        assert await subscription.receive(0) is None
    with bus.subscribe(last_event_id=0) as subscription:  # older than the ring: what is left
        assert [(await subscription.receive(0)).id for _ in range(3)] == [3, 4, 5]
    with bus.subscribe(last_event_id=99) as subscription:  # from before a restart: the whole ring
        assert [(await subscription.receive(0)).id for _ in range(3)] == [3, 4, 5]
    with bus.subscribe(last_event_id=5) as subscription:
        assert await subscription.receive(0) is None


async def test_a_slow_subscriber_is_dropped_and_never_blocks_publish() -> None:
    bus = EventBus(queue=2)
    with bus.subscribe() as slow, bus.subscribe() as keeping_up:
        for n in range(3):
            bus.publish("transfer", n)  # never blocks, never raises
            assert (await keeping_up.receive(0)).payload == n
        with pytest.raises(SubscriberTooSlow):
            await slow.receive(0)
        with pytest.raises(EventStreamLost):
            await slow.receive(0)
        bus.publish("transfer", 3)
        assert (await keeping_up.receive(0)).payload == 3
    stats = bus.statistics()
    assert (stats["dropped"], stats["published"], stats["last_id"]) == (1, 4, 4)
