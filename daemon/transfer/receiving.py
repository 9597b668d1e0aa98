"""Drive a ``TransferReceiver`` over a transport into the inbox, journaling durable offsets.

Crash safety: bytes go to ``.part`` files; every ``SYNC_EVERY`` bytes (and at each file's end) the
part is fsynced, *then* its offset is journaled, *then* acknowledged to the sender. A restart resumes
from the journaled offsets (capped at what the part file really holds). A file reaches its final
name only after its SHA-256 was verified (``PartialFile.verify_written``: the digest of the bytes
written, the same check as re-reading them; see daemon/storage/partial.py), by an atomic
no-overwrite link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import trio

from daemon.crypto.sealing import SealingKey
from daemon.protocol import (
    Cancelled, DataReceived, FileReceived, OfferReceived, PeerFailed, ProtocolError, ReceiverState, TransferReceiver,
)
from daemon.protocol.transfer_compression import Compression
from daemon.protocol.transfer_sealing import BAD_SEAL, SEALING_MISMATCH
from daemon.state import FileRecord, StateDB
from daemon.storage import Inbox, PartialFile, UnsafeName, sanitize_relpath

from .errors import SealingMismatch, TamperedData, TransferFailed, TransferInterrupted
from .sending import peer_failure, tell_peer
from .transport import MessageTransport, send_bytes

__all__ = ["run_receiver", "ReceiveOutcome", "ReceiveReport", "WINDOW", "SYNC_EVERY", "receive_limit"]

WINDOW = 16 * 1024 * 1024
SYNC_EVERY = 4 * 1024 * 1024

# Called with (bytes durable on disk, payload bytes received since the last call).
ReceiveReport = Callable[[int, int], None]


def receive_limit(max_message_size: int) -> int:
    """Bytes a transport may queue for us: the window plus room for control frames in flight."""
    return WINDOW + 4 * max_message_size + 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceiveOutcome:
    share_id: str
    files: tuple[FileRecord, ...]


class _Receiving:
    def __init__(self, transport: MessageTransport, inbox: Inbox, journal: StateDB, transfer_id: str,
                 expect_share: str | None, report: ReceiveReport, seal_key: bytes | None,
                 place: bool = True, folder: str = "",
                 journal_for: Callable[[str], str] | None = None, compression: Compression | None = None) -> None:
        self.transport = transport
        self.inbox = inbox
        self.journal = journal
        self.transfer_id = transfer_id
        self.expect_share = expect_share
        self.report = report
        self.place = place
        self.folder = folder
        self.journal_for = journal_for
        self.machine = TransferReceiver(sealing=None if seal_key is None else SealingKey(seal_key),
                                        compression=compression)
        self.share_id: str | None = None
        self.files: tuple[FileRecord, ...] = ()
        self.parts: dict[int, PartialFile] = {}
        self.received: dict[int, int] = {}  # bytes written (maybe not yet durable) per file
        self.durable: dict[int, int] = {}
        self.unsynced = 0
        self.unreported_wire = 0

    async def send(self, data: bytes) -> None:
        await send_bytes(self.transport, data)

    async def on_offer(self, event: OfferReceived) -> None:
        if self.expect_share is not None and event.transfer_id != self.expect_share:
            await self.send(self.machine.reject("this is not the transfer being resumed"))
            raise TransferFailed("the peer offered a different transfer than the one being resumed")
        try:
            for entry in event.files:
                sanitize_relpath(entry.path)
        except UnsafeName as exc:
            await self.send(self.machine.reject(f"unacceptable file name: {exc}"))
            raise TransferFailed(f"refused the offer: unacceptable file name: {exc}") from None
        self.share_id = event.transfer_id
        if self.journal_for is not None:
            self.transfer_id = self.journal_for(event.transfer_id)
        records = [FileRecord(index=i, path=f.path, size=f.size, sha256=f.sha256) for i, f in enumerate(event.files)]
        self.journal.set_manifest(self.transfer_id, event.transfer_id, records)
        self.files = self.journal.files(self.transfer_id)
        total = sum(f.size for f in self.files)
        journaled = sum(f.size if f.final_path is not None else f.offset for f in self.files)
        refusal = self.inbox.admission(total, total - journaled)  # before any partial file is made
        if refusal is not None:
            await self.send(self.machine.reject(refusal))
            raise TransferFailed(f"refused the offer: {refusal}")
        offsets = [self._resume_offset(f) for f in self.files]
        self._report()
        await self.send(self.machine.accept(offsets, WINDOW))

    def _resume_offset(self, record: FileRecord) -> int:
        """Bytes of ``record`` we really hold durably (its size once it is final)."""
        if record.final_path is not None:
            self.durable[record.index] = record.size
            return record.size
        part = self.inbox.open_partial(self.share_id, record.index, record.size, record.offset)
        part.close()
        self.received[record.index] = self.durable[record.index] = part.offset
        return part.offset

    def _part(self, index: int) -> PartialFile:
        """The open part file for ``index``; data arrives in file order, so one stays open at a time."""
        part = self.parts.get(index)
        if part is None:
            self.close()
            record = self.files[index]
            part = self.parts[index] = self.inbox.open_partial(self.share_id, index, record.size, self.durable[index])
        return part

    async def on_data(self, event: DataReceived) -> None:
        self._part(event.file).write_at(event.offset, event.data)
        self.received[event.file] = event.offset + len(event.data)
        self.unsynced += len(event.data)
        self.unreported_wire += len(event.data)
        if self.unsynced >= SYNC_EVERY:
            await self.checkpoint(event.file)

    async def checkpoint(self, index: int) -> None:
        """fsync the part, journal its offset, then acknowledge it."""
        offset = self.received[index]
        if offset == self.durable[index]:
            return
        await trio.to_thread.run_sync(self._part(index).sync)
        self.journal.set_offset(self.transfer_id, index, offset)
        self.durable[index] = offset
        self.unsynced = 0
        self._report()
        await self.send(self.machine.ack(index, offset))

    def _report(self) -> None:
        self.report(sum(self.durable.values()), self.unreported_wire)
        self.unreported_wire = 0

    async def on_file(self, event: FileReceived) -> None:
        record = self.journal.files(self.transfer_id)[event.file]
        if record.final_path is None:
            await self.checkpoint(event.file)
            part = self._part(event.file)
            del self.parts[event.file]
            ok = await trio.to_thread.run_sync(part.verify_written, record.sha256)
            if not ok:
                part.close()
                self.journal.set_offset(self.transfer_id, event.file, 0)
                self.inbox.discard_partial(self.share_id, event.file)
                await self.send(self.machine.file_failed(event.file, "SHA-256 mismatch"))
                raise TransferInterrupted(f"{record.path}: SHA-256 mismatch; the file will be fetched again")
            self.durable[event.file] = record.size
            if self.place:
                relpath = f"{self.folder}/{record.path}" if self.folder else record.path
                final = await trio.to_thread.run_sync(self.inbox.finalize, part, relpath)
                self.journal.set_final_path(self.transfer_id, event.file, final)
            else:  # verified and durable, kept as its .part until placed by place_held()
                part.close()
            self._report()
        await self.send(self.machine.file_verified(event.file))

    async def handle(self, event: object) -> None:
        match event:
            case OfferReceived():
                await self.on_offer(event)
            case DataReceived():
                await self.on_data(event)
            case FileReceived():
                await self.on_file(event)
            case Cancelled(reason=reason):
                raise TransferFailed(f"the sender cancelled: {reason}")
            case PeerFailed(code=code, message=message):
                raise peer_failure("sender", code, message)

    async def run(self) -> ReceiveOutcome:
        await self.send(self.machine.start())
        while self.machine.state is not ReceiverState.DONE:
            try:
                data = await self.transport.receive()
            except trio.EndOfChannel:
                raise TransferInterrupted("the sender closed the connection") from None
            self.machine.receive_data(data)
            while (event := self.machine.next_event()) is not None:
                await self.handle(event)
        assert self.share_id is not None
        return ReceiveOutcome(self.share_id, self.journal.files(self.transfer_id))

    def close(self) -> None:
        for part in self.parts.values():
            part.close()
        self.parts.clear()


async def run_receiver(
    transport: MessageTransport,
    *,
    inbox: Inbox,
    journal: StateDB,
    transfer_id: str,
    expect_share: str | None,
    report: ReceiveReport,
    seal_key: bytes | None = None,
    place: bool = True,
    folder: str = "",
    journal_for: Callable[[str], str] | None = None,
    compression: Compression | None = None,
) -> ReceiveOutcome:
    """Receive one transfer into ``inbox``; ``transfer_id`` is our journal's record.

    ``expect_share``: when resuming, the share id the offer must carry. ``seal_key`` (32 bytes, the
    session's frame key): accept only sealed DATA frames and write only bytes that opened; ``None``
    accepts only plaintext. Returns when every file is verified and in place. Raises
    TransferInterrupted (resumable; TamperedData when a sealed frame did not open: nothing from it
    was written and no file was finalized without its authenticated FINAL chunk) or TransferFailed
    (SealingMismatch when one side seals and the other does not).

    ``place=False`` keeps every verified file as its partial (for a transfer held until the owner
    approves its sender; :func:`place_held` finishes it). ``folder``: a subfolder of the inbox
    (sanitized like any received path) to place the files under. ``journal_for(share_id)``: once
    the offer names the share, the journal record to use instead of ``transfer_id`` (an earlier,
    interrupted receive of the same share resumes from its durable offsets).

    ``compression``: a codec for this session only (a new ``ZstdCompression()`` per call), offered
    to the sender; its COMPRESSED_DATA frames are then accepted beside plain DATA. ``None`` refuses
    them (``compression_mismatch``; a correct sender never sends them then). Ignored with
    ``seal_key``. A frame that does not decompress to its announced length raises
    TransferInterrupted (nothing from it was written). ``report`` counts file bytes either way.
    """
    state = _Receiving(transport, inbox, journal, transfer_id, expect_share, report, seal_key, place, folder,
                       journal_for, compression)
    try:
        return await state.run()
    except ProtocolError as exc:
        await tell_peer(transport, exc)
        if exc.code == SEALING_MISMATCH:
            raise SealingMismatch(f"refused: {exc}") from exc
        if exc.code == BAD_SEAL:
            raise TamperedData(f"a sealed DATA frame did not open: {exc}") from exc
        raise TransferInterrupted(f"the sender broke the protocol: {exc}") from exc
    finally:
        state.close()


def place_held(inbox: Inbox, journal: StateDB, transfer_id: str, share_id: str, *, folder: str = "") -> None:
    """Place the files of a transfer received with ``place=False``: each partial is verified again
    (it sat on disk meanwhile) and finalized under ``folder``. Blocking (hashes whole files): run it
    in a thread. Raises TransferFailed when a file no longer verifies (it is discarded)."""
    for record in journal.files(transfer_id):
        if record.final_path is not None:
            continue
        part = inbox.open_partial(share_id, record.index, record.size, record.size)
        try:
            if part.offset != record.size or not part.verify(record.sha256):
                part.close()
                inbox.discard_partial(share_id, record.index)
                raise TransferFailed(f"{record.path}: the held copy no longer verifies")
            relpath = f"{folder}/{record.path}" if folder else record.path
            journal.set_final_path(transfer_id, record.index, inbox.finalize(part, relpath))
        except BaseException:
            part.close()
            raise
    inbox.discard(share_id)
