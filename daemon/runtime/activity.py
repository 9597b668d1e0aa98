"""Live transfer activity: speed and ETA per transfer, and ``transfer``/``arrival`` events.

The journal (:class:`~daemon.state.StateDB`) tells :meth:`TransferActivity.observe` about every
write to a transfer, whoever made it (the fetcher, the share host, a push, the outbox). From those:

- every change of state (and a new or removed transfer, or a newly known manifest) publishes a
  ``transfer`` event at once;
- progress publishes one at most every ``PROGRESS_INTERVAL`` seconds per transfer; the latest
  progress is never lost, :meth:`run` flushes what was held back;
- each file placed in the inbox publishes an ``arrival`` event;
- progress samples feed a :class:`RateMeter` per transfer, for ``speed`` and ``eta``.

Journal writes made in a worker thread are handed to the trio thread first.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable
from typing import NoReturn

import trio

from daemon.facade import Arrival, TransferStatus
from daemon.state import StateDB, TransferChange, TransferRecord, TransferState

from .events import EventBus

__all__ = ["RateMeter", "TransferActivity", "PROGRESS_INTERVAL", "RATE_WINDOW"]

PROGRESS_INTERVAL = 0.5
"""Seconds between two progress events of one transfer, at least."""
RATE_WINDOW = 5.0
"""Seconds of progress that ``speed`` averages over."""


class RateMeter:
    """Bytes per second of a growing byte counter, over the last ``window`` seconds.

    Feed it the counter's running total with :meth:`sample`; :meth:`rate` divides what it grew by
    the time since the oldest sample kept, so a transfer that stalls decays to 0 within a window.
    """

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: collections.deque[tuple[float, int]] = collections.deque()

    def sample(self, now: float, total: int) -> None:
        if self._samples and total < self._samples[-1][1]:
            self._samples.clear()  # the counter went back (a new attempt): start afresh
        self._samples.append((now, total))
        self._trim(now)

    def _trim(self, now: float) -> None:
        # Keep one sample at or before the window's start as the baseline.
        while len(self._samples) >= 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self, now: float) -> float:
        """Bytes per second over the window; 0.0 without two samples or when idle a whole window."""
        self._trim(now)
        if len(self._samples) < 2:
            return 0.0
        (t0, b0), (_t1, b1) = self._samples[0], self._samples[-1]
        if b1 == b0 or now <= t0:
            return 0.0
        return (b1 - b0) / max(now - t0, 1e-3)


class TransferActivity:
    """Turns journal writes into events and rates. Call :meth:`observe` from the journal (register
    it with ``db.observe(activity.observe)``) and run :meth:`run` in a nursery."""

    def __init__(self, db: StateDB, bus: EventBus, *, clock: Callable[[], float] = time.monotonic,
                 interval: float = PROGRESS_INTERVAL, window: float = RATE_WINDOW) -> None:
        self._db = db
        self._bus = bus
        self._clock = clock
        self._interval = interval
        self._window = window
        self._meters: dict[str, RateMeter] = {}
        self._last_sent: dict[str, float] = {}
        self._held_back: set[str] = set()
        self._routes: dict[str, str] = {}
        self.route_counts: collections.Counter[str] = collections.Counter()
        """Sessions that chose each route (``direct``, ``host``, ``relay``...) since start."""
        self._token: trio.lowlevel.TrioToken | None = None
        self._wakeup = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Accept writes from worker threads; publish held-back progress once its interval is up."""
        self._token = trio.lowlevel.current_trio_token()
        task_status.started()
        while True:
            await self._wakeup.wait()
            self._wakeup = trio.Event()
            while self._held_back:
                now = self._clock()
                due = [t for t in self._held_back if now - self._last_sent.get(t, -math.inf) >= self._interval]
                for transfer_id in due:
                    self._held_back.discard(transfer_id)
                    self._publish(transfer_id)
                if self._held_back:
                    await trio.sleep(self._interval / 2)

    # -- from the journal ---------------------------------------------------------------------------

    def observe(self, transfer_id: str, change: TransferChange, index: int | None) -> None:
        """The journal's observer: any thread; never raises."""
        if not trio.lowlevel.in_trio_run():
            if self._token is not None:
                try:
                    self._token.run_sync_soon(self._observe, transfer_id, change, index)
                except trio.RunFinishedError:
                    pass
            return
        self._observe(transfer_id, change, index)

    def _observe(self, transfer_id: str, change: TransferChange, index: int | None) -> None:
        if change is TransferChange.REMOVED:
            self._forget(transfer_id)
            self._routes.pop(transfer_id, None)
            return
        record = self._db.get_transfer(transfer_id)
        if record is None:
            return
        if change is TransferChange.FILE_PLACED:
            placed = next((f for f in record.files if f.index == index), None)
            if placed is not None and placed.final_path is not None:
                self._bus.publish("arrival", Arrival(transfer_id=transfer_id, path=placed.final_path,
                                                     size=placed.size, sha256=placed.sha256))
            return
        if change is TransferChange.PROGRESS:
            meter = self._meters.setdefault(transfer_id, RateMeter(self._window))
            meter.sample(self._clock(), record.bytes_moved)
            if self._clock() - self._last_sent.get(transfer_id, -math.inf) < self._interval:
                self._held_back.add(transfer_id)
                self._wakeup.set()
                return
        self._held_back.discard(transfer_id)
        self._publish(transfer_id, record)
        if record.state.finished:
            self._forget(transfer_id)

    def set_route(self, transfer_id: str, route: str, detail: str = "") -> None:
        """A session of ``transfer_id`` chose its path: ``route`` shows in its status from now on
        (in memory; until the transfer is removed) and counts in :attr:`route_counts`."""
        self._routes[transfer_id] = route
        self.route_counts[route] += 1
        record = self._db.get_transfer(transfer_id)
        if record is not None:
            self._publish(transfer_id, record)

    def _forget(self, transfer_id: str) -> None:
        self._meters.pop(transfer_id, None)
        self._last_sent.pop(transfer_id, None)
        self._held_back.discard(transfer_id)

    def _publish(self, transfer_id: str, record: TransferRecord | None = None) -> None:
        record = record or self._db.get_transfer(transfer_id)
        if record is None:
            return
        self._last_sent[transfer_id] = self._clock()
        self._bus.publish("transfer", self.status(record))

    # -- for the control API ------------------------------------------------------------------------

    def status(self, record: TransferRecord) -> TransferStatus:
        """``record`` with its current speed (bytes/s) and ETA (seconds; None unless it is
        moving bytes)."""
        meter = self._meters.get(record.id)
        active = record.state in (TransferState.ACTIVE, TransferState.CONNECTING, TransferState.RETRYING)
        speed = meter.rate(self._clock()) if meter is not None and active else 0.0
        eta = None
        if speed > 0 and record.state is TransferState.ACTIVE:
            eta = max(0.0, (record.bytes_total - record.bytes_done) / speed)
        return TransferStatus(record=record, speed=round(speed, 1), eta=None if eta is None else round(eta, 1),
                              route=self._routes.get(record.id))
