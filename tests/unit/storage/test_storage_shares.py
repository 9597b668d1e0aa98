"""ShareSpool / ShareDir / SourceFile / LocalSources, sha256_file, free_bytes."""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import TYPE_CHECKING

import pytest

from daemon.storage import (
    LocalSources,
    ShareDir,
    ShareSpool,
    UnsafeName,
    UnsafePath,
    free_bytes,
    sha256_file,
)

if TYPE_CHECKING:
    from .conftest import Sandbox

SID = "s_1"


def add(share: ShareDir, relpath: str, data: bytes) -> str:
    with share.add_file(relpath) as writer:
        writer.write(data)
    return writer.relpath


def test_layout_and_modes(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        share = spool.create(SID)
        assert share.path == sandbox.root / SID
        assert add(share, "photos/2024/a.jpg", b"jpeg") == "photos/2024/a.jpg"
    assert sandbox.mode_of(sandbox.root) == 0o700
    assert sandbox.mode_of(sandbox.root / SID) == 0o700
    assert sandbox.mode_of(sandbox.root / SID / "photos") == 0o700
    assert sandbox.mode_of(sandbox.root / SID / "photos" / "2024") == 0o700
    assert sandbox.mode_of(sandbox.root / SID / "photos" / "2024" / "a.jpg") == 0o600
    assert (sandbox.root / SID / "photos" / "2024" / "a.jpg").read_bytes() == b"jpeg"


def test_create_open_list_remove(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        spool.create("b")
        spool.create("a")
        with pytest.raises(FileExistsError):
            spool.create("a")
        for bad in ("", "..", "a/b", ".tmp", "x" * 65):
            with pytest.raises(UnsafeName, match="share id"):
                spool.create(bad)
        (sandbox.root / "stray-file").write_bytes(b"")
        assert spool.list() == ["a", "b"]  # never ".tmp" nor files
        assert spool.open("a").share_id == "a"
        with pytest.raises(FileNotFoundError):
            spool.open("zzz")
        spool.remove("a")
        spool.remove("a")  # idempotent
        assert spool.list() == ["b"]
    with pytest.raises(ValueError, match="closed"):
        spool.list()


def test_files_lists_only_complete_files(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        share = spool.create(SID)
        add(share, "z.txt", b"zz")
        add(share, "dir/a.bin", b"a" * 10)
        writer = share.add_file("uploading.iso")
        writer.write(b"half")
        (sandbox.root / SID / "dir" / "link").symlink_to(sandbox.outside / "secret.txt")
        assert share.files() == [("dir/a.bin", 10), ("z.txt", 2)]
        assert [p.parent.name for p in sandbox.root.rglob(".doorstep-tmp-*")] == [".tmp"]
        writer.abort()
        assert list((sandbox.root / ".tmp").iterdir()) == []


def test_add_file_never_overwrites(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        share = spool.create(SID)
        add(share, "a.txt", b"first")
        with pytest.raises(FileExistsError):
            add(share, "a.txt", b"second")
        assert (sandbox.root / SID / "a.txt").read_bytes() == b"first"
        assert list((sandbox.root / ".tmp").iterdir()) == []


def test_hostile_names_stay_inside_the_share(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        share = spool.create(SID)
        assert add(share, "../../outside/secret.txt", b"x") == "outside/secret.txt"
        assert add(share, "/etc/passwd", b"y") == "etc/passwd"
        assert add(share, "CON", b"z") == "CON_"
        with pytest.raises(UnsafeName):
            share.add_file("../..")
        assert share.files() == [("CON_", 1), ("etc/passwd", 1), ("outside/secret.txt", 1)]


def test_symlinks_inside_the_share_are_refused(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        share = spool.create(SID)
        (sandbox.root / SID / "dir").symlink_to(sandbox.outside)
        (sandbox.root / SID / "file").symlink_to(sandbox.outside / "secret.txt")
        os.mkfifo(sandbox.root / SID / "fifo")
        sandbox.freeze()
        with pytest.raises(UnsafePath):
            share.add_file("dir/new.txt")
        with pytest.raises(UnsafePath):
            share.open_source("dir/secret.txt")
        with pytest.raises(UnsafePath):
            share.open_source("file")
        with pytest.raises(UnsafePath):
            share.open_source("fifo")  # refused, and the open does not hang
        with pytest.raises(FileNotFoundError):
            share.open_source("../outside/secret.txt")  # sanitized: looked up inside the share
        assert share.files() == []


def test_symlinked_share_folder_is_removed_not_followed(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        (sandbox.root / "evil").symlink_to(sandbox.outside)
        sandbox.freeze()
        with pytest.raises(UnsafePath):
            spool.open("evil")
        assert spool.list() == []
        spool.remove("evil")
        assert not (sandbox.root / "evil").is_symlink()


def test_crash_leftovers_in_tmp_are_cleared(sandbox: Sandbox) -> None:
    with ShareSpool(sandbox.root) as spool:
        writer = spool.create(SID).add_file("big")
        writer.write(b"never committed")  # the process "crashes" here
    with ShareSpool(sandbox.root) as spool:
        assert list((sandbox.root / ".tmp").iterdir()) == []
        assert spool.open(SID).files() == []
    writer.abort()


def test_source_file_reads_and_hash(sandbox: Sandbox) -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    with ShareSpool(sandbox.root) as spool:
        share = spool.create(SID)
        add(share, "d/blob", data)
        with share.open_source("d/blob") as source:
            assert source.relpath == "d/blob" and source.size == len(data)
            assert source.read_at(0, 5) == data[:5]
            assert source.read_at(1024 * 1024 - 2, 10) == data[1024 * 1024 - 2 : 1024 * 1024 + 8]
            assert source.read_at(len(data) - 2, 100) == data[-2:]  # short only at EOF
            assert source.read_at(len(data) + 10, 5) == b""
            with pytest.raises(ValueError):
                source.read_at(-1, 1)
            assert sha256_file(source) == hashlib.sha256(data).hexdigest()
        with pytest.raises(ValueError, match="closed"):
            source.read_at(0, 1)
    assert sha256_file(sandbox.root / SID / "d" / "blob") == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(sandbox.root / SID / "d" / "blob")) == hashlib.sha256(data).hexdigest()


def test_local_sources(sandbox: Sandbox) -> None:
    sandbox.root.mkdir()
    real = sandbox.root / "real.txt"
    real.write_bytes(b"hello")
    sources = LocalSources({"docs/hello.txt": real})
    assert sources.files() == [("docs/hello.txt", 5)]
    with sources.open_source("docs/hello.txt") as source:
        assert source.read_at(0, 100) == b"hello"
    with pytest.raises(FileNotFoundError):
        sources.open_source("../outside/secret.txt")
    os.mkfifo(sandbox.root / "fifo")
    with pytest.raises(OSError, match="regular"):
        LocalSources({"f": sandbox.root / "fifo"}).open_source("f")


def test_free_bytes(sandbox: Sandbox) -> None:
    assert abs(free_bytes(sandbox.base) - shutil.disk_usage(sandbox.base).free) < 64 * 1024 * 1024
    with pytest.raises(FileNotFoundError):
        free_bytes(sandbox.base / "missing")
