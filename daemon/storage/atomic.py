"""Atomic file replacement, in exactly one place (after syncthing's ``lib/osutil/atomic.go``).

A reader of the target path sees either the old file or the complete new one, never a mix, and a
crash leaves at most a stray temp file: the new content is written to a 0600 temp file, which
``commit`` chmods, fsyncs, renames into place and then makes durable by fsyncing the directory.
"""

from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["AtomicWriter", "write_atomic", "write_secret_file", "TEMP_PREFIX"]

TEMP_PREFIX = ".doorstep-tmp-"
"""Temp files are named ``TEMP_PREFIX`` + 16 hex digits."""

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class AtomicWriter:
    """Write a new version of ``path`` that appears all at once on ``commit()``.

    - The temp file is created in the target's directory with ``O_EXCL`` and mode 0600 from the
      start, so content is never readable more widely than 0600, even transiently.
    - ``commit()``: chmod to ``mode`` (exactly ``mode``: the umask does not apply), fsync, rename
      over ``path`` (``os.replace``: meant for the daemon's own files; a symlink at ``path`` is
      replaced, not followed), fsync the directory. After it returns, the new content is durable.
    - The first error sticks: once ``write`` or ``commit`` has raised, the temp file is gone and
      every later ``write``/``commit`` raises that same exception again.
    - ``abort()`` removes the temp file (idempotent; no-op after a commit).
    - As a context manager: leaving the block normally commits (unless already committed),
      leaving it with an exception aborts. Use ``with`` or call ``commit``/``abort`` yourself:
      a writer that is simply dropped leaks its fds and temp file.

    Raises ``OSError`` when the directory cannot be opened or written.
    """

    path: Path
    """The final path (for messages; the writer works on directory fds)."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o600) -> None:
        target = Path(path)
        if target.name in ("", ".", ".."):
            raise ValueError(f"not a file path: {str(path)!r}")
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._start(
                dir_fd, target.name, mode=mode, tmp_dir_fd=None, overwrite=True, path=target
            )
        finally:
            os.close(dir_fd)

    @classmethod
    def _at(
        cls,
        dir_fd: int,
        name: str,
        *,
        mode: int,
        path: Path,
        tmp_dir_fd: int | None = None,
        overwrite: bool = True,
    ) -> Self:
        """Storage-internal: write ``name`` in ``dir_fd``, the temp file in ``tmp_dir_fd`` (same
        filesystem) if given. With ``overwrite=False``, commit links instead of renaming and
        raises ``FileExistsError`` if ``name`` exists. The fds are duplicated, not taken."""
        self = cls.__new__(cls)
        self._start(dir_fd, name, mode=mode, tmp_dir_fd=tmp_dir_fd, overwrite=overwrite, path=path)
        return self

    def _start(
        self,
        dir_fd: int,
        name: str,
        *,
        mode: int,
        tmp_dir_fd: int | None,
        overwrite: bool,
        path: Path,
    ) -> None:
        self.path = path
        self._name = name
        self._mode = mode
        self._overwrite = overwrite
        self._error: BaseException | None = None
        self._state = "open"  # -> "committed" | "aborted"
        self._fd: int | None = None
        self._tmp_name: str | None = None
        self._dir_fd: int | None = os.dup(dir_fd)
        self._tmp_dir_fd: int | None = None
        try:
            self._tmp_dir_fd = os.dup(dir_fd if tmp_dir_fd is None else tmp_dir_fd)
            while self._fd is None:
                candidate = TEMP_PREFIX + secrets.token_hex(8)
                try:
                    self._fd = os.open(candidate, _TEMP_FLAGS, 0o600, dir_fd=self._tmp_dir_fd)
                except FileExistsError:
                    continue
                self._tmp_name = candidate
        except BaseException:
            self._cleanup()
            raise

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` to the temp file. Raises the sticky error, ``ValueError`` after
        commit/abort, or ``OSError`` (which then sticks)."""
        fd = self._check_open()
        view = memoryview(data).cast("B")
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError as exc:
            self._fail(exc)
            raise

    def commit(self) -> None:
        """chmod, fsync, rename into place, fsync the directory (see the class docstring).

        Raises the sticky error, ``ValueError`` if already committed or aborted,
        ``FileExistsError`` for a no-overwrite writer whose target exists, other ``OSError``.
        On any error the temp file is removed and the target is left as it was.
        """
        fd = self._check_open()
        assert self._dir_fd is not None and self._tmp_dir_fd is not None
        assert self._tmp_name is not None
        try:
            os.fchmod(fd, self._mode)
            os.fsync(fd)
            self._fd = None
            os.close(fd)
            if self._overwrite:
                os.replace(
                    self._tmp_name, self._name, src_dir_fd=self._tmp_dir_fd, dst_dir_fd=self._dir_fd
                )
            else:
                try:
                    os.link(
                        self._tmp_name,
                        self._name,
                        src_dir_fd=self._tmp_dir_fd,
                        dst_dir_fd=self._dir_fd,
                        follow_symlinks=False,
                    )
                except FileExistsError as exc:
                    raise FileExistsError(
                        errno.EEXIST, "refusing to overwrite an existing file", str(self.path)
                    ) from exc
                os.unlink(self._tmp_name, dir_fd=self._tmp_dir_fd)
            self._tmp_name = None
            os.fsync(self._dir_fd)
        except OSError as exc:
            self._fail(exc)
            raise
        self._state = "committed"
        self._cleanup()

    def abort(self) -> None:
        """Remove the temp file and release fds. Idempotent; does nothing after a commit."""
        if self._state == "open":
            self._state = "aborted"
        self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open" and self._error is None:
            self.commit()

    def _check_open(self) -> int:
        if self._error is not None:
            raise self._error
        if self._state != "open" or self._fd is None:
            raise ValueError(f"atomic writer for {str(self.path)!r} is already {self._state}")
        return self._fd

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._state = "aborted"
        self._cleanup()

    def _cleanup(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        if self._tmp_name is not None and self._tmp_dir_fd is not None:
            name, self._tmp_name = self._tmp_name, None
            try:
                os.unlink(name, dir_fd=self._tmp_dir_fd)
            except OSError:
                pass  # best effort: the error that got us here is the one worth reporting
        for attr in ("_dir_fd", "_tmp_dir_fd"):
            fd = getattr(self, attr)
            if fd is not None:
                setattr(self, attr, None)
                os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably (an ``AtomicWriter`` in one call)."""
    with AtomicWriter(path, mode) as writer:
        writer.write(data)


def write_secret_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600, never readable more widely even
    while being written. Raises ``OSError``."""
    write_atomic(path, data, mode=0o600)
