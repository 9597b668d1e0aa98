"""docs/protocol.md embeds state diagrams generated from the transition tables."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.protocol.transfer_states import (
    RECEIVER_TERMINAL,
    RECEIVER_TRANSITIONS,
    SENDER_TERMINAL,
    SENDER_TRANSITIONS,
    ReceiverState,
    SenderState,
    markdown_diagrams,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
BLOCK = re.compile(r"<!-- generated: (\w+) -->\n.*?<!-- end generated -->\n", re.DOTALL)


def blocks(text: str) -> dict[str, str]:
    return {match.group(1): match.group(0) for match in BLOCK.finditer(text)}


def test_doc_diagrams_match_tables() -> None:
    expected = blocks(markdown_diagrams())
    assert set(expected) == {"sender", "receiver"}
    assert blocks(DOC.read_text(encoding="utf-8")) == expected, (
        "docs/protocol.md is stale: paste the output of "
        "`python -m daemon.protocol.transfer_states` over the generated blocks"
    )


def test_tables_cover_every_state() -> None:
    assert set(SENDER_TRANSITIONS) == set(SenderState)
    assert set(RECEIVER_TRANSITIONS) == set(ReceiverState)
    assert {
        SenderState.DONE,
        SenderState.REJECTED,
        SenderState.CANCELLED,
        SenderState.ERROR,
    } == SENDER_TERMINAL
    assert {
        ReceiverState.DONE,
        ReceiverState.REJECTED,
        ReceiverState.CANCELLED,
        ReceiverState.ERROR,
    } == RECEIVER_TERMINAL


def test_every_live_state_after_start_can_be_stopped() -> None:
    for table, idle in (
        (SENDER_TRANSITIONS, SenderState.IDLE),
        (RECEIVER_TRANSITIONS, ReceiverState.IDLE),
    ):
        for state, row in table.items():
            if row and state is not idle:
                assert {t.name for t in row} >= {"CANCEL", "FAIL", "RECV_CANCEL", "RECV_ERROR"}
