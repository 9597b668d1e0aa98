"""Files being received: ``<inbox>/.doorstep/partial/<transfer_id>/<index>.part``.

Crash model: bytes are durable only up to the last ``sync()`` the caller recorded as a checkpoint
(``durable_offset``). Reopening truncates to that checkpoint, because anything after it may be a
torn tail (written but never fsynced, or reordered by the page cache).
"""

from __future__ import annotations

import errno
import hmac
import os
import re
import stat

from .dirfd import FdOwner, UnsafePath, ensure_dir, fsync_dir, set_mode
from .hashing import sha256_fd
from .names import validate_id

__all__ = ["PartialFile", "open_partial_in"]

_PART_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class PartialFile(FdOwner):
    """One file being received. Built by ``Inbox.open_partial``; placed by ``Inbox.finalize``.

    Attributes: ``transfer_id``, ``index``, ``size`` (the announced final size) and ``offset``
    (where the caller resumes: the usable length found when opening; not advanced by writes).
    Writes are positional, so chunks may arrive out of order and from several threads.
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
        view = memoryview(data).cast("B")
        if offset < 0 or offset + len(view) > self.size:
            raise ValueError(
                f"write of {len(view)} bytes at {offset} outside the file's {self.size} bytes"
            )
        fd = self._require_fd()
        self._verified = False
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

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
