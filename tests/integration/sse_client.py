"""A server-sent events listener for tests: reads ``GET /api/v1/events`` in a thread with httpx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.harness import Daemon


@dataclass
class Message:
    id: int | None
    event: str | None
    data: Any
    received_at: float
    comments: list[str] = field(default_factory=list)


class EventListener:
    """``with EventListener(daemon) as events:`` ... ``events.wait_for(predicate)``."""

    def __init__(self, daemon: Daemon, *, last_event_id: int | None = None) -> None:
        self.daemon = daemon
        self.last_event_id = last_event_id
        self.messages: list[Message] = []
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.closed = threading.Event()
        self._changed = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._response: httpx.Response | None = None

    def __enter__(self) -> EventListener:
        self._thread.start()
        deadline = time.monotonic() + 10
        with self._changed:
            while self.status is None and not self.closed.is_set():
                self._changed.wait(0.1)
                if time.monotonic() > deadline:
                    raise AssertionError("the event stream did not answer")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop = True
        if self._response is not None:
            self._response.close()
        self._thread.join(5)

    @property
    def events(self) -> list[Message]:
        with self._changed:
            return [m for m in self.messages if m.event is not None]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.daemon.token}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        try:
            with httpx.stream("GET", self.daemon.base + "/api/v1/events", headers=headers,
                              timeout=httpx.Timeout(10, read=60)) as response:
                self._response = response
                with self._changed:
                    self.status, self.headers = response.status_code, response.headers
                    self._changed.notify_all()
                current: dict[str, Any] = {}
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if line.startswith(":"):
                        current.setdefault("comments", []).append(line)
                    elif line:
                        name, _, value = line.partition(": ")
                        current[name] = value
                    elif current:
                        message = Message(
                            id=int(current["id"]) if "id" in current else None, event=current.get("event"),
                            data=json.loads(current["data"]) if "data" in current else None,
                            received_at=time.monotonic(), comments=current.get("comments", []))
                        with self._changed:
                            self.messages.append(message)
                            self._changed.notify_all()
                        current = {}
        except Exception:  # closed under the reader by __exit__, or the daemon went away
            pass
        finally:
            self.closed.set()
            with self._changed:
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 60.0, what: str = "") -> Message:
        """The first event (already received or coming) for which ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self.messages:
                    if message.event is not None and predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    kinds = [(m.event, (m.data or {}).get("state")) for m in self.messages if m.event]
                    raise AssertionError(f"no such event ({what}); got {kinds}\n{self.daemon.log_tail(30)}")
                self._changed.wait(min(left, 0.5))
