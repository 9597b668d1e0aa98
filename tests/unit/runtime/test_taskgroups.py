"""open_scoped: one operation's helper tasks fail as one plain exception."""

from __future__ import annotations

import pytest
import trio

from daemon.taskgroups import open_scoped


async def _raise(exc: BaseException) -> None:
    raise exc  # before any checkpoint: siblings started together all get to fail


async def test_a_single_failure_is_raised_as_itself() -> None:
    with pytest.raises(KeyError, match="reader"):
        async with open_scoped() as nursery:
            nursery.start_soon(_raise, KeyError("reader"))
            await trio.sleep_forever()


async def test_simultaneous_failures_raise_one_and_note_the_other() -> None:
    reader, writer = EOFError("reader saw EOF"), BrokenPipeError("writer saw a closed channel")
    with pytest.raises((EOFError, BrokenPipeError)) as caught:
        async with open_scoped() as nursery:
            nursery.start_soon(_raise, reader)
            nursery.start_soon(_raise, writer)
    other = writer if caught.value is reader else reader  # trio shuffles which task runs first
    assert caught.value in (reader, writer)
    assert caught.value.__notes__ == [f"also, in a sibling task: {type(other).__name__}: {other}"]


async def test_groups_with_base_exceptions_are_not_collapsed() -> None:
    with pytest.raises(BaseExceptionGroup):
        async with open_scoped() as nursery:
            nursery.start_soon(_raise, KeyboardInterrupt())
            nursery.start_soon(_raise, ValueError("x"))


async def test_cancellation_is_not_an_error() -> None:
    with trio.move_on_after(0.01) as scope:
        async with open_scoped() as nursery:
            nursery.start_soon(trio.sleep_forever)
    assert scope.cancelled_caught
