"""SHA-256 of stored files, read back from the filesystem in 1 MiB blocks."""

from __future__ import annotations

import hashlib
import os

from .source import SourceFile

__all__ = ["sha256_file", "sha256_fd", "READ_BLOCK"]

READ_BLOCK = 1024 * 1024
"""Bytes per read when hashing."""


def sha256_fd(fd: int) -> str:
    """Hex SHA-256 of everything in the file behind ``fd``, read with ``os.pread`` from offset 0
    (the fd's position is not used or changed). Raises ``OSError`` on read errors."""
    digest = hashlib.sha256()
    offset = 0
    while True:
        block = os.pread(fd, READ_BLOCK, offset)
        if not block:
            return digest.hexdigest()
        digest.update(block)
        offset += len(block)


def sha256_file(source: str | os.PathLike[str] | SourceFile) -> str:
    """Hex SHA-256 (lowercase) of a file given by path or as an open ``SourceFile``.

    A path is opened read-only (symlinks followed: paths come from our own code, peer-supplied
    names go through ``ShareDir.open_source``). Raises ``OSError`` if it cannot be read.
    """
    if isinstance(source, SourceFile):
        return sha256_fd(source.fd)
    fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)
