"""Browsing and pulling another appliance's libraries (the client side of
:mod:`daemon.runtime.library`).

Each call opens one session to the paired device's ``library-<id>`` address on its signaling
server, authenticates in ``device`` mode and checks the peer is the device asked for, then speaks
:mod:`daemon.protocol.library`. Everything the peer sends is validated by the protocol codec
(paths, sizes, hashes, page and message sizes); listings are capped at :data:`MAX_ENTRIES`.

A **pull** lists the subtree, leaves out every file whose SHA-256 this appliance already holds
(:meth:`LibraryClient.held`: files the journal placed in the inbox, still there and unchanged,
their version checked against ``library_have`` so each is read at most once), and asks for the
rest; the files come over the same channel through the transfer protocol, verified, into the
inbox under ``<library name>/<path>``. A pull cut short is a failed transfer; pulling the same
subtree again resumes it from its durable offsets (same share id and files) as long as the files
it still lacks are still wanted and unchanged.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import trio

from daemon.facade import ApplianceError
from daemon.peer import Role, open_data_channel
from daemon.protocol.errors import LocalProtocolError, ProtocolError
from daemon.protocol.library import (
    MAX_PAGE, MAX_PULL_FILES, Bye, Entries, Entry, Failure, Libraries, ListEntries, ListLibraries, Pull, Sending,
    Wanted, check_library_name, check_relpath, encode,
)
from daemon.signaling import JoinFailed, open_signaling
from daemon.state import Direction, FileRecord, StateDB, TransferState
from daemon.state.library import HaveRecord, LibraryStore
from daemon.storage import Fingerprint, Inbox, UnsafeName
from daemon.storage.hashing import sha256_fd
from daemon.transfer import MessageTransport, run_receiver
from daemon.transfer.errors import TransferFailed
from daemon.transfer.receiving import receive_limit

from .authentication import Authenticated, AuthenticationFailed, Credentials, authenticate
from .devices import DeviceBook
from .fetching import RETRYABLE
from .library import LIBRARY_ORIGIN, ControlLink, Link, library_address, transfer_path
from .sessions import session_codec, frame_seal_key, session_ice
from .transfer_tasks import TransferTasks

__all__ = ["LibraryClient", "MAX_ENTRIES"]

log = logging.getLogger("doorstep.library")

MAX_ENTRIES = 100_000
"""Entries read from one listing (a larger subtree is browsed by prefix)."""
CONNECT_TIMEOUT = 60.0
CANCELLED_BY_OWNER = "cancelled by the owner"
_RESUMABLE = frozenset({TransferState.FAILED, TransferState.RETRYING, TransferState.CANCELLED,
                        *([TransferState.PAUSED] if hasattr(TransferState, "PAUSED") else [])})
"""States of an earlier pull that pulling the same files again resumes."""


@dataclass(slots=True)
class _Session:
    conn: ControlLink
    channel: MessageTransport
    auth: Authenticated
    link: Link


def _origin(device_id: str, library: str) -> str:
    return f"{LIBRARY_ORIGIN}{device_id}/{library}"


def _check_request(library: str, prefix: str) -> str:
    try:
        check_library_name(library)
        prefix = prefix.strip("/")
        if prefix:
            check_relpath(prefix, what="prefix")
    except LocalProtocolError as exc:
        raise ApplianceError(str(exc), code="bad_request") from None
    return prefix


class LibraryClient:
    """Browse and pull the libraries paired devices publish to us. Start :meth:`run` in a nursery."""

    def __init__(self, *, store: LibraryStore, db: StateDB, inbox: Inbox, devices: DeviceBook,
                 credentials: Callable[[], Credentials], link: Callable[[], Link], tasks: TransferTasks,
                 on_route: Callable[[str, str, str], None] | None = None) -> None:
        """``credentials()``: device-mode credentials as the initiator; ``on_route(transfer id,
        route, detail)`` once a pull's path is chosen."""
        self._store = store
        self._db = db
        self._inbox = inbox
        self._devices = devices
        self._credentials = credentials
        self._link = link
        self._tasks = tasks
        self._on_route = on_route
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Pulls a previous run left unfinished fail (pull again to resume); then serve pulls."""
        for record in self._db.list_transfers(unfinished_only=True, direction=Direction.RECEIVE):
            if record.signal_url is not None and record.signal_url.startswith(LIBRARY_ORIGIN):
                self._db.set_state(record.id, TransferState.FAILED, "interrupted by a restart; pull again to resume")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    # -- connecting -------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connect(self, device_id: str) -> AsyncIterator[_Session]:
        device = self._devices.get(device_id)  # UnknownDevice (404)
        if device.signal_url is None:
            raise ApplianceError("this device never told where to reach it; pair from this side",
                                 code="unreachable_device", status=409)
        if not self._devices.trusts(device.public_key):
            raise ApplianceError("this device is not an approved paired device", code="unknown_device", status=409)
        link = self._link()
        try:
            async with open_signaling(device.signal_url) as signal:
                with trio.fail_after(CONNECT_TIMEOUT):
                    session = await signal.join(share=library_address(device.device_id))
                async with open_data_channel(session, Role.ANSWERER, session_ice(session, link.ice),
                                             receive_limit=receive_limit(262144)) as channel:
                    with trio.fail_after(CONNECT_TIMEOUT):
                        auth = await authenticate(channel, Role.ANSWERER.value,
                                                  replace(self._credentials(), seal=link.encrypt))
                    assert auth.peer_device_key is not None
                    peer = self._devices.by_key(auth.peer_device_key)
                    if peer is None or peer.device_id != device.device_id:
                        raise ApplianceError("another device answered at that device's library address",
                                             code="authentication_failed", status=502)
                    yield _Session(ControlLink(channel), channel, auth, link)
        except JoinFailed:
            raise ApplianceError("the device does not answer (offline, or it publishes no libraries)",
                                 code="unreachable", status=502) from None
        except AuthenticationFailed as exc:
            raise ApplianceError(str(exc), code="authentication_failed", status=403) from None
        except (ProtocolError, trio.TooSlowError, TransferFailed, *RETRYABLE) as exc:
            raise ApplianceError(f"the device could not be asked: {exc}", code="unreachable", status=502) from None

    # -- browsing ---------------------------------------------------------------------------------

    async def libraries(self, device_id: str) -> list[dict[str, Any]]:
        """What the device publishes to us: name, files, size."""
        async with self._connect(device_id) as session:
            await session.conn.send(ListLibraries())
            reply = await session.conn.reply()
            await session.conn.send(Bye())
        if not isinstance(reply, Libraries):
            raise _refused(reply)
        return [{"name": i.name, "files": i.files, "size": i.size} for i in reply.libraries]

    async def browse(self, device_id: str, library: str, prefix: str = "") -> dict[str, Any]:
        """The catalogue entries at or below ``prefix``."""
        prefix = _check_request(library, prefix)
        async with self._connect(device_id) as session:
            entries, truncated = await self._list(session, library, prefix)
            await session.conn.send(Bye())
        return {"library": library, "prefix": prefix, "truncated": truncated,
                "entries": [_entry_out(e) for e in entries]}

    async def _list(self, session: _Session, library: str, prefix: str) -> tuple[list[Entry], bool]:
        entries: list[Entry] = []
        after = ""
        while True:
            await session.conn.send(ListEntries(library=library, prefix=prefix, after=after, limit=MAX_PAGE))
            reply = await session.conn.reply()
            if not isinstance(reply, Entries) or reply.library != library:
                raise _refused(reply)
            page = reply.entries
            if page and after and page[0].path <= after:
                raise ApplianceError("the device sent a listing out of order", code="bad_peer", status=502)
            if any(not _under(e.path, prefix) for e in page):
                raise ApplianceError("the device listed files outside the prefix", code="bad_peer", status=502)
            entries.extend(page)
            if len(entries) >= MAX_ENTRIES:
                return entries[:MAX_ENTRIES], True
            if not reply.more or not page:
                return entries, False
            after = page[-1].path

    # -- pulling ----------------------------------------------------------------------------------

    async def pull(self, device_id: str, library: str, prefix: str = "") -> dict[str, Any]:
        """Pull the subtree ``prefix`` of ``library``: answers once the transfer started (or
        when nothing needs to move), with what was found, what is already here and the transfer's
        id; the files keep arriving in the background."""
        prefix = _check_request(library, prefix)
        assert self._nursery is not None, "LibraryClient.run is not running"
        return await self._nursery.start(self._pull, device_id, library, prefix)

    async def _pull(self, device_id: str, library: str, prefix: str, *,
                    task_status: trio.TaskStatus[dict[str, Any]] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        transfer_id: str | None = None
        try:
            async with self._connect(device_id) as session:
                entries, truncated = await self._list(session, library, prefix)
                held = await self.held({e.sha256 for e in entries})
                wanted = [e for e in entries if e.sha256 not in held]
                summary: dict[str, Any] = {
                    "library": library, "prefix": prefix, "files": len(entries), "size": sum(e.size for e in entries),
                    "already_here": len(entries) - len(wanted), "requested": 0, "bytes": 0, "remaining": 0,
                    "truncated": truncated, "transfer_id": None,
                }
                if not wanted:
                    await session.conn.send(Bye())
                    summary["message"] = f"{len(entries)} file(s) already here; nothing to pull"
                    task_status.started(summary)
                    return
                reply, share, manifest, transfer_id = await self._ask(session, device_id, library, wanted)
                files = [FileRecord(index=i, path=w.path, size=w.size, sha256=w.sha256) for i, w in enumerate(manifest)]
                if not isinstance(reply, Sending) or reply.share != share or reply.count != len(manifest):
                    raise _refused(reply)
                if self._db.get_transfer(transfer_id) is None:
                    self._db.add_transfer(transfer_id, Direction.RECEIVE, share_id=share, files=files)
                    self._db.set_origin(transfer_id, _origin(device_id, library))
                self._db.set_state(transfer_id, TransferState.ACTIVE)
                wanted_paths = {w.path for w in wanted}
                summary.update(requested=sum(1 for f in manifest if f.path in wanted_paths),
                               bytes=sum(f.size for f in manifest if f.path in wanted_paths),
                               remaining=len(wanted_paths - {f.path for f in manifest}), transfer_id=transfer_id,
                               message=f"{summary['already_here']} file(s) already here; pulling "
                                       f"{len(wanted_paths & {f.path for f in manifest})}")
                task_status.started(summary)
                started = True
                await self._receive(session, transfer_id, share, library)
        except ApplianceError as exc:
            if not started:
                raise
            if transfer_id is not None:
                self._db.set_state(transfer_id, TransferState.FAILED, f"{exc}; pull again to resume")
        except (ProtocolError, TransferFailed, trio.TooSlowError, *RETRYABLE) as exc:
            if not started:
                raise ApplianceError(f"the device could not be asked: {exc}", code="unreachable", status=502) from None
            if transfer_id is not None:
                self._db.set_state(transfer_id, TransferState.FAILED, f"{exc}; pull again to resume")
        except Exception as exc:
            if not started:
                raise
            log.exception("pull %s hit an internal error", transfer_id)
            if transfer_id is not None:
                self._db.set_state(transfer_id, TransferState.FAILED, f"internal error: {exc!r}")

    async def _ask(self, session: _Session, device_id: str, library: str,
                   wanted: list[Entry]) -> tuple[Any, str, list[Entry], str]:
        """Send the pull: the earlier unfinished pull of these files (resumed), else a new one.
        A resumed pull refused because its files changed is dropped and a new one asked."""
        plan = self._resumable(device_id, library, wanted)
        if plan is not None:
            earlier_id, share, manifest = plan
            await session.conn.send(Pull(library=library, share=share, files=_wanted(manifest)))
            reply = await session.conn.reply()
            if not (isinstance(reply, Failure) and reply.code == "changed"):
                return reply, share, manifest, earlier_id
            self._db.set_state(earlier_id, TransferState.FAILED, "its files changed on the device; pulled anew")
        share = "pull-" + secrets.token_hex(12)
        manifest = _fitting(library, share, wanted[:MAX_PULL_FILES])
        await session.conn.send(Pull(library=library, share=share, files=_wanted(manifest)))
        return await session.conn.reply(), share, manifest, secrets.token_hex(8)

    def _resumable(self, device_id: str, library: str, wanted: list[Entry]) -> tuple[str, str, list[Entry]] | None:
        """An earlier failed pull from this library whose missing files are all still wanted."""
        want = {(e.path, e.sha256) for e in wanted}
        origin = _origin(device_id, library)
        for record in reversed(self._db.list_transfers(direction=Direction.RECEIVE,
                                                       states=_RESUMABLE)):
            if record.signal_url != origin or record.share_id is None or self._tasks.is_running(record.id):
                continue
            files = self._db.files(record.id)
            missing = {(f.path, f.sha256) for f in files if f.final_path is None}
            if missing and missing <= want:
                manifest = [Entry(path=f.path, size=f.size, mtime_ns=0, sha256=f.sha256) for f in files]
                return record.id, record.share_id, manifest
        return None

    async def _receive(self, session: _Session, transfer_id: str, share: str, library: str) -> None:
        def route(name: str, detail: str) -> None:
            if self._on_route is not None:
                self._on_route(transfer_id, name, detail)

        with self._tasks.run(transfer_id) as running:
            path = await transfer_path(session.channel, session.auth, Role.ANSWERER, session.link.ice, route)
            try:
                outcome = await run_receiver(
                    path.transport, inbox=self._inbox, journal=self._db, transfer_id=transfer_id, expect_share=share,
                    report=lambda done, moved: self._db.set_progress(transfer_id, done, moved),
                    seal_key=frame_seal_key(session.auth, path), folder=library,
                    compression=session_codec(session.link.compress),
                )
            except BaseException:
                path.close()
                raise
            await path.aclose()
            self._db.set_state(transfer_id, TransferState.DONE)
            placed = [(f.final_path, f.size, f.sha256) for f in outcome.files if f.final_path is not None]
            for record in await trio.to_thread.run_sync(self._versions_of, placed):
                self._store.put_have(record)
            log.info("pull %s complete: %d file(s) from library %r", transfer_id, len(outcome.files), library)
        if running.cancelled:
            paused = getattr(running, "paused", False) and hasattr(TransferState, "PAUSED")
            self._db.set_state(transfer_id, TransferState.PAUSED if paused else TransferState.CANCELLED,
                               "paused; pull again to resume" if paused else CANCELLED_BY_OWNER)

    # -- what is already here ---------------------------------------------------------------------

    async def held(self, hashes: set[str]) -> set[str]:
        """Which of ``hashes`` this appliance holds: a file the journal placed in the inbox with
        that SHA-256, still there with its size, and (by its cached version, else read once)
        still those bytes."""
        candidates = [p for p in self._db.placed_files().values() if p.sha256 in hashes]
        cached = {p.final_path: self._store.have(p.final_path) for p in candidates}
        checked = await trio.to_thread.run_sync(self._check, [(p.final_path, p.size, p.sha256) for p in candidates],
                                                cached)
        found = set()
        for record, sha in checked:
            if record is not None:
                self._store.put_have(record)
            if sha is not None:
                found.add(sha)
        return found

    def _check(self, candidates: list[tuple[str, int, str]],
               cached: dict[str, HaveRecord | None]) -> list[tuple[HaveRecord | None, str | None]]:
        """(a fresh cache record or None, the sha256 if the file still holds it) per candidate.
        Runs in a worker thread."""
        out: list[tuple[HaveRecord | None, str | None]] = []
        done: set[str] = set()
        for final_path, size, sha in candidates:
            if sha in done:
                continue
            try:
                with self._inbox.open_file(final_path) as source:
                    fp = Fingerprint.of(os.fstat(source.fd))
                    if fp.size != size:
                        continue
                    known = cached.get(final_path)
                    if known is not None and (known.size, known.mtime_ns, known.inode) == (fp.size, fp.mtime_ns, fp.inode):
                        out.append((None, known.sha256 if known.sha256 == sha else None))
                    else:
                        actual = sha256_fd(source.fd)
                        out.append((HaveRecord(inbox_path=final_path, size=fp.size, mtime_ns=fp.mtime_ns,
                                               inode=fp.inode, sha256=actual), actual if actual == sha else None))
            except (OSError, UnsafeName):
                continue
            if out and out[-1][1] is not None:
                done.add(sha)
        return out

    def _versions_of(self, placed: list[tuple[str, int, str]]) -> list[HaveRecord]:
        """Cache records of files just received and verified (their version as they are now)."""
        records = []
        for final_path, size, sha in placed:
            try:
                with self._inbox.open_file(final_path) as source:
                    fp = Fingerprint.of(os.fstat(source.fd))
            except (OSError, UnsafeName):
                continue
            if fp.size == size:
                records.append(HaveRecord(inbox_path=final_path, size=fp.size, mtime_ns=fp.mtime_ns, inode=fp.inode,
                                          sha256=sha))
        return records


def _under(path: str, prefix: str) -> bool:
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _wanted(manifest: list[Entry]) -> tuple[Wanted, ...]:
    return tuple(Wanted(path=e.path, sha256=e.sha256) for e in manifest)


def _fitting(library: str, share: str, manifest: list[Entry]) -> list[Entry]:
    """The longest head of ``manifest`` whose pull message fits one frame."""
    while True:
        try:
            encode(Pull(library=library, share=share, files=_wanted(manifest)))
            return manifest
        except LocalProtocolError:
            manifest = manifest[: len(manifest) // 2]


def _refused(reply: object) -> ApplianceError:
    if isinstance(reply, Failure):
        status = {"not_found": 404, "changed": 409, "busy": 503}.get(reply.code, 502)
        code = "unknown_library" if reply.code == "not_found" else reply.code
        return ApplianceError(f"the device refused: {reply.message}", code=code, status=status)
    return ApplianceError(f"the device answered out of turn ({type(reply).__name__})", code="bad_peer", status=502)


def _entry_out(entry: Entry) -> dict[str, Any]:
    return {"path": entry.path, "size": entry.size, "mtime": entry.mtime_ns / 1e9, "sha256": entry.sha256}

