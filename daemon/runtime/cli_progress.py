"""Live transfer progress for the CLI: where updates come from, and how they are shown.

Updates: :func:`transfer_updates` follows the daemon's server-sent events (``GET /api/v1/events``,
``event: transfer``) and falls back to polling when the daemon has no event stream, so the display
works with either. Display: :class:`LiveView` (rich progress bars, redrawn in place) in a terminal,
:class:`PlainView` (a line per change, at most one a second per transfer) when the output is a
file or a pipe. Speed and ETA come from the daemon's record (``speed``, ``eta``) when it has them,
else from :class:`RateMeter` over the samples seen here.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

from .cli_client import ApiClient, ApiError
from .cli_output import Output, human_duration, human_size

__all__ = ["FINISHED", "LiveView", "PlainView", "RateMeter", "ServerEvent", "TransferView", "iter_sse",
           "open_view", "transfer_label", "transfer_updates"]

FINISHED = frozenset({"done", "failed", "cancelled"})
SETTLED = FINISHED | {"held", "uploaded"}  # nothing moves any more: no speed, no ETA
# The daemon sends a keepalive comment after 15 s of silence: a stream quiet for longer than this is
# taken for dead, reopened, and the state re-read.
EVENTS_TIMEOUT = httpx.Timeout(10.0, read=20.0)
EVENT_STREAM_FAILURES = 3  # consecutive broken streams before falling back to polling

Record = dict[str, Any]


# -- updates ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event: str
    data: str
    id: str | None = None


def iter_sse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Parse a ``text/event-stream`` (the WHATWG rules: comments, ``field: value``, multi-line
    ``data``, dispatch on a blank line; events without data are dropped)."""
    event, data, last_id = "", [], None
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if data:
                yield ServerEvent(event or "message", "\n".join(data), last_id)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            last_id = value


def transfer_updates(client: ApiClient, snapshot: Callable[[], list[Record]], *, poll_interval: float = 0.5,
                     use_events: bool = True, sleep: Callable[[float], None] = time.sleep) -> Iterator[list[Record]]:
    """Yield lists of transfer records, forever (the caller stops when it has seen enough).

    Each (re)connection to the event stream first yields ``snapshot()`` (so nothing that happened
    before it is missed), then one-record lists from ``event: transfer``. Without an event stream
    (404/405, not ``text/event-stream``, or it keeps breaking) it yields ``snapshot()`` every
    ``poll_interval`` seconds. :class:`ApiError` from the snapshot or from connecting propagates.
    """
    failures = 0
    while True:
        if not use_events:
            yield snapshot()
            sleep(poll_interval)
            continue
        try:
            with client.stream("GET", "/events", headers={"Accept": "text/event-stream"},
                               timeout=EVENTS_TIMEOUT) as response:
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    use_events = False
                    continue
                yield snapshot()
                for event in iter_sse(response.iter_lines()):
                    failures = 0
                    record = _transfer_event(event)
                    if record is not None:
                        yield [record]
            failures += 1  # the daemon closed the stream
        except ApiError as exc:
            if exc.status not in (404, 405, 406):
                raise
            use_events = False
            continue
        except httpx.ReadTimeout:
            continue  # quiet for a while: reopen, re-read
        except (httpx.TransportError, httpx.StreamError):
            failures += 1
        if failures >= EVENT_STREAM_FAILURES:
            use_events = False


def _transfer_event(event: ServerEvent) -> Record | None:
    if event.event != "transfer":
        return None
    try:
        record = json.loads(event.data)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("id"), str) else None


# -- speed and ETA ---------------------------------------------------------------------------------


class RateMeter:
    """Bytes per second over a sliding window of ``(time, bytes_done)`` samples."""

    def __init__(self, *, window: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, done: int) -> None:
        now = self._clock()
        if self._samples and done < self._samples[-1][1]:
            self._samples.clear()  # restarted from an earlier offset
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
            self._samples.popleft()

    @property
    def speed(self) -> float | None:
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 - t0 >= 0.2 else None

    def eta(self, remaining: int) -> float | None:
        speed = self.speed
        return remaining / speed if speed else None


# -- views -----------------------------------------------------------------------------------------


def transfer_label(record: Record) -> str:
    """What a person recognizes a transfer by: its first file (and how many more)."""
    files = record.get("files") or []
    if not files:
        return record.get("label") or str(record.get("id", "?"))[:12]
    first = str(files[0].get("final_path") or files[0].get("path") or "?")
    return first if len(files) == 1 else f"{first} (+{len(files) - 1} more)"


class TransferView(Protocol):
    def update(self, record: Record) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Figures:
    state: str
    done: int
    total: int | None
    speed: float | None
    eta: float | None


class _Figured:
    """Turns records into figures, with a rate meter per transfer for what the daemon left out."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._meters: dict[str, RateMeter] = {}

    def figures(self, record: Record) -> _Figures:
        key = str(record.get("id"))
        meter = self._meters.setdefault(key, RateMeter(clock=self._clock))
        done = int(record.get("bytes_done") or 0)
        total = record.get("bytes_total")
        total = int(total) if isinstance(total, (int, float)) and total > 0 else None
        state = str(record.get("state", "?"))
        meter.sample(done)
        speed = record["speed"] if isinstance(record.get("speed"), (int, float)) else meter.speed
        if "eta" in record:
            eta = record["eta"] if isinstance(record["eta"], (int, float)) else None
        else:
            eta = meter.eta(total - done) if total is not None and speed else None
        if state in SETTLED:
            speed = eta = None
        return _Figures(state=state, done=done, total=total, speed=speed, eta=eta)


class PlainView(_Figured):
    """One line per change, at most one per ``interval`` seconds per transfer unless its state
    changed; always a last line when it finishes."""

    def __init__(self, stream: IO[str], *, describe: Callable[[Record], str] = transfer_label,
                 interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._stream = stream
        self._describe = describe
        self._interval = interval
        self._last: dict[str, tuple[float, str, int]] = {}

    def update(self, record: Record) -> None:
        f = self.figures(record)
        key = str(record.get("id"))
        now = self._clock()
        last = self._last.get(key)
        if last is not None:
            when, state, done = last
            if state == f.state and (done == f.done or (now - when < self._interval and f.state not in FINISHED)):
                return
        self._last[key] = (now, f.state, f.done)
        self._stream.write(f"{self._describe(record)}: {plain_progress(f)}\n")
        self._stream.flush()

    def close(self) -> None:
        pass


def plain_progress(f: _Figures) -> str:
    parts = [f.state]
    if f.total is not None:
        parts.append(f"{human_size(f.done)} / {human_size(f.total)} ({100 * f.done / f.total:.0f}%)")
    else:
        parts.append(human_size(f.done))
    if f.speed is not None:
        parts.append(f"{human_size(f.speed)}/s")
    if f.eta is not None:
        parts.append(f"eta {human_duration(f.eta)}")
    return "  ".join(parts)


class _SpeedColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.fields.get("speed")
        return Text(f"{human_size(speed)}/s" if speed is not None else "-", style="progress.data.speed")


class _EtaColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        return Text(f"eta {human_duration(eta)}" if eta is not None else "", style="progress.remaining")


class LiveView(_Figured):
    """Rich progress bars, one row per transfer, redrawn in place."""

    def __init__(self, stream: IO[str], *, describe: Callable[[Record], str] = transfer_label,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self._describe = describe
        self._tasks: dict[str, Any] = {}
        self._progress = Progress(
            TextColumn("{task.description}"), TextColumn("{task.fields[state]}", style="bold"), BarColumn(),
            DownloadColumn(), _SpeedColumn(), _EtaColumn(),
            console=Console(file=stream), transient=False, refresh_per_second=8,
        )
        self._progress.start()

    def update(self, record: Record) -> None:
        f = self.figures(record)
        key = str(record.get("id"))
        completed = f.total if f.state == "done" and f.total is not None else f.done
        fields = {"state": f.state, "speed": f.speed, "eta": f.eta}
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(self._describe(record), total=f.total,
                                                       completed=completed, **fields)
        else:
            self._progress.update(self._tasks[key], total=f.total, completed=completed,
                                  description=self._describe(record), **fields)

    def close(self) -> None:
        """Stop redrawing (the last frame stays); idempotent."""
        self._progress.stop()


def open_view(out: Output, *, describe: Callable[[Record], str] = transfer_label) -> TransferView:
    """A live view in a terminal, plain lines otherwise (both on ``out.progress_stream``)."""
    if out.interactive:
        return LiveView(out.progress_stream, describe=describe)
    return PlainView(out.progress_stream, describe=describe)
