"""Watched outbox folders: ``<outbox>/<folder>/`` per paired device sends what is dropped into it.

Two halves, one nursery:

- **Watching** (:func:`daemon.watch.watch_outbox` on the outbox root): a file is queued once it is
  stable (no change for ``settle`` seconds); temporary names, dotfiles, the ``sent/`` folders and
  folders that name no paired device are ignored (a folder that comes to name one later is picked up
  at the next rescan).
- **Sending**: one worker per device with due rows, one file at a time, oldest first. For each
  row: the source must still be the queued version (else the row is dropped: the watcher queues
  the new version once it settles); a share is made from the open file and checked again (changed
  while being copied: dropped likewise); it is pushed; after delivery the source is checked once
  more and the folder's after-send policy applied (move to ``sent/``, delete, keep) only to the
  very version that was sent: a file changed meanwhile is left alone and sent again as a new
  version, never spliced. A push that fails (peer offline) is retried with the same share (so the
  receiver resumes) after a jittered exponential backoff, and the device's other files wait too.

The appliance provides the narrow callables (see :class:`OutboxService`); everything that touches
the outbox on disk goes through :class:`daemon.storage.OutboxDir`, in worker threads.
"""

from __future__ import annotations

import enum
import logging
import math
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

import trio

from daemon.state import DeviceRecord, DeviceStatus, Disposition, OutboxItem, OutboxQueue, OutboxState
from daemon.storage import Fingerprint, OutboxDir, SourceChanged, SourceFile, UnsafeName, UnsafePath
from daemon.watch import DEFAULT_RESCAN, DEFAULT_SETTLE, Ready, is_ignored, watch_outbox

from .backoff import backoff_delay

__all__ = [
    "AfterSend", "PushResult", "PushOutcome", "OutboxService", "SENT_DIR", "device_folders", "outbox_backoff",
]

log = logging.getLogger("doorstep.outbox")

SENT_DIR = "sent"
"""Inside each device folder: where sent files go under the ``move`` policy (never watched)."""
MAX_IDLE = 60.0  # the dispatcher looks at the queue at least this often
FOLDER_CACHE_SECONDS = 1.0  # how long one answer of ``folders()`` is trusted


class AfterSend(enum.Enum):
    """What to do with a file once the device has it (per folder)."""

    MOVE = "move"  # to <folder>/sent/<path> (never overwriting: "a (1).txt")
    DELETE = "delete"
    KEEP = "keep"  # leave it; that version is never sent again


class PushResult(enum.Enum):
    DELIVERED = "delivered"  # the device has the file, verified
    RETRY = "retry"  # not now (peer offline, connection lost): try again later with the same share
    SHARE_GONE = "share_gone"  # the share no longer exists (expired, retired): make a new one
    REFUSED = "refused"  # never (the device is unknown or revoked): give up on this file


@dataclass(frozen=True, slots=True)
class PushOutcome:
    result: PushResult
    error: str | None = None


CreateShare = Callable[[SourceFile, str], Awaitable[str]]
Push = Callable[[str, str], Awaitable[PushOutcome]]
DiscardShare = Callable[[str], Awaitable[None]]


def outbox_backoff(attempt: int) -> float:
    """Retry delay for a device that could not be reached: 1 s, 2 s, 4 s ... up to 5 minutes, jittered."""
    return backoff_delay(attempt, base=1.0, cap=300.0)


def device_folders(devices: Iterable[DeviceRecord]) -> dict[str, str]:
    """Folder name -> device id for the approved devices: each device's id, and its name when the
    name is usable as a folder name (one component, not hidden, not temporary-looking) and no other
    approved device has the same name or an id equal to it. The name comes first, so it is the
    folder :class:`OutboxService` creates for a device that has none."""
    approved = [d for d in devices if d.status is DeviceStatus.APPROVED]
    ids = {d.device_id for d in approved}
    names = [unicodedata.normalize("NFC", d.name) for d in approved]
    out: dict[str, str] = {}
    for device, name in zip(approved, names):
        if _usable_folder(name) and names.count(name) == 1 and name not in ids:
            out[name] = device.device_id
    for device in approved:
        out.setdefault(device.device_id, device.device_id)
    return out


def _usable_folder(name: str) -> bool:
    return (bool(name) and "/" not in name and not is_ignored(name) and len(name.encode("utf-8")) <= 255
            and all(ch.isprintable() for ch in name) and name.strip() == name)


class OutboxService:
    """Watches the outbox root and sends what settles in each device folder. Start :meth:`run` in
    a nursery (``await nursery.start(service.run)``); cancel it to stop. Nothing outlives it: every
    task runs in its nursery, and a push cut short resumes at the next start.

    The appliance provides:

    ``folders() -> Mapping[str, str]``
        Folder name -> device id of every device files may be sent to (:func:`device_folders`
        builds it from the device book). Called often; keep it cheap.
    ``create_share(source, name) -> share_id`` (async)
        Make a code-less share of one file read from ``source`` (an open
        :class:`~daemon.storage.SourceFile`, positional reads; do not close it), offered under
        ``name`` (the path inside the device folder, '/'-joined). The share must exist until it
        is delivered or discarded and must not expire meanwhile (see
        :meth:`OutboxQueue.holds_share`). Raising ``OSError`` makes the row retry later,
        ``UnsafeName`` (a name no peer may be offered) gives up on it.
    ``push(share_id, device_id) -> PushOutcome`` (async)
        Send the share to the paired device's inbox and return when it is over. A delivered share
        is the appliance's to retire.
    ``discard_share(share_id)`` (async)
        Drop a share that will not be pushed (its file changed or vanished). Must accept a share
        that no longer exists.
    ``policy(folder) -> AfterSend``
        The after-send policy of a folder (default: always ``MOVE``).
    """

    def __init__(self, *, root: str | Path, queue: OutboxQueue, folders: Callable[[], Mapping[str, str]],
                 create_share: CreateShare, push: Push, discard_share: DiscardShare,
                 policy: Callable[[str], AfterSend] = lambda _folder: AfterSend.MOVE,
                 settle: float = DEFAULT_SETTLE, rescan_every: float = DEFAULT_RESCAN,
                 backoff: Callable[[int], float] = outbox_backoff, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.queue = queue
        self._folders = folders
        self._create_share = create_share
        self._push = push
        self._discard_share = discard_share
        self._policy = policy
        self._settle = settle
        self._rescan_every = rescan_every
        self._backoff = backoff
        self._clock = clock
        self._outbox: OutboxDir | None = None
        self._busy: set[str] = set()
        self._wakeup = trio.Event()
        self._devices_changed = trio.Event()
        self._folder_cache: tuple[float, Mapping[str, str]] = (-math.inf, {})
        self._unknown_folders: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> NoReturn:
        """Recover the queue, start watching and sending. Started once the watch is in place."""
        recovered = self.queue.recover()
        if recovered:
            log.info("outbox: %d push(es) cut short by the last stop will resume", recovered)
        with OutboxDir(self.root) as outbox:
            self._outbox = outbox
            try:
                async with trio.open_nursery() as nursery:
                    await self._ensure_folders()
                    await nursery.start(partial(
                        watch_outbox, self.root, on_ready=self._on_ready, settle=self._settle,
                        rescan_every=self._rescan_every, ignore=self._ignored, skip_dir=_skip_dir))
                    nursery.start_soon(self._keep_folders)
                    task_status.started()
                    await self._dispatch(nursery)
            finally:
                self._outbox = None
        raise AssertionError("unreachable")  # _dispatch never returns

    def wake(self, device_id: str | None = None) -> None:
        """Try now what waits for a retry (of ``device_id``, or everything), and look at the
        devices again (folders to create, folders that now name a device): call it when a device
        was paired, approved, revoked or forgotten, or comes online."""
        self.queue.retry_now(device_id)
        self._folder_cache = (-math.inf, {})
        self._devices_changed.set()
        self._wakeup.set()

    # -- watching ---------------------------------------------------------------------------------

    def _folder_map(self) -> Mapping[str, str]:
        now = trio.current_time()
        fetched_at, mapping = self._folder_cache
        if now - fetched_at >= FOLDER_CACHE_SECONDS:
            mapping = dict(self._folders())
            self._folder_cache = (now, mapping)
        return mapping

    def _ignored(self, relpath: str) -> bool:
        """Not sendable: temporary or hidden names, files outside a folder, the ``sent/``
        folders, and folders that name no device (yet)."""
        if is_ignored(relpath):
            return True
        parts = relpath.split("/")
        if len(parts) < 2 or parts[1] == SENT_DIR:
            return True
        if parts[0] not in self._folder_map():
            if parts[0] not in self._unknown_folders:
                self._unknown_folders.add(parts[0])
                log.info("outbox: folder %r names no paired device; its files wait", parts[0])
            return True
        return False

    async def _on_ready(self, batch: Sequence[Ready]) -> None:
        folders = self._folder_map()
        for ready in batch:
            folder, path = ready.path.split("/", 1)
            device_id = folders.get(folder)
            if device_id is None:
                continue
            fp = ready.fingerprint
            result = self.queue.enqueue(device_id=device_id, folder=folder, path=path, size=fp.size,
                                        mtime_ns=fp.mtime_ns, inode=fp.inode)
            for stale in result.superseded:
                await self._drop_share(stale)
            if result.queued:
                log.info("outbox: queued %s for %s (%d bytes)", ready.path, device_id, fp.size)
        self._wakeup.set()

    async def _ensure_folders(self) -> None:
        """Give every device a folder (its name's, else its id's) unless it has one."""
        by_device: dict[str, list[str]] = {}
        for folder, device_id in self._folder_map().items():
            by_device.setdefault(device_id, []).append(folder)
        outbox = self._require_outbox()
        existing = set(await trio.to_thread.run_sync(outbox.folders))
        for names in by_device.values():
            if existing.isdisjoint(names):
                try:
                    await trio.to_thread.run_sync(outbox.ensure_folder, names[0])
                except OSError as exc:
                    log.warning("outbox: cannot create folder %r: %s", names[0], exc)

    async def _keep_folders(self) -> None:
        while True:
            with trio.move_on_after(self._rescan_every):
                await self._devices_changed.wait()
            self._devices_changed = trio.Event()
            await self._ensure_folders()

    # -- sending ----------------------------------------------------------------------------------

    async def _dispatch(self, nursery: trio.Nursery) -> NoReturn:
        """Start a worker for each device with due work; sleep until the next retry or a wake-up."""
        while True:
            self._wakeup = trio.Event()
            now = self._clock()
            for device_id in sorted(self.queue.devices_due(now) - self._busy):
                self._busy.add(device_id)
                nursery.start_soon(self._work, device_id)
            next_at = self.queue.next_attempt_after(now)
            timeout = MAX_IDLE if next_at is None else min(MAX_IDLE, max(0.0, next_at - now))
            with trio.move_on_after(timeout):
                await self._wakeup.wait()

    async def _work(self, device_id: str) -> None:
        """Send ``device_id``'s due files one by one, until none is due or the device is unreachable."""
        try:
            while (item := self.queue.next_due(device_id, self._clock())) is not None:
                try:
                    if item.state is OutboxState.SENT:
                        await self._dispose(item)
                    elif not await self._send(item):
                        return
                except Exception as exc:  # a bug: shelve this file loudly, keep the other files going
                    log.exception("outbox: internal error on %s", item.relpath)
                    if item.state is OutboxState.SENT:
                        self.queue.set_disposition(item.id, Disposition.KEPT, f"internal error: {exc!r}")
                    else:
                        self.queue.retry_later(item.id, self._backoff(item.attempts), f"internal error: {exc!r}")
        finally:
            self._busy.discard(device_id)
            self._wakeup.set()

    async def _send(self, item: OutboxItem) -> bool:
        """One attempt at ``item``. False if the device could not be reached (its files wait)."""
        if self._folder_map().get(item.folder) != item.device_id:
            self.queue.fail(item.id, "the folder no longer names this device (unpaired, revoked or renamed)")
            await self._drop_share(item)
            return True
        expected = Fingerprint(item.size, item.mtime_ns, item.inode)
        if not await self._still(item, expected, "before sending"):
            return True
        if not self.queue.mark_sending(item.id):  # superseded meanwhile by a newer version
            await self._drop_share(item)
            return True
        share_id = item.share_id
        fresh = share_id is None
        if share_id is None:
            share_id = await self._make_share(item, expected)
            if share_id is None:
                return True
        log.info("outbox: sending %s to %s (attempt %d)", item.relpath, item.device_id, item.attempts + 1)
        outcome = await self._push(share_id, item.device_id)
        if outcome.result is PushResult.DELIVERED:
            self.queue.mark_sent(item.id)
            log.info("outbox: %s delivered to %s", item.relpath, item.device_id)
            sent = self.queue.get(item.id)
            if sent is not None:
                await self._dispose(sent)
            return True
        if outcome.result is PushResult.REFUSED:
            self.queue.fail(item.id, outcome.error or "the device refused the file")
            await self._drop_share(item, share_id)
            return True
        if outcome.result is PushResult.SHARE_GONE and not fresh:
            self.queue.set_share(item.id, None)  # made anew at the next attempt, now
            self.queue.retry_later(item.id, 0.0, outcome.error or "the share was gone; making it again")
            return True
        error = outcome.error or "the device could not be reached"
        retried = self.queue.retry_later(item.id, self._backoff(item.attempts), error)
        self.queue.defer_device(item.device_id, retried.next_attempt_at)
        log.info("outbox: %s to %s failed (%s); next try in %.0f s", item.relpath, item.device_id, error,
                 retried.next_attempt_at - self._clock())
        return False

    async def _make_share(self, item: OutboxItem, expected: Fingerprint) -> str | None:
        """A share holding exactly version ``expected`` of the file, or None (row dropped or
        retried)."""
        outbox = self._require_outbox()
        try:
            source = await trio.to_thread.run_sync(outbox.open_source, item.relpath, expected)
        except (FileNotFoundError, SourceChanged, UnsafePath):
            if await self._still(item, expected, "before sending"):  # it flickered: look again soon
                self.queue.retry_later(item.id, self._backoff(item.attempts), "the file could not be opened")
            return None
        except OSError as exc:
            self._retry_file(item, f"cannot read the file: {exc}")
            return None
        try:
            share_id = await self._create_share(source, item.path)
        except UnsafeName as exc:
            self.queue.fail(item.id, f"this name cannot be offered to a peer: {exc}")
            return None
        except OSError as exc:
            self._retry_file(item, f"cannot make a share of the file: {exc}")
            return None
        finally:
            source.close()
        if not await self._still(item, expected, "while it was read", share_id=share_id):
            return None
        self.queue.set_share(item.id, share_id)
        return share_id

    def _retry_file(self, item: OutboxItem, error: str) -> None:
        """A problem with this file (not the device): retry it later, go on with the others."""
        log.warning("outbox: %s: %s", item.relpath, error)
        self.queue.retry_later(item.id, self._backoff(item.attempts), error)

    async def _still(self, item: OutboxItem, expected: Fingerprint, when: str, *, share_id: str | None = None) -> bool:
        """True if the file is still version ``expected``. Otherwise the row is over: failed if the
        file is gone, dropped if it changed (its new version is queued when it settles); its share
        (``share_id`` or the row's) is discarded."""
        current = await trio.to_thread.run_sync(self._require_outbox().fingerprint, item.relpath)
        if current == expected:
            return True
        if current is None:
            log.info("outbox: %s disappeared %s; not sent", item.relpath, when)
            self.queue.fail(item.id, f"the file disappeared {when}")
        else:
            log.info("outbox: %s changed %s; its new version goes once it settles", item.relpath, when)
            self.queue.remove(item.id)
        await self._drop_share(item, share_id)
        return False

    async def _dispose(self, item: OutboxItem) -> None:
        """Apply the folder's after-send policy to the version that was sent, and only to it."""
        outbox = self._require_outbox()
        expected = Fingerprint(item.size, item.mtime_ns, item.inode)
        current = await trio.to_thread.run_sync(outbox.fingerprint, item.relpath)
        note = None
        if current is None:
            disposition = Disposition.GONE
        elif current != expected:
            disposition = Disposition.CHANGED
            log.info("outbox: %s changed while it was sent; the new version will be sent", item.relpath)
        else:
            policy = self._policy(item.folder)
            try:
                if policy is AfterSend.MOVE:
                    dest = await trio.to_thread.run_sync(
                        partial(outbox.move, item.relpath, f"{item.folder}/{SENT_DIR}/{item.path}", expect=expected))
                    disposition = Disposition.MOVED
                    log.info("outbox: %s moved to %s", item.relpath, dest)
                elif policy is AfterSend.DELETE:
                    await trio.to_thread.run_sync(partial(outbox.remove, item.relpath, expect=expected))
                    disposition = Disposition.DELETED
                else:
                    disposition = Disposition.KEPT
            except FileNotFoundError:
                disposition = Disposition.GONE
            except SourceChanged:
                disposition = Disposition.CHANGED
            except OSError as exc:  # kept, and remembered as sent: never a loop of resends
                log.warning("outbox: cannot %s %s after sending it (%s); it stays", policy.value, item.relpath, exc)
                disposition, note = Disposition.KEPT, f"could not {policy.value} it: {exc}"
        self.queue.set_disposition(item.id, disposition, note)

    async def _drop_share(self, item: OutboxItem, share_id: str | None = None) -> None:
        for share in {share_id, item.share_id} - {None}:
            assert share is not None
            await self._discard_share(share)

    def _require_outbox(self) -> OutboxDir:
        assert self._outbox is not None, "OutboxService.run is not running"
        return self._outbox


def _skip_dir(relpath: str) -> bool:
    """Folders the scanner never enters: hidden ones and each device folder's ``sent/``."""
    parts = relpath.split("/")
    return parts[-1].startswith(".") or (len(parts) == 2 and parts[1] == SENT_DIR)
