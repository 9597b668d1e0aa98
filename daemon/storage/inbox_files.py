"""What the owner does with files already in the inbox: list them, read one, delete one.

Paths here come from the owner's client (the control API), not from a peer, and name files that
already exist, so they are *checked*, never rewritten: ``inbox_path`` refuses anything that is not
a plain relative path ('/'-separated, no empty, '.' or '..' component, no NUL, valid UTF-8, within
the length limits). Every path is then walked one directory fd at a time with ``O_NOFOLLOW``
(``dirfd``): a symlink anywhere on the way, or a file that is not a regular file, is reported as
absent, never followed. Storage's private folder (``.doorstep``, in any letter case, since the
inbox may sit on a case-insensitive disk) is invisible: never listed, read or deleted.

Operations are synchronous: call them from a worker thread in async code.
"""

from __future__ import annotations

import errno
import hmac
import os
import stat
from dataclasses import dataclass

from .dirfd import UnsafePath, fsync_dir, iter_entries, open_dir
from .hashing import sha256_fd
from .names import MAX_COMPONENT_BYTES, MAX_COMPONENTS, MAX_PATH_BYTES, PRIVATE_DIR, UnsafeName
from .source import SourceFile

__all__ = ["InboxEntry", "inbox_path", "list_files", "open_file", "remove_file", "same_content"]

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not hang the open


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A regular file in the inbox: '/'-joined path relative to the root, size, mtime (seconds)."""

    path: str
    size: int
    mtime: float


def inbox_path(relpath: str) -> tuple[str, ...]:
    """Split an owner-supplied inbox path into its components, refusing what cannot name a file.

    One leading '/' is ignored. Raises ``UnsafeName`` (a ``ValueError``) for: a non-str, an empty
    path, an empty, '.' or '..' component, NUL, text that is not valid UTF-8 (lone surrogates),
    more than 64 components, a component over 255 UTF-8 bytes or a path over 4096.
    """
    if not isinstance(relpath, str):
        raise UnsafeName(f"a path must be a str, not {type(relpath).__name__}")
    text = relpath[1:] if relpath.startswith("/") else relpath
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeName("the path is not valid UTF-8") from None
    if not text:
        raise UnsafeName("the path is empty")
    if len(encoded) > MAX_PATH_BYTES:
        raise UnsafeName(f"path too long ({len(encoded)} bytes, at most {MAX_PATH_BYTES})")
    if "\x00" in text:
        raise UnsafeName("the path contains NUL")
    parts = tuple(text.split("/"))
    if len(parts) > MAX_COMPONENTS:
        raise UnsafeName(f"path too deep ({len(parts)} components, at most {MAX_COMPONENTS})")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeName(f"the path has an empty, '.' or '..' component: {relpath[:100]!r}")
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise UnsafeName(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")
    return parts


def _is_private(name: str) -> bool:
    return name.casefold() == PRIVATE_DIR


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a name that is not UTF-8 on disk (surrogate-escaped)
        return False
    return True


def list_files(root_fd: int, prefix: str = "") -> list[InboxEntry]:
    """Every regular file below ``root_fd`` whose path starts with ``prefix``, sorted by path.

    Symlinks, special files, the private folder and names that are not UTF-8 are left out;
    folders below 64 levels are not entered. Folders that cannot match ``prefix`` are not walked.
    Entries that vanish meanwhile are skipped. Raises ``OSError`` if the root cannot be read.
    """
    found: list[InboxEntry] = []

    def walk(dir_fd: int, rel: str, depth: int) -> None:
        for name, st in iter_entries(dir_fd):
            if (not rel and _is_private(name)) or not _utf8(name):
                continue
            path = f"{rel}/{name}" if rel else name
            if stat.S_ISREG(st.st_mode):
                if path.startswith(prefix):
                    found.append(InboxEntry(path=path, size=st.st_size, mtime=st.st_mtime))
            elif stat.S_ISDIR(st.st_mode) and depth < MAX_COMPONENTS - 1:
                folder = path + "/"
                if not (folder.startswith(prefix) or prefix.startswith(folder)):
                    continue
                try:
                    child = open_dir(dir_fd, name)
                except (FileNotFoundError, UnsafePath, PermissionError):
                    continue
                try:
                    walk(child, path, depth + 1)
                finally:
                    os.close(child)

    walk(root_fd, "", 0)
    return sorted(found, key=lambda entry: entry.path)


def _not_found(relpath: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, "no such file in the inbox", relpath)


def _enter_parent(root_fd: int, parts: tuple[str, ...], relpath: str) -> int:
    """An fd on the folder holding ``parts[-1]`` (walked without following links)."""
    if _is_private(parts[0]):
        raise _not_found(relpath)
    dir_fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                child = open_dir(dir_fd, part)
            except (UnsafePath, NotADirectoryError):
                raise _not_found(relpath) from None
            os.close(dir_fd)
            dir_fd = child
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd


def open_file(root_fd: int, relpath: str) -> SourceFile:
    """Open the regular file at ``relpath`` for reading (positional reads; close it).

    Raises ``UnsafeName`` for a path ``inbox_path`` refuses, ``FileNotFoundError`` when there is
    no regular file there (missing, a folder, a symlink on the way, the private folder),
    ``OSError`` otherwise.
    """
    parts = inbox_path(relpath)
    dir_fd = _enter_parent(root_fd, parts, relpath)
    try:
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.ENXIO):
                raise _not_found(relpath) from None
            raise
    finally:
        os.close(dir_fd)
    try:
        return SourceFile(fd, "/".join(parts))
    except OSError:  # not a regular file (SourceFile closed the fd)
        raise _not_found(relpath) from None


def remove_file(root_fd: int, relpath: str) -> None:
    """Delete the regular file at ``relpath`` (its folders stay) and make that durable.

    Raises like :func:`open_file`: ``UnsafeName``, ``FileNotFoundError`` (nothing removed when
    it is a folder, a symlink or anything but a regular file), ``OSError``.
    """
    parts = inbox_path(relpath)
    dir_fd = _enter_parent(root_fd, parts, relpath)
    try:
        try:
            st = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(relpath) from None
        if not stat.S_ISREG(st.st_mode):
            raise _not_found(relpath)
        os.unlink(parts[-1], dir_fd=dir_fd)
        fsync_dir(dir_fd)
    finally:
        os.close(dir_fd)


def same_content(dir_fd: int, name: str, size: int, sha256_hex: str) -> bool:
    """True if ``name`` in ``dir_fd`` is a regular file (not a symlink) of ``size`` bytes whose
    SHA-256 is ``sha256_hex``. Never raises for a name that is missing or unreadable."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return hmac.compare_digest(sha256_fd(fd), sha256_hex.lower())
    except OSError:
        return False
    finally:
        os.close(fd)

