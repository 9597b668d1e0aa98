"""Files the owner sends to the appliance from a client (the web UI, ``curl -T``): into the inbox.

One upload is one file, journaled as a *receive* transfer whose origin is ``upload:`` (so the
dashboard shows it live, with speed and ETA, and the owner can cancel it). Its bytes go the way
every received file goes (``daemon.storage``):

1. the name is sanitized up front (``sanitize_relpath``: a bad name fails before any byte is
   stored) and the inbox's rules admit the announced size (largest transfer, free space);
2. the body streams into ``.doorstep/partial/<transfer id>/0.part``, hashed on the way;
3. at the end: exactly the announced size must have arrived; the client's SHA-256, when it sent
   one, must match what arrived; the ``.part`` is fsynced and re-read from disk against that
   digest (``PartialFile.verify``);
4. ``Inbox.finalize`` places it under its name, or ``name (1).ext`` when the name is taken:
   nothing is ever overwritten, and no partial file ever shows under a final name.

Any failure (a short body, a digest mismatch, a cancel, the client going away, or going quiet for
the stall timeout, as a client that lost its network does) removes the
partial file and ends the transfer ``failed`` (or ``cancelled``). An upload cut off by the daemon
stopping is failed, and its partial file removed, when :class:`InboxUploads` is next created.
Uploads do not resume: a client sends the file again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import AsyncIterator

import trio

from daemon.facade import ApplianceError, Upload
from daemon.state import Direction, FileRecord, StateDB, TransferState
from daemon.storage import Inbox, PartialFile, UnsafeName, sanitize_relpath

from .transfer_tasks import TransferTasks

__all__ = ["InboxUploads", "UPLOAD_ORIGIN", "WRITE_SIZE"]

log = logging.getLogger("doorstep.uploads")

UPLOAD_ORIGIN = "upload:"
"""The origin (``signal_url`` column) of transfers that are uploads."""
WRITE_SIZE = 1024 * 1024
"""Bytes gathered before one write (and one progress record)."""
MAX_OFFERED_PATH = 4096
"""Characters of the client's path kept in the journal."""
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
STALL_TIMEOUT = 60.0
"""Default seconds an upload may go without a byte before it is failed and its partial file removed."""
CANCELLED = "cancelled by the owner"
INTERRUPTED = "interrupted: the daemon stopped during the upload; send the file again"


class InboxUploads:
    """Receive uploads into ``inbox``, journaled in ``db``; each runs as a task of ``tasks`` (so
    ``POST /transfers/{id}/cancel`` stops it).

    Creating it fails the uploads that a previous run of the daemon left unfinished and removes
    their partial files (blocking I/O: create it at start-up, before the trio loop is busy).
    """

    def __init__(self, *, inbox: Inbox, db: StateDB, tasks: TransferTasks, stall_timeout: float = STALL_TIMEOUT) -> None:
        """``stall_timeout``: seconds without a byte after which an upload counts as abandoned (a
        client that lost its network says nothing: its connection just goes quiet)."""
        self._inbox = inbox
        self._db = db
        self._tasks = tasks
        self._stall_timeout = stall_timeout
        for record in db.list_transfers(unfinished_only=True, direction=Direction.RECEIVE):
            if record.signal_url == UPLOAD_ORIGIN:
                inbox.discard(record.id)
                db.set_state(record.id, TransferState.FAILED, INTERRUPTED)

    async def receive(self, upload: Upload, *, size: int, sha256: str | None = None) -> str:
        """Store ``upload`` (``size`` bytes; ``sha256``, if given, is the client's digest of them)
        in the inbox. Returns the transfer's id once the file is in place (state ``done``; its
        file's ``final_path`` says where it went).

        Raises :class:`ApplianceError`: ``bad_name`` (400) if nothing usable remains of the path,
        ``bad_digest`` (400) for a malformed ``sha256``, ``too_large`` (413) above the inbox's
        largest transfer, ``insufficient_storage`` (507) without the free space, ``incomplete``
        (400) if the body's length is not ``size``, ``digest_mismatch`` (400), ``cancelled``
        (409) if the owner cancelled it, ``storage`` (500) if the disk does not give back what
        was written. Errors of ``upload.chunks`` propagate (the transfer fails).
        """
        if size < 0:
            raise ApplianceError("the size must be >= 0", code="bad_request")
        if sha256 is not None and not _HEX64.fullmatch(sha256):
            raise ApplianceError("the SHA-256 must be 64 hex digits", code="bad_digest")
        try:
            sanitize_relpath(upload.path)
        except UnsafeName as exc:
            raise ApplianceError(f"unusable file name {upload.path[:100]!r}: {exc}", code="bad_name") from None
        self._admit(size)
        transfer_id = secrets.token_hex(8)
        offered = upload.path[:MAX_OFFERED_PATH]
        self._db.add_transfer(transfer_id, Direction.RECEIVE, signal_url=UPLOAD_ORIGIN,
                              files=[FileRecord(index=0, path=offered, size=size, sha256=(sha256 or "").lower())])
        self._db.set_state(transfer_id, TransferState.ACTIVE)
        partial: PartialFile | None = None
        try:
            with self._tasks.run(transfer_id) as running:
                partial = await trio.to_thread.run_sync(self._inbox.open_partial, transfer_id, 0, size)
                digest = await self._stream(transfer_id, upload, partial)
                if sha256 is not None and not hmac.compare_digest(digest, sha256.lower()):
                    raise ApplianceError("the file that arrived does not have the SHA-256 the client sent",
                                         code="digest_mismatch")
                if not await trio.to_thread.run_sync(_sync_and_verify, partial, digest):
                    raise ApplianceError("the inbox's disk did not give back what was written", code="storage",
                                         status=500)
            if running.cancelled or self._state(transfer_id) is TransferState.CANCELLED:
                raise ApplianceError("the upload was cancelled", code="cancelled", status=409)
            final_path = await trio.to_thread.run_sync(self._inbox.finalize, partial, offered)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._clean_up, transfer_id, partial)
            state = self._state(transfer_id)
            if state is not None and not state.finished:
                self._db.set_state(transfer_id, TransferState.FAILED, _reason(exc))
            raise
        with trio.CancelScope(shield=True):  # the file is in place: record it, whatever happens now
            await trio.to_thread.run_sync(self._clean_up, transfer_id, None)  # the partial folder, now empty
        self._db.set_manifest(transfer_id, None,  # type: ignore[arg-type]  # an upload belongs to no share
                              [FileRecord(index=0, path=offered, size=size, sha256=digest)])
        self._db.set_offset(transfer_id, 0, size)
        self._db.set_final_path(transfer_id, 0, final_path)
        self._db.set_state(transfer_id, TransferState.DONE)
        log.info("upload %s placed in the inbox as %r (%d bytes)", transfer_id, final_path, size)
        return transfer_id

    def _state(self, transfer_id: str) -> TransferState | None:
        record = self._db.get_transfer(transfer_id)
        return record.state if record is not None else None

    def _admit(self, size: int) -> None:
        limit = self._inbox.rules.max_transfer
        if limit and size > limit:
            raise ApplianceError(f"the file is {size} bytes; this inbox accepts at most {limit} bytes per transfer",
                                 code="too_large", status=413)
        refusal = self._inbox.admission(size, size)
        if refusal is not None:
            raise ApplianceError(refusal, code="insufficient_storage", status=507)

    async def _stream(self, transfer_id: str, upload: Upload, partial: PartialFile) -> str:
        """Write the body into ``partial`` (hashing it in the worker thread); the hex digest."""
        digest = hashlib.sha256()
        buffer = bytearray()
        offset = 0
        async for chunk in self._until_stalled(upload):
            if offset + len(buffer) + len(chunk) > partial.size:
                raise ApplianceError(f"the body is longer than the announced {partial.size} bytes", code="incomplete")
            buffer += chunk
            if len(buffer) >= WRITE_SIZE:
                offset = await self._write(transfer_id, partial, digest, offset, bytes(buffer))
                buffer.clear()
        if buffer:
            offset = await self._write(transfer_id, partial, digest, offset, bytes(buffer))
        if offset != partial.size:
            raise ApplianceError(f"the body ended after {offset} of the announced {partial.size} bytes",
                                 code="incomplete")
        return digest.hexdigest()

    async def _until_stalled(self, upload: Upload) -> AsyncIterator[bytes]:
        """The body's chunks; raises ``ApplianceError(stalled)`` when none comes for the stall timeout."""
        chunks = aiter(upload.chunks)
        while True:
            with trio.move_on_after(self._stall_timeout) as waiting:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
            if waiting.cancelled_caught:
                raise ApplianceError(f"no bytes arrived for {self._stall_timeout:g} s: the client went away",
                                     code="stalled", status=408)
            yield chunk

    async def _write(self, transfer_id: str, partial: PartialFile, digest: hashlib._Hash, offset: int,
                     data: bytes) -> int:
        def write() -> None:
            digest.update(data)
            partial.write_at(offset, data)

        await trio.to_thread.run_sync(write)
        self._db.set_progress(transfer_id, offset + len(data), len(data))
        return offset + len(data)

    def _clean_up(self, transfer_id: str, partial: PartialFile | None) -> None:
        if partial is not None:
            partial.close()
        try:
            self._inbox.discard(transfer_id)
        except OSError:
            log.exception("could not remove the partial file of upload %s", transfer_id)


def _sync_and_verify(partial: PartialFile, digest: str) -> bool:
    partial.sync()
    return partial.verify(digest)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ApplianceError):
        return str(exc)
    if isinstance(exc, trio.Cancelled):
        return "stopped: the daemon is shutting down or the client went away"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
