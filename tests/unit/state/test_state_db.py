"""The state database keeps transfers, manifests and durable offsets across reopening."""

from __future__ import annotations

from pathlib import Path

from daemon.state import Direction, FileRecord, ShareRecord, StateDB, TransferState

FILES = [FileRecord(index=0, path="a.bin", size=10, sha256="a" * 64),
         FileRecord(index=1, path="d/b.bin", size=0, sha256="b" * 64)]


def test_transfers_and_offsets_survive_reopen(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.add_transfer("t1", Direction.RECEIVE, signal_url="ws://x/signal/v1")
    db.set_manifest("t1", "share-1", FILES)
    db.set_offset("t1", 0, 7)
    db.set_final_path("t1", 1, "d/b.bin")
    db.set_progress("t1", 7, moved_delta=9)
    db.set_progress("t1", 7, moved_delta=3)
    db.set_state("t1", TransferState.RETRYING, "link down")
    db.close()

    db = StateDB(tmp_path / "state.db")
    record = db.get_transfer("t1")
    assert record is not None
    assert (record.share_id, record.state, record.error) == ("share-1", TransferState.RETRYING, "link down")
    assert (record.bytes_done, record.bytes_total, record.bytes_moved) == (7, 10, 12)
    assert [(f.offset, f.final_path) for f in record.files] == [(7, None), (0, "d/b.bin")]
    assert [t.id for t in db.list_transfers(unfinished_only=True)] == ["t1"]
    db.set_state("t1", TransferState.DONE)
    assert db.list_transfers(unfinished_only=True) == []


def test_same_manifest_keeps_offsets_and_a_new_one_resets_them(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    db.add_transfer("t1", Direction.RECEIVE)
    db.set_manifest("t1", "s", FILES)
    db.set_offset("t1", 0, 5)
    db.set_manifest("t1", "s", FILES)
    assert db.files("t1")[0].offset == 5
    changed = [FileRecord(index=0, path="a.bin", size=11, sha256="c" * 64)]
    db.set_manifest("t1", "s", changed)
    assert [(f.size, f.offset) for f in db.files("t1")] == [(11, 0)]


def test_shares_round_trip(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    share = ShareRecord(share_id="s" * 22, name="n", host_key="k", created_at=1.0, expires_at=2.0,
                        files=tuple(FileRecord(index=f.index, path=f.path, size=f.size, sha256=f.sha256)
                                    for f in FILES))
    db.add_share(share)
    db.add_transfer("t2", Direction.SEND, share_id=share.share_id, files=share.files)
    assert db.get_share(share.share_id) == share
    assert db.find_transfer(share.share_id, Direction.SEND).bytes_total == 10  # type: ignore[union-attr]
    db.remove_share(share.share_id)
    assert db.list_shares() == []
