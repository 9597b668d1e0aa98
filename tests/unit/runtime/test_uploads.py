"""Uploads into the inbox (daemon.runtime.uploads) on a real inbox folder and an in-memory journal:
verified placement, every way an upload can fail leaving nothing behind, cancel, and recovery."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import trio

from daemon.facade import ApplianceError, Upload
from daemon.runtime.transfer_tasks import TransferTasks
from daemon.runtime.uploads import INTERRUPTED, UPLOAD_ORIGIN, InboxUploads
from daemon.state import Direction, StateDB, TransferChange, TransferState
from daemon.storage import Inbox, InboxRules

PLENTY = 1 << 40


def _inbox(root: Path, **rules: int) -> Inbox:
    return Inbox(root, rules=InboxRules(reserve=0, **rules), free_space=lambda _fd: PLENTY)


async def _chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        await trio.lowlevel.checkpoint()
        yield part


def _partials(inbox: Inbox) -> list[str]:
    return sorted(os.listdir(inbox.root / ".doorstep" / "partial"))


@pytest.fixture
def parts(tmp_path: Path):
    inbox = _inbox(tmp_path / "inbox")
    db = StateDB(":memory:")
    changes: list[tuple[str, TransferChange]] = []
    db.observe(lambda transfer_id, change, _index: changes.append((transfer_id, change)))
    yield inbox, db, TransferTasks(), changes
    inbox.close()
    db.close()


async def test_an_upload_lands_verified_under_its_name_and_is_journaled(parts) -> None:
    inbox, db, tasks, changes = parts
    data = os.urandom(3 * 1024 * 1024 + 5)
    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    uploads = InboxUploads(inbox=inbox, db=db, tasks=tasks)

    transfer_id = await uploads.receive(Upload(path="photos/cat.jpg", chunks=_chunks(pieces)), size=len(data),
                                        sha256=hashlib.sha256(data).hexdigest().upper())

    assert (inbox.root / "photos" / "cat.jpg").read_bytes() == data
    record = db.get_transfer(transfer_id)
    assert record is not None and record.state is TransferState.DONE and record.direction is Direction.RECEIVE
    assert record.signal_url == UPLOAD_ORIGIN and record.share_id is None
    assert record.bytes_done == record.bytes_total == len(data)
    (file,) = record.files
    assert (file.path, file.final_path, file.sha256) == ("photos/cat.jpg", "photos/cat.jpg",
                                                         hashlib.sha256(data).hexdigest())
    kinds = [c for t, c in changes if t == transfer_id]
    assert kinds[0] is TransferChange.ADDED and TransferChange.FILE_PLACED in kinds
    assert kinds.count(TransferChange.PROGRESS) >= 3, "progress is recorded as the bytes come (per MiB)"
    assert _partials(inbox) == []
    assert db.placed_files()["photos/cat.jpg"].sha256 == hashlib.sha256(data).hexdigest()


async def test_a_taken_name_gets_a_number_and_a_hostile_path_stays_inside(parts) -> None:
    inbox, db, tasks, _ = parts
    (inbox.root / "notes.txt").write_bytes(b"mine")
    uploads = InboxUploads(inbox=inbox, db=db, tasks=tasks)
    first = await uploads.receive(Upload(path="notes.txt", chunks=_chunks([b"theirs"])), size=6)
    second = await uploads.receive(Upload(path="../../etc/<passwd>", chunks=_chunks([b"x"])), size=1)
    empty = await uploads.receive(Upload(path=".doorstep/partial/x", chunks=_chunks([])), size=0)
    assert (inbox.root / "notes.txt").read_bytes() == b"mine"
    assert db.get_transfer(first).files[0].final_path == "notes (1).txt"
    assert db.get_transfer(second).files[0].final_path == "etc/_passwd_"
    assert db.get_transfer(empty).files[0].final_path == ".doorstep_/partial/x"
    assert (inbox.root / ".doorstep_" / "partial" / "x").read_bytes() == b""


@pytest.mark.parametrize(("body", "size", "sha256", "code"), [
    ([b"abc"], 4, None, "incomplete"),
    ([b"abc", b"de"], 4, None, "incomplete"),
    ([b"abcd"], 4, hashlib.sha256(b"abce").hexdigest(), "digest_mismatch"),
])
async def test_a_body_that_is_not_the_announced_file_fails_and_leaves_nothing(parts, body, size, sha256,
                                                                              code) -> None:
    inbox, db, tasks, _ = parts
    uploads = InboxUploads(inbox=inbox, db=db, tasks=tasks)
    with pytest.raises(ApplianceError) as failed:
        await uploads.receive(Upload(path="f.bin", chunks=_chunks(body)), size=size, sha256=sha256)
    assert failed.value.code == code
    (record,) = db.list_transfers()
    assert record.state is TransferState.FAILED and record.error == str(failed.value)
    assert not (inbox.root / "f.bin").exists()
    assert _partials(inbox) == []


@pytest.mark.parametrize(("path", "sha256", "code"), [
    ("..", None, "bad_name"),
    ("/", None, "bad_name"),
    ("ok.txt", "not-a-digest", "bad_digest"),
])
async def test_a_bad_request_fails_before_anything_is_recorded(parts, path, sha256, code) -> None:
    inbox, db, tasks, _ = parts
    with pytest.raises(ApplianceError) as failed:
        await InboxUploads(inbox=inbox, db=db, tasks=tasks).receive(Upload(path=path, chunks=_chunks([b"x"])), size=1,
                                                                    sha256=sha256)
    assert failed.value.code == code and failed.value.status == 400
    assert db.list_transfers() == []


async def test_the_inbox_rules_refuse_too_large_and_too_little_space(tmp_path: Path) -> None:
    db = StateDB(":memory:")
    with _inbox(tmp_path / "small", max_transfer=10) as inbox:
        with pytest.raises(ApplianceError) as failed:
            await InboxUploads(inbox=inbox, db=db, tasks=TransferTasks()).receive(
                Upload(path="big", chunks=_chunks([b"x" * 11])), size=11)
        assert (failed.value.code, failed.value.status) == ("too_large", 413)
    with Inbox(tmp_path / "full", rules=InboxRules(reserve=100), free_space=lambda _fd: 150) as inbox:
        with pytest.raises(ApplianceError) as failed:
            await InboxUploads(inbox=inbox, db=db, tasks=TransferTasks()).receive(
                Upload(path="big", chunks=_chunks([b"x" * 60])), size=60)
        assert (failed.value.code, failed.value.status) == ("insufficient_storage", 507)
    assert db.list_transfers() == []


async def test_the_owner_cancels_an_upload_midway(parts) -> None:
    inbox, db, tasks, _ = parts
    uploads = InboxUploads(inbox=inbox, db=db, tasks=tasks)
    first_written = trio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"x" * (2 * 1024 * 1024)
        first_written.set()
        await trio.sleep_forever()

    errors: list[ApplianceError] = []

    async def upload() -> None:
        try:
            await uploads.receive(Upload(path="big.bin", chunks=stalls()), size=10 * 1024 * 1024)
        except ApplianceError as exc:
            errors.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(upload)
            await first_written.wait()
            (record,) = db.list_transfers()
            assert record.state is TransferState.ACTIVE and record.bytes_done > 0
            db.set_state(record.id, TransferState.CANCELLED, "cancelled by the owner")  # as Appliance.cancel_transfer
            assert tasks.cancel(record.id)
    assert [e.code for e in errors] == ["cancelled"]
    assert db.get_transfer(record.id).state is TransferState.CANCELLED
    assert not (inbox.root / "big.bin").exists() and _partials(inbox) == []


async def test_an_upload_that_goes_quiet_is_failed_after_the_stall_timeout_and_leaves_nothing(parts) -> None:
    inbox, db, tasks, _ = parts
    uploads = InboxUploads(inbox=inbox, db=db, tasks=tasks, stall_timeout=0.3)

    async def goes_quiet() -> AsyncIterator[bytes]:  # a phone that changed networks: no FIN, no RST
        yield b"x" * (2 * 1024 * 1024)
        await trio.sleep_forever()

    with trio.fail_after(5):
        with pytest.raises(ApplianceError) as failed:
            await uploads.receive(Upload(path="quiet.bin", chunks=goes_quiet()), size=10 * 1024 * 1024)
    assert failed.value.code == "stalled" and failed.value.status == 408
    (record,) = db.list_transfers()
    assert record.state is TransferState.FAILED and "no bytes arrived for 0.3 s" in (record.error or "")
    assert not (inbox.root / "quiet.bin").exists() and _partials(inbox) == []


async def test_a_slow_upload_that_keeps_sending_is_not_stalled(parts) -> None:
    inbox, db, tasks, _ = parts
    uploads = InboxUploads(inbox=inbox, db=db, tasks=tasks, stall_timeout=0.3)

    async def slow() -> AsyncIterator[bytes]:
        for _ in range(6):
            await trio.sleep(0.1)  # 0.6 s in all, never 0.3 s without a byte
            yield b"y" * 1000

    transfer_id = await uploads.receive(Upload(path="slow.bin", chunks=slow()), size=6000)
    assert db.get_transfer(transfer_id).state is TransferState.DONE
    assert (inbox.root / "slow.bin").read_bytes() == b"y" * 6000


async def test_uploads_cut_off_by_a_stop_are_failed_and_cleaned_at_the_next_start(parts) -> None:
    inbox, db, tasks, _ = parts
    db.add_transfer("cut0ff", Direction.RECEIVE, signal_url=UPLOAD_ORIGIN)
    db.set_state("cut0ff", TransferState.ACTIVE)
    inbox.open_partial("cut0ff", 0, 10).close()
    db.add_transfer("fetch1", Direction.RECEIVE, signal_url="ws://elsewhere")
    assert _partials(inbox) == ["cut0ff"]

    InboxUploads(inbox=inbox, db=db, tasks=tasks)

    cut = db.get_transfer("cut0ff")
    assert cut.state is TransferState.FAILED and cut.error == INTERRUPTED
    assert db.get_transfer("fetch1").state is TransferState.CONNECTING, "other receives are not ours to touch"
    assert _partials(inbox) == []
