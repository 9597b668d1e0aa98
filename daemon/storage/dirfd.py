"""The one choke point for filesystem access below a root: directory fds, never followed links.

Every operation below a root (the inbox, the share spool) goes through these helpers: a path
is walked one component at a time with ``openat(..., O_DIRECTORY | O_NOFOLLOW)`` relative to the
fd of the directory above it, so a symlink planted anywhere below the root is refused rather than
followed, and a directory renamed or replaced while we hold its fd cannot redirect our writes.
Callers pass names that are already single, sanitized components (see ``names``).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from typing import Self

__all__ = [
    "FdOwner",
    "UnsafePath",
    "open_root",
    "open_dir",
    "ensure_dir",
    "set_mode",
    "fsync_dir",
    "remove_tree",
    "iter_entries",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A symlink (or something else that is not a directory) sits where storage needs a directory
    or a file of its own. Nothing was followed or written through it."""


def open_root(path: os.PathLike[str] | str, *, mode: int, private: bool = False) -> int:
    """Create ``path`` (and its parents) if missing and return an fd on it.

    The root itself is configured by the operator, so a symlink *to* the root is followed; only
    what lies below it is held to the no-follow rule. With ``private=True`` the root is chmodded to
    ``mode`` even if it existed. Raises ``OSError`` (``NotADirectoryError`` if it is a file).
    """
    os.makedirs(path, mode=mode, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if private:
        os.fchmod(fd, mode)
    return fd


def open_dir(parent_fd: int, name: str) -> int:
    """Open the directory ``name`` inside ``parent_fd`` without following a symlink.

    Raises ``UnsafePath`` if ``name`` is a symlink or not a directory, ``FileNotFoundError`` if it
    does not exist, other ``OSError`` as the OS reports them.
    """
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(
                exc.errno, f"not a plain directory (symlink or file): {name!r}"
            ) from exc
        raise


def ensure_dir(
    parent_fd: int, name: str, *, mode: int, exact_mode: bool = False, strict_mode: bool = True
) -> tuple[int, bool]:
    """Create directory ``name`` in ``parent_fd`` if missing, open it without following links.

    Returns ``(fd, created)``. A directory that already exists is reused. With ``exact_mode`` the
    directory is chmodded to ``mode`` (the umask could otherwise narrow it); storage's private
    folders use this, through ``set_mode(strict=strict_mode)``. When ``created``, the parent is
    fsynced so the new entry survives a crash. Raises ``UnsafePath`` if ``name`` exists as a
    symlink or a non-directory.
    """
    created = True
    try:
        os.mkdir(name, mode, dir_fd=parent_fd)
    except FileExistsError:
        created = False
    fd = open_dir(parent_fd, name)
    try:
        if exact_mode:
            set_mode(fd, mode, strict=strict_mode)
        if created:
            fsync_dir(parent_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd, created


def set_mode(fd: int, mode: int, *, strict: bool = True) -> None:
    """``fchmod(fd, mode)``. With ``strict=False`` a refusal (``EPERM``/``EOPNOTSUPP``, as from
    vfat or exFAT, which have no Unix permissions; the mount options decide the modes there) is
    ignored. The inbox may live on such a disk; the daemon's own state may not."""
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        if strict or exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise


def fsync_dir(fd: int) -> None:
    """fsync a directory fd (makes entries created, renamed or removed in it durable)."""
    os.fsync(fd)


def remove_tree(parent_fd: int, name: str) -> bool:
    """Remove ``name`` inside ``parent_fd`` and everything below it, following no symlink.

    A symlink named ``name`` is removed itself (its target is untouched); so is a file. Returns
    False if nothing was there. Uses ``shutil.rmtree(dir_fd=...)``, which is fd-based on Linux and
    therefore not fooled by links swapped in while it runs.
    """
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return True
    shutil.rmtree(name, dir_fd=parent_fd)
    return True


def iter_entries(dir_fd: int) -> Iterator[tuple[str, os.stat_result]]:
    """Yield ``(name, lstat)`` for each entry of ``dir_fd``, sorted by name; entries that vanish
    while listing are skipped. Symlinks are reported as symlinks, never followed."""
    for name in sorted(os.listdir(dir_fd)):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield name, st


class FdOwner:
    """Base for storage objects that own one open fd: idempotent ``close()``, ``with`` support.

    Subclasses set ``self._fd`` and name themselves in ``_label`` for error messages.
    """

    _fd: int | None = None

    def _label(self) -> str:
        return type(self).__name__

    def _require_fd(self) -> int:
        """The open fd; raises ``ValueError`` once closed."""
        if self._fd is None:
            raise ValueError(f"{self._label()} is closed")
        return self._fd

    def close(self) -> None:
        """Release the fd (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
