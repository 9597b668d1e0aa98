"""StateDB: transfer filters, files placed in the inbox, and the observer told of every write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.state import Direction, FileRecord, StateDB, TransferChange, TransferState

FILES = [FileRecord(index=0, path="a.bin", size=10, sha256="a" * 64),
         FileRecord(index=1, path="b.bin", size=20, sha256="b" * 64)]


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    db = StateDB(tmp_path / "state.db")
    yield db
    db.close()


def test_filters_by_state_direction_and_keeps_the_newest(db: StateDB) -> None:
    for i, (direction, state) in enumerate([(Direction.SEND, TransferState.DONE), (Direction.RECEIVE, TransferState.ACTIVE),
                                            (Direction.RECEIVE, TransferState.DONE), (Direction.SEND, TransferState.FAILED)]):
        db.add_transfer(f"t{i}", direction)
        db.set_state(f"t{i}", state)
    ids = lambda records: [r.id for r in records]  # noqa: E731
    assert ids(db.list_transfers()) == ["t0", "t1", "t2", "t3"]
    assert ids(db.list_transfers(states={TransferState.DONE})) == ["t0", "t2"]
    assert ids(db.list_transfers(states={TransferState.DONE, TransferState.ACTIVE}, direction=Direction.RECEIVE)) == \
        ["t1", "t2"]
    assert ids(db.list_transfers(limit=2)) == ["t2", "t3"], "the newest two, oldest first"
    assert ids(db.list_transfers(direction=Direction.SEND, limit=1)) == ["t3"]
    assert ids(db.list_transfers(unfinished_only=True)) == ["t1"]


def test_placed_files_by_final_path_newest_wins(db: StateDB) -> None:
    db.add_transfer("t1", Direction.RECEIVE)
    db.set_manifest("t1", "s1", FILES)
    db.set_final_path("t1", 0, "a.bin")
    db.add_transfer("t2", Direction.RECEIVE)
    db.set_manifest("t2", "s2", [FileRecord(index=0, path="a.bin", size=11, sha256="c" * 64)])
    db.set_final_path("t2", 0, "a.bin")
    placed = db.placed_files()
    assert set(placed) == {"a.bin"}
    assert (placed["a.bin"].transfer_id, placed["a.bin"].size, placed["a.bin"].sha256) == ("t2", 11, "c" * 64)
    assert db.placed_files(["other"]) == {} and db.placed_files([]) == {}
    assert set(db.placed_files([f"x{i}" for i in range(600)] + ["a.bin"])) == {"a.bin"}


def test_observer_hears_every_transfer_write(db: StateDB) -> None:
    heard: list[tuple[str, TransferChange, int | None]] = []
    db.observe(lambda tid, change, index: heard.append((tid, change, index)))
    db.add_transfer("t1", Direction.RECEIVE)
    db.set_manifest("t1", "s1", FILES)
    db.set_progress("t1", 5, 5)
    db.set_state("t1", TransferState.ACTIVE)
    db.set_final_path("t1", 1, "b.bin")
    db.hold("t1", "dev")
    db.remove_transfer("t1")
    assert heard == [("t1", TransferChange.ADDED, None), ("t1", TransferChange.MANIFEST, None),
                     ("t1", TransferChange.PROGRESS, None), ("t1", TransferChange.STATE, None),
                     ("t1", TransferChange.FILE_PLACED, 1), ("t1", TransferChange.STATE, None),
                     ("t1", TransferChange.REMOVED, None)]


def test_share_ids_are_hex_and_never_read_as_a_command_line_option() -> None:
    from daemon.state import new_share_id
    from daemon.protocol.signaling import _SHARE_ID

    ids = {new_share_id() for _ in range(2000)}
    assert len(ids) == 2000
    for share_id in ids:
        assert re.fullmatch(r"[0-9a-f]{32}", share_id), share_id
        assert _SHARE_ID.fullmatch(share_id)
