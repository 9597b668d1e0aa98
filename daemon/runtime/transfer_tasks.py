"""Which task moves which transfer, so the owner can stop one (``POST /transfers/{id}/cancel`` or
``/pause``).

A task that fetches, pushes or receives a transfer runs its work inside :meth:`TransferTasks.run`;
:meth:`TransferTasks.cancel` cancels that scope. The task sees ``trio.Cancelled`` (which no
transfer code catches), so it stops where it is; durable offsets stay for a retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

__all__ = ["TransferTasks", "Running"]


class Running:
    """One transfer's running task: ``transfer_id`` may change once (a push that turns out to
    resume an earlier record, see :meth:`TransferTasks.rename`); ``cancelled`` says the owner
    stopped it, ``paused`` that it was to pause it (not to end it)."""

    def __init__(self, transfer_id: str, scope: trio.CancelScope) -> None:
        self.transfer_id = transfer_id
        self.scope = scope
        self.cancelled = False
        self.paused = False


class TransferTasks:
    def __init__(self) -> None:
        self._running: dict[str, Running] = {}

    @contextmanager
    def run(self, transfer_id: str) -> Iterator[Running]:
        """Run the ``with`` block as ``transfer_id``'s task. If the owner cancels it, the block
        is cut short and the ``with`` statement returns normally, with ``cancelled`` set."""
        with trio.CancelScope() as scope:
            running = Running(transfer_id, scope)
            self._running[transfer_id] = running
            try:
                yield running
            finally:
                if self._running.get(running.transfer_id) is running:
                    del self._running[running.transfer_id]

    def rename(self, running: Running, transfer_id: str) -> None:
        """The task now moves ``transfer_id`` (an earlier record of the same transfer)."""
        if self._running.get(running.transfer_id) is running:
            del self._running[running.transfer_id]
        running.transfer_id = transfer_id
        self._running[transfer_id] = running

    def cancel(self, transfer_id: str, *, pause: bool = False) -> bool:
        """Cancel ``transfer_id``'s task (``pause``: to pause it); False if none is running."""
        running = self._running.get(transfer_id)
        if running is None:
            return False
        running.cancelled = True
        running.paused = pause
        running.scope.cancel()
        return True

    def is_running(self, transfer_id: str) -> bool:
        return transfer_id in self._running
