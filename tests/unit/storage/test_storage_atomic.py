"""AtomicWriter, write_atomic, write_secret_file."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from daemon.storage import AtomicWriter, write_atomic, write_secret_file
from daemon.storage.atomic import TEMP_PREFIX

if TYPE_CHECKING:
    from .conftest import Sandbox


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_commit_replaces_atomically(sandbox: Sandbox) -> None:
    sandbox.root.mkdir()
    target = sandbox.root / "config.json"
    target.write_bytes(b"old")
    writer = AtomicWriter(target)
    writer.write(b"new ")
    writer.write(memoryview(b"content"))
    assert target.read_bytes() == b"old"  # readers see the old file until commit
    (temp,) = temp_files(sandbox.root)
    assert sandbox.mode_of(temp) == 0o600
    writer.commit()
    assert target.read_bytes() == b"new content"
    assert sandbox.mode_of(target) == 0o600
    assert temp_files(sandbox.root) == []
    with pytest.raises(ValueError, match="committed"):
        writer.write(b"x")
    with pytest.raises(ValueError, match="committed"):
        writer.commit()
    writer.abort()  # no-op after commit
    assert target.read_bytes() == b"new content"


def test_mode_is_exact_regardless_of_umask(sandbox: Sandbox) -> None:
    sandbox.root.mkdir()
    old = os.umask(0o077)
    try:
        write_atomic(sandbox.root / "public", b"x", mode=0o644)
    finally:
        os.umask(old)
    assert sandbox.mode_of(sandbox.root / "public") == 0o644


def test_context_manager_commits_or_aborts(sandbox: Sandbox) -> None:
    sandbox.root.mkdir()
    target = sandbox.root / "f"
    with AtomicWriter(target) as writer:
        writer.write(b"one")
    assert target.read_bytes() == b"one"
    with pytest.raises(RuntimeError), AtomicWriter(target) as writer:
        writer.write(b"two")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"one"
    assert temp_files(sandbox.root) == []
    with AtomicWriter(target) as writer:
        writer.write(b"three")
        writer.abort()  # explicit abort: leaving the block does not commit
    assert target.read_bytes() == b"one"


def test_first_error_sticks(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.root.mkdir()
    target = sandbox.root / "f"
    target.write_bytes(b"old")
    writer = AtomicWriter(target)
    writer.write(b"partial")
    failure = OSError(errno.ENOSPC, "No space left on device")

    def full(fd: int, data: object) -> int:
        raise failure

    with monkeypatch.context() as patch:
        patch.setattr(os, "write", full)
        with pytest.raises(OSError) as first:
            writer.write(b"more")
    assert first.value is failure
    assert temp_files(sandbox.root) == []  # removed at once
    with pytest.raises(OSError) as again:
        writer.write(b"ok now")
    assert again.value is failure
    with pytest.raises(OSError) as on_commit:
        writer.commit()
    assert on_commit.value is failure
    assert target.read_bytes() == b"old"


def test_failed_rename_leaves_target_and_no_temp(sandbox: Sandbox) -> None:
    sandbox.root.mkdir()
    target = sandbox.root / "is-a-dir"
    target.mkdir()
    (target / "child").write_bytes(b"")
    writer = AtomicWriter(target)
    writer.write(b"x")
    with pytest.raises(OSError):
        writer.commit()
    assert target.is_dir() and temp_files(sandbox.root) == []


def test_symlink_at_target_is_replaced_not_followed(sandbox: Sandbox) -> None:
    sandbox.root.mkdir()
    target = sandbox.root / "secret"
    target.symlink_to(sandbox.outside / "secret.txt")
    write_secret_file(target, b"mine")
    assert not target.is_symlink() and target.read_bytes() == b"mine"


def test_secret_is_never_wider_than_0600(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.root.mkdir()
    created: list[int] = []
    real_open = os.open

    def recording_open(path: object, flags: int, mode: int = 0o777, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", recording_open)
    old = os.umask(0)
    try:
        write_secret_file(sandbox.root / "token", b"s3cret")
    finally:
        os.umask(old)
    assert created == [0o600]
    assert sandbox.mode_of(sandbox.root / "token") == 0o600
    assert (sandbox.root / "token").read_bytes() == b"s3cret"


def test_rejects_non_file_paths(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        AtomicWriter(Path("/"))
    with pytest.raises(FileNotFoundError):
        AtomicWriter(sandbox.root / "missing-dir" / "f")
