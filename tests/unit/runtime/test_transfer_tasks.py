"""TransferTasks: the owner cancels the task that moves a transfer, under its current id."""

from __future__ import annotations

import trio

from daemon.runtime.transfer_tasks import TransferTasks


async def test_cancel_cuts_the_task_short_and_says_so() -> None:
    tasks = TransferTasks()
    reached_end = []
    outcome = []

    async def work() -> None:
        with tasks.run("t1") as running:
            await trio.sleep_forever()
            reached_end.append(True)
        outcome.append(running.cancelled)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(work)
        await trio.sleep(0.01)
        assert tasks.is_running("t1") and not tasks.cancel("other")
        assert tasks.cancel("t1")
    assert outcome == [True] and reached_end == [] and not tasks.is_running("t1")


async def test_a_renamed_task_is_cancelled_under_its_new_id() -> None:
    tasks = TransferTasks()

    async def work(task_status=trio.TASK_STATUS_IGNORED) -> None:
        with tasks.run("new-record") as running:
            tasks.rename(running, "earlier-record")
            task_status.started()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        await nursery.start(work)
        assert not tasks.is_running("new-record") and tasks.is_running("earlier-record")
        assert tasks.cancel("earlier-record")
    assert not tasks.is_running("earlier-record")


async def test_a_task_that_ends_by_itself_is_not_cancelled() -> None:
    tasks = TransferTasks()
    with tasks.run("t1") as running:
        await trio.sleep(0)
    assert not running.cancelled and not tasks.cancel("t1")


async def test_pause_is_a_cancel_that_says_it_was_a_pause() -> None:
    tasks = TransferTasks()
    seen = []

    async def work() -> None:
        with tasks.run("t1") as running:
            await trio.sleep_forever()
        seen.append((running.cancelled, running.paused))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(work)
        await trio.sleep(0.01)
        assert tasks.cancel("t1", pause=True)
    assert seen == [(True, True)]
