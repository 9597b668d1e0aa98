"""Fixtures for storage tests: real temporary directories, and a guard that fails a test if
anything outside the root under test was created, changed or removed.

Test modules reach the helpers through the ``sandbox`` fixture only (they never import this
module), so the folder works under any pytest import mode."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def snapshot(top: Path, *, exclude: Path) -> dict[str, str]:
    """Every entry under ``top`` (symlinks not followed) except the ``exclude`` subtree, mapped
    to a description of its content, so any creation, change or removal shows up."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        if here == exclude or exclude in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if path == exclude:
                continue
            rel = str(path.relative_to(top))
            st = path.lstat()
            if path.is_symlink():
                found[rel] = f"link->{os.readlink(path)}"
            elif path.is_dir():
                found[rel] = f"dir {oct(st.st_mode & 0o7777)}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = f"file {oct(st.st_mode & 0o7777)} {digest}"
    return found


@dataclass
class Sandbox:
    """``tmp_path`` holding ``root`` (the storage root under test) and ``outside`` (a folder with
    a file an attacker would love to overwrite). ``freeze()`` records everything but ``root``;
    the fixture checks at teardown that it is unchanged."""

    base: Path
    root: Path
    outside: Path
    frozen: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> dict[str, str]:
        return snapshot(self.base, exclude=self.root)

    def freeze(self) -> None:
        self.frozen = self.snapshot()

    def assert_outside_unchanged(self) -> None:
        assert self.snapshot() == self.frozen

    @staticmethod
    def mode_of(path: Path) -> int:
        """Permission bits of ``path`` itself (a symlink is not followed)."""
        return path.lstat().st_mode & 0o7777


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"do not touch")
    box = Sandbox(base=tmp_path, root=tmp_path / "root", outside=outside)
    box.freeze()
    yield box
    box.assert_outside_unchanged()
