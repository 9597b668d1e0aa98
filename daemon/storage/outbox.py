"""The outbox: folders that people drop files into, one per paired device, read and tidied by the daemon.

Layout: ``<root>/<folder>/<relpath>``; ``<root>/<folder>/sent/`` receives files already sent when
the folder's policy says so. Unlike the inbox and the spool, the outbox belongs to its users: the
daemon creates folders with the umask's modes, never chmods, and only ever reads, moves or deletes
files that it verified are the very version it sent (:class:`Fingerprint`).

Every path below the root is walked with directory fds and ``O_NOFOLLOW`` (``dirfd``), so a
symlink dropped into the outbox (to ``/etc/shadow``, say) is never followed: it is not a regular
file, so it is not listed, opened or sent. Paths here are the real local names ('/'-joined), not
sanitized ones: they must name existing entries, and a non-NFC name made on another system is
still the name on disk. Sanitizing happens where a peer-visible name is made (``ShareDir.add_file``).

Operations block (stat, read, fsync): call them from a worker thread in async code.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from .dirfd import FdOwner, UnsafePath, ensure_dir, fsync_dir, open_dir, open_root
from .inbox import _place_file
from .shares import ShareDir
from .source import SourceFile

__all__ = ["Fingerprint", "SourceChanged", "OutboxDir", "SpooledFile", "spool_source"]

_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not hang
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies one version of a file without reading it: size, mtime (ns) and inode.

    A write changes size or mtime; a replacement by rename changes the inode. Equal fingerprints
    are taken to mean "the same bytes" (only a deliberate ``touch -d`` after an in-place
    same-size rewrite could fool it).
    """

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino)


class SourceChanged(OSError):
    """The file is not (or no longer) the version expected: another size, mtime or inode."""


def _components(relpath: str) -> list[str]:
    """Split a '/'-joined local path; refuse anything that could leave the root."""
    parts = relpath.split("/")
    if not relpath or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise UnsafePath(errno.EINVAL, f"not a relative path below the outbox: {relpath!r}")
    return parts


class OutboxDir(FdOwner):
    """The outbox root (created if missing; a symlink *to* the root is followed, nothing below it).

    Keeps an fd on the root; close with ``close()`` or ``with``. Raises ``OSError`` if the root
    cannot be created or opened.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self._fd: int | None = open_root(self.root, mode=0o777)

    def _label(self) -> str:
        return f"outbox {self.root!r}"

    # -- looking ---------------------------------------------------------------------------------

    def ensure_folder(self, name: str) -> bool:
        """Create the top-level folder ``name`` unless it exists; True if it was created.
        Raises ``UnsafePath`` for a name that is not one plain component or is taken by a
        symlink or a file."""
        if len(_components(name)) != 1:
            raise UnsafePath(errno.EINVAL, f"not a folder name: {name!r}")
        fd, created = ensure_dir(self._require_fd(), name, mode=0o777)
        os.close(fd)
        return created

    def folders(self) -> list[str]:
        """Names of the top-level folders (real directories, not symlinks), sorted."""
        root_fd = self._require_fd()
        found = []
        for name in os.listdir(root_fd):
            try:
                st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                found.append(name)
        return sorted(found)

    def fingerprint(self, relpath: str) -> Fingerprint | None:
        """The fingerprint of the regular file at ``relpath``; None if there is none (missing, a
        directory, a symlink, a special file, or a symlink on the way)."""
        try:
            dir_fd, name = self._parent(relpath)
        except (FileNotFoundError, UnsafePath):
            return None
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(dir_fd)
        return Fingerprint.of(st) if stat.S_ISREG(st.st_mode) else None

    def scan(self, under: str = "", *, skip_dir: Callable[[str], bool] = lambda _relpath: False) -> dict[str, Fingerprint]:
        """Every regular file at or below ``under`` ("" = the whole outbox), as relpath ->
        fingerprint. ``under`` naming a file gives that file alone; a missing path, a symlink or
        a special file gives nothing. Directories for which ``skip_dir(relpath)`` is true are not
        entered. Entries that vanish while listing are skipped; symlinks are never followed."""
        found: dict[str, Fingerprint] = {}
        root_fd = self._require_fd()
        if not under:
            _walk(root_fd, "", skip_dir, found)
            return found
        try:
            dir_fd, name = self._parent(under)
        except (FileNotFoundError, UnsafePath):
            return found
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                found[under] = Fingerprint.of(st)
            elif stat.S_ISDIR(st.st_mode) and not skip_dir(under):
                child = open_dir(dir_fd, name)
                try:
                    _walk(child, under + "/", skip_dir, found)
                finally:
                    os.close(child)
        except (FileNotFoundError, NotADirectoryError, UnsafePath):
            pass
        finally:
            os.close(dir_fd)
        return found

    # -- reading ---------------------------------------------------------------------------------

    def open_source(self, relpath: str, expect: Fingerprint) -> SourceFile:
        """Open the file at ``relpath`` for sending, if it still is version ``expect``.

        The check is made on the opened fd, so the returned ``SourceFile`` reads exactly that
        version's inode (a later rename over the path does not affect it; an in-place write
        does: compare fingerprints again after reading). Its ``relpath`` is ``relpath``.
        Raises ``FileNotFoundError``, ``SourceChanged``, ``UnsafePath`` (a symlink or a special
        file), ``OSError``.
        """
        dir_fd, name = self._parent(relpath)
        try:
            try:
                fd = os.open(name, _SOURCE_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UnsafePath(exc.errno, f"outbox entry is a symlink: {relpath!r}") from exc
                raise
        finally:
            os.close(dir_fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafePath(errno.EINVAL, f"outbox entry is not a regular file: {relpath!r}")
        if Fingerprint.of(st) != expect:
            os.close(fd)
            raise SourceChanged(errno.ESTALE, f"outbox file changed: {relpath!r}")
        return SourceFile(fd, relpath)

    # -- tidying after a send ---------------------------------------------------------------------

    def move(self, relpath: str, dest: str, *, expect: Fingerprint) -> str:
        """Move the file at ``relpath`` to ``dest`` (missing folders are created), if it still is
        version ``expect``. Never overwrites: when ``dest`` is taken the name gets a counter
        (``a (1).txt``). Returns where the file went ('/'-joined).

        Raises ``FileNotFoundError`` (nothing at ``relpath``), ``SourceChanged``, ``UnsafePath``,
        ``OSError``.
        """
        dest_parts = _components(dest)
        src_dir, src_name = self._parent(relpath)
        try:
            src_fd = self._open_expected(src_dir, src_name, relpath, expect)
            try:
                dst_dir = self._make_dirs(dest_parts[:-1])
                try:
                    placed, moved = _place_file(src_dir, src_name, src_fd, dst_dir, dest_parts[-1])
                    if not moved:  # hard-linked: drop the old name
                        os.unlink(src_name, dir_fd=src_dir)
                    fsync_dir(dst_dir)
                    fsync_dir(src_dir)
                finally:
                    os.close(dst_dir)
            finally:
                os.close(src_fd)
        finally:
            os.close(src_dir)
        return "/".join([*dest_parts[:-1], placed])

    def remove(self, relpath: str, *, expect: Fingerprint) -> None:
        """Delete the file at ``relpath`` if it still is version ``expect``. Raises
        ``FileNotFoundError``, ``SourceChanged``, ``UnsafePath``, ``OSError``."""
        dir_fd, name = self._parent(relpath)
        try:
            os.close(self._open_expected(dir_fd, name, relpath, expect))
            os.unlink(name, dir_fd=dir_fd)
            fsync_dir(dir_fd)
        finally:
            os.close(dir_fd)

    # -- helpers ----------------------------------------------------------------------------------

    def _parent(self, relpath: str) -> tuple[int, str]:
        """(fd of the folder holding ``relpath``, its last component). The caller closes the fd."""
        parts = _components(relpath)
        dir_fd = os.dup(self._require_fd())
        try:
            for part in parts[:-1]:
                child = open_dir(dir_fd, part)
                os.close(dir_fd)
                dir_fd = child
        except BaseException:
            os.close(dir_fd)
            raise
        return dir_fd, parts[-1]

    def _make_dirs(self, parts: list[str]) -> int:
        dir_fd = os.dup(self._require_fd())
        try:
            for part in parts:
                child, _ = ensure_dir(dir_fd, part, mode=0o777)
                os.close(dir_fd)
                dir_fd = child
        except BaseException:
            os.close(dir_fd)
            raise
        return dir_fd

    @staticmethod
    def _open_expected(dir_fd: int, name: str, relpath: str, expect: Fingerprint) -> int:
        """An fd on ``name`` (no follow) if it is the regular file ``expect`` describes."""
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(exc.errno, f"outbox entry is a symlink: {relpath!r}") from exc
            raise
        st = os.fstat(fd)  # O_PATH | O_NOFOLLOW opens a symlink itself: refused below
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafePath(errno.EINVAL, f"outbox entry is not a regular file: {relpath!r}")
        if Fingerprint.of(st) != expect:
            os.close(fd)
            raise SourceChanged(errno.ESTALE, f"outbox file changed: {relpath!r}")
        return fd


def _walk(dir_fd: int, prefix: str, skip_dir: Callable[[str], bool], found: dict[str, Fingerprint]) -> None:
    try:
        names = os.listdir(dir_fd)
    except (FileNotFoundError, PermissionError):
        return
    for name in names:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        relpath = prefix + name
        if stat.S_ISREG(st.st_mode):
            found[relpath] = Fingerprint.of(st)
        elif stat.S_ISDIR(st.st_mode) and not skip_dir(relpath):
            try:
                child = open_dir(dir_fd, name)
            except (UnsafePath, FileNotFoundError, PermissionError):
                continue  # swapped, removed or unreadable while listing
            try:
                _walk(child, relpath + "/", skip_dir, found)
            finally:
                os.close(child)


@dataclass(frozen=True, slots=True)
class SpooledFile:
    """A file copied into a share: where it is in the share, its size and SHA-256 (hex)."""

    relpath: str
    size: int
    sha256: str


def spool_source(share_dir: ShareDir, relpath: str, source: SourceFile) -> SpooledFile:
    """Copy ``source`` into ``share_dir`` as ``relpath`` (sanitized, as ``ShareDir.add_file``
    does), hashing what is written. The file appears in the share only when complete.

    The copy is a snapshot: compare the source's fingerprint before and after to know it is one
    version. Raises ``UnsafeName``, ``FileExistsError`` (the name is taken in the share),
    ``OSError``.
    """
    digest = hashlib.sha256()
    size = 0
    with share_dir.add_file(relpath) as writer:
        while chunk := source.read_at(size, COPY_CHUNK):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
        writer.commit()
    return SpooledFile(relpath=writer.relpath, size=size, sha256=digest.hexdigest())
