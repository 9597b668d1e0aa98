"""Files being received: ``<inbox>/.doorstep/partial/<transfer_id>/<index>.part``.

Crash model: bytes are durable only up to the last ``sync()`` the caller recorded as a checkpoint
(``durable_offset``). Reopening truncates to that checkpoint, because anything after it may be a
torn tail (written but never fsynced, or reordered by the page cache).

Hashing while writing: a ``PartialFile`` keeps the SHA-256 of its bytes ``[0, n)`` as long as
every write since it was opened continued exactly where the previous one ended (the bytes up to
the opening offset are read back from the file once, on the first such write). ``verify_written``
then compares that digest instead of re-reading the file. It is the same check as ``verify``:
both hash the bytes the kernel holds for this inode (``verify`` reads them back through the page
cache, which returns exactly what ``pwrite`` put there; neither reads the medium), the file is
ours alone (0600 in a 0700 folder, opened ``O_NOFOLLOW``, written only through this object), and
the length is checked with ``fstat`` in both. Any other write pattern drops the running digest and
``verify_written`` falls back to ``verify``.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import re
import stat
import threading

from .dirfd import FdOwner, UnsafePath, ensure_dir, fsync_dir, set_mode
from .hashing import READ_BLOCK, sha256_fd
from .names import validate_id

__all__ = ["PartialFile", "open_partial_in"]

_PART_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class PartialFile(FdOwner):
    """One file being received. Built by ``Inbox.open_partial``; placed by ``Inbox.finalize``.

    Attributes: ``transfer_id``, ``index``, ``size`` (the announced final size) and ``offset``
    (where the caller resumes: the usable length found when opening; not advanced by writes).
    Writes are positional, so chunks may arrive out of order and from several threads (the
    running digest of ``verify_written`` then survives only if they happen to land in order).
    """

    def __init__(
        self,
        *,
        dir_fd: int,
        fd: int,
        name: str,
        transfer_id: str,
        index: int,
        size: int,
        offset: int,
    ) -> None:
        self._dir_fd: int | None = dir_fd
        self._fd: int | None = fd
        self._name = name
        self._verified = False
        self._digest: str | None = None
        self._running: hashlib._Hash | None = None  # SHA-256 of [0, _hashed_to) while writes are sequential
        self._hashed_to = 0
        self._sequential = True
        self._hash_lock = threading.Lock()
        self.transfer_id = transfer_id
        self.index = index
        self.size = size
        self.offset = offset

    @property
    def closed(self) -> bool:
        return self._fd is None

    @property
    def verified(self) -> bool:
        """True after ``verify`` succeeded and nothing was written since."""
        return self._verified

    @property
    def sha256(self) -> str | None:
        """The digest (lowercase hex) that ``verify`` confirmed, while ``verified``; else None."""
        return self._digest if self._verified else None

    def write_at(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` (``os.pwrite``, looping on short writes).

        Raises ``ValueError`` if the range falls outside ``[0, size]`` or the file is closed,
        ``OSError`` (e.g. ``ENOSPC``) from the write. Not durable until ``sync()``.
        """
        view = whole = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise ValueError(
                f"write of {len(view)} bytes at {offset} outside the file's {self.size} bytes"
            )
        fd = self._require_fd()
        self._verified = False
        start = offset
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        except BaseException:
            self._drop_running()
            raise
        self._hash_written(fd, start, whole)

    def _hash_written(self, fd: int, offset: int, data: memoryview) -> None:
        """Extend the running digest by ``data``, just written at ``offset`` (see the module doc)."""
        with self._hash_lock:
            self._hash_written_locked(fd, offset, data)

    def _hash_written_locked(self, fd: int, offset: int, data: memoryview) -> None:
        if not self._sequential:
            return
        if self._running is None:
            if offset != self.offset:  # not a continuation of what was there when opened
                self._drop_running()
                return
            self._running = hashlib.sha256()
            while self._hashed_to < offset:  # the resumed prefix, read back once
                block = os.pread(fd, min(READ_BLOCK, offset - self._hashed_to), self._hashed_to)
                if not block:
                    self._drop_running()
                    return
                self._running.update(block)
                self._hashed_to += len(block)
        elif offset != self._hashed_to:
            self._drop_running()
            return
        self._running.update(data)
        self._hashed_to += len(data)

    def _drop_running(self) -> None:
        self._sequential = False
        self._running = None

    def sync(self) -> None:
        """fsync: everything written so far is durable once this returns (a checkpoint)."""
        os.fsync(self._require_fd())

    def verify(self, sha256_hex: str) -> bool:
        """Re-read the whole file from disk and compare its SHA-256 with ``sha256_hex``.

        False if the length is not ``size`` or the digest differs. Raises ``ValueError`` if
        ``sha256_hex`` is not 64 hex digits or the file is closed, ``OSError`` on read errors.
        """
        if not isinstance(sha256_hex, str) or _HEX64.fullmatch(sha256_hex) is None:
            raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")
        fd = self._require_fd()
        if os.fstat(fd).st_size != self.size:
            self._verified = False
            return False
        self._verified = hmac.compare_digest(sha256_fd(fd), sha256_hex.lower())
        self._digest = sha256_hex.lower()
        return self._verified

    def verify_written(self, sha256_hex: str) -> bool:
        """Like ``verify``, but from the digest kept while writing when every write since opening
        was sequential and reached ``size`` (no re-read; see the module docstring for why this is
        the same guarantee); otherwise exactly ``verify``. Same results and errors."""
        if not isinstance(sha256_hex, str) or _HEX64.fullmatch(sha256_hex) is None:
            raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")
        fd = self._require_fd()
        if self._running is None or self._hashed_to != self.size:
            return self.verify(sha256_hex)
        if os.fstat(fd).st_size != self.size:
            self._verified = False
            return False
        self._verified = hmac.compare_digest(self._running.copy().hexdigest(), sha256_hex.lower())
        self._digest = sha256_hex.lower()
        return self._verified

    def close(self) -> None:
        """Close the file (idempotent). The data stays in the partial folder for a resume."""
        super().close()
        if self._dir_fd is not None:
            fd, self._dir_fd = self._dir_fd, None
            os.close(fd)

    def _label(self) -> str:
        return f"partial file {self.transfer_id}/{self.index}"

    def _location(self) -> tuple[int, str, int]:
        """Storage-internal: (partial folder fd, .part name, file fd) for ``Inbox.finalize``."""
        if self._fd is None or self._dir_fd is None:
            raise ValueError(f"partial file {self.transfer_id}/{self.index} is closed")
        return self._dir_fd, self._name, self._fd


def open_partial_in(
    partial_root_fd: int, transfer_id: str, index: int, size: int, durable_offset: int
) -> PartialFile:
    """Create or reopen ``<transfer_id>/<index>.part`` below ``partial_root_fd``.

    See ``Inbox.open_partial`` for the contract. A ``.part`` with more than one link is one that
    a crash interrupted right after it was placed under its final name: it is unlinked (not
    truncated, which would damage the placed file) and a fresh empty one is started.
    """
    validate_id(transfer_id, what="transfer id")
    for label, value in (("index", index), ("size", size), ("durable_offset", durable_offset)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{label} must be an int >= 0, got {value!r}")
    if durable_offset > size:
        raise ValueError(f"durable_offset {durable_offset} is beyond the size {size}")
    name = f"{index}.part"
    dir_fd, _ = ensure_dir(
        partial_root_fd, transfer_id, mode=0o700, exact_mode=True, strict_mode=False
    )
    try:
        fd = _open_part(dir_fd, name)
        try:
            offset = min(os.fstat(fd).st_size, durable_offset)
            os.ftruncate(fd, offset)
        except BaseException:
            os.close(fd)
            raise
    except BaseException:
        os.close(dir_fd)
        raise
    return PartialFile(
        dir_fd=dir_fd,
        fd=fd,
        name=name,
        transfer_id=transfer_id,
        index=index,
        size=size,
        offset=offset,
    )


def _open_part(dir_fd: int, name: str) -> int:
    for _attempt in range(2):
        existed = True
        try:
            fd = os.open(name, _PART_FLAGS & ~os.O_CREAT, dir_fd=dir_fd)
        except FileNotFoundError:
            existed = False
            fd = _create(dir_fd, name)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(exc.errno, f"partial file is a symlink: {name!r}") from exc
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafePath(errno.EINVAL, f"partial file is not a regular file: {name!r}")
        if existed and st.st_nlink > 1:
            os.close(fd)
            os.unlink(name, dir_fd=dir_fd)
            continue
        if not existed:
            fsync_dir(dir_fd)
        return fd
    raise UnsafePath(errno.EEXIST, f"partial file keeps reappearing with extra links: {name!r}")


def _create(dir_fd: int, name: str) -> int:
    try:
        fd = os.open(name, _PART_FLAGS | os.O_EXCL, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EEXIST):
            raise UnsafePath(exc.errno, f"partial file appeared concurrently: {name!r}") from exc
        raise
    set_mode(fd, 0o600, strict=False)
    return fd
