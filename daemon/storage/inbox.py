"""The inbox: where received files are assembled (``.doorstep/partial/``) and then placed.

Guarantees, whatever a peer sends:

- Nothing is created, written or removed outside the inbox root. Peer-supplied names go through
  ``sanitize_relpath``; every path below the root is walked with directory fds and ``O_NOFOLLOW``
  (``dirfd``), so a symlink planted in the inbox is never followed: ``finalize`` picks another
  name instead, the partial area refuses with ``UnsafePath``.
- An existing file or directory is never overwritten: a taken name becomes ``name (1).ext``
  (with ``Collision.SKIP``, a taken name that already holds the very same bytes is reused instead
  of storing them twice).
- A final name appears only with complete, verified, fsynced content (hard link of the ``.part``).

The inbox's rules (:class:`InboxRules`: largest transfer, free space kept in reserve, collision
policy) are the owner's; :meth:`Inbox.admission` applies the first two to an offer.

Operations are synchronous and blocking (fsync): call them from a worker thread
(``trio.to_thread.run_sync``) in async code. Different partial files may be used concurrently.
"""

from __future__ import annotations

import enum
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .dirfd import (
    FdOwner,
    UnsafePath,
    ensure_dir,
    fsync_dir,
    iter_entries,
    open_dir,
    open_root,
    remove_tree,
    set_mode,
)
from .inbox_files import InboxEntry, list_files, open_file, remove_file, same_content
from .names import PRIVATE_DIR, numbered_name, sanitize_relpath, validate_id
from .partial import PartialFile, open_partial_in
from .source import SourceFile
from .space import free_bytes

__all__ = ["Inbox", "InboxRules", "Collision", "DEFAULT_RESERVE"]

DEFAULT_RESERVE = 256 * 1024 * 1024
"""Bytes of free space an inbox keeps for everything else on its disk, by default."""


class Collision(enum.Enum):
    """What ``finalize`` does when the name a file should get is taken."""

    RENAME = "rename"  # always a new name: ``name (1).ext``
    SKIP = "skip"  # reuse a taken name whose file has the same size and SHA-256; else rename


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxRules:
    """The owner's rules for what an inbox accepts."""

    max_transfer: int = 0
    """Largest transfer accepted, in bytes (all its files together); 0: no limit."""
    reserve: int = DEFAULT_RESERVE
    """Free bytes to leave on the inbox's disk: an offer that would eat into them is refused."""
    collision: Collision = Collision.RENAME

    def __post_init__(self) -> None:
        if self.max_transfer < 0 or self.reserve < 0:
            raise ValueError("max_transfer and reserve must be >= 0")

PARTIAL_DIR = "partial"
_MAX_ALTERNATIVES = 10_000  # name (1) ... name (9999), then give up
# link() errors meaning "this filesystem has no hard links" (vfat, exFAT, some FUSE/SMB mounts).
_NO_HARDLINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}
)


class Inbox(FdOwner):
    """Receiving side of storage, rooted at ``root``.

    Creating an ``Inbox`` creates ``root`` (mode 0o755 before umask) and ``root/.doorstep/partial``
    (exactly 0o700) if missing, and keeps an fd on ``root``: if the root path is later renamed,
    the inbox follows the directory, not the name. A symlink *to* the root is followed (it is the
    operator's configuration); nothing below it is. Received files get ``file_mode`` (exactly;
    default 0o644), new directories 0o755 before umask. On a disk without Unix permissions
    (vfat, exFAT) a refused chmod is ignored and the mount options decide the modes; hard links
    are emulated (see ``finalize``). Close with ``close()`` or ``with``.

    Raises ``OSError`` if the root cannot be created or opened, ``UnsafePath`` if ``.doorstep``
    or its ``partial`` folder is a symlink or a file.
    """

    def __init__(self, root: str | os.PathLike[str], *, file_mode: int = 0o644,
                 rules: InboxRules | None = None, free_space: Callable[[int], int] = free_bytes) -> None:
        """``free_space(root_fd)`` says how many bytes are free (a seam for tests)."""
        self.root = Path(root)
        self.file_mode = file_mode
        self.rules = rules or InboxRules()
        self._free_space = free_space
        self._fd: int | None = open_root(self.root, mode=0o755)
        try:
            os.close(self._partial_root_fd(exact_mode=True))
        except BaseException:
            self.close()
            raise

    # -- receiving ---------------------------------------------------------------------------

    def admission(self, total: int, needed: int) -> str | None:
        """Why an offer of ``total`` bytes, ``needed`` of which are still to be received (less
        on a resume), must be refused under the rules; None if it may come in. Raises
        ``OSError`` if the free space cannot be read."""
        limit = self.rules.max_transfer
        if limit and total > limit:
            return f"the transfer is {total} bytes; this inbox accepts at most {limit} bytes per transfer"
        free = self._free_space(self._root_fd())
        if needed + self.rules.reserve > free:
            return (f"not enough free space in the inbox: {needed} bytes needed, {free} free, "
                    f"{self.rules.reserve} kept in reserve")
        return None

    def open_partial(
        self, transfer_id: str, index: int, size: int, durable_offset: int = 0
    ) -> PartialFile:
        """Create (0o600) or reopen the partial file for file ``index`` of ``transfer_id``.

        The file is truncated to ``durable_offset`` (the caller's last checkpoint taken after a
        ``sync()``): bytes beyond it may be torn and are discarded. If less than that is on disk,
        the returned ``PartialFile.offset`` says how much is really there; resume from ``offset``.

        Raises ``UnsafeName`` for a transfer id outside ``[A-Za-z0-9_-]{1,64}``, ``ValueError``
        for a negative number or ``durable_offset > size``, ``UnsafePath`` if a symlink or a
        non-regular file sits anywhere in ``.doorstep/partial/<transfer_id>/<index>.part``,
        ``OSError`` otherwise.
        """
        partial_root = self._partial_root_fd()
        try:
            return open_partial_in(partial_root, transfer_id, index, size, durable_offset)
        finally:
            os.close(partial_root)

    def finalize(self, partial: PartialFile, relpath: str) -> str:
        """Place a verified partial file at the sanitized ``relpath``; return where it went.

        ``relpath`` is peer-supplied ('/' or '\\' separated); it goes through
        ``sanitize_relpath``. Directories are created one component at a time below the root fd
        and opened with ``O_NOFOLLOW``; an existing directory is reused, while a file, symlink or
        anything else in the way makes the component ``dir (1)``, ``dir (2)``, ... The file gets
        the first free name among ``name.ext``, ``name (1).ext``, ... via ``os.link`` (atomic,
        never overwrites, so concurrent finalizes of one name get distinct files). Then the
        ``.part`` is unlinked and the directories fsynced; ``partial`` is closed.

        With ``rules.collision`` ``SKIP``, a taken name whose regular file has the partial's size
        and verified SHA-256 is returned as the final path, and the ``.part`` is just removed:
        the same bytes are not stored twice.

        On filesystems without hard links (vfat/exFAT), an empty file is created with
        ``O_EXCL`` under the chosen name and the ``.part`` renamed over it: the name shows an
        empty file for a moment, never partial data.

        Returns the final path relative to the root, '/'-joined (it may differ from the
        sanitized name by the ``(n)`` counters). Raises ``ValueError`` if ``partial.verify()``
        has not returned True since the last write (or it is closed), ``UnsafeName`` if nothing
        usable remains of ``relpath``, ``FileExistsError`` if 10 000 alternatives are taken,
        ``UnsafePath`` if the ``.part`` was swapped for another file, ``OSError`` otherwise.
        If it raises, the ``.part`` is still in place (and ``partial`` still open) unless the
        file had already been placed.
        """
        if not partial.verified:
            raise ValueError("finalize() needs a partial file whose verify() returned True")
        components = sanitize_relpath(relpath)
        src_dir_fd, src_name, src_fd = partial._location()
        set_mode(src_fd, self.file_mode, strict=False)
        os.fsync(src_fd)
        placed: list[str] = []
        dir_fd = os.dup(self._root_fd())
        try:
            for component in components[:-1]:
                child_fd, chosen = _enter_dir(dir_fd, component)
                os.close(dir_fd)
                dir_fd = child_fd
                placed.append(chosen)
            reuse = (partial.size, partial.sha256) if self.rules.collision is Collision.SKIP else None
            chosen, moved = _place_file(src_dir_fd, src_name, src_fd, dir_fd, components[-1], reuse)
            placed.append(chosen)
            fsync_dir(dir_fd)
        finally:
            os.close(dir_fd)
        if not moved:
            os.unlink(src_name, dir_fd=src_dir_fd)
        fsync_dir(src_dir_fd)
        partial.close()
        return "/".join(placed)

    def discard(self, transfer_id: str) -> None:
        """Remove ``.doorstep/partial/<transfer_id>`` and all it holds (no-op if absent).

        Open ``PartialFile``s of that transfer keep working on unlinked files; close them.
        Raises ``UnsafeName`` for an invalid transfer id, ``OSError`` on failure.
        """
        validate_id(transfer_id, what="transfer id")
        partial_root = self._partial_root_fd()
        try:
            if remove_tree(partial_root, transfer_id):
                fsync_dir(partial_root)
        finally:
            os.close(partial_root)

    def discard_partial(self, transfer_id: str, index: int) -> None:
        """Remove one file's ``.part`` (e.g. after a failed verify) so it is received afresh.

        No-op if absent. Close its ``PartialFile`` first. Raises ``UnsafeName`` for an invalid
        transfer id, ``ValueError`` for a negative index, ``UnsafePath`` if the transfer's
        partial folder is a symlink, ``OSError`` otherwise.
        """
        validate_id(transfer_id, what="transfer id")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be an int >= 0, got {index!r}")
        partial_root = self._partial_root_fd()
        try:
            try:
                dir_fd = open_dir(partial_root, transfer_id)
            except FileNotFoundError:
                return
        finally:
            os.close(partial_root)
        try:
            os.unlink(f"{index}.part", dir_fd=dir_fd)
            fsync_dir(dir_fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(dir_fd)

    def remove_private_dir_if_empty(self) -> bool:
        """Remove ``.doorstep/partial`` and ``.doorstep`` if nothing is left in them (for a
        one-off receive into a user's folder). Returns True if ``.doorstep`` is gone. Later
        inbox calls recreate the folders as needed. Raises ``OSError`` on unexpected errors."""
        root_fd = self._root_fd()
        try:
            private_fd = open_dir(root_fd, PRIVATE_DIR)
        except FileNotFoundError:
            return True
        try:
            _rmdir_if_empty(private_fd, PARTIAL_DIR)
        finally:
            os.close(private_fd)
        removed = _rmdir_if_empty(root_fd, PRIVATE_DIR)
        if removed:
            fsync_dir(root_fd)
        return removed

    def partial_transfers(self) -> list[str]:
        """Transfer ids that have a partial folder, sorted (for cleanup of abandoned transfers).

        Entries that are not directories or not valid ids are ignored (never removed)."""
        partial_root = self._partial_root_fd()
        try:
            return [
                name
                for name, st in iter_entries(partial_root)
                if stat.S_ISDIR(st.st_mode) and _is_valid_id(name)
            ]
        finally:
            os.close(partial_root)

    # -- what is in the inbox (the owner's view) ----------------------------------------------

    def files(self, prefix: str = "") -> list[InboxEntry]:
        """The regular files in the inbox whose '/'-joined path starts with ``prefix``, sorted
        (see :func:`daemon.storage.inbox_files.list_files`: no symlinks, no private folder)."""
        return list_files(self._root_fd(), prefix)

    def open_file(self, relpath: str) -> SourceFile:
        """Open a file of the inbox for reading. Raises ``UnsafeName`` for a malformed path,
        ``FileNotFoundError`` unless a regular file is there (symlinks are never followed)."""
        return open_file(self._root_fd(), relpath)

    def remove_file(self, relpath: str) -> None:
        """Delete a file of the inbox. Raises like :meth:`open_file`."""
        remove_file(self._root_fd(), relpath)

    # -- lifetime ----------------------------------------------------------------------------

    def _label(self) -> str:
        return f"inbox {str(self.root)!r}"

    def _root_fd(self) -> int:
        return self._require_fd()

    def _partial_root_fd(self, *, exact_mode: bool = False) -> int:
        """fd on ``.doorstep/partial``, recreating it if someone removed it."""
        private_fd, _ = ensure_dir(
            self._root_fd(), PRIVATE_DIR, mode=0o700, exact_mode=exact_mode, strict_mode=False
        )
        try:
            partial_fd, _ = ensure_dir(
                private_fd, PARTIAL_DIR, mode=0o700, exact_mode=exact_mode, strict_mode=False
            )
        finally:
            os.close(private_fd)
        return partial_fd


def _enter_dir(parent_fd: int, component: str) -> tuple[int, str]:
    """Open (creating if needed) the first usable directory among ``component``, ``component
    (1)``, ...; a name taken by anything but a real directory is skipped."""
    for n in range(_MAX_ALTERNATIVES):
        name = numbered_name(component, n, is_dir=True)
        try:
            fd, _ = ensure_dir(parent_fd, name, mode=0o755)
        except UnsafePath:
            continue
        return fd, name
    raise FileExistsError(errno.EEXIST, "no free directory name left", component)


def _place_file(
    src_dir_fd: int, src_name: str, src_fd: int, dir_fd: int, component: str,
    reuse: tuple[int, str | None] | None = None,
) -> tuple[str, bool]:
    """Give the ``.part`` inode the first free name; return (name, whether the .part was moved).
    With ``reuse`` = (size, sha256), a taken name holding that content is returned as it is."""
    hardlinks = True

    def identical(name: str) -> bool:
        return reuse is not None and reuse[1] is not None and same_content(dir_fd, name, reuse[0], reuse[1])

    for n in range(_MAX_ALTERNATIVES):
        name = numbered_name(component, n)
        if hardlinks:
            try:
                os.link(
                    src_name, name, src_dir_fd=src_dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                )
            except FileExistsError:
                if identical(name):
                    return name, False
                continue
            except OSError as exc:
                if exc.errno not in _NO_HARDLINKS:
                    raise
                hardlinks = False
        if not hardlinks:
            try:
                os.close(
                    os.open(
                        name,
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                        0o600,
                        dir_fd=dir_fd,
                    )
                )
            except FileExistsError:
                if identical(name):
                    return name, False
                continue
            try:
                os.replace(src_name, name, src_dir_fd=src_dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                os.unlink(name, dir_fd=dir_fd)
                raise
        _check_same_file(dir_fd, name, src_fd)
        return name, not hardlinks
    raise FileExistsError(errno.EEXIST, "no free file name left", component)


def _check_same_file(dir_fd: int, name: str, src_fd: int) -> None:
    """The placed name must be the inode we received and verified, not something swapped in."""
    placed = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    ours = os.fstat(src_fd)
    if (placed.st_dev, placed.st_ino) != (ours.st_dev, ours.st_ino):
        os.unlink(name, dir_fd=dir_fd)
        raise UnsafePath(errno.EINVAL, f"the partial file was replaced before placing {name!r}")


def _rmdir_if_empty(parent_fd: int, name: str) -> bool:
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False
        raise
    return True


def _is_valid_id(name: str) -> bool:
    try:
        validate_id(name)
    except ValueError:
        return False
    return True
