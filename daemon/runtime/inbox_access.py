"""The owner's view of the inbox for the control API: list, read (in worker threads), delete.

Storage does the walking (no symlink followed, the private folder invisible); this module adds
what the journal knows (which transfer placed a file, its SHA-256) and turns storage's errors
into :class:`~daemon.facade.ApplianceError`.
"""

from __future__ import annotations

from functools import partial

import trio

from daemon.facade import ApplianceError, InboxFile
from daemon.state import StateDB
from daemon.storage import Inbox, SourceFile, UnsafeName

__all__ = ["OpenInboxFile", "list_inbox", "open_inbox_file", "delete_inbox_file", "MAX_PREFIX"]

MAX_PREFIX = 4096


class OpenInboxFile:
    """An inbox file open for download (:class:`daemon.facade.InboxDownload`)."""

    def __init__(self, source: SourceFile) -> None:
        self._source = source
        self.path = source.relpath
        self.size = source.size
        self.mtime = source.mtime

    async def read(self, offset: int, length: int) -> bytes:
        return await trio.to_thread.run_sync(self._source.read_at, offset, length)

    def close(self) -> None:
        self._source.close()

    def __del__(self) -> None:  # a download abandoned before its body was read
        self._source.close()


def _not_found(path: str) -> ApplianceError:
    return ApplianceError(f"no file {path[:200]!r} in the inbox", code="not_found", status=404)


async def list_inbox(inbox: Inbox, db: StateDB, prefix: str = "") -> list[InboxFile]:
    """Files whose path starts with ``prefix``, with the transfer and SHA-256 the journal has for
    them (only while the file still has the size it arrived with)."""
    if len(prefix) > MAX_PREFIX or "\x00" in prefix:
        raise ApplianceError("the prefix is too long or contains NUL", code="bad_prefix")
    entries = await trio.to_thread.run_sync(inbox.files, prefix)
    placed = db.placed_files([e.path for e in entries]) if entries else {}
    out = []
    for entry in entries:
        known = placed.get(entry.path)
        if known is not None and known.size != entry.size:
            known = None  # changed since it arrived
        out.append(InboxFile(path=entry.path, size=entry.size, mtime=entry.mtime,
                             transfer_id=known.transfer_id if known else None, sha256=known.sha256 if known else None))
    return out


async def open_inbox_file(inbox: Inbox, path: str) -> OpenInboxFile:
    try:
        source = await trio.to_thread.run_sync(inbox.open_file, path)
    except UnsafeName as exc:
        raise ApplianceError(f"not a usable inbox path: {exc}", code="bad_path") from None
    except (FileNotFoundError, PermissionError):
        raise _not_found(path) from None
    return OpenInboxFile(source)


async def delete_inbox_file(inbox: Inbox, path: str) -> None:
    try:
        await trio.to_thread.run_sync(partial(inbox.remove_file, path))
    except UnsafeName as exc:
        raise ApplianceError(f"not a usable inbox path: {exc}", code="bad_path") from None
    except FileNotFoundError:
        raise _not_found(path) from None
