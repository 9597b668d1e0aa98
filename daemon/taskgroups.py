"""Nurseries for the helper tasks of one operation, whose failure surfaces as a plain exception.

trio wraps every error that leaves a nursery in an ExceptionGroup. Where a nursery only runs helper
tasks of one operation (a reader beside a writer), they fail together for one cause (the connection
closed: the reader sees EOF while the writer sees a closed channel), and callers want that one error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

__all__ = ["open_scoped"]


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    leaves = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(reversed(exc.exceptions))  # pop() then yields them in order
        elif not isinstance(exc, trio.Cancelled):
            leaves.append(exc)
    return leaves


@asynccontextmanager
async def open_scoped() -> AsyncIterator[trio.Nursery]:
    """A nursery whose failure is raised as one of its exceptions (trio shuffles task order), not a group.

    Further exceptions from sibling tasks are attached to it as notes (``add_note``), so nothing is
    lost from tracebacks. A group holding anything but ``Exception``s (KeyboardInterrupt, say) is
    re-raised as it is.
    """
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if not leaves or not all(isinstance(leaf, Exception) for leaf in leaves):
            raise
        first = leaves[0]
        for other in leaves[1:]:
            first.add_note(f"also, in a sibling task: {type(other).__name__}: {other}")
        raise first from None
