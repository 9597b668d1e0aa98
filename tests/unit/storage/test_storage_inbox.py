"""Inbox: partial files, resume, verify, finalize (collisions, symlink attacks, hostile names)."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.storage import Inbox, PartialFile, UnsafeName, UnsafePath

if TYPE_CHECKING:
    from .conftest import Sandbox

TID = "t-1"


def receive(inbox: Inbox, data: bytes, *, tid: str = TID, index: int = 0) -> PartialFile:
    """A verified partial file holding ``data``."""
    partial = inbox.open_partial(tid, index, len(data), 0)
    partial.write_at(0, data)
    partial.sync()
    assert partial.verify(hashlib.sha256(data).hexdigest())
    return partial


def part_path(root: Path, tid: str = TID, index: int = 0) -> Path:
    return root / ".doorstep" / "partial" / tid / f"{index}.part"


# -- layout and partial files ----------------------------------------------------------------


def test_creates_layout_with_private_partial_area(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        assert inbox.root == sandbox.root
        assert sandbox.mode_of(sandbox.root / ".doorstep") == 0o700
        assert sandbox.mode_of(sandbox.root / ".doorstep" / "partial") == 0o700
        partial = inbox.open_partial(TID, 3, 10, 0)
        partial.close()
        assert sandbox.mode_of(sandbox.root / ".doorstep" / "partial" / TID) == 0o700
        assert sandbox.mode_of(part_path(sandbox.root, index=3)) == 0o600
        assert inbox.partial_transfers() == [TID]
    with pytest.raises(ValueError, match="closed"):
        inbox.partial_transfers()


def test_private_modes_are_exact_whatever_the_umask(sandbox: Sandbox) -> None:
    old = os.umask(0o277)
    try:
        with Inbox(sandbox.root) as inbox:
            inbox.open_partial(TID, 0, 1, 0).close()
    finally:
        os.umask(old)
    assert sandbox.mode_of(sandbox.root / ".doorstep" / "partial" / TID) == 0o700
    assert sandbox.mode_of(part_path(sandbox.root)) == 0o600


@pytest.mark.parametrize("tid", ["", ".", "..", "../x", "a/b", "x" * 65, "é", ".doorstep"])
def test_transfer_id_is_validated(sandbox: Sandbox, tid: str) -> None:
    with Inbox(sandbox.root) as inbox:
        with pytest.raises(UnsafeName, match="transfer id"):
            inbox.open_partial(tid, 0, 1, 0)
        with pytest.raises(UnsafeName):
            inbox.discard(tid)


@pytest.mark.parametrize(
    ("index", "size", "durable"), [(-1, 1, 0), (0, -1, 0), (0, 5, 6), (0, 5, -1), (True, 1, 0)]
)
def test_open_partial_rejects_bad_numbers(
    sandbox: Sandbox, index: int, size: int, durable: int
) -> None:
    with Inbox(sandbox.root) as inbox, pytest.raises(ValueError):
        inbox.open_partial(TID, index, size, durable)


def test_write_at_bounds(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox, inbox.open_partial(TID, 0, 10, 0) as partial:
        partial.write_at(6, b"6789")
        partial.write_at(0, b"012345")  # out of order is fine
        with pytest.raises(ValueError, match="outside"):
            partial.write_at(8, b"xyz")
        with pytest.raises(ValueError, match="outside"):
            partial.write_at(-1, b"x")
        partial.sync()
    assert part_path(sandbox.root).read_bytes() == b"0123456789"
    with pytest.raises(ValueError, match="closed"):
        partial.write_at(0, b"x")


def test_torn_tail_is_discarded_on_reopen(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        with inbox.open_partial(TID, 0, 300, 0) as partial:
            assert partial.offset == 0
            partial.write_at(0, b"a" * 100)
            partial.sync()  # checkpoint: 100 durable bytes
            partial.write_at(100, b"b" * 50)  # torn tail, never checkpointed
        with inbox.open_partial(TID, 0, 300, 100) as partial:
            assert partial.offset == 100
            assert part_path(sandbox.root).read_bytes() == b"a" * 100
            partial.write_at(100, b"c" * 200)
            partial.sync()
            assert partial.verify(hashlib.sha256(b"a" * 100 + b"c" * 200).hexdigest())


def test_reopen_reports_what_is_really_there(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        with inbox.open_partial(TID, 0, 100, 0) as partial:
            partial.write_at(0, b"x" * 10)
        with inbox.open_partial(TID, 0, 100, 50) as partial:
            assert partial.offset == 10


def test_verify(sandbox: Sandbox) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)  # several 1 MiB reads
    digest = hashlib.sha256(data).hexdigest()
    with Inbox(sandbox.root) as inbox:
        partial = inbox.open_partial(TID, 0, len(data), 0)
        partial.write_at(0, data)
        assert partial.verify(digest.upper()) and partial.verified
        with open(part_path(sandbox.root), "r+b") as raw:  # flip one byte on disk
            raw.seek(2 * 1024 * 1024)
            byte = raw.read(1)
            raw.seek(2 * 1024 * 1024)
            raw.write(bytes([byte[0] ^ 1]))
        assert not partial.verify(digest) and not partial.verified
        with pytest.raises(ValueError, match="SHA-256"):
            partial.verify("abc")
        partial.close()
        short = inbox.open_partial(TID, 1, 5, 0)
        short.write_at(0, b"abc")
        assert not short.verify(hashlib.sha256(b"abc").hexdigest())  # length != size
        short.close()


def test_discard_and_partial_transfers(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        for tid in ("b", "a"):
            inbox.open_partial(tid, 0, 1, 0).close()
        (sandbox.root / ".doorstep" / "partial" / "stray.file").write_bytes(b"")
        assert inbox.partial_transfers() == ["a", "b"]
        inbox.discard("a")
        inbox.discard("a")  # idempotent
        assert inbox.partial_transfers() == ["b"]
        assert not (sandbox.root / ".doorstep" / "partial" / "a").exists()


def test_crash_between_link_and_unlink_does_not_damage_the_placed_file(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        receive(inbox, b"complete").close()
        os.link(part_path(sandbox.root), sandbox.root / "placed.txt")  # as finalize would
        with inbox.open_partial(TID, 0, 8, 8) as partial:
            assert partial.offset == 0  # started afresh, not truncated in place
        assert (sandbox.root / "placed.txt").read_bytes() == b"complete"
        assert os.stat(part_path(sandbox.root)).st_nlink == 1


# -- finalize --------------------------------------------------------------------------------


def test_finalize_places_verified_file(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        partial = receive(inbox, b"hello")
        assert inbox.finalize(partial, "docs/2024/hello.txt") == "docs/2024/hello.txt"
        placed = sandbox.root / "docs" / "2024" / "hello.txt"
        assert placed.read_bytes() == b"hello"
        assert sandbox.mode_of(placed) == 0o644
        assert not part_path(sandbox.root).exists()
        assert partial.closed
        assert inbox.partial_transfers() == [TID]  # the folder stays until discard()


def test_finalize_file_mode(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root, file_mode=0o600) as inbox:
        inbox.finalize(receive(inbox, b"x"), "x")
    assert sandbox.mode_of(sandbox.root / "x") == 0o600


def test_finalize_requires_a_successful_verify(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        partial = inbox.open_partial(TID, 0, 2, 0)
        partial.write_at(0, b"ab")
        with pytest.raises(ValueError, match="verify"):
            inbox.finalize(partial, "a")
        assert not partial.verify(hashlib.sha256(b"zz").hexdigest())
        with pytest.raises(ValueError, match="verify"):
            inbox.finalize(partial, "a")
        assert partial.verify(hashlib.sha256(b"ab").hexdigest())
        partial.write_at(0, b"a")  # any write after verify invalidates it
        with pytest.raises(ValueError, match="verify"):
            inbox.finalize(partial, "a")
        partial.close()
    assert sorted(os.listdir(sandbox.root)) == [".doorstep"]


def test_finalize_unusable_name_leaves_partial(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        partial = receive(inbox, b"x")
        with pytest.raises(UnsafeName):
            inbox.finalize(partial, "../..")
        assert part_path(sandbox.root).exists() and not partial.closed
        assert inbox.finalize(partial, "ok") == "ok"


def test_collisions_never_overwrite(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        (sandbox.root / "a.txt").write_bytes(b"old")
        (sandbox.root / "a (1).txt").mkdir()  # an existing directory is taken too
        (sandbox.root / "dir").write_bytes(b"file in the way")
        assert inbox.finalize(receive(inbox, b"new", index=0), "a.txt") == "a (2).txt"
        assert inbox.finalize(receive(inbox, b"sub", index=1), "dir/x.tar.gz") == "dir (1)/x.tar.gz"
        assert (
            inbox.finalize(receive(inbox, b"sub2", index=2), "dir/x.tar.gz")
            == "dir (1)/x (1).tar.gz"
        )
    assert (sandbox.root / "a.txt").read_bytes() == b"old"
    assert (sandbox.root / "a (2).txt").read_bytes() == b"new"
    assert (sandbox.root / "dir").read_bytes() == b"file in the way"
    assert (sandbox.root / "dir (1)" / "x.tar.gz").read_bytes() == b"sub"


def test_concurrent_finalizes_of_one_name_end_as_distinct_files(sandbox: Sandbox) -> None:
    count = 8
    with Inbox(sandbox.root) as inbox:
        partials = [receive(inbox, f"copy {i}".encode(), index=i) for i in range(count)]
        barrier = threading.Barrier(count)
        results: list[str] = []
        errors: list[BaseException] = []

        def run(partial: PartialFile) -> None:
            barrier.wait()
            try:
                results.append(inbox.finalize(partial, "same/name.txt"))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(p,)) for p in partials]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    expected = {"same/name.txt"} | {f"same/name ({i}).txt" for i in range(1, count)}
    assert set(results) == expected
    contents = {(sandbox.root / r).read_bytes() for r in results}
    assert contents == {f"copy {i}".encode() for i in range(count)}


def test_no_hardlink_filesystem_fallback(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    with Inbox(sandbox.root) as inbox:
        (sandbox.root / "f.txt").write_bytes(b"old")
        partial = receive(inbox, b"new")
        monkeypatch.setattr(os, "link", no_link)
        assert inbox.finalize(partial, "f.txt") == "f (1).txt"
    assert (sandbox.root / "f.txt").read_bytes() == b"old"
    assert (sandbox.root / "f (1).txt").read_bytes() == b"new"
    assert not part_path(sandbox.root).exists()


# -- symlink attacks -------------------------------------------------------------------------


def test_symlinked_destination_directory_is_not_followed(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        (sandbox.root / "docs").symlink_to(sandbox.outside)
        (sandbox.root / "real").mkdir()
        (sandbox.root / "real" / "deep").symlink_to(sandbox.outside)
        sandbox.freeze()
        assert (
            inbox.finalize(receive(inbox, b"1", index=0), "docs/secret.txt")
            == "docs (1)/secret.txt"
        )
        assert inbox.finalize(receive(inbox, b"2", index=1), "real/deep/x") == "real/deep (1)/x"
    assert (sandbox.root / "docs (1)" / "secret.txt").read_bytes() == b"1"


def test_symlinked_destination_file_is_not_followed(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        (sandbox.root / "a.txt").symlink_to(sandbox.outside / "secret.txt")
        (sandbox.root / "b.txt").symlink_to(sandbox.outside / "created-by-attack.txt")  # dangling
        sandbox.freeze()
        assert inbox.finalize(receive(inbox, b"A", index=0), "a.txt") == "a (1).txt"
        assert inbox.finalize(receive(inbox, b"B", index=1), "b.txt") == "b (1).txt"
    assert (sandbox.outside / "secret.txt").read_bytes() == b"do not touch"


@pytest.mark.parametrize("where", ["private", "partial"])
def test_symlinked_private_area_is_refused(sandbox: Sandbox, where: str) -> None:
    inbox = Inbox(sandbox.root)
    target = sandbox.root / ".doorstep"
    if where == "partial":
        target = target / "partial"
    os.rename(target, sandbox.base / "moved-away")
    target.symlink_to(sandbox.outside)
    sandbox.freeze()
    with pytest.raises(UnsafePath):
        inbox.open_partial(TID, 0, 1, 0)
    with pytest.raises(UnsafePath):
        inbox.partial_transfers()
    inbox.close()
    with pytest.raises(UnsafePath):
        Inbox(sandbox.root)


def test_symlinked_transfer_folder_or_part_file_is_refused(sandbox: Sandbox) -> None:
    partial_root = sandbox.root / ".doorstep" / "partial"
    with Inbox(sandbox.root) as inbox:
        (partial_root / "evil").symlink_to(sandbox.outside)
        inbox.open_partial(TID, 0, 1, 0).close()
        part_path(sandbox.root, TID, 1).symlink_to(sandbox.outside / "secret.txt")
        part_path(sandbox.root, TID, 2).symlink_to(sandbox.outside / "new.part")
        sandbox.freeze()
        with pytest.raises(UnsafePath):
            inbox.open_partial("evil", 0, 1, 0)
        with pytest.raises(UnsafePath):
            inbox.open_partial(TID, 1, 100, 0)  # would truncate the secret if followed
        with pytest.raises(UnsafePath):
            inbox.open_partial(TID, 2, 100, 0)
        assert inbox.partial_transfers() == [TID]  # the symlink is not listed
        inbox.discard("evil")  # removes the link, not the target
        assert not (partial_root / "evil").is_symlink()


def test_part_swapped_after_verify_is_not_placed(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        partial = receive(inbox, b"good")
        impostor = part_path(sandbox.root).with_name("impostor")
        impostor.write_bytes(b"evil")
        os.replace(impostor, part_path(sandbox.root))
        with pytest.raises(UnsafePath, match="replaced"):
            inbox.finalize(partial, "f.txt")
        partial.close()
    assert not (sandbox.root / "f.txt").exists()


# -- hostile names end to end ----------------------------------------------------------------

HOSTILE = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a\x00b",
    "CON",
    "con.txt",
    "n" * 300,
    "．．/x",
    "a∕..∕b",
    "..\\..\\windows\\system32",
    ".doorstep/partial/t-1/0.part",
    "../outside/secret.txt",
    "..",
    "",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside(sandbox: Sandbox, name: str) -> None:
    with Inbox(sandbox.root) as inbox:
        partial = receive(inbox, b"payload")
        try:
            placed = inbox.finalize(partial, name)
        except UnsafeName:
            partial.close()
            return
    assert_inside(sandbox.root, placed)
    assert (sandbox.root / placed).read_bytes() == b"payload"
    assert not placed.startswith(".doorstep/")


def assert_inside(root: Path, relpath: str) -> None:
    real = os.path.realpath(root / relpath)
    assert os.path.commonpath([os.path.realpath(root), real]) == os.path.realpath(root)
    assert all(len(part.encode()) <= 255 for part in relpath.split("/"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(
            ["..", ".", "", "a", "．．", "∕", "CON", ".doorstep", "\x00", "x" * 120, " "]
        ),
        max_size=6,
    ).map("/".join)
)
def test_arbitrary_names_end_inside(sandbox: Sandbox, name: str) -> None:
    before = sandbox.snapshot()
    with Inbox(sandbox.root) as inbox:
        partial = receive(inbox, name.encode())
        try:
            placed = inbox.finalize(partial, name)
        except UnsafeName:
            partial.close()
            return
    assert_inside(sandbox.root, placed)
    assert (sandbox.root / placed).read_bytes() == name.encode()
    assert sandbox.snapshot() == before


# -- housekeeping ----------------------------------------------------------------------------


def test_discard_partial_removes_one_file(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        for index in (0, 1):
            receive(inbox, b"data", index=index).close()
        inbox.discard_partial(TID, 0)
        inbox.discard_partial(TID, 0)  # idempotent
        inbox.discard_partial("never-started", 0)
        assert not part_path(sandbox.root, index=0).exists()
        assert part_path(sandbox.root, index=1).exists()
        with inbox.open_partial(TID, 0, 4, 4) as partial:
            assert partial.offset == 0
        with pytest.raises(ValueError):
            inbox.discard_partial(TID, -1)


def test_remove_private_dir_if_empty(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        receive(inbox, b"x").close()
        assert not inbox.remove_private_dir_if_empty()
        assert (sandbox.root / ".doorstep" / "partial" / TID).is_dir()
        inbox.discard(TID)
        assert inbox.remove_private_dir_if_empty()
        assert os.listdir(sandbox.root) == []
        assert inbox.remove_private_dir_if_empty()
        assert inbox.partial_transfers() == []  # recreated on demand
        assert sandbox.mode_of(sandbox.root / ".doorstep" / "partial") == 0o700


def test_inbox_on_a_disk_without_unix_permissions(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")  # what vfat/exFAT answer

    monkeypatch.setattr(os, "fchmod", refuse)
    monkeypatch.setattr(os, "link", refuse)
    with Inbox(sandbox.root) as inbox:
        assert inbox.finalize(receive(inbox, b"usb"), "a.txt") == "a.txt"
    assert (sandbox.root / "a.txt").read_bytes() == b"usb"
