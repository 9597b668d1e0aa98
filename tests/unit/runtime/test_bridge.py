"""The trio-guest-on-asyncio bridge: results, errors and cancellation cross both ways."""

from __future__ import annotations

import asyncio

import pytest
import trio

from daemon.runtime import bridge


def test_run_returns_the_trio_result_on_uvloop() -> None:
    async def main() -> str:
        loop = bridge.host_loop()
        assert type(loop).__module__.startswith("uvloop")
        await trio.sleep(0.01)
        return "done"

    assert bridge.run(main) == "done"


def test_asyncio_coroutines_are_awaited_through_run_asyncio() -> None:
    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.01)  # a real suspension on the host loop
        return 2 * x

    async def main() -> list[int]:
        async with trio.open_nursery() as nursery:
            results: list[int] = []

            async def one(x: int) -> None:
                results.append(await bridge.run_asyncio(slow_double, x))

            for x in range(5):
                nursery.start_soon(one, x)
        return sorted(results)

    assert bridge.run(main) == [0, 2, 4, 6, 8]


def test_asyncio_exceptions_reach_trio_unchanged() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise KeyError("from asyncio")

    async def main() -> None:
        await bridge.run_asyncio(broken)

    with pytest.raises(KeyError, match="from asyncio"):
        bridge.run(main)


def test_trio_cancellation_cancels_the_asyncio_task() -> None:
    seen: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        with trio.move_on_after(0.05):
            await bridge.run_asyncio(forever)
        await trio.sleep(0.01)  # let the host loop deliver the cancellation

    bridge.run(main)
    assert seen == ["cancelled"]


def test_leftover_asyncio_tasks_do_not_outlive_run() -> None:
    seen: list[str] = []

    async def orphan() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            seen.append("cleaned")

    async def main() -> None:
        bridge.host_loop().create_task(orphan())
        await trio.sleep(0.01)

    bridge.run(main)
    assert seen == ["cleaned"]


def test_callbacks_from_asyncio_reach_trio() -> None:
    async def main() -> int:
        send, receive = trio.open_memory_channel[int](10)
        callback = bridge.to_trio_soon(send.send_nowait)
        bridge.host_loop().call_later(0.01, callback, 42)
        return await receive.receive()

    assert bridge.run(main) == 42
