"""Free space on the filesystem that holds a path."""

from __future__ import annotations

import os

__all__ = ["free_bytes"]


def free_bytes(path: str | os.PathLike[str] | int) -> int:
    """Bytes available to an unprivileged writer on the filesystem holding ``path`` (or the open
    file or directory fd ``path``).

    Uses ``statvfs`` ``f_bavail * f_frsize``, so blocks reserved for root are not counted. Raises
    ``OSError`` (e.g. ``FileNotFoundError``) if ``path`` does not exist.
    """
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
