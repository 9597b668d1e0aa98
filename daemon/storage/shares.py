"""The share spool: files shared with the daemon (uploaded over HTTP), kept until sent.

Layout: ``<root>/<share_id>/<sanitized relpath>`` (folders 0o700, files 0o600), plus
``<root>/.tmp/`` for uploads in progress. A share id cannot start with '.', so ``.tmp`` never
collides with a share, and ``ShareDir.files()`` only ever sees complete files. ``.tmp`` is emptied
when a ``ShareSpool`` is created (leftovers of a crash), so use one ``ShareSpool`` per root.

All paths below the root are walked with directory fds and ``O_NOFOLLOW`` (``dirfd``); a symlink
found inside the spool is refused with ``UnsafePath``, never followed. Operations block (fsync):
call them from a worker thread in async code.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .atomic import AtomicWriter
from .dirfd import FdOwner, UnsafePath, ensure_dir, fsync_dir, iter_entries, open_dir, open_root, remove_tree
from .names import sanitize_relpath, validate_id
from .source import SourceFile

__all__ = ["ShareSpool", "ShareDir", "ShareFileWriter"]

TMP_DIR = ".tmp"
# O_NONBLOCK: a FIFO must not hang the open (it is then refused as not a regular file); it has no
# effect on regular files.
_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class ShareSpool(FdOwner):
    """All spooled shares under ``root`` (created, and chmodded to exactly 0o700).

    Keeps an fd on ``root``; close with ``close()`` or ``with``. Raises ``OSError`` if the root
    cannot be created, opened or chmodded. Whatever is at ``root/.tmp`` (even a symlink: it is
    removed, not followed) is replaced by an empty folder.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._fd: int | None = open_root(self.root, mode=0o700, private=True)
        try:
            remove_tree(self._fd, TMP_DIR)
            os.close(ensure_dir(self._fd, TMP_DIR, mode=0o700, exact_mode=True)[0])
        except BaseException:
            self.close()
            raise

    def create(self, share_id: str) -> ShareDir:
        """Create the folder of a new share (exactly 0o700).

        Raises ``UnsafeName`` for an id outside ``[A-Za-z0-9_-]{1,64}``, ``FileExistsError`` if
        the share exists, ``OSError`` otherwise.
        """
        validate_id(share_id, what="share id")
        root_fd = self._root_fd()
        os.mkdir(share_id, 0o700, dir_fd=root_fd)
        fd = open_dir(root_fd, share_id)
        try:
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        fsync_dir(root_fd)
        return ShareDir(self, share_id)

    def open(self, share_id: str) -> ShareDir:
        """An existing share. Raises ``UnsafeName``, ``FileNotFoundError`` if there is no such
        share, ``UnsafePath`` if its folder is a symlink or a file."""
        validate_id(share_id, what="share id")
        os.close(open_dir(self._root_fd(), share_id))
        return ShareDir(self, share_id)

    def remove(self, share_id: str) -> None:
        """Delete a share and all its files (no-op if absent; a symlink is removed, not followed).
        Raises ``UnsafeName`` for an invalid id, ``OSError`` on failure."""
        validate_id(share_id, what="share id")
        root_fd = self._root_fd()
        if remove_tree(root_fd, share_id):
            fsync_dir(root_fd)

    def list(self) -> list[str]:
        """Ids of the shares present, sorted (directories with a valid id; nothing else)."""
        shares = []
        for name, st in iter_entries(self._root_fd()):
            if not stat.S_ISDIR(st.st_mode):
                continue
            try:
                shares.append(validate_id(name))
            except ValueError:
                continue
        return shares

    def _label(self) -> str:
        return f"share spool {str(self.root)!r}"

    def _root_fd(self) -> int:
        return self._require_fd()


class ShareFileWriter(AtomicWriter):
    """The ``AtomicWriter`` returned by ``ShareDir.add_file``; ``relpath`` is where the file will
    be in the share ('/'-joined, sanitized), as ``ShareDir.files()`` will list it."""

    relpath: str


class ShareDir:
    """One share's folder. Obtained from ``ShareSpool.create`` or ``ShareSpool.open``; holds no
    fd of its own (each call walks down from the spool's root fd)."""

    def __init__(self, spool: ShareSpool, share_id: str) -> None:
        self.spool = spool
        self.share_id = validate_id(share_id, what="share id")
        self.path = spool.root / share_id

    def add_file(self, relpath: str) -> ShareFileWriter:
        """Start writing a file of the share at ``'/'.join(sanitize_relpath(relpath))`` (that
        string is the writer's ``relpath``).

        Missing folders are created (0o700). The returned writer's temp file lives in the
        spool's ``.tmp``; its ``commit()`` makes the file (0o600) appear complete, and raises
        ``FileExistsError`` rather than overwrite a file already in the share. Raises
        ``UnsafeName`` for an unusable name, ``UnsafePath`` if a symlink or a file is in the way
        of a folder, ``FileNotFoundError`` if the share was removed, ``OSError`` otherwise.
        """
        components = sanitize_relpath(relpath)
        root_fd = self.spool._root_fd()
        dir_fd = open_dir(root_fd, self.share_id)
        try:
            for component in components[:-1]:
                child_fd, _ = ensure_dir(dir_fd, component, mode=0o700, exact_mode=True)
                os.close(dir_fd)
                dir_fd = child_fd
            tmp_fd, _ = ensure_dir(root_fd, TMP_DIR, mode=0o700, exact_mode=True)
            try:
                writer = ShareFileWriter._at(
                    dir_fd,
                    components[-1],
                    mode=0o600,
                    path=self.path.joinpath(*components),
                    tmp_dir_fd=tmp_fd,
                    overwrite=False,
                )
            finally:
                os.close(tmp_fd)
        finally:
            os.close(dir_fd)
        writer.relpath = "/".join(components)
        return writer

    def files(self) -> list[tuple[str, int]]:
        """``(relpath, size)`` of every regular file in the share, sorted by relpath ('/'-joined).
        Symlinks and special files are skipped, never followed. Raises ``FileNotFoundError`` if
        the share was removed."""
        found: list[tuple[str, int]] = []
        fd = open_dir(self.spool._root_fd(), self.share_id)
        try:
            _walk(fd, "", found)
        finally:
            os.close(fd)
        return sorted(found)

    def open_source(self, relpath: str) -> SourceFile:
        """Open a file of the share for reading (``relpath`` as given by ``files()``; it is
        sanitized again, so only files inside the share can be reached).

        Raises ``UnsafeName``, ``FileNotFoundError`` if it does not exist, ``UnsafePath`` if a
        symlink or a non-regular file is on the way, ``OSError`` otherwise.
        """
        components = sanitize_relpath(relpath)
        dir_fd = open_dir(self.spool._root_fd(), self.share_id)
        try:
            for component in components[:-1]:
                child_fd = open_dir(dir_fd, component)
                os.close(dir_fd)
                dir_fd = child_fd
            try:
                fd = os.open(components[-1], _SOURCE_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafePath(exc.errno, f"shared file is a symlink: {relpath!r}") from exc
                raise
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafePath(errno.EINVAL, f"shared path is not a regular file: {relpath!r}")
        return SourceFile(fd, "/".join(components))


def _walk(dir_fd: int, prefix: str, found: list[tuple[str, int]]) -> None:
    for name, st in iter_entries(dir_fd):
        if stat.S_ISREG(st.st_mode):
            found.append((prefix + name, st.st_size))
        elif stat.S_ISDIR(st.st_mode):
            try:
                child = open_dir(dir_fd, name)
            except (UnsafePath, FileNotFoundError):
                continue  # swapped or removed while listing
            try:
                _walk(child, f"{prefix}{name}/", found)
            finally:
                os.close(child)
