"""The trio/asyncio bridge: trio runs in guest mode on an asyncio (uvloop) host loop.

This package and ``daemon.peer`` are the only places that import ``asyncio``.

Everything runs on one thread. The host loop runs trio's scheduler ticks as ordinary callbacks, so
trio code may call *synchronous* asyncio APIs directly (``loop.create_task``, ``channel.send``). What it
must never do is ``await`` an asyncio coroutine: that fails (or, worse, works only when the coroutine
never suspends). :func:`run_asyncio` is the crossing in that direction. Code running in asyncio
callbacks reaches trio only through a :class:`trio.lowlevel.TrioToken` (``run_sync_soon``), never by
calling trio APIs directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
import trio

__all__ = ["run", "run_asyncio", "host_loop", "to_trio_soon"]

T = TypeVar("T")

_HOST_LOOP: trio.lowlevel.RunVar[asyncio.AbstractEventLoop] = trio.lowlevel.RunVar("doorstep_host_loop")


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a hard dependency; a plain loop still works
            return asyncio.new_event_loop()
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(async_fn: Callable[..., Awaitable[T]], *args: Any, use_uvloop: bool = True) -> T:
    """Run ``async_fn(*args)`` as a trio program hosted by a fresh asyncio loop; return its result.

    Exceptions from the trio program propagate unchanged. When it returns, tasks still pending on the
    host loop (aiortc leftovers) are cancelled and the loop is closed, so nothing outlives the call.
    """

    async def host_main() -> T:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[T]] = loop.create_future()

        async def trio_main() -> T:
            _HOST_LOOP.set(loop)
            return await async_fn(*args)

        trio.lowlevel.start_guest_run(
            trio_main,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=done.set_result,
            host_uses_signal_set_wakeup_fd=True,
        )
        return (await done).unwrap()

    loop = _new_loop(use_uvloop)
    try:
        return loop.run_until_complete(host_main())
    finally:
        _cancel_leftovers(loop)
        loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())


def host_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop hosting the current trio run. Raises LookupError outside :func:`run`."""
    return _HOST_LOOP.get()


def to_trio_soon(
    fn: Callable[..., object], *args: Any, token: trio.lowlevel.TrioToken | None = None
) -> Callable[..., None]:
    """Return a plain callback that, when asyncio calls it, runs ``fn(*args, *cb_args)`` in trio.

    Without ``token`` it must be created from trio context (it captures the current trio token).
    """
    token = token or trio.lowlevel.current_trio_token()

    def callback(*cb_args: Any) -> None:
        try:
            token.run_sync_soon(lambda: fn(*args, *cb_args))
        except trio.RunFinishedError:
            pass

    return callback


async def run_asyncio(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Await ``fn(*args)`` as an asyncio task on the host loop and return (or raise) its outcome.

    Cancellation: if the calling trio task is cancelled, the asyncio task is cancelled too and
    ``trio.Cancelled`` propagates at once; the asyncio task's own clean-up finishes on the host loop.
    """
    task = host_loop().create_task(fn(*args))
    finished = trio.Event()
    task.add_done_callback(to_trio_soon(lambda _task: finished.set()))
    try:
        await finished.wait()
    except trio.Cancelled:
        task.cancel()
        raise
    return task.result()
