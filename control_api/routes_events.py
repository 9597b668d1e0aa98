"""``GET /api/v1/events``: the daemon's events as server-sent events.

Each event is ``id: <n>``, ``event: transfer|arrival|device|share`` and ``data: <JSON>`` (the same
JSON the matching GET answers: a transfer, ``{"transfer", "path", "size", "sha256"}`` for an
arrival, a device (``{"id", "status": "forgotten"}`` once forgotten), a share with ``change``).
A comment ``: keepalive`` comes every 15 s of silence. ``Last-Event-ID`` replays the buffered
events after that id. A listener that falls too far behind is disconnected (reconnect with
``Last-Event-ID``); it never slows the daemon down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import get
from litestar.params import HeaderParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from daemon import ApplianceAPI
from daemon.facade import EventStreamLost

from .errors import GUARDED, error_responses
from .models import event_data

__all__ = ["event_routes", "KEEPALIVE", "RETRY_MS"]

KEEPALIVE = 15.0
RETRY_MS = 3000
"""What browsers are told to wait before reconnecting."""


def event_routes(appliance: ApplianceAPI, guard: Any, *, keepalive: float = KEEPALIVE) -> list[Any]:
    async def stream(last_event_id: int | None) -> AsyncIterator[ServerSentEventMessage]:
        with appliance.subscribe(last_event_id) as subscription:
            yield ServerSentEventMessage(comment="connected", retry=RETRY_MS, data=None)
            while True:
                try:
                    event = await subscription.receive(keepalive)
                except EventStreamLost:
                    return
                if event is None:
                    yield ServerSentEventMessage(comment="keepalive", data=None)
                else:
                    yield ServerSentEventMessage(event=event.kind, id=event.id,
                                                 data=event_data(appliance, event).decode())

    @get("/api/v1/events", guards=[guard], tags=["events"], media_type="text/event-stream",
         responses=error_responses(*GUARDED))
    async def events(
        last_event_id: Annotated[int | None, HeaderParameter(
            name="Last-Event-ID", ge=0, le=2**63 - 1, required=False,
            description="replay the buffered events after this id")] = None,
    ) -> ServerSentEvent:
        """Server-sent events: ``transfer`` (every state change, progress at most every 0.5 s),
        ``arrival`` (each file placed in the inbox), ``device``, ``share``."""
        return ServerSentEvent(stream(last_event_id), headers={"x-accel-buffering": "no"})

    return [events]
