"""The mailbox: store-and-forward of sealed bundles for devices that are offline (docs/mailbox.md).

Device X sends files to device Y *through* an appliance A that both are paired with: X seals the
files to Y's device key (:mod:`daemon.crypto.mailbox_seal`), and pushes the sealed bundle to A's
*mailbox address* (``mailbox-<A's device id>``) over the ordinary push path (device-mode
authentication, verified and resumable transfer). A keeps it (quotas, expiry, a row in the state
database) and pushes it on to Y's mailbox address when Y is online (presence, or a backoff
retry); once that push succeeded, A deletes its copy. Y, receiving a bundle addressed to itself,
opens it with its device key, checks every file against the signed manifest, and only then places
the plaintext files in its inbox (sanitized names, never overwriting). A never holds the bundle
key: its copy is not the plaintext.

Every daemon runs the same service: the sender's side keeps ``outgoing`` rows (made here, for the
appliance), the appliance ``held`` rows (left here, for a recipient); a bundle whose recipient is
this device is opened, never held.

The wire names of a bundle are ``mailbox/<recipient id>/<bundle id>/manifest.sealed`` and
``.../<n>.sealed``: the receiving side checks the recipient and its quotas from the offer, before
any byte of the bundle moves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import trio

from daemon.crypto import DeviceIdentity
from daemon.crypto.mailbox_seal import (
    ENVELOPE_SIZE, MANIFEST_NAME, MAX_NAME, BundleError, BundleSealer, FileOpener, ManifestEntry, file_name,
    open_manifest, read_envelope,
)
from daemon.facade import ApplianceError, Upload
from daemon.ice import IceConfig
from daemon.peer import Role
from daemon.signaling import JoinFailed, SignalSession, open_signaling
from daemon.state import DeviceRecord, DeviceStatus, Direction, FileRecord, StateDB, TransferState, new_share_id
from daemon.state.mailbox import MailboxItem, MailboxKind, MailboxStore, StoredFile
from daemon.storage import Inbox, PartialFile, ShareSpool, SourceFile, UnsafeName
from daemon.transfer.errors import TransferFailed

from .authentication import Authenticated, AuthenticationFailed, Credentials
from .backoff import backoff_delay
from .devices import DeviceBook
from .fetching import RETRYABLE
from .presence import PresenceWatcher
from .sessions import receive_over_session, send_over_session
from .transfer_tasks import TransferTasks

__all__ = ["MailboxLimits", "MailboxSetup", "MailboxService", "mailbox_address", "bundle_paths", "parse_bundle_paths"]

log = logging.getLogger("doorstep.mailbox")

POLL_SECONDS = 1.0
"""How often the service looks at presence and at what is due."""
READ_SIZE = 1024 * 1024
ORIGIN = "mailbox:"
"""A mailbox push's origin (``signal_url`` column of its send transfer): ``mailbox:<next hop id>``."""
PUSH_ORIGIN = "push:"

_PATH_RE = re.compile(r"mailbox/([a-z2-7]{20})/([A-Za-z0-9_-]{1,64})/(manifest|0|[1-9][0-9]{0,4})\.sealed")


def mailbox_address(device_id: str) -> str:
    """The signaling address where a daemon accepts mailbox bundles from its paired devices."""
    return f"mailbox-{device_id}"


def bundle_paths(recipient: str, bundle_id: str, count: int) -> list[str]:
    """The wire names of a bundle of ``count`` files: the manifest first, then ``0.sealed`` ..."""
    base = f"mailbox/{recipient}/{bundle_id}"
    return [f"{base}/{MANIFEST_NAME}"] + [f"{base}/{file_name(n)}" for n in range(count)]


def parse_bundle_paths(paths: Sequence[str]) -> tuple[str, str]:
    """``(recipient id, bundle id)`` of an offer that is exactly a bundle's files, in order.
    Raises ``ValueError`` otherwise."""
    match = _PATH_RE.fullmatch(paths[0]) if paths else None
    if match is None or match.group(3) != "manifest" or len(paths) < 2:
        raise ValueError("not a mailbox bundle (its first file must be the manifest, then the sealed files)")
    recipient, bundle_id = match.group(1), match.group(2)
    if list(paths) != bundle_paths(recipient, bundle_id, len(paths) - 1):
        raise ValueError("not a mailbox bundle (its files are not named mailbox/<recipient>/<bundle>/<n>.sealed)")
    return recipient, bundle_id


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxLimits:
    """What a mailbox keeps for others (config ``mailbox.*``)."""

    quota: int = 10 << 30
    """Bytes of all held bundles together."""
    per_sender: int = 2 << 30
    """Bytes of the bundles one device left here."""
    count: int = 1000
    """Bundles held at once."""
    expiry: float = 14 * 86400.0
    """Seconds a bundle is kept (held here, or waiting to leave) before it is dropped."""
    retry_max: float = 60.0
    """Longest wait between two attempts to push a bundle on (presence wakes it sooner)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MailboxSetup:
    """What the daemon hands the appliance to run a mailbox: the table, the folder for the
    sealed files (``<state_dir>/mailbox``) and the limits."""

    store: MailboxStore
    root: Path
    limits: MailboxLimits = MailboxLimits()


class _Admitting:
    """The mailbox area as one mailbox receive sees it: an offer must be a bundle and fit the
    limits (``check(total)`` says why not) before the area's own rules (free space) apply."""

    def __init__(self, area: Inbox, check: Callable[[int], str | None]) -> None:
        self._area = area
        self._check = check

    def admission(self, total: int, needed: int) -> str | None:
        return self._check(total) or self._area.admission(total, needed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._area, name)


class _BundleSource:
    """The ``share_dir`` a push reads from: a bundle's wire names mapped to where it is stored."""

    def __init__(self, open_stored: Callable[[str], SourceFile], files: Sequence[StoredFile]) -> None:
        self._open = open_stored
        self._where = {f.path: f.stored for f in files}

    def open_source(self, relpath: str) -> SourceFile:
        return self._open(self._where[relpath])


class MailboxService:
    """The mailbox of one daemon. Start :meth:`run` in the appliance's nursery (after the share
    host runs: it hosts the mailbox address)."""

    def __init__(self, *, store: MailboxStore, root: Path, db: StateDB, inbox: Inbox, devices: DeviceBook,
                 presence: PresenceWatcher, tasks: TransferTasks, identity: Callable[[], DeviceIdentity],
                 credentials: Callable[[bool], Credentials], ice: IceConfig,
                 options: Callable[[], tuple[bool, bool]],
                 host_address: Callable[[str, Callable[[SignalSession], Awaitable[None]]], Awaitable[Any]],
                 folder_for: Callable[[bytes], str] = lambda _key: "", limits: MailboxLimits = MailboxLimits(),
                 clock: Callable[[], float] = time.time) -> None:
        """``credentials(initiator)``: this device's device-mode credentials; ``options()``:
        (encrypt, compress) now; ``folder_for(sender key)``: the inbox folder for what a device
        sent (``inbox.per_device``)."""
        self._store = store
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._area = Inbox(root / "held", file_mode=0o600)
        """Bundles received here (held for others, or being opened for us)."""
        self._outgoing = ShareSpool(root / "outgoing")
        """Bundles made here, until the appliance has them."""
        self._db = db
        self._inbox = inbox
        self._devices = devices
        self._presence = presence
        self._tasks = tasks
        self._identity = identity
        self._credentials = credentials
        self._ice = ice
        self._options = options
        self._host_address = host_address
        self._folder_for = folder_for
        self.limits = limits
        self._clock = clock
        self._wakeup = trio.Event()
        self._sending: set[str] = set()
        self._online: set[str] = set()

    def close(self) -> None:
        self._area.close()
        self._outgoing.close()

    def wake(self) -> None:
        """Look at what is due now."""
        self._wakeup.set()

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._host_address(mailbox_address(self._identity().device_id), self.receive)
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    await self._expire()
                    self._wake_online()
                    for item in self._store.due(self._clock()):
                        if item.id not in self._sending:
                            self._sending.add(item.id)
                            nursery.start_soon(self._deliver, item)
                except Exception:  # a bug: never end the loop for it
                    log.exception("mailbox: a round failed")
                with trio.move_on_after(POLL_SECONDS):
                    await self._wakeup.wait()
                self._wakeup = trio.Event()

    def _wake_online(self) -> None:
        """A next hop that came online gets its bundles at once (not at their backoff time)."""
        hops = {item.next_hop for item in self._store.items()}
        online = {hop for hop in hops if self._presence.status(hop).online is True}
        for hop in online - self._online:
            if self._store.wake(hop, self._clock()):
                log.info("mailbox: device %s is online; pushing what waits for it", hop)
        self._online = online

    async def _expire(self) -> None:
        for item in self._store.expired(self._clock()):
            log.warning("mailbox: bundle %s for %s expired undelivered; deleted", item.id, item.recipient)
            await self._drop(item, "expired in the mailbox")

    async def _drop(self, item: MailboxItem, reason: str) -> None:
        self._store.remove(item.id)
        if item.transfer_id is not None:
            record = self._db.get_transfer(item.transfer_id)
            if record is not None and not record.state.finished:
                self._db.set_state(item.transfer_id, TransferState.FAILED, reason)
        await trio.to_thread.run_sync(self._remove_files, item)

    def _remove_files(self, item: MailboxItem) -> None:
        if item.kind is MailboxKind.OUTGOING:
            self._outgoing.remove(item.id)
            return
        for f in item.files:
            try:
                self._area.remove_file(f.stored)
            except (FileNotFoundError, UnsafeName):
                pass

    # -- pushing a bundle on ----------------------------------------------------------------------

    async def _deliver(self, item: MailboxItem) -> None:
        try:
            error = await self._push(item)
        finally:
            self._sending.discard(item.id)
        if error is None:
            self._store.remove(item.id)
            await trio.to_thread.run_sync(self._remove_files, item)
            log.info("mailbox: bundle %s handed to %s; our copy is deleted", item.id, item.next_hop)
            return
        current = self._store.get(item.id)
        if current is None:  # deleted by the owner meanwhile
            return
        delay = backoff_delay(current.attempts, base=2.0, cap=self.limits.retry_max)
        self._store.attempted(item.id, error=error, retry_at=self._clock() + delay)
        log.info("mailbox: bundle %s not handed to %s (%s); next try in %.0f s", item.id, item.next_hop, error, delay)

    async def _push(self, item: MailboxItem) -> str | None:
        """One attempt; None if the next hop now holds the bundle, else why not."""
        hop = self._db.get_device(item.next_hop)
        if hop is None or hop.status is not DeviceStatus.APPROVED:
            return f"device {item.next_hop} is not paired (or not approved) here"
        if hop.signal_url is None:
            return f"device {item.next_hop} never told where to reach it"
        transfer_id = item.transfer_id or self._new_send(item)
        self._db.set_state(transfer_id, TransferState.ACTIVE)
        encrypt, compress = self._options()
        records = tuple(FileRecord(index=i, path=f.path, size=f.size, sha256=f.sha256) for i, f in enumerate(item.files))
        source = _BundleSource(self._opener(item), item.files)
        error: str | None = None
        with self._tasks.run(transfer_id) as running:
            try:
                async with open_signaling(hop.signal_url) as signal:
                    session = await signal.join(share=mailbox_address(hop.device_id))
                    await send_over_session(
                        session, self._ice, credentials=self._credentials(True), on_authenticated=lambda _auth: None,
                        role=Role.ANSWERER, encrypt=encrypt, compress=compress, share_id=item.id, files=records,
                        share_dir=source,  # type: ignore[arg-type]  # duck-typed: only open_source is used
                        report=lambda acked, moved: self._db.set_progress(transfer_id, acked, moved),
                    )
            except JoinFailed:
                error = f"device {hop.device_id} is offline"
            except (TransferFailed, *RETRYABLE) as exc:
                error = str(exc) or type(exc).__name__
        if running.cancelled:
            error = "stopped by the owner"
        self._db.set_state(transfer_id, TransferState.DONE if error is None else TransferState.RETRYING, error)
        return error

    def _new_send(self, item: MailboxItem) -> str:
        transfer_id = secrets.token_hex(8)
        records = [FileRecord(index=i, path=f.path, size=f.size, sha256=f.sha256) for i, f in enumerate(item.files)]
        self._db.add_transfer(transfer_id, Direction.SEND, files=records)
        self._db.set_origin(transfer_id, f"{ORIGIN}{item.next_hop}")
        self._store.set_transfer(item.id, transfer_id)
        return transfer_id

    def _opener(self, item: MailboxItem) -> Callable[[str], SourceFile]:
        if item.kind is MailboxKind.OUTGOING:
            return lambda stored: self._outgoing.open(item.id).open_source(stored)
        return self._area.open_file

    # -- receiving a bundle -----------------------------------------------------------------------

    async def receive(self, session: SignalSession) -> None:
        """A paired device pushes a bundle to our mailbox address: keep it for its recipient, or
        open it when it is for us. Nothing but approved devices gets in; the offer is refused
        (before any byte) unless it is a bundle, for us or for an approved device, within the limits."""
        journal = [secrets.token_hex(8)]
        self._db.add_transfer(journal[0], Direction.RECEIVE)
        sender: list[DeviceRecord] = []

        def authenticated(auth: Authenticated) -> None:
            record = self._devices.by_key(auth.peer_device_key) if auth.peer_device_key is not None else None
            if record is None or record.status is not DeviceStatus.APPROVED or not auth.peer_trusted:
                raise AuthenticationFailed("a mailbox takes bundles from paired, approved devices only")
            self._devices.touch(record.device_id)
            self._presence.seen(record.device_id)
            self._db.set_origin(journal[0], f"{PUSH_ORIGIN}{record.device_id}")
            sender.append(record)

        def journal_for(share_id: str) -> str:
            earlier = self._db.find_unfinished_receive(share_id, f"{PUSH_ORIGIN}{sender[0].device_id}")
            if earlier is not None and earlier.id != journal[0]:
                self._db.remove_transfer(journal[0])
                journal[0] = earlier.id
                log.info("mailbox: resuming the receive of transfer %s", earlier.id)
            self._db.set_state(journal[0], TransferState.ACTIVE)
            return journal[0]

        def check(total: int) -> str | None:
            return self._admission([f.path for f in self._db.files(journal[0])], sender[0].device_id, total)

        encrypt, compress = self._options()
        try:
            await receive_over_session(
                session, self._ice, credentials=replace(self._credentials(False), holds=None),
                on_authenticated=authenticated, role=Role.OFFERER, encrypt=encrypt, compress=compress,
                journal_for=journal_for, inbox=_Admitting(self._area, check),  # type: ignore[arg-type]
                journal=self._db, transfer_id=journal[0], expect_share=None,
                report=lambda done, moved: self._db.set_progress(journal[0], done, moved),
            )
        except TransferFailed as exc:  # refused, or not authenticated (AuthenticationFailed)
            log.warning("mailbox: refused a bundle: %s", exc)
            self._db.set_state(journal[0], TransferState.FAILED, str(exc))
            return
        except RETRYABLE as exc:  # cut off: the sender comes back and resumes
            self._db.set_state(journal[0], TransferState.RETRYING if sender else TransferState.FAILED, str(exc))
            return
        except Exception as exc:  # a bug: fail this receive loudly, keep the address (and the daemon) up
            log.exception("mailbox: receive %s hit an internal error", journal[0])
            self._db.set_state(journal[0], TransferState.FAILED, f"internal error: {exc!r}")
            return
        await self._received(journal[0], sender[0])

    def _admission(self, paths: list[str], sender: str, total: int) -> str | None:
        """Why a bundle offer must be refused; None to take it."""
        try:
            recipient, _bundle = parse_bundle_paths(paths)
        except ValueError as exc:
            return str(exc)
        if recipient == self._identity().device_id:
            return self._inbox.admission(total, total)  # opened here: the plaintext goes to the inbox
        record = self._db.get_device(recipient)
        if record is None or record.status is not DeviceStatus.APPROVED:
            return f"this mailbox keeps bundles for its paired devices only, and {recipient} is not one"
        if recipient == sender:
            return "a device cannot leave a bundle for itself"
        usage = self._store.usage(sender)
        if usage.count + 1 > self.limits.count:
            return f"mailbox quota: it already holds {usage.count} bundles, at most {self.limits.count}"
        if usage.bytes + total > self.limits.quota:
            return (f"mailbox quota: {total} more bytes would make {usage.bytes + total}, "
                    f"at most {self.limits.quota} are kept")
        if usage.sender_bytes + total > self.limits.per_sender:
            return (f"mailbox quota: this device's bundles would take {usage.sender_bytes + total} bytes, "
                    f"at most {self.limits.per_sender} per device")
        return None

    async def _received(self, transfer_id: str, sender: DeviceRecord) -> None:
        files = self._db.files(transfer_id)
        stored = tuple(StoredFile(f.path, f.size, f.sha256, f.final_path or "") for f in files)
        recipient, bundle_id = parse_bundle_paths([f.path for f in files])
        if recipient == self._identity().device_id:
            await self._open(transfer_id, sender, stored)
            return
        target = self._db.get_device(recipient)
        try:
            head = await trio.to_thread.run_sync(self._read_head, stored[0].stored)
            envelope = read_envelope(head)
        except (BundleError, OSError, UnsafeName) as exc:
            envelope, problem = None, str(exc)
        if envelope is None or target is None or envelope.recipient_key != target.public_key:
            reason = ("the bundle is not sealed to the key paired here for its recipient"
                      if envelope is not None else f"unreadable bundle: {problem}")
            self._db.set_state(transfer_id, TransferState.FAILED, reason)
            await trio.to_thread.run_sync(self._remove_files, _held(transfer_id, sender.device_id, recipient, stored))
            log.warning("mailbox: dropped bundle %s from %s: %s", bundle_id, sender.device_id, reason)
            return
        now = self._clock()
        item = self._store.add(item_id=new_share_id(), kind=MailboxKind.HELD, sender=sender.device_id,
                               recipient=recipient, next_hop=recipient, files=stored,
                               expires_at=now + self.limits.expiry)
        self._db.set_state(transfer_id, TransferState.DONE)
        log.info("mailbox: holding bundle %s (%d bytes) from %s for %s", item.id, item.size, sender.device_id,
                 recipient)
        self.wake()

    def _read_head(self, stored: str) -> bytes:
        with self._area.open_file(stored) as source:
            return source.read_at(0, ENVELOPE_SIZE)

    async def _open(self, transfer_id: str, sender: DeviceRecord, stored: tuple[StoredFile, ...]) -> None:
        """Open a bundle for us: all verified, then placed; or refused and nothing placed."""
        record = self._db.get_transfer(transfer_id)
        share_id = record.share_id if record is not None and record.share_id else transfer_id
        try:
            placed = await trio.to_thread.run_sync(self._open_sync, transfer_id, stored)
        except (BundleError, OSError, UnsafeName, ValueError) as exc:
            reason = f"refused a mailbox bundle: {exc}"
            log.warning("mailbox: %s (pushed by %s); nothing was placed", reason, sender.device_id)
            self._db.set_state(transfer_id, TransferState.FAILED, reason)
            return
        finally:
            await trio.to_thread.run_sync(self._remove_files, _held(transfer_id, sender.device_id, "", stored))
        records = [FileRecord(index=i, path=entry.name, size=entry.size, sha256=entry.sha256)
                   for i, (entry, _final) in enumerate(placed)]
        self._db.set_manifest(transfer_id, share_id, records)
        for i, (_entry, final) in enumerate(placed):
            self._db.set_final_path(transfer_id, i, final)
        self._db.set_progress(transfer_id, sum(r.size for r in records))
        self._db.set_state(transfer_id, TransferState.DONE)
        log.info("mailbox: opened a bundle pushed by %s: %d file(s) placed in the inbox", sender.device_id,
                 len(placed))

    def _open_sync(self, transfer_id: str, stored: tuple[StoredFile, ...]) -> list[tuple[ManifestEntry, str]]:
        """Decrypt and verify every file into inbox partials, then place them all. Blocking."""
        with self._area.open_file(stored[0].stored) as manifest_file:
            manifest = manifest_file.read_at(0, manifest_file.size)
        bundle = open_manifest(manifest, self._identity().seed)
        if len(bundle.files) != len(stored) - 1:
            raise BundleError("the manifest does not list the files that came with it")
        for entry in bundle.files:
            if len(entry.name) > MAX_NAME:
                raise BundleError("a file name is too long")
        parts: list[PartialFile] = []
        try:
            for index, entry in enumerate(bundle.files):
                parts.append(self._open_file(transfer_id, bundle.opener(index), index, stored[index + 1].stored))
            folder = self._folder_for(bundle.sender_key)
            placed = []
            for entry, part in zip(bundle.files, parts):
                relpath = f"{folder}/{entry.name}" if folder else entry.name
                placed.append((entry, self._inbox.finalize(part, relpath)))
            return placed
        except BaseException:
            for part in parts:
                part.close()
            raise
        finally:
            self._inbox.discard(transfer_id)

    def _open_file(self, transfer_id: str, opener: FileOpener, index: int, stored: str) -> PartialFile:
        entry = opener.entry
        part = self._inbox.open_partial(transfer_id, index, entry.size, 0)
        try:
            with self._area.open_file(stored) as source:
                offset = written = 0
                while offset < source.size:
                    sealed = source.read_at(offset, READ_SIZE)
                    if not sealed:
                        break
                    offset += len(sealed)
                    plain = opener.push(sealed)
                    if plain:
                        part.write_at(written, plain)
                        written += len(plain)
            opener.finish()
            part.sync()
            if not part.verify(entry.sha256):
                raise BundleError(f"{entry.name!r}: SHA-256 mismatch on disk")
        except BaseException:
            part.close()
            raise
        return part

    # -- the owner's side -------------------------------------------------------------------------

    async def send(self, uploads: Sequence[Upload], *, to: str, via: str, key: str | None = None) -> dict[str, Any]:
        """Seal ``uploads`` for device ``to`` and leave them with the appliance ``via`` (both by
        their device ids). ``to``'s key is the one pinned here by pairing with it; ``key``
        (base64url, e.g. as the appliance lists its devices) trusts the appliance's word instead,
        for a device never paired with this one. Answers the new bundle (:meth:`describe`)."""
        if not uploads:
            raise ApplianceError("nothing to send", code="bad_request")
        hop = self._devices.get(via)
        if hop.status is not DeviceStatus.APPROVED or hop.signal_url is None:
            raise ApplianceError(f"device {via} is not an approved device this one can reach", code="unreachable_device",
                                 status=409)
        if to == self._identity().device_id or to == via:
            raise ApplianceError("'to' must be another device than this one and the appliance", code="bad_request")
        recipient_key = self._recipient_key(to, key)
        item_id = new_share_id()
        share_dir = self._outgoing.create(item_id)
        try:
            sealer = BundleSealer(recipient_key, sender_seed=self._identity().seed)
            paths = bundle_paths(to, sealer.bundle_id, len(uploads))
            files: list[StoredFile] = []
            names: list[str] = []
            for upload, path in zip(uploads, paths[1:]):
                if not upload.path or len(upload.path) > MAX_NAME:
                    raise ApplianceError(f"unusable file name {upload.path[:100]!r}", code="bad_name")
                names.append(upload.path)
                file_sealer = sealer.file()
                files.append(await self._write(share_dir, path, upload.chunks, file_sealer.push, file_sealer.finish))
            manifest = sealer.manifest(names)

            async def once():
                yield manifest

            files.insert(0, await self._write(share_dir, paths[0], once(), lambda data: data, lambda: b""))
        except BaseException:
            self._outgoing.remove(item_id)
            raise
        transfer_id = secrets.token_hex(8)
        self._db.add_transfer(transfer_id, Direction.SEND,
                              files=[FileRecord(index=i, path=f.path, size=f.size, sha256=f.sha256)
                                     for i, f in enumerate(files)])
        self._db.set_origin(transfer_id, f"{ORIGIN}{via}")
        item = self._store.add(item_id=item_id, kind=MailboxKind.OUTGOING, sender="", recipient=to, next_hop=via,
                               files=tuple(files), expires_at=self._clock() + self.limits.expiry,
                               transfer_id=transfer_id)
        log.info("mailbox: sealed %d file(s) for %s, to leave with %s", len(uploads), to, via)
        self.wake()
        return self.describe(item)

    async def _write(self, share_dir: Any, path: str, chunks: Any, seal: Callable[[bytes], bytes],
                     finish: Callable[[], bytes]) -> StoredFile:
        writer = share_dir.add_file(path)
        digest = hashlib.sha256()
        size = 0
        with writer:
            async for chunk in chunks:
                out = seal(chunk)
                digest.update(out)
                writer.write(out)
                size += len(out)
            out = finish()
            digest.update(out)
            writer.write(out)
            size += len(out)
            await trio.to_thread.run_sync(writer.commit)
        return StoredFile(path, size, digest.hexdigest(), writer.relpath)

    def _recipient_key(self, to: str, key: str | None) -> bytes:
        pinned = self._db.get_device(to)
        if key is None:
            if pinned is None or pinned.status is not DeviceStatus.APPROVED:
                raise ApplianceError(
                    f"device {to[:64]!r} is not paired with this one, so its key is not known here: pair with it, "
                    "or give its public key as 'key' (as the appliance lists it: you then trust the appliance's word)",
                    code="unknown_recipient", status=409)
            return pinned.public_key
        try:
            decoded = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise ApplianceError("'key' must be a 32-byte Ed25519 public key in base64url", code="bad_key")
        if pinned is not None and pinned.public_key != decoded:
            raise ApplianceError(f"the key given is not the one pinned for {to} when the devices paired",
                                 code="key_mismatch", status=409)
        return decoded

    def items(self) -> list[dict[str, Any]]:
        return [self.describe(item) for item in self._store.items()]

    def describe(self, item: MailboxItem) -> dict[str, Any]:
        """What the API shows of a bundle: never a file name."""
        return {"id": item.id, "kind": item.kind.value, "from": item.sender or self._identity().device_id,
                "to": item.recipient, "via": item.next_hop, "size": item.size, "files": len(item.files) - 1,
                "created": item.created_at, "expires": item.expires_at, "attempts": item.attempts,
                "error": item.error, "transfer": item.transfer_id}

    async def delete(self, item_id: str) -> None:
        item = self._store.get(item_id)
        if item is None:
            raise ApplianceError(f"no mailbox bundle {item_id[:64]!r}", code="unknown_bundle", status=404)
        if item.transfer_id is not None:
            self._tasks.cancel(item.transfer_id)
        await self._drop(item, "deleted from the mailbox by the owner")
        log.info("mailbox: bundle %s deleted by the owner", item_id)


def _held(item_id: str, sender: str, recipient: str, stored: tuple[StoredFile, ...]) -> MailboxItem:
    """A row-shaped view of received files, to delete them like a held bundle's."""
    return MailboxItem(id=item_id, kind=MailboxKind.HELD, sender=sender, recipient=recipient, next_hop=recipient,
                       files=stored, size=sum(f.size for f in stored), attempts=0, next_attempt_at=0.0, error=None,
                       transfer_id=None, created_at=0.0, expires_at=0.0)
