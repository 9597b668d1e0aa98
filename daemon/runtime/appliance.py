"""The appliance service: what the control API calls (``daemon.ApplianceAPI``), wired to real parts."""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import secrets
import time
from collections import Counter
from functools import partial
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import segno
import trio

from daemon.facade import ApplianceError, ShareCreated, Upload
from daemon.ice import IceConfig
from daemon.signaling import JoinFailed
from daemon.state import Direction, FileRecord, ShareRecord, StateDB, TransferRecord, TransferState
from daemon.storage import Inbox, ShareDir, ShareSpool, SourceFile, UnsafeName, spool_source
from daemon.state import OutboxQueue

from daemon.crypto import DeviceIdentity
from daemon.peer import Role
from daemon.protocol.auth import AuthMode
from daemon.signaling import SignalSession, open_signaling

from daemon.crypto import device_id_of
from daemon.peer import open_data_channel
from daemon.transfer.errors import TransferFailed

from daemon.state import DeviceRecord, DeviceStatus
from daemon.transfer.receiving import place_held

from .authentication import Authenticated, AuthenticationFailed, Credentials, authenticate
from .devices import DeviceBook
from .fetching import RETRYABLE, Fetch, fetch
from .hosting import ShareHost
from .outbox import AfterSend, OutboxService, PushOutcome, PushResult, device_folders
from .pairing import inbox_address, new_pairing_id
from .sessions import receive_over_session, send_over_session, session_ice

__all__ = ["Appliance"]

log = logging.getLogger("doorstep.appliance")

CODE_RE = re.compile(r"[0-9]{6}")
EXPIRY_SWEEP_SECONDS = 60.0
CONTROL_LIMIT = 1024 * 1024


class Appliance:
    """Shares, transfers and fetches of one daemon. Start :meth:`run` in the daemon's nursery first."""

    def __init__(self, *, db: StateDB, inbox: Inbox, spool: ShareSpool, ice: IceConfig, signal_url: str,
                 local_signal_url: str | None = None,
                 http_url: str, share_ttl: float, version: str, identity: DeviceIdentity,
                 name: str = "doorstep", encrypt: bool = False, unpaired: str = "hold",
                 per_device: bool = False, outbox_dir: Path | None = None, outbox_queue: OutboxQueue | None = None,
                 outbox_after_send: AfterSend = AfterSend.MOVE, outbox_settle: float = 2.0) -> None:
        self._db = db
        self._inbox = inbox
        self._spool = spool
        self._ice = ice
        self._signal_url = signal_url
        """What peers are told to connect to."""
        self._local_signal_url = local_signal_url or signal_url
        """How the daemon itself reaches its own signaling server."""
        self._http_url = http_url
        self._share_ttl = share_ttl
        self._version = version
        self._codes: dict[str, tuple[str | None, float | None]] = {}
        self._host = ShareHost(signal_url=self._local_signal_url, db=db, spool=spool, ice=ice, codes=self._codes, encrypt=encrypt)
        self._nursery: trio.Nursery | None = None
        self._statistics: dict[str, Callable[[], Any]] = {}
        self.identity = identity
        self._encrypt = encrypt
        self.name = name
        self.devices = DeviceBook(db, own_public_key=identity.public_key, on_change=self._device_changed)
        self._unpaired = unpaired
        self._per_device = per_device
        self._pairings: dict[str, str] = {}
        self._outbox_queue = outbox_queue
        self.outbox: OutboxService | None = None
        if outbox_dir is not None and outbox_queue is not None:
            self.outbox = OutboxService(
                root=outbox_dir, queue=outbox_queue, folders=lambda: device_folders(self.devices.list()),
                create_share=self.create_outbox_share, push=self.push_outbox_share,
                discard_share=self.discard_outbox_share, policy=lambda _folder: outbox_after_send,
                settle=outbox_settle,
            )

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self._host.run)
            await self._host.host_address(inbox_address(self.identity.device_id), self._receive_push, code=False)
            self._resume_fetches()
            nursery.start_soon(self._expire_shares)
            if self.outbox is not None:
                await nursery.start(self.outbox.run)
            task_status.started()

    def _resume_fetches(self) -> None:
        for record in self._db.list_transfers(unfinished_only=True):
            if record.direction is not Direction.RECEIVE or record.state is TransferState.HELD:
                continue
            if record.signal_url is not None and record.signal_url.startswith("push:"):
                continue  # resumed when its sender pushes again
            if record.share_id is None or record.signal_url is None:
                self._db.set_state(record.id, TransferState.FAILED, "interrupted before the share was reached")
                continue
            log.info("resuming transfer %s", record.id)
            job = Fetch(transfer_id=record.id, signal_url=record.signal_url, share_id=record.share_id,
                        encrypt=self._encrypt)
            self._spawn(self._fetch, job)

    def _spawn(self, fn: Any, *args: Any) -> None:
        assert self._nursery is not None, "Appliance.run is not running"
        self._nursery.start_soon(fn, *args)

    async def _expire_shares(self) -> None:
        """Retire shares past their TTL, and shares whose code died before anyone used it."""
        while True:
            for share in self._db.list_shares():
                reason = self._expiry_reason(share)
                if reason is None:
                    continue
                record = self._db.find_transfer(share.share_id, Direction.SEND)
                if record is not None and not record.state.finished:
                    self._db.set_state(record.id, TransferState.FAILED, reason)
                self._codes.pop(share.share_id, None)
                await self._host.retire(share.share_id)
            await trio.sleep(EXPIRY_SWEEP_SECONDS)

    def _expiry_reason(self, share: ShareRecord) -> str | None:
        if self._outbox_queue is not None and self._outbox_queue.holds_share(share.share_id):
            return None  # an outbox file waiting for its device: kept until delivered or discarded
        now = time.time()
        if share.expires_at <= now:
            return "the share expired"
        record = self._db.find_transfer(share.share_id, Direction.SEND)
        never_joined = record is not None and record.state is TransferState.CONNECTING
        _code, code_expires = self._codes.get(share.share_id, (None, 0.0))
        if never_joined and (code_expires or 0.0) <= now:
            return "nobody used the code before it expired"
        return None

    def attach_statistics(self, section: str, statistics: Callable[[], Any]) -> None:
        """Include a service's statistics in :meth:`stats` as ``section``: ``statistics()`` returns
        (or, when async, resolves to) anything with ``report() -> dict``."""
        self._statistics[section] = statistics

    def set_http_url(self, http_url: str) -> None:
        """Where share links point (known only after the HTTP listener bound)."""
        self._http_url = http_url

    # -- devices: pairing and pushes --------------------------------------------------------------

    def _device_credentials(self, *, initiator: bool) -> Credentials:
        return Credentials(mode=AuthMode.DEVICE if initiator else None, identity=self.identity,
                           trusts=self.devices.trusts, holds=None if initiator else self._may_hold, name=self.name)

    async def offer_pairing(self) -> dict[str, Any]:
        """Host a one-time pairing offer; the other device joins with the code it answers."""
        pairing_id = new_pairing_id()
        try:
            hosted = await self._host.host_address(pairing_id, self._serve_pairing, code=True)
        except (*RETRYABLE, trio.TooSlowError) as exc:
            raise ApplianceError(f"the signaling server is unreachable: {exc}", code="signaling", status=503) from None
        assert hosted.code is not None
        self._pairings[pairing_id] = hosted.code
        return {"code": hosted.code, "expires_at": hosted.expires_at, "signal": self._signal_url,
                "device_id": self.identity.device_id}

    async def _serve_pairing(self, session: SignalSession) -> None:
        code = self._pairings.pop(session.share, None)
        await self._host.drop_address(session.share)  # one joiner, one guess, whatever happens
        if code is None:
            return
        creds = Credentials(passwords={AuthMode.PAIR: code.encode()}, identity=self.identity, name=self.name)
        try:
            async with open_data_channel(session, Role.OFFERER, session_ice(session, self._ice),
                                             receive_limit=CONTROL_LIMIT) as channel:
                auth = await authenticate(channel, Role.OFFERER.value, creds)
        except (AuthenticationFailed, *RETRYABLE) as exc:
            log.warning("pairing offer %s failed: %s", session.share[:12], exc)
            return
        assert auth.peer_device_key is not None
        record = self.devices.pin(auth.peer_device_key, auth.peer_name or "", signal_url=None)
        log.info("paired with device %s (%s)", record.device_id, record.name)
        if self.outbox is not None:
            self.outbox.wake()

    async def pair_with(self, code: str, signal_url: str) -> dict[str, Any]:
        """Join another appliance's pairing offer; pin its key. Returns the device's description."""
        if not CODE_RE.fullmatch(code):
            raise ApplianceError("a pairing code is 6 digits", code="bad_code")
        creds = Credentials(mode=AuthMode.PAIR, passwords={AuthMode.PAIR: code.encode()},
                            identity=self.identity, name=self.name)
        try:
            async with open_signaling(signal_url) as signal:
                session = await signal.join(code=code)
                async with open_data_channel(session, Role.ANSWERER, session_ice(session, self._ice),
                                             receive_limit=CONTROL_LIMIT) as channel:
                    auth = await authenticate(channel, Role.ANSWERER.value, creds)
        except JoinFailed:
            raise ApplianceError("no such pairing code (or it expired, or it was used)", code="join_failed",
                                 status=404) from None
        except AuthenticationFailed as exc:
            raise ApplianceError(str(exc), code="authentication_failed", status=403) from None
        except (*RETRYABLE, ValueError) as exc:
            raise ApplianceError(f"cannot reach the other appliance: {exc}", code="signaling", status=503) from None
        assert auth.peer_device_key is not None
        record = self.devices.pin(auth.peer_device_key, auth.peer_name or "", signal_url=signal_url)
        if self.outbox is not None:
            self.outbox.wake()
        return self.devices.describe(record)

    async def _receive_push(self, session: SignalSession) -> None:
        """A device pushes a share to our inbox address, no code. A paired device's files go
        straight into the inbox; an unpaired one's (``inbox.unpaired = "hold"``) are received,
        verified and held until the owner approves the device; a revoked one is refused. A push
        of a share this device already half-sent resumes from the durable offsets."""
        journal = [secrets.token_hex(8)]  # our record; replaced by an earlier one on a resume
        self._db.add_transfer(journal[0], Direction.RECEIVE)
        sender: list[DeviceRecord] = []

        def authenticated(auth: Authenticated) -> None:
            assert auth.peer_device_key is not None
            record = self.devices.by_key(auth.peer_device_key)
            if record is None:  # held: remember who sent it, so the owner can approve
                record = self.devices.pin(auth.peer_device_key, "", signal_url=None, approved=False)
                log.info("device %s is not paired; what it sends waits for approval", record.device_id)
            self.devices.touch(record.device_id)
            self._db.set_origin(journal[0], f"push:{record.device_id}")
            sender.append(record)

        def placement(auth: Authenticated) -> tuple[bool, str]:
            return auth.peer_trusted, self._device_folder(sender[0]) if auth.peer_trusted else ""

        def journal_for(share_id: str) -> str:
            earlier = self._db.find_unfinished_receive(share_id, f"push:{sender[0].device_id}")
            if earlier is not None and earlier.id != journal[0]:
                self._db.remove_transfer(journal[0])
                journal[0] = earlier.id
                log.info("resuming the push of transfer %s", earlier.id)
            self._db.set_state(journal[0], TransferState.ACTIVE)
            return journal[0]

        try:
            await receive_over_session(
                session, self._ice, credentials=self._device_credentials(initiator=False),
                on_authenticated=authenticated, role=Role.OFFERER, encrypt=self._encrypt, placement=placement,
                journal_for=journal_for, inbox=self._inbox, journal=self._db, transfer_id=journal[0],
                expect_share=None, report=lambda done, moved: self._db.set_progress(journal[0], done, moved),
            )
        except AuthenticationFailed as exc:
            if exc.untrusted_device_key is not None and self.devices.by_key(exc.untrusted_device_key) is None:
                self.devices.pin(exc.untrusted_device_key, "", signal_url=None, approved=False)  # listed, to approve
            self._db.set_state(journal[0], TransferState.FAILED, str(exc))
            return
        except TransferFailed as exc:
            self._db.set_state(journal[0], TransferState.FAILED, str(exc))
            return
        except RETRYABLE as exc:  # cut off: an authenticated sender comes back and resumes
            self._db.set_state(journal[0], TransferState.RETRYING if sender else TransferState.FAILED, str(exc))
            return
        if self.devices.trusts(sender[0].public_key):
            self._db.set_state(journal[0], TransferState.DONE)
        else:
            self._db.hold(journal[0], sender[0].device_id)
            log.info("transfer %s from %s is held until the device is approved", journal[0], sender[0].device_id)

    def _device_folder(self, record: DeviceRecord) -> str:
        return record.name if self._per_device else ""

    def _may_hold(self, public_key: bytes) -> bool:
        """An untrusted key may still push (held for approval): unknown or pending, never revoked."""
        if self._unpaired != "hold":
            return False
        record = self.devices.by_key(public_key)
        return record is None or record.status is DeviceStatus.PENDING

    def _device_changed(self, record: DeviceRecord | None, device_id: str) -> None:
        """The owner approved, revoked or forgot a device: settle what it sent that was held."""
        if self.outbox is not None:
            self.outbox.wake()
        if self._db.held_transfers(device_id):
            self._spawn(self._settle_held, record, device_id)

    async def _settle_held(self, record: DeviceRecord | None, device_id: str) -> None:
        approve = record is not None and record.status is DeviceStatus.APPROVED
        for transfer_id in self._db.held_transfers(device_id):
            held = self._db.get_transfer(transfer_id)
            self._db.unhold(transfer_id)
            if held is None or held.share_id is None:
                continue
            if not approve:
                self._inbox.discard(held.share_id)
                self._db.set_state(transfer_id, TransferState.FAILED, "the owner refused the sending device")
                continue
            try:
                await trio.to_thread.run_sync(partial(
                    place_held, self._inbox, self._db, transfer_id, held.share_id, folder=self._device_folder(record)))
            except (TransferFailed, OSError) as exc:
                self._db.set_state(transfer_id, TransferState.FAILED, str(exc))
            else:
                self._db.set_state(transfer_id, TransferState.DONE)
                log.info("held transfer %s placed in the inbox", transfer_id)

    async def push_share(self, share_id: str, device_id: str) -> str:
        """Send a share to a paired device's inbox, no code. Returns the send transfer's id."""
        share = self._db.get_share(share_id)
        if share is None:
            raise ApplianceError("no such share", code="unknown_share", status=404)
        device = self.devices.get(device_id)
        if device.signal_url is None:
            raise ApplianceError("this device never told where to reach it; pair from this side",
                                 code="unreachable_device", status=409)
        record = self._db.find_transfer(share_id, Direction.SEND)
        assert record is not None
        self._spawn(self._push, share, device.device_id, device.signal_url, record.id)
        return record.id

    async def _push(self, share: ShareRecord, device_id: str, signal_url: str, transfer_id: str) -> None:
        self._db.set_state(transfer_id, TransferState.ACTIVE)
        try:
            async with open_signaling(signal_url) as signal:
                session = await signal.join(share=inbox_address(device_id))
                await send_over_session(
                    session, self._ice, credentials=self._device_credentials(initiator=True),
                    on_authenticated=lambda _auth: None, role=Role.ANSWERER, encrypt=self._encrypt,
                    share_id=share.share_id,
                    files=share.files, share_dir=self._spool.open(share.share_id),
                    report=lambda acked, moved: self._db.set_progress(transfer_id, acked, moved),
                )
        except (TransferFailed, JoinFailed, *RETRYABLE) as exc:
            self._db.set_state(transfer_id, TransferState.FAILED, str(exc))
            return
        self._db.set_state(transfer_id, TransferState.DONE)
        self._codes.pop(share.share_id, None)
        await self._host.retire(share.share_id)

    # -- the outbox sender's callables ------------------------------------------------------------

    async def create_outbox_share(self, source: SourceFile, name: str) -> str:
        """A code-less share of one outbox file, copied into the spool and hashed, for
        :meth:`push_outbox_share`. Raises ``OSError``, ``UnsafeName``."""
        share_id = secrets.token_urlsafe(16)
        share_dir = self._spool.create(share_id)
        try:
            spooled = await trio.to_thread.run_sync(spool_source, share_dir, name, source)
        except BaseException:
            self._spool.remove(share_id)
            raise
        now = time.time()
        record = FileRecord(index=0, path=spooled.relpath, size=spooled.size, sha256=spooled.sha256)
        share = ShareRecord(share_id=share_id, name=name.rsplit("/", 1)[-1][:255], host_key=secrets.token_urlsafe(24),
                            created_at=now, expires_at=now + self._share_ttl, files=(record,))
        self._db.add_share(share)
        self._db.add_transfer(secrets.token_hex(8), Direction.SEND, share_id=share_id, files=[record])
        return share_id

    async def push_outbox_share(self, share_id: str, device_id: str) -> PushOutcome:
        """:meth:`push_share`, awaited to the end, and how it went."""
        share = self._db.get_share(share_id)
        record = self._db.find_transfer(share_id, Direction.SEND)
        if share is None or record is None:
            return PushOutcome(PushResult.SHARE_GONE, "the share is gone")
        device = self._db.get_device(device_id)
        if device is None or device.status is not DeviceStatus.APPROVED:
            return PushOutcome(PushResult.REFUSED, "the device is no longer paired")
        if device.signal_url is None:
            return PushOutcome(PushResult.RETRY, "this device never told where to reach it; pair from this side")
        await self._push(share, device.device_id, device.signal_url, record.id)
        done = self._db.get_transfer(record.id)
        if done is not None and done.state is TransferState.DONE:
            return PushOutcome(PushResult.DELIVERED)
        return PushOutcome(PushResult.RETRY, done.error if done is not None else "the transfer record vanished")

    async def discard_outbox_share(self, share_id: str) -> None:
        """Drop an outbox share that will not be pushed (its file changed or went away)."""
        record = self._db.find_transfer(share_id, Direction.SEND)
        if record is not None and not record.state.finished:
            self._db.set_state(record.id, TransferState.CANCELLED, "the outbox file changed or went away")
        self._codes.pop(share_id, None)
        await self._host.retire(share_id)

    # -- ApplianceAPI ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "version": self._version, "signal": self._signal_url}

    async def create_share(self, uploads: Sequence[Upload], *, name: str) -> ShareCreated:
        share_id = secrets.token_urlsafe(16)
        share_dir = self._spool.create(share_id)
        try:
            files = [await self._spool_upload(share_dir, i, upload) for i, upload in enumerate(uploads)]
        except BaseException:
            self._spool.remove(share_id)
            raise
        now = time.time()
        share = ShareRecord(share_id=share_id, name=name[:255], host_key=secrets.token_urlsafe(24),
                            created_at=now, expires_at=now + self._share_ttl, files=tuple(files))
        try:
            hosted = await self._host.host(share, code=True)
        except (*RETRYABLE, trio.TooSlowError) as exc:
            self._spool.remove(share_id)
            raise ApplianceError(f"the signaling server is unreachable: {exc}", code="signaling", status=503) from None
        # Recorded only once the code exists: the expiry sweep must never see a share without its code.
        self._codes[share_id] = (hosted.code, hosted.expires_at)
        self._db.add_share(share)
        self._db.add_transfer(secrets.token_hex(8), Direction.SEND, share_id=share_id, files=files)
        return self._describe(share)

    async def _spool_upload(self, share_dir: ShareDir, index: int, upload: Upload) -> FileRecord:
        """Stream one upload into the share, hashing as it goes; the file appears only when complete."""
        try:
            writer = share_dir.add_file(upload.path)
        except UnsafeName as exc:
            raise ApplianceError(f"unusable file name {upload.path[:100]!r}: {exc}", code="bad_name") from None
        digest = hashlib.sha256()
        size = 0
        with writer:
            async for chunk in upload.chunks:
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            try:
                await trio.to_thread.run_sync(writer.commit)
            except FileExistsError:
                raise ApplianceError(f"two files are named {writer.relpath!r}", code="duplicate_name") from None
        return FileRecord(index=index, path=writer.relpath, size=size, sha256=digest.hexdigest())

    def _describe(self, share: ShareRecord) -> ShareCreated:
        code, expires_at = self._codes.get(share.share_id, (None, None))
        if expires_at is not None and expires_at <= time.time():
            code = expires_at = None
        url = f"{self._http_url}/r/{code}" if code else None
        return ShareCreated(
            share_id=share.share_id, name=share.name, code=code, expires_at=expires_at, url=url,
            qr=segno.make(url, error="m").svg_data_uri() if url else None, signal=self._signal_url,
            size=share.size, files=[{"path": f.path, "size": f.size, "sha256": f.sha256} for f in share.files],
        )

    async def stats(self) -> dict[str, dict[str, Any]]:
        transfers = self._db.list_transfers()
        by_state = Counter(t.state.value for t in transfers)
        out: dict[str, dict[str, Any]] = {
            "transfers": {
                "count": {"state": {state.value: by_state.get(state.value, 0) for state in TransferState}},
                "bytes_moved_total": sum(t.bytes_moved for t in transfers),
            },
            "shares": {"open": len(self._db.list_shares())},
        }
        for section, statistics in self._statistics.items():
            figures = statistics()
            if inspect.isawaitable(figures):
                figures = await figures
            out[section] = figures.report()
        return out

    def shares(self) -> list[ShareCreated]:
        return [self._describe(s) for s in self._db.list_shares()]

    def transfers(self) -> list[TransferRecord]:
        return self._db.list_transfers()

    def transfer(self, transfer_id: str) -> TransferRecord | None:
        return self._db.get_transfer(transfer_id)

    async def receive(self, code: str, *, signal_url: str | None = None) -> TransferRecord:
        if not CODE_RE.fullmatch(code):
            raise ApplianceError("a code is 6 digits", code="bad_code")
        url = signal_url or self._local_signal_url
        if not url.startswith(("ws://", "wss://")) or len(url) > 2048:
            raise ApplianceError("signal must be a ws:// or wss:// URL", code="bad_signal")
        transfer_id = secrets.token_hex(8)
        self._db.add_transfer(transfer_id, Direction.RECEIVE, signal_url=url)
        job = Fetch(transfer_id=transfer_id, signal_url=url, code=code, encrypt=self._encrypt)
        assert self._nursery is not None
        try:
            with trio.fail_after(30):
                await self._nursery.start(self._fetch, job)
        except JoinFailed:
            self._db.set_state(transfer_id, TransferState.FAILED, "no such code")
            raise ApplianceError("no such code (or it expired, or it was used)", code="join_failed", status=404) from None
        except (*RETRYABLE, trio.TooSlowError) as exc:
            self._db.set_state(transfer_id, TransferState.FAILED, str(exc))
            raise ApplianceError(f"could not reach the sharer: {exc}", code="unreachable", status=502) from None
        record = self._db.get_transfer(transfer_id)
        assert record is not None
        return record

    async def _fetch(self, job: Fetch, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        def report(done: int, moved: int) -> None:
            self._db.set_progress(job.transfer_id, done, moved)

        outcome = await fetch(job, inbox=self._inbox, journal=self._db, ice=self._ice, report=report,
                              task_status=task_status)
        if outcome is not None:
            log.info("transfer %s complete: %s", job.transfer_id, ", ".join(f.final_path or "?" for f in outcome.files))
