"""States and transition tables of the transfer protocol v1 machines, as plain data.

All state logic of :class:`~daemon.protocol.transfer.TransferSender` and
:class:`~daemon.protocol.transfer.TransferReceiver` lives in the two tables below (the
h11 ``_state.py`` idea): a ``(state, trigger)`` pair missing from a table is a protocol
violation, ``LocalProtocolError(code="state")`` for a method call and
``RemoteProtocolError(code="unexpected_message")`` for a received message. Guards that
depend on counters (for instance "every file verified") are checked by the machines;
where a guard selects the next state the table has one trigger per outcome
(``FILE_VERIFIED`` / ``FILE_VERIFIED_LAST``).

Terminal states have no outgoing transitions. ``docs/protocol.md`` embeds the diagrams
produced by :func:`markdown_diagrams` (a test checks they match); regenerate them with
``python -m daemon.protocol.transfer_states``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

__all__ = [
    "SenderState",
    "ReceiverState",
    "Trigger",
    "SENDER_TRANSITIONS",
    "RECEIVER_TRANSITIONS",
    "SENDER_TERMINAL",
    "RECEIVER_TERMINAL",
    "mermaid_diagram",
    "markdown_diagrams",
]


class SenderState(Enum):
    """States of :class:`~daemon.protocol.transfer.TransferSender`."""

    IDLE = "IDLE"
    AWAITING_HELLO = "AWAITING_HELLO"
    AWAITING_ACCEPT = "AWAITING_ACCEPT"
    SENDING = "SENDING"
    DONE = "DONE"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"


class ReceiverState(Enum):
    """States of :class:`~daemon.protocol.transfer.TransferReceiver`."""

    IDLE = "IDLE"
    AWAITING_HELLO = "AWAITING_HELLO"
    AWAITING_OFFER = "AWAITING_OFFER"
    OFFER_RECEIVED = "OFFER_RECEIVED"
    RECEIVING = "RECEIVING"
    DONE = "DONE"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"


class Trigger(Enum):
    """What moves a machine: a method call (value ends in ``()``) or a received frame
    (value ``recv <message type>``, or ``recv DATA``)."""

    START = "start()"
    ACCEPT = "accept()"
    REJECT = "reject()"
    SEND_CHUNK = "send_chunk()"
    ACK = "ack()"
    FILE_VERIFIED = "file_verified()"
    FILE_VERIFIED_LAST = "file_verified() (last file)"
    FILE_FAILED = "file_failed()"
    CANCEL = "cancel()"
    FAIL = "fail()"
    RECV_HELLO = "recv hello"
    RECV_OFFER = "recv offer"
    RECV_ACCEPT = "recv accept"
    RECV_REJECT = "recv reject"
    RECV_ACK = "recv ack"
    RECV_VERIFIED = "recv verified"
    RECV_DONE = "recv done"
    RECV_CANCEL = "recv cancel"
    RECV_ERROR = "recv error"
    RECV_DATA = "recv DATA"

    @property
    def is_remote(self) -> bool:
        """Caused by the peer (a received frame) rather than by a method call."""
        return self.name.startswith("RECV_")


_State = TypeVar("_State", SenderState, ReceiverState)
_S = SenderState
_R = ReceiverState
_T = Trigger


def _stoppable(cancelled: _State, error: _State) -> dict[Trigger, _State]:
    """Every live state after ``start()`` can be cancelled or failed by either side."""
    return {
        _T.CANCEL: cancelled,
        _T.FAIL: error,
        _T.RECV_CANCEL: cancelled,
        _T.RECV_ERROR: error,
    }


SENDER_TRANSITIONS: Mapping[SenderState, Mapping[Trigger, SenderState]] = {
    _S.IDLE: {_T.START: _S.AWAITING_HELLO},
    _S.AWAITING_HELLO: {
        _T.RECV_HELLO: _S.AWAITING_ACCEPT,
        **_stoppable(_S.CANCELLED, _S.ERROR),
    },
    _S.AWAITING_ACCEPT: {
        _T.RECV_ACCEPT: _S.SENDING,
        _T.RECV_REJECT: _S.REJECTED,
        **_stoppable(_S.CANCELLED, _S.ERROR),
    },
    _S.SENDING: {
        _T.SEND_CHUNK: _S.SENDING,
        _T.RECV_ACK: _S.SENDING,
        _T.RECV_VERIFIED: _S.SENDING,
        _T.RECV_DONE: _S.DONE,
        **_stoppable(_S.CANCELLED, _S.ERROR),
    },
    _S.DONE: {},
    _S.REJECTED: {},
    _S.CANCELLED: {},
    _S.ERROR: {},
}

RECEIVER_TRANSITIONS: Mapping[ReceiverState, Mapping[Trigger, ReceiverState]] = {
    _R.IDLE: {_T.START: _R.AWAITING_HELLO},
    _R.AWAITING_HELLO: {
        _T.RECV_HELLO: _R.AWAITING_OFFER,
        **_stoppable(_R.CANCELLED, _R.ERROR),
    },
    _R.AWAITING_OFFER: {
        _T.RECV_OFFER: _R.OFFER_RECEIVED,
        **_stoppable(_R.CANCELLED, _R.ERROR),
    },
    _R.OFFER_RECEIVED: {
        _T.ACCEPT: _R.RECEIVING,
        _T.REJECT: _R.REJECTED,
        **_stoppable(_R.CANCELLED, _R.ERROR),
    },
    _R.RECEIVING: {
        _T.RECV_DATA: _R.RECEIVING,
        _T.ACK: _R.RECEIVING,
        _T.FILE_VERIFIED: _R.RECEIVING,
        _T.FILE_VERIFIED_LAST: _R.DONE,
        _T.FILE_FAILED: _R.ERROR,
        **_stoppable(_R.CANCELLED, _R.ERROR),
    },
    _R.DONE: {},
    _R.REJECTED: {},
    _R.CANCELLED: {},
    _R.ERROR: {},
}

SENDER_TERMINAL = frozenset(s for s, row in SENDER_TRANSITIONS.items() if not row)
RECEIVER_TERMINAL = frozenset(s for s, row in RECEIVER_TRANSITIONS.items() if not row)


def mermaid_diagram(table: Mapping[Any, Mapping[Trigger, Any]], initial: Enum) -> str:
    """A mermaid ``stateDiagram-v2`` of ``table`` (deterministic: table order)."""
    lines = ["stateDiagram-v2", f"    [*] --> {initial.name}"]
    for state, row in table.items():
        for trigger, target in row.items():
            lines.append(f"    {state.name} --> {target.name}: {trigger.value}")
        if not row:
            lines.append(f"    {state.name} --> [*]")
    return "\n".join(lines) + "\n"


def markdown_diagrams() -> str:
    """Both diagrams as fenced mermaid blocks between markers, as embedded in the docs."""
    blocks = []
    for title, table, initial in (
        ("sender", SENDER_TRANSITIONS, SenderState.IDLE),
        ("receiver", RECEIVER_TRANSITIONS, ReceiverState.IDLE),
    ):
        diagram = mermaid_diagram(table, initial)
        blocks.append(
            f"<!-- generated: {title} -->\n```mermaid\n{diagram}```\n<!-- end generated -->\n"
        )
    return "\n".join(blocks)


if __name__ == "__main__":
    print(markdown_diagrams(), end="")
