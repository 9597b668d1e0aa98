"""Reading files to send them: ``SourceFile`` (positional reads on an open fd) and
``LocalSources`` (files a local user named explicitly, e.g. on the command line)."""

from __future__ import annotations

import errno
import os
import stat

from .dirfd import FdOwner
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SourceFile", "LocalSources"]


class SourceFile(FdOwner):
    """A regular file opened read-only for sending.

    Storage constructs these (``ShareDir.open_source``); the object owns ``fd`` and closes it in
    ``close()`` or on leaving a ``with`` block. ``size`` is the size when opened. Reads are
    positional (``os.pread``), so several threads may read different ranges concurrently.
    ``mtime`` is the modification time (seconds) when opened.
    """

    def __init__(self, fd: int, relpath: str) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise OSError(f"not a regular file: {relpath!r}")
        self._fd: int | None = fd
        self.relpath = relpath
        self.size = st.st_size
        self.mtime = st.st_mtime

    def _label(self) -> str:
        return f"source file {self.relpath!r}"

    @property
    def fd(self) -> int:
        """The open fd; raises ``ValueError`` once closed."""
        return self._require_fd()

    def read_at(self, offset: int, n: int) -> bytes:
        """Return up to ``n`` bytes starting at ``offset``; fewer only at end of file.

        Raises ``ValueError`` for a negative offset or length, or when closed; ``OSError`` on
        read errors.
        """
        if offset < 0 or n < 0:
            raise ValueError(f"invalid range: offset={offset} n={n}")
        chunks: list[bytes] = []
        got = 0
        while got < n:
            chunk = os.pread(self.fd, n - got, offset + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


class LocalSources:
    """Files chosen by the local user, offered under names of our choosing.

    ``files`` maps each offered relpath to the real path. Only those exact relpaths can be
    opened, so a peer asking for another name gets nothing else from the disk. The real paths
    come from the user (symlinks are followed, as the user named them); they must be regular
    files. Same interface as ``ShareDir`` for sending: ``files()`` and ``open_source()``.
    """

    def __init__(self, files: Mapping[str, str | os.PathLike[str]]) -> None:
        self._paths = {relpath: Path(path) for relpath, path in files.items()}

    def files(self) -> list[tuple[str, int]]:
        """``(relpath, current size)`` for each file, sorted. Raises ``OSError`` if one is gone."""
        return sorted((relpath, path.stat().st_size) for relpath, path in self._paths.items())

    def open_source(self, relpath: str) -> SourceFile:
        """Open the file offered as ``relpath``. Raises ``FileNotFoundError`` if no file is
        offered under that name (or it is gone), ``OSError`` if it is not a regular file."""
        path = self._paths.get(relpath)
        if path is None:
            raise FileNotFoundError(errno.ENOENT, "no file is offered under that name", relpath)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not hang
        return SourceFile(fd, relpath)
