"""The I/O side of the outbox watcher: inotify (through ``watchfiles``) plus periodic rescans.

Change events only say *where* to look: each one is answered by statting that path (a directory
is scanned, since a folder moved in brings its files with a single event). inotify can drop
events (queue overflow, a folder created and filled before its watch was added), so a full rescan
every ``rescan_every`` seconds catches whatever was missed. Both feed the pure
:class:`~daemon.watch.stability.Stability` stage, which says when a file has settled.

Why ``watchfiles``' ``RustNotify`` and not ``awatch``: ``awatch`` does run under trio (it is
written on anyio), but it waits for the Rust watcher in a worker thread that a cancellation
cannot interrupt and only tells it to stop *after* that thread returns, so a cancelled
``awatch`` hangs until its ``rust_timeout`` (5 s by default; measured). Here the thread is told
to stop (a ``threading.Event`` it polls every ``step`` ms) as soon as the service unwinds, and the
watch is established before ``task_status.started()``, so no event after start-up is lost.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

import trio
from watchfiles._rust_notify import RustNotify  # documented backend of watchfiles.watch/awatch

from daemon.storage import Fingerprint, OutboxDir

from .stability import DEFAULT_SETTLE, Ready, Stability, is_ignored

__all__ = ["DEFAULT_RESCAN", "watch_outbox"]

log = logging.getLogger("doorstep.watch")

DEFAULT_RESCAN = 30.0
DEBOUNCE_MS = 100  # group a burst of events for at most this long
STEP_MS = 50  # how often the watcher thread looks at its stop flag
EVENT_BUFFER = 16  # batches of event paths waiting for the stability stage


async def watch_outbox(
    root: str | os.PathLike[str],
    *,
    on_ready: Callable[[Sequence[Ready]], Awaitable[object]],
    settle: float = DEFAULT_SETTLE,
    rescan_every: float = DEFAULT_RESCAN,
    ignore: Callable[[str], bool] = is_ignored,
    skip_dir: Callable[[str], bool] | None = None,
    force_polling: bool = False,
    on_gone: Callable[[Sequence[str]], Awaitable[object]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Watch the tree at ``root`` (created if missing) and await ``on_ready(batch)`` with each
    batch of files that settled (:class:`Ready`, paths relative to ``root``). A version is
    reported once; a file that changes again is reported again once it settles.

    ``ignore(relpath)`` keeps paths out (default :func:`is_ignored`; it is asked again at each
    rescan, so a path it ignored can come in later). ``skip_dir(relpath)`` names directories not
    to scan at all (default: those ``ignore`` refuses). ``on_ready`` runs in this task: while it
    runs, nothing else is watched, so keep it short (enqueue, don't send). ``on_gone(paths)``,
    if given, is awaited likewise with the files that vanished (deleted, renamed away, or inside
    a folder that went) once they had been seen; a rename shows as the old path gone and the new
    one ready once it settles.

    Starts with ``task_status.started()`` once the OS watch is in place and the tree was scanned
    (files already there settle like new ones). Runs until cancelled. Raises ``OSError`` if
    ``root`` cannot be created or watched.
    """
    if not rescan_every > 0:
        raise ValueError(f"rescan_every must be > 0 seconds, not {rescan_every!r}")
    skip = skip_dir if skip_dir is not None else ignore
    stability = Stability(settle=settle, ignore=ignore, track_gone=on_gone is not None)
    limiter = trio.CapacityLimiter(1)  # the scan/stat thread; the watcher thread has its own
    with OutboxDir(root) as outbox:
        watched = os.path.abspath(os.fspath(root))

        def scan_all(roots: list[str]) -> list[dict[str, Fingerprint]]:
            return [outbox.scan(under, skip_dir=skip) for under in roots]

        async def rescan() -> None:
            [found] = await trio.to_thread.run_sync(scan_all, [""], limiter=limiter)
            stability.sync("", found, trio.current_time())

        async def on_events(paths: set[str]) -> None:
            roots = _roots(paths)
            results = await trio.to_thread.run_sync(scan_all, roots, limiter=limiter)
            now = trio.current_time()
            for under, found in zip(roots, results):
                stability.sync(under, found, now, changed=True)

        async def check_due() -> None:
            due = stability.due(trio.current_time())
            if due:
                stats = await trio.to_thread.run_sync(lambda: [outbox.fingerprint(p) for p in due], limiter=limiter)
                now = trio.current_time()
                for path, fingerprint in zip(due, stats):
                    stability.observe(path, fingerprint, now)

        send, receive = trio.open_memory_channel[set[str]](EVENT_BUFFER)
        stop = threading.Event()
        async with trio.open_nursery() as nursery:
            try:
                await nursery.start(_pump_events, watched, send, stop, force_polling)
                await rescan()
                next_rescan = trio.current_time() + rescan_every
                task_status.started()
                while True:
                    with trio.move_on_at(min(stability.next_deadline(), next_rescan)):
                        paths = await receive.receive()
                        while True:  # take what else is waiting, to answer it in one go
                            try:
                                paths |= receive.receive_nowait()
                            except trio.WouldBlock:
                                break
                        await on_events(paths)
                    if trio.current_time() >= next_rescan:
                        await rescan()
                        next_rescan = trio.current_time() + rescan_every
                    await check_due()
                    gone = stability.take_gone()
                    if gone and on_gone is not None:
                        await on_gone(gone)
                    batch = stability.take_ready()
                    if batch:
                        await on_ready(batch)
            finally:
                stop.set()  # the watcher thread returns within STEP_MS; the nursery waits for it


def _roots(paths: set[str]) -> list[str]:
    """The outermost of ``paths``, sorted (a change in a folder and in a file below it: scan the
    folder once). '' is the root, above everything."""
    if "" in paths:
        return [""]

    def covered(path: str) -> bool:
        parts = path.split("/")
        return any("/".join(parts[:i]) in paths for i in range(1, len(parts)))

    return sorted(path for path in paths if not covered(path))


async def _pump_events(root: str, send: trio.MemorySendChannel[set[str]], stop: threading.Event,
                       force_polling: bool, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Send sets of changed paths (relative to ``root``, '' for the root) until ``stop`` is set.
    Started once the OS watch exists."""
    prefix = root.rstrip("/") + "/"
    with RustNotify([root], False, force_polling, 300, True, True) as notify, send:
        task_status.started()
        limiter = trio.CapacityLimiter(1)
        while True:
            raw = await trio.to_thread.run_sync(notify.watch, DEBOUNCE_MS, STEP_MS, 0, stop, limiter=limiter)
            if raw == "stop":
                return
            if not isinstance(raw, set):  # "timeout" or "signal": nothing happened
                continue
            paths = set()
            for _change, path in raw:
                if path == root:
                    paths.add("")
                elif path.startswith(prefix):
                    paths.add(path[len(prefix):])
            if paths:
                await send.send(paths)
