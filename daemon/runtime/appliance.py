"""The appliance service: what the control API calls (``daemon.ApplianceAPI``), wired to real parts."""

from __future__ import annotations

import base64
import hashlib
import inspect
import io
import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

import segno
import trio

from daemon.facade import (
    ApplianceError, DeviceChange, InboxDownload, InboxFile, SettingValue, ShareChange, ShareCreated, TransferStatus,
    Upload,
)
from daemon.ice import IceConfig
from daemon.signaling import JoinFailed
from daemon.state import Direction, FileRecord, OutboxItem, ShareRecord, StateDB, TransferRecord, TransferState
from daemon.storage import Inbox, ShareDir, ShareSpool, SourceFile, UnsafeName, spool_source
from daemon.state import OutboxQueue, new_share_id
from daemon.state.outbox import PRIORITIES

from daemon.crypto import BadSignature, DeviceIdentity, fingerprint_words
from daemon.peer import Role
from daemon.protocol.auth import AuthMode
from daemon.signaling import SignalSession, open_signaling

from daemon.peer import open_data_channel
from daemon.transfer.errors import TransferFailed

from daemon.state import DeviceRecord, DeviceStatus
from daemon.transfer.receiving import place_held

from .activity import TransferActivity
from .authentication import Authenticated, AuthenticationFailed, Credentials, authenticate
from .devices import DeviceBook
from .events import EventBus, Subscription
from .fetching import RETRYABLE, Fetch, fetch
from .hosting import ShareHost
from .inbox_access import delete_inbox_file, list_inbox, open_inbox_file
from .outbox import AfterSend, OutboxService, PushOutcome, PushResult, device_folders
from .pairing import inbox_address, new_pairing_id
from .presence import PresenceWatcher, device_entries
from .sessions import receive_over_session, send_over_session, session_ice
from .settings import LiveSettings, SettingError
from .transfer_tasks import Running, TransferTasks
from .uploads import UPLOAD_ORIGIN, InboxUploads
from .library import LibraryService, Link, library_address
from .library_client import LibraryClient
from daemon.state.library import LibraryStore
from .mailbox import MailboxService, MailboxSetup

__all__ = ["Appliance"]

log = logging.getLogger("doorstep.appliance")

CODE_RE = re.compile(r"[0-9]{6}")
EXPIRY_SWEEP_SECONDS = 60.0
CONTROL_LIMIT = 1024 * 1024
TEXT_SHARE_LIMIT = 1024 * 1024
"""Largest text share, in UTF-8 bytes."""
CANCELLED_BY_OWNER = "cancelled by the owner"
PAUSED_BY_OWNER = "paused by the owner"
SIGNAL_URL_RE = re.compile(r"wss?://[!-~]{1,506}")
PUSH_ORIGIN = "push:"
"""A transfer's origin (``signal_url`` column) for pushes: ``push:<device id>``."""


class Appliance:
    """Shares, transfers and fetches of one daemon. Start :meth:`run` in the daemon's nursery first."""

    def __init__(self, *, db: StateDB, inbox: Inbox, spool: ShareSpool, ice: IceConfig, signal_url: str,
                 local_signal_url: str | None = None,
                 http_url: str, share_ttl: float, version: str, identity: DeviceIdentity,
                 name: str = "doorstep", encrypt: bool = False, compress: bool = True, unpaired: str = "hold",
                 per_device: bool = False, outbox_dir: Path | None = None, outbox_queue: OutboxQueue | None = None,
                 outbox_after_send: AfterSend = AfterSend.MOVE, outbox_settle: float = 2.0,
                 settings: LiveSettings | None = None,
                 rotate_key: Callable[[DeviceIdentity], DeviceIdentity] | None = None,
                 upload_stall: float = 60.0, library_store: LibraryStore | None = None,
                 mailbox: MailboxSetup | None = None) -> None:
        self._db = db
        self.events = EventBus()
        self.activity = TransferActivity(db, self.events)
        db.observe(self.activity.observe)
        self._tasks = TransferTasks()
        self._settings = settings
        if settings is not None:
            settings.on_change(self._apply_settings)
        self._inbox = inbox
        self.uploads = InboxUploads(inbox=inbox, db=db, tasks=self._tasks,  # fails uploads a stop cut off
                                    stall_timeout=upload_stall)
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
        self._host = ShareHost(signal_url=self._local_signal_url, db=db, spool=spool, ice=ice, codes=self._codes,
                               encrypt=encrypt, compress=compress, on_retire=self._share_retired, on_route=self.activity.set_route)
        self._nursery: trio.Nursery | None = None
        self._statistics: dict[str, Callable[[], Any]] = {}
        self.identity = identity
        self._rotate_key = rotate_key
        """Stores a rotated identity (``daemon.runtime.pairing.rotate_identity``); None: cannot rotate."""
        self._encrypt = encrypt
        self._compress = compress
        self.name = name
        self.devices = DeviceBook(db, own_public_key=identity.public_key, on_change=self._device_changed,
                                  on_event=self._device_event)
        self.presence = PresenceWatcher(lambda: device_entries(self.devices.list()), interval=30.0)
        """Which paired devices are online: their inbox address hosted on their signaling server."""
        self.devices.presence = self.presence.status
        self._unpaired = unpaired
        self._per_device = per_device
        self._pairings: dict[str, str] = {}
        self._outbox_queue = outbox_queue
        self._after_send = outbox_after_send
        self.outbox: OutboxService | None = None
        if outbox_dir is not None and outbox_queue is not None:
            self.outbox = OutboxService(
                root=outbox_dir, queue=outbox_queue, folders=lambda: device_folders(self.devices.list()),
                create_share=self.create_outbox_share, push=self.push_outbox_share,
                discard_share=self.discard_outbox_share, policy=lambda _folder: self._after_send,
                settle=outbox_settle,
            )
        self.library: LibraryService | None = None
        self.library_client: LibraryClient | None = None
        if library_store is not None:  # published folders (daemon/runtime/library.py) and browsing peers' ones
            link = self._transfer_link
            self.library = LibraryService(store=library_store, devices=self.devices, link=link,
                                          credentials=lambda: self._device_credentials(initiator=False))
            self.library_client = LibraryClient(
                store=library_store, db=db, inbox=inbox, devices=self.devices, link=link, tasks=self._tasks,
                credentials=lambda: self._device_credentials(initiator=True), on_route=self.activity.set_route)
        self.mailbox: MailboxService | None = None
        if mailbox is not None:  # store-and-forward of sealed bundles (daemon/runtime/mailbox.py)
            self.mailbox = MailboxService(
                store=mailbox.store, root=mailbox.root, limits=mailbox.limits, db=db, inbox=inbox,
                devices=self.devices, presence=self.presence, tasks=self._tasks, identity=lambda: self.identity,
                credentials=lambda initiator: self._device_credentials(initiator=initiator), ice=ice,
                options=lambda: (self._encrypt, self._compress),
                host_address=lambda address, handler: self._host.host_address(address, handler, code=False),
                folder_for=lambda key: self._device_folder(r) if (r := self.devices.by_key(key)) is not None else "")

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.activity.run)
            await nursery.start(self._host.run)
            await nursery.start(self.presence.run)
            await self._host.host_address(inbox_address(self.identity.device_id), self._receive_push, code=False)
            if self.library is not None and self.library_client is not None:
                await nursery.start(self.library_client.run)  # before _resume_fetches: it fails cut-off pulls
                await nursery.start(self.library.run)
                await self._host.host_address(library_address(self.identity.device_id), self.library.serve, code=False)
            self._resume_fetches()
            nursery.start_soon(self._expire_shares)
            if self.outbox is not None:
                await nursery.start(self.outbox.run)
            if self.mailbox is not None:
                await nursery.start(self.mailbox.run)
            task_status.started()

    def _resume_fetches(self) -> None:
        for record in self._db.list_transfers(unfinished_only=True):
            if record.direction is not Direction.RECEIVE or record.state in (TransferState.HELD, TransferState.PAUSED):
                continue
            if record.signal_url is not None and record.signal_url.startswith("push:"):
                continue  # resumed when its sender pushes again
            if record.share_id is None or record.signal_url is None:
                self._db.set_state(record.id, TransferState.FAILED, "interrupted before the share was reached")
                continue
            log.info("resuming transfer %s", record.id)
            job = Fetch(transfer_id=record.id, signal_url=record.signal_url, share_id=record.share_id,
                        encrypt=self._encrypt, compress=self._compress)
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

    def _transfer_link(self) -> Link:
        """How this daemon's transfers connect and move bytes now (settings may change)."""
        return Link(ice=self._ice, encrypt=self._encrypt, compress=self._compress)

    def _device_credentials(self, *, initiator: bool) -> Credentials:
        return Credentials(mode=AuthMode.DEVICE if initiator else None, identity=self.identity,
                           trusts=self.devices.trusts, holds=None if initiator else self._may_hold, name=self.name,
                           rotate=self.devices.rotate, revoked=self.devices.revoked_keys, revoke=self._revoked_by_peer)

    def _revoked_by_peer(self, keys: Sequence[bytes]) -> None:
        for device_id in self.devices.revoke_keys(keys):
            log.warning("device %s revoked: a trusted paired device says its owner revoked it", device_id)

    def identity_info(self) -> dict[str, Any]:
        """This install's device: id (stable), current public key, fingerprint words, rotations."""
        return {"device_id": self.identity.device_id, "name": self.name,
                "public_key": base64.urlsafe_b64encode(self.identity.public_key).decode().rstrip("="),
                "fingerprint": list(fingerprint_words(self.identity.public_key)),
                "rotations": len(self.identity.rotations)}

    def rotate_identity(self) -> dict[str, Any]:
        """Replace the device key with a fresh one signed by the old; paired devices follow it the
        next time they connect. Raises ApplianceError when the key cannot be rotated."""
        if self._rotate_key is None:
            raise ApplianceError("this appliance cannot rotate its key", code="not_supported", status=501)
        try:
            self.identity = self._rotate_key(self.identity)
        except (OSError, BadSignature) as exc:
            raise ApplianceError(f"the key was not rotated: {exc}", code="rotation_failed", status=500) from None
        self.devices.set_own_key(self.identity.public_key)
        return self.identity_info()

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
        creds = Credentials(passwords={AuthMode.PAIR: code.encode()}, identity=self.identity, name=self.name,
                            signal_url=self._signal_url)
        try:
            async with open_data_channel(session, Role.OFFERER, session_ice(session, self._ice),
                                             receive_limit=CONTROL_LIMIT) as channel:
                auth = await authenticate(channel, Role.OFFERER.value, creds)
        except (AuthenticationFailed, *RETRYABLE) as exc:
            log.warning("pairing offer %s failed: %s", session.share[:12], exc)
            return
        assert auth.peer_device_key is not None
        record = self.devices.pin(auth.peer_device_key, auth.peer_name or "", signal_url=auth.peer_signal_url,
                                  root_key=auth.peer_root_key)
        self.presence.wake()
        log.info("paired with device %s (%s)", record.device_id, record.name)
        if self.outbox is not None:
            self.outbox.wake()

    async def pair_with(self, code: str, signal_url: str) -> dict[str, Any]:
        """Join another appliance's pairing offer; pin its key. Returns the device's description."""
        if not CODE_RE.fullmatch(code):
            raise ApplianceError("a pairing code is 6 digits", code="bad_code")
        if not SIGNAL_URL_RE.fullmatch(signal_url):
            raise ApplianceError("the other appliance's signal URL must be a ws:// or wss:// URL", code="bad_signal")
        creds = Credentials(mode=AuthMode.PAIR, passwords={AuthMode.PAIR: code.encode()},
                            identity=self.identity, name=self.name, signal_url=self._signal_url)
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
        record = self.devices.pin(auth.peer_device_key, auth.peer_name or "", signal_url=signal_url,
                                  root_key=auth.peer_root_key)
        self.presence.wake()
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
        with self._tasks.run(journal[0]) as running:
            await self._receive_pushed(session, journal, lambda earlier: self._tasks.rename(running, earlier))
        if running.cancelled:
            self._db.set_state(running.transfer_id, TransferState.CANCELLED, CANCELLED_BY_OWNER)

    async def _receive_pushed(self, session: SignalSession, journal: list[str], resumed: Callable[[str], None]) -> None:
        sender: list[DeviceRecord] = []

        def authenticated(auth: Authenticated) -> None:
            assert auth.peer_device_key is not None
            record = self.devices.by_key(auth.peer_device_key)
            if record is None:  # held: remember who sent it, so the owner can approve
                record = self._list_pending(auth.peer_device_key, auth.peer_root_key)
                if record is None:
                    raise AuthenticationFailed("could not authenticate the peer: it claims the id of another device")
                log.info("device %s is not paired; what it sends waits for approval", record.device_id)
            self.devices.touch(record.device_id)
            self.presence.seen(record.device_id)
            self._db.set_origin(journal[0], f"{PUSH_ORIGIN}{record.device_id}")
            sender.append(record)

        def placement(auth: Authenticated) -> tuple[bool, str]:
            return auth.peer_trusted, self._device_folder(sender[0]) if auth.peer_trusted else ""

        def journal_for(share_id: str) -> str:
            earlier = self._db.find_unfinished_receive(share_id, f"{PUSH_ORIGIN}{sender[0].device_id}")
            if earlier is not None and earlier.id != journal[0]:
                self._db.remove_transfer(journal[0])
                journal[0] = earlier.id
                resumed(earlier.id)
                log.info("resuming the push of transfer %s", earlier.id)
            self._db.set_state(journal[0], TransferState.ACTIVE)
            return journal[0]

        try:
            await receive_over_session(
                session, self._ice, credentials=self._device_credentials(initiator=False),
                on_authenticated=authenticated, role=Role.OFFERER, encrypt=self._encrypt, compress=self._compress,
                placement=placement,
                on_route=lambda route, detail: self.activity.set_route(journal[0], route, detail),
                journal_for=journal_for, inbox=self._inbox, journal=self._db, transfer_id=journal[0],
                expect_share=None, report=lambda done, moved: self._db.set_progress(journal[0], done, moved),
            )
        except AuthenticationFailed as exc:
            if exc.untrusted_device_key is not None and self.devices.by_key(exc.untrusted_device_key) is None:
                self._list_pending(exc.untrusted_device_key, None)  # listed, for the owner to approve
            self._db.set_state(journal[0], TransferState.FAILED, str(exc))
            return
        except TransferFailed as exc:
            self._db.set_state(journal[0], TransferState.FAILED, str(exc))
            return
        except RETRYABLE as exc:  # cut off: an authenticated sender comes back and resumes
            self._db.set_state(journal[0], TransferState.RETRYING if sender else TransferState.FAILED, str(exc))
            return
        except Exception as exc:  # a bug: fail this push loudly, keep the inbox address (and the daemon) up
            log.exception("push %s hit an internal error", journal[0])
            self._db.set_state(journal[0], TransferState.FAILED, f"internal error: {exc!r}")
            return
        if self.devices.trusts(sender[0].public_key):
            self._db.set_state(journal[0], TransferState.DONE)
        else:
            self._db.hold(journal[0], sender[0].device_id)
            log.info("transfer %s from %s is held until the device is approved", journal[0], sender[0].device_id)

    def _device_folder(self, record: DeviceRecord) -> str:
        return record.name if self._per_device else ""

    def _list_pending(self, public_key: bytes, root_key: bytes | None) -> DeviceRecord | None:
        """List an unknown device as pending (the owner may approve it). None for a key some device
        rotated away from, or one whose id belongs to another key (a fork of a rotated device)."""
        if self.devices.retired(public_key):
            return None
        try:
            return self.devices.pin(public_key, "", signal_url=None, approved=False, root_key=root_key)
        except ValueError as exc:
            log.warning("not listing an unknown device: %s", exc)
            return None

    def _may_hold(self, public_key: bytes) -> bool:
        """An untrusted key may still push (held for approval): unknown or pending, never revoked,
        never a key a device rotated away from."""
        if self._unpaired != "hold" or self.devices.retired(public_key):
            return False
        record = self.devices.by_key(public_key)
        return record is None or record.status is DeviceStatus.PENDING

    def _device_event(self, record: DeviceRecord | None, device_id: str) -> None:
        self.events.publish("device", DeviceChange(device_id=device_id, record=record))

    def _share_retired(self, share: ShareRecord) -> None:
        self.events.publish("share", ShareChange(change="retired", share=self._describe(share, live=False)))

    def _device_changed(self, record: DeviceRecord | None, device_id: str) -> None:
        """The owner approved, revoked or forgot a device: settle what it sent that was held."""
        self.presence.wake()
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
        self._db.set_origin(transfer_id, f"{PUSH_ORIGIN}{device_id}")
        self._db.set_state(transfer_id, TransferState.ACTIVE)
        with self._tasks.run(transfer_id) as running:
            await self._push_once(share, device_id, signal_url, transfer_id)
        if running.cancelled:
            self._stopped(transfer_id, running)

    async def _push_once(self, share: ShareRecord, device_id: str, signal_url: str, transfer_id: str) -> None:
        try:
            async with open_signaling(signal_url) as signal:
                session = await signal.join(share=inbox_address(device_id))
                await send_over_session(
                    session, self._ice, credentials=self._device_credentials(initiator=True),
                    on_authenticated=lambda _auth: None, role=Role.ANSWERER, encrypt=self._encrypt, compress=self._compress,
                    on_route=partial(self.activity.set_route, transfer_id), share_id=share.share_id,
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
        share_id = new_share_id()
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
        self.events.publish("share", ShareChange(change="created", share=self._describe(share)))
        return share_id

    async def push_outbox_share(self, share_id: str, device_id: str) -> PushOutcome:
        """:meth:`push_share`, awaited to the end, and how it went."""
        share = self._db.get_share(share_id)
        record = self._db.find_transfer(share_id, Direction.SEND)
        if share is None or record is None:
            return PushOutcome(PushResult.SHARE_GONE, "the share is gone")
        if record.state is TransferState.CANCELLED:
            return PushOutcome(PushResult.REFUSED, record.error or CANCELLED_BY_OWNER)
        device = self._db.get_device(device_id)
        if device is None or device.status is not DeviceStatus.APPROVED:
            return PushOutcome(PushResult.REFUSED, "the device is no longer paired")
        if device.signal_url is None:
            return PushOutcome(PushResult.RETRY, "this device never told where to reach it; pair from this side")
        await self._push(share, device.device_id, device.signal_url, record.id)
        done = self._db.get_transfer(record.id)
        if done is not None and done.state is TransferState.DONE:
            return PushOutcome(PushResult.DELIVERED)
        if done is not None and done.state is TransferState.CANCELLED:
            return PushOutcome(PushResult.REFUSED, done.error or CANCELLED_BY_OWNER)
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
        share_id = new_share_id()
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
        described = self._describe(share)
        self.events.publish("share", ShareChange(change="created", share=described))
        return described

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

    def _describe(self, share: ShareRecord, *, live: bool = True) -> ShareCreated:
        """The share as clients see it; ``live=False``: without its code (a retired share)."""
        code, expires_at = self._codes.get(share.share_id, (None, None)) if live else (None, None)
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
                "sessions_total": {"route": dict(self.activity.route_counts)},
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

    def transfers(self, *, states: frozenset[TransferState] | None = None, direction: Direction | None = None,
                  limit: int | None = None) -> list[TransferStatus]:
        records = self._db.list_transfers(states=states, direction=direction, limit=limit)
        return [self.activity.status(r) for r in records]

    def transfer(self, transfer_id: str) -> TransferStatus:
        return self.activity.status(self._require_transfer(transfer_id))

    def _require_transfer(self, transfer_id: str) -> TransferRecord:
        record = self._db.get_transfer(transfer_id)
        if record is None:
            raise ApplianceError(f"no transfer {transfer_id[:64]!r}", code="unknown_transfer", status=404)
        return record

    async def receive(self, code: str, *, signal_url: str | None = None) -> TransferStatus:
        if not CODE_RE.fullmatch(code):
            raise ApplianceError("a code is 6 digits", code="bad_code")
        url = signal_url or self._local_signal_url
        if not url.startswith(("ws://", "wss://")) or len(url) > 2048:
            raise ApplianceError("signal must be a ws:// or wss:// URL", code="bad_signal")
        transfer_id = secrets.token_hex(8)
        self._db.add_transfer(transfer_id, Direction.RECEIVE, signal_url=url)
        job = Fetch(transfer_id=transfer_id, signal_url=url, code=code, encrypt=self._encrypt, compress=self._compress)
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
        return self.transfer(transfer_id)

    async def _fetch(self, job: Fetch, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        def report(done: int, moved: int) -> None:
            self._db.set_progress(job.transfer_id, done, moved)

        outcome = None
        with self._tasks.run(job.transfer_id) as running:
            outcome = await fetch(job, inbox=self._inbox, journal=self._db, ice=self._ice, report=report,
                                  on_route=partial(self.activity.set_route, job.transfer_id), task_status=task_status)
        if running.cancelled:
            self._stopped(job.transfer_id, running)
        elif outcome is not None:
            log.info("transfer %s complete: %s", job.transfer_id, ", ".join(f.final_path or "?" for f in outcome.files))

    # -- transfers: cancel, retry, pause and resume ---------------------------------------------

    def _stopped(self, transfer_id: str, running: Running) -> None:
        """The owner stopped ``transfer_id``'s task: it is paused or cancelled, as they asked."""
        if running.paused:
            self._db.set_state(transfer_id, TransferState.PAUSED, PAUSED_BY_OWNER)
        else:
            self._db.set_state(transfer_id, TransferState.CANCELLED, CANCELLED_BY_OWNER)

    async def pause_transfer(self, transfer_id: str) -> TransferStatus:
        """Stop moving bytes now and keep everything for :meth:`resume_transfer`: a receive we fetch
        and a push we send stop their task; a share we host cuts its session and turns away its
        receiver until resumed. Uploads, held transfers and pushes we receive cannot be paused here."""
        record = self._require_transfer(transfer_id)
        if record.state.finished or record.state in (TransferState.HELD, TransferState.PAUSED):
            raise ApplianceError(f"the transfer is {record.state.value}; only a moving or waiting one can be paused",
                                 code="not_pausable", status=409)
        if record.signal_url == UPLOAD_ORIGIN:
            raise ApplianceError("an upload cannot be paused: cancel it, or let it finish", code="not_pausable",
                                 status=409)
        if record.direction is Direction.RECEIVE and _is_push(record):
            raise ApplianceError("pause a push on the device that sends it", code="not_pausable", status=409)
        self._db.set_state(transfer_id, TransferState.PAUSED, PAUSED_BY_OWNER)
        self._tasks.cancel(transfer_id, pause=True)
        if record.direction is Direction.SEND and record.share_id is not None:
            self._host.cancel_session(record.share_id)
        log.info("transfer %s paused by the owner", transfer_id)
        return self.transfer(transfer_id)

    async def resume_transfer(self, transfer_id: str) -> TransferStatus:
        """Continue a paused transfer from its durable offsets."""
        record = self._require_transfer(transfer_id)
        if record.state is not TransferState.PAUSED:
            raise ApplianceError(f"the transfer is {record.state.value}, not paused", code="not_paused", status=409)
        if self._tasks.is_running(transfer_id):
            raise _not_retryable("the transfer is still winding down; try again in a moment")
        if record.direction is Direction.RECEIVE:
            self._retry_fetch(record)
        elif _is_push(record):
            self._retry_push(record)
        else:  # a share we host: its receiver comes back by itself
            self._db.set_state(transfer_id, TransferState.RETRYING, "resumed: waiting for the receiver to reconnect")
        log.info("transfer %s resumed by the owner", transfer_id)
        return self.transfer(transfer_id)

    async def cancel_transfer(self, transfer_id: str) -> TransferStatus:
        """Stop a transfer that is not finished. A fetch or a push stops where it is (a retry
        resumes from its durable offsets); a held transfer is refused (its files discarded); a
        share waiting for its receiver stops being hosted and is deleted."""
        record = self._require_transfer(transfer_id)
        if record.state.finished:
            raise ApplianceError(f"the transfer is already {record.state.value}", code="finished", status=409)
        if record.state is TransferState.HELD:
            self._db.unhold(transfer_id)
            if record.share_id is not None:
                await trio.to_thread.run_sync(self._inbox.discard, record.share_id)
            self._db.set_state(transfer_id, TransferState.CANCELLED, CANCELLED_BY_OWNER)
            return self.transfer(transfer_id)
        self._db.set_state(transfer_id, TransferState.CANCELLED, CANCELLED_BY_OWNER)
        self._tasks.cancel(transfer_id)
        if record.direction is Direction.SEND and record.share_id is not None:
            self._host.cancel_session(record.share_id)
            if not _is_push(record):  # nobody could resume it: the share goes
                self._codes.pop(record.share_id, None)
                await self._host.retire(record.share_id)
        log.info("transfer %s cancelled by the owner", transfer_id)
        return self.transfer(transfer_id)

    async def retry_transfer(self, transfer_id: str) -> TransferStatus:
        """Start a failed or cancelled transfer again, from its durable offsets: a receive we
        fetched (by its share id, with the resume secret of its first session), or a push we sent
        (while its share is still there)."""
        record = self._require_transfer(transfer_id)
        if record.state not in (TransferState.FAILED, TransferState.CANCELLED):
            raise _not_retryable(f"only a failed or cancelled transfer can be retried; this one is {record.state.value}")
        if self._tasks.is_running(transfer_id):
            raise _not_retryable("the transfer is still winding down; try again in a moment")
        if record.direction is Direction.RECEIVE:
            self._retry_fetch(record)
        else:
            self._retry_push(record)
        log.info("transfer %s retried by the owner", transfer_id)
        return self.transfer(transfer_id)

    def _retry_fetch(self, record: TransferRecord) -> None:
        if _is_push(record):
            raise _not_retryable("a push is retried by the device that sends it")
        if record.share_id is None or record.signal_url is None:
            raise _not_retryable("this transfer never reached the share; receive it again with a new code")
        if self._db.secret("transfer", record.id) is None:
            raise _not_retryable("this transfer never authenticated its sharer; receive it again with a new code")
        self._db.set_state(record.id, TransferState.CONNECTING)
        self._spawn(self._fetch, Fetch(transfer_id=record.id, signal_url=record.signal_url, share_id=record.share_id,
                                       encrypt=self._encrypt, compress=self._compress))

    def _retry_push(self, record: TransferRecord) -> None:
        if not _is_push(record) or record.signal_url is None:
            raise _not_retryable("only pushes are retried from the sending side; "
                                 "a receiver resumes a shared code by itself")
        share = self._db.get_share(record.share_id) if record.share_id is not None else None
        if share is None:
            raise _not_retryable("the share is gone (expired, revoked or already sent); share the files again")
        device = self._db.get_device(record.signal_url.removeprefix(PUSH_ORIGIN))
        if device is None or device.status is not DeviceStatus.APPROVED or device.signal_url is None:
            raise _not_retryable("the device is no longer paired, or never told where to reach it")
        self._db.set_state(record.id, TransferState.CONNECTING)
        self._spawn(self._push, share, device.device_id, device.signal_url, record.id)

    # -- shares: text, revoke, QR ---------------------------------------------------------------

    async def create_text_share(self, text: str, *, name: str) -> ShareCreated:
        """Share ``text`` as one UTF-8 ``.txt`` file called ``name`` (``.txt`` added if missing)."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ApplianceError("the text is not valid Unicode (lone surrogates)", code="bad_text") from None
        if len(data) > TEXT_SHARE_LIMIT:
            raise ApplianceError(f"a text share is at most {TEXT_SHARE_LIMIT} bytes of UTF-8, not {len(data)}",
                                 code="too_large", status=413)
        if "/" in name or "\\" in name:
            raise ApplianceError("a text share's name is a file name, without '/' or '\\'", code="bad_name")
        if not name.lower().endswith(".txt"):
            name += ".txt"

        async def chunks():
            yield data

        return await self.create_share([Upload(path=name, chunks=chunks())], name=name)

    async def revoke_share(self, share_id: str) -> None:
        share = self._require_share(share_id)
        record = self._db.find_transfer(share.share_id, Direction.SEND)
        if record is not None and not record.state.finished:
            self._db.set_state(record.id, TransferState.CANCELLED, "the share was revoked")
            self._tasks.cancel(record.id)
        self._host.cancel_session(share.share_id)
        self._codes.pop(share.share_id, None)
        await self._host.retire(share.share_id)
        log.info("share %s revoked by the owner", share.share_id)

    def share_qr_svg(self, share_id: str) -> str:
        described = self._describe(self._require_share(share_id))
        if described.url is None or self._host.code_spent(share_id):
            raise ApplianceError("this share has no live code (it was used or expired, or it never had one)",
                                 code="no_code", status=404)
        buffer = io.BytesIO()
        segno.make(described.url, error="m").save(buffer, kind="svg", scale=4, border=4, xmldecl=True,
                                                  title=f"doorstep share {described.name}")
        return buffer.getvalue().decode()

    def _require_share(self, share_id: str) -> ShareRecord:
        share = self._db.get_share(share_id)
        if share is None:
            raise ApplianceError(f"no share {share_id[:64]!r}", code="unknown_share", status=404)
        return share

    # -- events, inbox, outbox --------------------------------------------------------------------

    def subscribe(self, last_event_id: int | None = None) -> AbstractContextManager[Subscription]:
        return self.events.subscribe(last_event_id)

    async def inbox_files(self, prefix: str = "") -> list[InboxFile]:
        return await list_inbox(self._inbox, self._db, prefix)

    async def open_inbox_file(self, path: str) -> InboxDownload:
        return await open_inbox_file(self._inbox, path)

    async def upload_to_inbox(self, upload: Upload, *, size: int, sha256: str | None = None) -> TransferStatus:
        return self.transfer(await self.uploads.receive(upload, size=size, sha256=sha256))

    async def delete_inbox_file(self, path: str) -> None:
        await delete_inbox_file(self._inbox, path)
        log.info("inbox file %r deleted by the owner", path[:200])

    def outbox_queue(self) -> list[OutboxItem]:
        return self._outbox_queue.items() if self._outbox_queue is not None else []

    def set_outbox_priority(self, item_id: int, priority: str) -> OutboxItem:
        """Order a device's waiting files: ``high`` ones go first, ``low`` ones last."""
        item = self._outbox_queue.set_priority(item_id, PRIORITIES[priority]) if self._outbox_queue else None
        if item is None:
            raise ApplianceError("no such outbox item", code="unknown_item", status=404)
        return item

    # -- settings ---------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return self._settings.view() if self._settings is not None else {}

    async def update_settings(self, changes: Mapping[str, SettingValue]) -> dict[str, Any]:
        if self._settings is None:
            raise ApplianceError("this appliance has no settings to change", code="bad_setting")
        try:
            parsed = self._settings.update(changes)
        except SettingError as exc:
            raise ApplianceError(str(exc), code="bad_setting") from None
        try:
            await trio.to_thread.run_sync(self._settings.save, parsed)
        except OSError as exc:
            raise ApplianceError(f"applied, but could not be saved for the next start: {exc}", code="not_saved",
                                 status=500) from None
        return self._settings.view()

    def _apply_settings(self, parsed: dict[str, Any]) -> None:
        for key, value in parsed.items():
            if key == "inbox.unpaired":
                self._unpaired = value
            elif key == "inbox.per_device":
                self._per_device = value
            elif key == "transfer.encrypt":
                self._encrypt = self._host.encrypt = value
            elif key == "outbox.after_send":
                self._after_send = AfterSend(value)
            elif key == "share.ttl":
                self._share_ttl = value


def _is_push(record: TransferRecord) -> bool:
    return record.signal_url is not None and record.signal_url.startswith(PUSH_ORIGIN)


def _not_retryable(message: str) -> ApplianceError:
    return ApplianceError(message, code="not_retryable", status=409)
