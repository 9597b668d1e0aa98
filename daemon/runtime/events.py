"""The event bus: what happens in the daemon, told to whoever listens (``GET /api/v1/events``).

Publishers (the appliance, the share host, the fetcher and the outbox, through the journal's
observer) call :meth:`EventBus.publish`: synchronous, never blocks, never fails because of a
listener. Each event gets the next integer id. The last ``history`` events stay in a ring buffer,
so a listener that reconnects with the last id it saw (SSE ``Last-Event-ID``) gets what it missed,
as long as it is still there.

Each subscriber has a bounded queue. One that does not keep up (its queue is full when an event
is published) is dropped: its next :meth:`Subscription.receive` raises :class:`SubscriberTooSlow`,
which ends its stream; the daemon never waits for it.

Everything here runs in the trio thread.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from daemon.facade import Event, EventStreamLost

__all__ = ["EventBus", "Subscription", "SubscriberTooSlow", "HISTORY", "QUEUE"]

HISTORY = 256
"""Events kept for replay."""
QUEUE = 1024
"""Events a subscriber may have waiting before it is dropped as too slow."""


class SubscriberTooSlow(EventStreamLost):
    """The subscriber's queue overflowed: it was dropped (reconnect with ``Last-Event-ID``)."""


class Subscription:
    """One listener's queue. Get it from :meth:`EventBus.subscribe`."""

    def __init__(self, limit: int) -> None:
        self._queue: collections.deque[Event] = collections.deque()
        self._limit = limit
        self._lot = trio.lowlevel.ParkingLot()
        self.dropped = False

    def _offer(self, event: Event) -> bool:
        """Queue ``event``; False (and dropped) if the queue is full."""
        if self.dropped:
            return False
        if len(self._queue) >= self._limit:
            self.dropped = True
            self._queue.clear()
            self._lot.unpark_all()
            return False
        self._queue.append(event)
        self._lot.unpark_all()
        return True

    async def receive(self, timeout: float) -> Event | None:
        """The next event, or None if none came within ``timeout`` seconds (time for a
        keep-alive). Raises :class:`SubscriberTooSlow` once dropped."""
        with trio.move_on_after(timeout):
            while not self._queue and not self.dropped:
                await self._lot.park()
        if self.dropped:
            raise SubscriberTooSlow("this listener fell too far behind and was dropped; reconnect")
        if self._queue:
            return self._queue.popleft()
        await trio.lowlevel.checkpoint()
        return None

    def pending(self) -> int:
        return len(self._queue)


class EventBus:
    """Publish events to subscribers; keep the last ``history`` for replay."""

    def __init__(self, *, history: int = HISTORY, queue: int = QUEUE) -> None:
        self._ids = itertools.count(1)
        self._last_id = 0
        self._ring: collections.deque[Event] = collections.deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self._queue = queue
        self._dropped = 0
        self._published = 0

    def publish(self, kind: str, payload: Any) -> Event:
        """Send ``payload`` as an event of ``kind`` to every subscriber. Never blocks; a
        subscriber whose queue is full is dropped. Returns the event."""
        self._last_id = next(self._ids)
        event = Event(id=self._last_id, kind=kind, payload=payload)
        self._ring.append(event)
        self._published += 1
        for subscription in list(self._subscribers):
            if not subscription._offer(event):
                self._subscribers.discard(subscription)
                self._dropped += 1
        return event

    @contextmanager
    def subscribe(self, last_event_id: int | None = None) -> Iterator[Subscription]:
        """Listen from now on, for as long as the ``with`` block lasts. With ``last_event_id``,
        first the buffered events after it (all buffered events if that id is from before a
        restart, i.e. larger than any id published since)."""
        subscription = Subscription(self._queue)
        if last_event_id is not None:
            after = last_event_id if last_event_id <= self._last_id else 0
            for event in self._ring:
                if event.id > after:
                    subscription._offer(event)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def statistics(self) -> dict[str, int]:
        """Subscribers now, events published, subscribers dropped as too slow, last id."""
        return {"subscribers": len(self._subscribers), "published": self._published,
                "dropped": self._dropped, "last_id": self._last_id}
