"""Presence of paired devices: is each one online (its inbox address hosted) right now?

Every daemon hosts its inbox address (``inbox-<device id>``, :func:`~daemon.runtime.pairing.inbox_address`)
on its own signaling server for as long as it runs, and the device book records each paired device's
signaling URL. :class:`PresenceWatcher` asks every such server, every ``interval`` seconds, which of
those inbox addresses are hosted, with one ``presence`` request per server (docs/signaling.md,
Presence): one connection per server and round, up to 32 addresses per request, and at most
``timeout`` seconds per server. A device is then:

- **online** (``online=True``): its inbox address is hosted, or it just authenticated to us
  (:meth:`PresenceWatcher.seen`);
- **offline** (``online=False``): its server answered and does not host the address, or its server
  could not be reached in time (``error`` says why);
- **unknown** (``online=None``): never checked, no signaling URL, the server could not tell (for
  instance an older server without ``presence``; ``error`` says so), or the last answer is older
  than ``stale_after`` (then ``checked_at`` is the time of that answer).

Nothing here ever crashes the loop: every failure becomes a status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, NoReturn, Protocol

import trio

from daemon.protocol.errors import LocalProtocolError
from daemon.protocol.signaling import MAX_PRESENCE_SHARES, ErrorCode
from daemon.signaling import SignalingClosed, SignalingConnectError, SignalingError, open_signaling
from daemon.state import DeviceRecord, DeviceStatus

from .pairing import inbox_address

__all__ = ["Presence", "PresenceWatcher", "PresenceClient", "DeviceEntry", "device_entries", "UNKNOWN"]

log = logging.getLogger("doorstep.presence")

DeviceEntry = tuple[str, str | None]
"""``(device id, signaling URL or None)``."""

_MAX_ERROR_CHARS = 200


@dataclass(frozen=True, slots=True)
class Presence:
    """What is known about one device: ``online`` (None: unknown), when that was established
    (``checked_at``, unix seconds; None: never), and why it could not be checked (``error``)."""

    online: bool | None
    checked_at: float | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"online": self.online, "checked_at": self.checked_at, "error": self.error}


UNKNOWN = Presence(online=None, checked_at=None)


class PresenceClient(Protocol):
    """What the watcher needs of a signaling connection (:class:`~daemon.signaling.SignalingClient`)."""

    async def presence(self, shares: Iterable[str]) -> set[str]: ...


OpenSignaling = Callable[[str], AbstractAsyncContextManager[PresenceClient]]


def device_entries(records: Iterable[DeviceRecord]) -> list[DeviceEntry]:
    """The watcher's ``devices()`` from device book records: every device but revoked ones."""
    return [(r.device_id, r.signal_url) for r in records if r.status is not DeviceStatus.REVOKED]


class PresenceWatcher:
    """Keeps the presence of the devices ``devices()`` lists. Start :meth:`run` in a nursery
    (``await nursery.start(watcher.run)``); cancel it to stop.

    ``devices()`` returns ``(device id, signaling URL or None)`` for every device to watch (see
    :func:`device_entries`); it is called once per round, synchronously. Devices that drop out
    of the list are forgotten. ``open_signaling(url)`` opens a connection with a
    ``presence(shares)`` method (default: :func:`daemon.signaling.open_signaling` with a
    ``timeout`` connect timeout). ``clock`` gives unix seconds for ``checked_at``.
    ``on_change(device_id, presence)`` runs (synchronously, in the trio thread) when a device's
    ``online`` changes by an answer or :meth:`seen` (not when a status merely goes stale, nor
    when a device is forgotten); an exception from it is logged and ignored.
    """

    def __init__(self, devices: Callable[[], list[DeviceEntry]], *, interval: float = 30.0,
                 timeout: float = 10.0, stale_after: float | None = None, min_gap: float = 1.0,
                 open_signaling: OpenSignaling | None = None, clock: Callable[[], float] = time.time,
                 max_servers_at_once: int = 8,
                 on_change: Callable[[str, Presence], None] | None = None) -> None:
        if interval <= 0 or timeout <= 0 or min_gap < 0:
            raise ValueError("interval and timeout must be positive, min_gap not negative")
        self._devices = devices
        self._interval = interval
        self._timeout = timeout
        self._stale_after = 2 * interval + timeout if stale_after is None else stale_after
        """A status older than this is reported as unknown (e.g. a ``seen`` device without URL)."""
        self._min_gap = min(min_gap, interval)
        self._open: OpenSignaling = open_signaling or partial(_open_signaling, timeout=timeout)
        self._clock = clock
        self._on_change = on_change
        self._limiter = trio.CapacityLimiter(max_servers_at_once)
        self._status: dict[str, Presence] = {}
        self._wakeup = trio.Event()
        self.rounds = 0
        """Completed rounds (for tests and diagnostics)."""

    # -- queries and hints (synchronous, from any task) -----------------------------------------

    def status(self, device_id: str) -> Presence:
        """What is known about ``device_id`` now (:data:`UNKNOWN` if nothing)."""
        presence = self._status.get(device_id, UNKNOWN)
        if (presence.online is not None and presence.checked_at is not None
                and self._clock() - presence.checked_at > self._stale_after):
            return replace(presence, online=None)
        return presence

    def seen(self, device_id: str) -> None:
        """``device_id`` just authenticated to us: it is online (until the next answer says
        otherwise, or the mark goes stale)."""
        self._set(device_id, Presence(online=True, checked_at=self._clock()))

    def wake(self) -> None:
        """Check every device again now (e.g. after pairing, approving or forgetting a device),
        at most once per ``min_gap`` seconds."""
        self._wakeup.set()

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Check every ``interval`` seconds (or when woken) until cancelled. Started at once; the
        first round follows immediately."""
        task_status.started()
        while True:
            self._wakeup = trio.Event()  # a wake() during the round asks for another one
            try:
                await self.check_now()
            except Exception:  # devices() failed, or a bug: never end the loop for it
                log.exception("presence: a round of checks failed")
            await trio.sleep(self._min_gap)
            with trio.move_on_after(max(0.0, self._interval - self._min_gap)):
                await self._wakeup.wait()

    async def check_now(self) -> None:
        """One round: ask every server once, concurrently, and record the answers."""
        started = self._clock()
        by_url: dict[str, list[str]] = {}
        listed: set[str] = set()
        for device_id, url in self._devices():
            listed.add(device_id)
            if url:
                by_url.setdefault(url, []).append(device_id)
        for device_id in [d for d in self._status if d not in listed]:
            del self._status[device_id]
        async with trio.open_nursery() as nursery:
            for url, device_ids in by_url.items():
                nursery.start_soon(self._check_server, url, device_ids, started)
        self.rounds += 1

    async def _check_server(self, url: str, device_ids: list[str], started: float) -> None:
        async with self._limiter:
            online, error = await self._ask(url, device_ids)
        now = self._clock()
        for device_id in device_ids:
            current = self._status.get(device_id)
            if current is not None and current.checked_at is not None and current.checked_at > started:
                continue  # seen() meanwhile: newer than this answer
            if isinstance(online, set):
                self._set(device_id, Presence(online=device_id in online, checked_at=now))
            else:
                self._set(device_id, Presence(online=online, checked_at=now, error=error))

    async def _ask(self, url: str, device_ids: list[str]) -> tuple[set[str] | bool | None, str | None]:
        """The ids of the online devices, or (False: unreachable; None: cannot tell) and why."""
        addresses = {inbox_address(device_id): device_id for device_id in device_ids}
        answer: set[str] | None = None
        try:
            with trio.move_on_after(self._timeout):
                async with self._open(url) as client:
                    hosted: set[str] = set()
                    wanted = sorted(addresses)
                    for start in range(0, len(wanted), MAX_PRESENCE_SHARES):
                        hosted |= await client.presence(wanted[start:start + MAX_PRESENCE_SHARES])
                    answer = {addresses[a] for a in hosted if a in addresses}
        except (SignalingConnectError, SignalingClosed, OSError, ValueError) as exc:
            if answer is None:
                return False, _brief(f"cannot reach the signaling server: {exc}")
        except SignalingError as exc:
            if answer is None:
                if exc.code == ErrorCode.BAD_MESSAGE:
                    return None, "the signaling server does not support presence"
                return None, _brief(f"the signaling server refused: {exc}")
        except LocalProtocolError as exc:
            if answer is None:
                return None, _brief(f"cannot ask: {exc}")
        except Exception as exc:
            if answer is None:
                log.exception("presence: checking %s failed", url)
                return None, _brief(f"internal error: {exc!r}")
        if answer is None:
            return False, f"no answer from the signaling server within {self._timeout:g} s"
        return answer, None

    def _set(self, device_id: str, presence: Presence) -> None:
        before = self._status.get(device_id)
        self._status[device_id] = presence
        if (before.online if before is not None else None) != presence.online:
            log.debug("presence: device %s is %s", device_id,
                      {True: "online", False: "offline", None: "unknown"}[presence.online])
            if self._on_change is not None:
                try:
                    self._on_change(device_id, presence)
                except Exception:
                    log.exception("presence: on_change failed")


def _brief(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS - 3] + "..."


def _open_signaling(url: str, *, timeout: float) -> AbstractAsyncContextManager[PresenceClient]:
    return open_signaling(url, connect_timeout=timeout, close_timeout=min(1.0, timeout))
