"""The owner's view of the inbox (list, open, remove: no symlink followed, the private folder
invisible) and the inbox rules (admission, ``Collision.SKIP``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from daemon.storage import Collision, Inbox, InboxEntry, InboxRules, PartialFile, UnsafeName

if TYPE_CHECKING:
    from .conftest import Sandbox


def receive(inbox: Inbox, data: bytes, *, tid: str = "t", index: int = 0) -> PartialFile:
    partial = inbox.open_partial(tid, index, len(data), 0)
    partial.write_at(0, data)
    partial.sync()
    assert partial.verify(hashlib.sha256(data).hexdigest())
    return partial


@pytest.fixture
def filled(sandbox: Sandbox) -> Path:
    """An inbox with files, a folder, symlinks to a file and a folder outside, and a FIFO."""
    root = sandbox.root
    with Inbox(root):
        pass
    (root / "a.txt").write_bytes(b"alpha")
    (root / "photos" / "2024").mkdir(parents=True)
    (root / "photos" / "2024" / "b.jpg").write_bytes(b"b" * 10)
    (root / "photos" / "c.jpg").write_bytes(b"c")
    (root / "leak.txt").symlink_to(sandbox.outside / "secret.txt")
    (root / "out").symlink_to(sandbox.outside)
    os.mkfifo(root / "pipe")
    (root / ".doorstep" / "partial" / "x").mkdir()
    (root / ".doorstep" / "partial" / "x" / "0.part").write_bytes(b"partial")
    (root / ".hidden").write_bytes(b"h")
    sandbox.freeze()
    return root


def test_lists_regular_files_only_sorted_without_the_private_folder(filled: Path) -> None:
    with Inbox(filled) as inbox:
        entries = inbox.files()
    assert [e.path for e in entries] == [".hidden", "a.txt", "photos/2024/b.jpg", "photos/c.jpg"]
    a = entries[1]
    assert isinstance(a, InboxEntry) and a.size == 5 and a.mtime == pytest.approx((filled / "a.txt").stat().st_mtime)


@pytest.mark.parametrize(("prefix", "expected"), [
    ("photos/", ["photos/2024/b.jpg", "photos/c.jpg"]),
    ("photos/2", ["photos/2024/b.jpg"]),
    ("pho", ["photos/2024/b.jpg", "photos/c.jpg"]),
    ("a", ["a.txt"]),
    ("nothing", []),
    (".doorstep", []),
    ("out/", []),
])
def test_prefix_filters(filled: Path, prefix: str, expected: list[str]) -> None:
    with Inbox(filled) as inbox:
        assert [e.path for e in inbox.files(prefix)] == expected


def test_private_folder_in_another_case_is_hidden_too(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        (sandbox.root / ".DOORSTEP").mkdir()
        (sandbox.root / ".DOORSTEP" / "f").write_bytes(b"x")
        assert inbox.files() == []
        with pytest.raises(FileNotFoundError):
            inbox.open_file(".DOORSTEP/f")


def test_names_that_are_not_utf8_are_left_out(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        fd = os.open(sandbox.root, os.O_RDONLY)
        try:
            os.close(os.open(b"bad\xff.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        finally:
            os.close(fd)
        (sandbox.root / "good.bin").write_bytes(b"")
        assert [e.path for e in inbox.files()] == ["good.bin"]


def test_open_reads_a_file(filled: Path) -> None:
    with Inbox(filled) as inbox:
        with inbox.open_file("photos/2024/b.jpg") as source:
            assert source.size == 10 and source.read_at(2, 100) == b"b" * 8
            assert source.relpath == "photos/2024/b.jpg"
        with inbox.open_file("/a.txt") as source:  # one leading '/' is ignored
            assert source.read_at(0, 5) == b"alpha"


@pytest.mark.parametrize("path", [
    "leak.txt",  # a symlink to a file outside
    "out/secret.txt",  # through a symlinked folder
    "pipe",  # not a regular file
    "photos",  # a folder
    "missing.txt",
    "a.txt/x",  # through a file
    ".doorstep/partial/x/0.part",
])
def test_open_refuses_what_is_not_a_plain_file_of_the_inbox(filled: Path, path: str) -> None:
    with Inbox(filled) as inbox:
        with pytest.raises(FileNotFoundError):
            inbox.open_file(path)
        with pytest.raises(FileNotFoundError):
            inbox.remove_file(path)
    assert (filled / ".doorstep" / "partial" / "x" / "0.part").exists()


@pytest.mark.parametrize("path", ["", "/", "a//b", "../a.txt", "photos/../a.txt", "./a.txt", "a.txt/", "a\x00b",
                                  "x" * 256, "/".join(["d"] * 65), "bad\udcff"])
def test_malformed_paths_are_refused(filled: Path, path: str) -> None:
    with Inbox(filled) as inbox:
        with pytest.raises(UnsafeName):
            inbox.open_file(path)
        with pytest.raises(UnsafeName):
            inbox.remove_file(path)


def test_remove_deletes_the_file_only(filled: Path) -> None:
    with Inbox(filled) as inbox:
        inbox.remove_file("photos/2024/b.jpg")
        assert not (filled / "photos" / "2024" / "b.jpg").exists()
        assert (filled / "photos" / "2024").is_dir()
        with pytest.raises(FileNotFoundError):
            inbox.remove_file("photos/2024/b.jpg")


# -- rules ------------------------------------------------------------------------------------------


def test_admission_applies_max_transfer_and_reserve(sandbox: Sandbox) -> None:
    free = {"bytes": 1000}
    rules = InboxRules(max_transfer=500, reserve=100)
    with Inbox(sandbox.root, rules=rules, free_space=lambda _fd: free["bytes"]) as inbox:
        assert inbox.admission(500, 500) is None
        assert "at most 500 bytes" in (inbox.admission(501, 1) or "")
        assert inbox.admission(500, 900) is None  # 900 + 100 reserve == 1000 free
        refusal = inbox.admission(500, 901) or ""
        assert "not enough free space" in refusal and "100 kept in reserve" in refusal
    with Inbox(sandbox.root, free_space=lambda _fd: 10**15) as inbox:  # defaults: no limit
        assert inbox.admission(10**14, 10**14) is None
    with pytest.raises(ValueError):
        InboxRules(reserve=-1)


def test_default_reserve_is_256_mib(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root, free_space=lambda _fd: 300 * 2**20) as inbox:
        assert inbox.admission(2**20, 2**20) is None
        assert inbox.admission(100 * 2**20, 100 * 2**20) is not None


def test_collision_skip_reuses_an_identical_file_and_renames_a_different_one(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root, rules=InboxRules(collision=Collision.SKIP)) as inbox:
        assert inbox.finalize(receive(inbox, b"same", tid="t1"), "d/n.txt") == "d/n.txt"
        assert inbox.finalize(receive(inbox, b"same", tid="t2"), "d/n.txt") == "d/n.txt"
        assert inbox.finalize(receive(inbox, b"diff", tid="t3"), "d/n.txt") == "d/n (1).txt"
        assert inbox.finalize(receive(inbox, b"diff", tid="t4"), "d/n.txt") == "d/n (1).txt"
        assert inbox.finalize(receive(inbox, b"sam", tid="t5"), "d/n.txt") == "d/n (2).txt"  # same size differs
        assert sorted(p.name for p in (sandbox.root / "d").iterdir()) == ["n (1).txt", "n (2).txt", "n.txt"]
        assert not list((sandbox.root / ".doorstep" / "partial").rglob("*.part")), "skipped parts are removed"


def test_collision_skip_never_takes_a_symlink_for_the_file(sandbox: Sandbox) -> None:
    (sandbox.outside / "same.txt").write_bytes(b"same")
    sandbox.freeze()
    with Inbox(sandbox.root, rules=InboxRules(collision=Collision.SKIP)) as inbox:
        (sandbox.root / "n.txt").symlink_to(sandbox.outside / "same.txt")
        assert inbox.finalize(receive(inbox, b"same"), "n.txt") == "n (1).txt"


def test_collision_rename_is_the_default(sandbox: Sandbox) -> None:
    with Inbox(sandbox.root) as inbox:
        assert inbox.rules.collision is Collision.RENAME
        assert inbox.finalize(receive(inbox, b"same", tid="t1"), "n.txt") == "n.txt"
        assert inbox.finalize(receive(inbox, b"same", tid="t2"), "n.txt") == "n (1).txt"
