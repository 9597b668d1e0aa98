"""Libraries: folders this appliance publishes to chosen paired devices, kept catalogued, browsed
and pulled over the ``library-<device id>`` address.

- **Publishing.** The owner names a folder and the devices that may see it
  (``POST /api/v1/libraries``). Its catalogue (path, size, mtime, SHA-256 of every regular file)
  lives in the state database (:class:`daemon.state.library.LibraryStore`).
- **Upkeep.** One watcher per library (:func:`daemon.watch.watch_outbox`): a file is hashed once
  it has settled, in a worker thread, unless the catalogue already holds its version (size,
  mtime, inode), at this path or at another (a rename); files that vanish are dropped. At start
  the catalogue is reconciled with the folder (files deleted while the daemon was down go).
  Temporary names, dotfiles and names the library protocol cannot carry are never listed; symlinks
  are never followed.
- **Serving.** A paired, approved device joins ``library-<our id>`` on our signaling server and
  authenticates in ``device`` mode (an unpaired or pending device is refused; nothing is held).
  It then asks (:mod:`daemon.protocol.library`): which libraries it may see, pages of a
  catalogue, or a pull of chosen files. A library not published to that device does not exist
  for it. A pull is answered by the transfer protocol on the same channel, this side sending,
  each file opened in place and checked to be the catalogued version (a file changed since it
  was listed fails the transfer; the puller lists again).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import trio

from daemon.facade import ApplianceError
from daemon.ice import IceConfig
from daemon.peer import Role, open_data_channel
from daemon.protocol import FileEntry
from daemon.protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from daemon.protocol.frames import ControlFrame, FrameDecoder
from daemon.protocol.library import (
    MAX_LIBRARIES, MAX_PAGE, Bye, Entries, Entry, Failure, LibraryInfo, Libraries, ListEntries, ListLibraries, Pull,
    Reply, Request, Sending, check_library_name, check_relpath, decode_reply, decode_request, encode,
)
from daemon.signaling import SignalSession
from daemon.state import DeviceStatus
from daemon.state.library import CatalogueEntry, LibraryRecord, LibraryStore
from daemon.storage import Fingerprint, OutboxDir, SourceChanged, SourceFile, UnsafePath
from daemon.storage.hashing import sha256_fd
from daemon.transfer import MessageTransport, run_sender
from daemon.transfer.errors import TransferFailed, TransferInterrupted
from daemon.transfer.transport import send_bytes
from daemon.watch import Ready, is_ignored, watch_outbox

from .authentication import Authenticated, AuthenticationFailed, Credentials, authenticate
from .devices import DeviceBook
from .fetching import RETRYABLE
from .sessions import CONTROL_RECEIVE_LIMIT, OnRoute, choose_path, session_codec, frame_seal_key, session_ice

__all__ = ["LibraryService", "Link", "ControlLink", "library_address", "transfer_path", "LIBRARY_ORIGIN"]

log = logging.getLogger("doorstep.library")

LIBRARY_ORIGIN = "library:"
"""A pulled transfer's origin (``signal_url`` column): ``library:<device id>/<library name>``."""
IDLE_TIMEOUT = 60.0
"""A browsing connection that asks nothing for this long is closed."""
MAX_REQUESTS = 1000
"""Requests on one connection (pages of a large catalogue, then a pull)."""
HASH_WORKERS = 2
RECENTLY_GONE = 4096
"""Versions of vanished files remembered, to recognise them when they reappear renamed."""
WATCH_RETRY = 30.0
"""A library folder that cannot be watched (gone, unreadable) is tried again after this long."""


def library_address(device_id: str) -> str:
    """The signaling address where a daemon serves its libraries to paired devices."""
    return f"library-{device_id}"


@dataclass(frozen=True, slots=True)
class Link:
    """How this appliance connects right now (settings may change between sessions)."""

    ice: IceConfig
    encrypt: bool
    compress: bool


def listable(relpath: str) -> bool:
    """A path the catalogue may list: not ignored (temporary, hidden) and carried by the protocol."""
    if is_ignored(relpath):
        return False
    try:
        check_relpath(relpath)
    except LocalProtocolError:
        return False
    return True


class ControlLink:
    """Library messages over an authenticated channel: one whole CONTROL frame each, nothing
    trailing (the transfer protocol that may follow starts on its own decoder)."""

    def __init__(self, channel: MessageTransport) -> None:
        self._channel = channel
        self._decoder = FrameDecoder()

    async def send(self, message: Request | Reply) -> None:
        await send_bytes(self._channel, encode(message))

    async def _body(self) -> bytes:
        while (frame := self._decoder.next_frame()) is None:
            try:
                data = await self._channel.receive()
            except trio.EndOfChannel:
                raise TransferInterrupted("the peer closed the connection") from None
            self._decoder.receive_data(data)
        if not isinstance(frame, ControlFrame) or self._decoder.buffered:
            raise RemoteProtocolError("library messages are whole CONTROL frames", code="bad_frame")
        return bytes(frame.body)

    async def request(self) -> Request:
        return decode_request(await self._body())

    async def reply(self) -> Reply:
        return decode_reply(await self._body())


async def transfer_path(channel: MessageTransport, auth: Authenticated, role: Role, ice: IceConfig,
                        on_route: OnRoute) -> Any:
    """The direct-path negotiation after a pull was accepted, as every session runs it."""
    return await choose_path(channel, auth, role, ice, on_route)


def _bad(message: str, code: str = "bad_library") -> ApplianceError:
    return ApplianceError(message, code=code)


class LibraryService:
    """Published libraries, their live catalogues, and the server side of browsing and pulling.
    Start :meth:`run` in a nursery (``await nursery.start(service.run)``)."""

    def __init__(self, *, store: LibraryStore, devices: DeviceBook, credentials: Callable[[], Credentials],
                 link: Callable[[], Link], settle: float = 1.0, rescan_every: float = 30.0) -> None:
        """``credentials()``: this device's device-mode credentials as a responder (only trusted
        devices admitted); ``link()``: ICE, encryption and compression for a session."""
        self._store = store
        self._devices = devices
        self._credentials = credentials
        self._link = link
        self._settle = settle
        self._rescan_every = rescan_every
        self._nursery: trio.Nursery | None = None
        self._watchers: dict[str, trio.CancelScope] = {}
        self._dirs: dict[str, OutboxDir] = {}
        self._pending: dict[tuple[str, str], Fingerprint] = {}
        """(library, path) -> version waiting to be hashed."""
        self._recently_gone: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()
        """(library, size, mtime_ns, inode) -> SHA-256 of files that just vanished: the watcher
        reports a rename as the old path gone at once and the new one only once it settled."""
        self._wake = trio.Event()
        self._limiter = trio.CapacityLimiter(HASH_WORKERS)
        self.hashed = 0
        """Files hashed since start (a file found in the cache is not counted)."""

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for _ in range(HASH_WORKERS):
                nursery.start_soon(self._hasher)
            for record in self._store.list_libraries():
                await nursery.start(self._watch, record)
            task_status.started()
            await trio.sleep_forever()

    # -- the owner's side -------------------------------------------------------------------------

    async def publish(self, name: str, path: str, devices: Sequence[str]) -> dict[str, Any]:
        """Publish the folder ``path`` as ``name`` to ``devices`` (paired device ids); publishing
        an existing name again replaces its folder and devices. Raises ApplianceError."""
        try:
            check_library_name(name)
        except LocalProtocolError:
            raise _bad("a library name is 1-64 letters, digits, spaces or _.- (starting with a letter or digit, "
                       "not ending with a space or dot)") from None
        if not devices or len(devices) > 256 or len(set(devices)) != len(devices):
            raise _bad("devices: one or more distinct ids of paired devices")
        for device_id in devices:  # before the folder is looked at: only for devices the owner paired
            record = self._devices.get(device_id)  # raises UnknownDevice (404)
            if record.status is not DeviceStatus.APPROVED:
                raise _bad(f"device {device_id} is not an approved paired device", code="unknown_device")
        if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path or len(path) > 4096:
            raise _bad("the folder must be an absolute path")
        folder = os.path.realpath(path)
        if not os.path.isdir(folder):
            raise _bad(f"no folder at {path[:200]!r}", code="not_found")
        if self._store.get_library(name) is None and len(self._store.list_libraries()) >= MAX_LIBRARIES:
            raise _bad(f"at most {MAX_LIBRARIES} libraries", code="too_many")
        await self._stop_watch(name)
        record = self._store.put_library(name, folder, devices)
        assert self._nursery is not None, "LibraryService.run is not running"
        await self._nursery.start(self._watch, record)
        log.info("library %r (%s) published to %d device(s)", name, folder, len(devices))
        return self.describe(record)

    async def unpublish(self, name: str) -> None:
        if self._store.get_library(name) is None:
            raise ApplianceError(f"no library {name[:64]!r}", code="unknown_library", status=404)
        await self._stop_watch(name)
        self._store.remove_library(name)
        log.info("library %r unpublished", name)

    def libraries(self) -> list[dict[str, Any]]:
        return [self.describe(r) for r in self._store.list_libraries()]

    def library(self, name: str) -> dict[str, Any]:
        record = self._store.get_library(name)
        if record is None:
            raise ApplianceError(f"no library {name[:64]!r}", code="unknown_library", status=404)
        return self.describe(record)

    def describe(self, record: LibraryRecord) -> dict[str, Any]:
        files, size = self._store.totals(record.name)
        pending = sum(1 for library, _path in self._pending if library == record.name)
        return {"name": record.name, "path": record.path, "devices": list(record.devices), "files": files,
                "size": size, "pending": pending, "watching": record.name in self._dirs}

    def catalogue(self, name: str, prefix: str = "", *, after: str = "", limit: int = MAX_PAGE) -> list[CatalogueEntry]:
        """This side's own view of a catalogue (the owner's API)."""
        if self._store.get_library(name) is None:
            raise ApplianceError(f"no library {name[:64]!r}", code="unknown_library", status=404)
        return self._store.entries(name, prefix=prefix.strip("/"), after=after, limit=limit)

    # -- catalogue upkeep -------------------------------------------------------------------------

    async def _watch(self, record: LibraryRecord, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        name = record.name
        with trio.CancelScope() as scope:
            self._watchers[name] = scope
            started = False
            try:
                while True:
                    folder: OutboxDir | None = None
                    try:
                        with OutboxDir(record.path) as folder:
                            self._dirs[name] = folder
                            await self._reconcile(name, folder)
                            if not started:
                                task_status.started()
                                started = True
                            await watch_outbox(
                                record.path, on_ready=partial(self._ready, name), on_gone=partial(self._gone, name),
                                settle=self._settle, rescan_every=self._rescan_every, ignore=is_ignored,
                            )
                    except OSError as exc:
                        log.warning("library %r: cannot watch %s (%s); trying again in %.0f s", name, record.path,
                                    exc, WATCH_RETRY)
                    finally:
                        if folder is not None and self._dirs.get(name) is folder:  # not a successor's
                            del self._dirs[name]
                    if not started:
                        task_status.started()
                        started = True
                    await trio.sleep(WATCH_RETRY)
            finally:
                if self._watchers.get(name) is scope:
                    del self._watchers[name]

    async def _stop_watch(self, name: str) -> None:
        scope = self._watchers.pop(name, None)
        if scope is not None:
            scope.cancel()  # it unwinds by itself (closing its folder); a successor may start now
        self._dirs.pop(name, None)
        for key in [k for k in self._pending if k[0] == name]:
            del self._pending[key]

    async def _reconcile(self, name: str, folder: OutboxDir) -> None:
        """Drop catalogue rows of files no longer there (or changed: they come back hashed once
        the watcher reports them settled)."""
        found = await trio.to_thread.run_sync(partial(folder.scan, skip_dir=is_ignored))
        stale = [path for path, version in self._store.versions(name).items()
                 if path not in found or (found[path].size, found[path].mtime_ns, found[path].inode) != version]
        if stale:
            self._store.remove_entries(name, stale)
            log.info("library %r: %d file(s) changed or went while the daemon was down", name, len(stale))

    async def _ready(self, name: str, batch: Sequence[Ready]) -> None:
        """Files that settled: cached when their version is known, else queued for hashing."""
        for ready in batch:
            if not listable(ready.path):
                continue
            fp = ready.fingerprint
            known = self._store.entry(name, ready.path)
            if known is not None and known.version == (fp.size, fp.mtime_ns, fp.inode):
                continue
            sha = (self._store.find_version(name, fp.size, fp.mtime_ns, fp.inode)
                   or self._recently_gone.get((name, fp.size, fp.mtime_ns, fp.inode)))
            if sha is not None:  # renamed (or hard-linked) within the library: same bytes
                self._store.put_entry(name, CatalogueEntry(path=ready.path, size=fp.size, mtime_ns=fp.mtime_ns,
                                                           inode=fp.inode, sha256=sha))
                continue
            self._pending[(name, ready.path)] = fp
        if self._pending:
            self._wake.set()

    async def _gone(self, name: str, paths: Sequence[str]) -> None:
        for path in paths:
            self._pending.pop((name, path), None)
            for entry in self._store.entries(name, prefix=path):
                self._recently_gone[(name, *entry.version)] = entry.sha256
                while len(self._recently_gone) > RECENTLY_GONE:
                    self._recently_gone.popitem(last=False)
        if self._store.remove_entries(name, paths):
            log.debug("library %r: %d file(s) gone", name, len(paths))

    async def _hasher(self) -> None:
        while True:
            if not self._pending:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            (name, path), fp = next(iter(self._pending.items()))
            del self._pending[(name, path)]
            folder = self._dirs.get(name)
            if folder is None:
                continue
            try:
                sha = await trio.to_thread.run_sync(_hash_version, folder, path, fp, limiter=self._limiter)
            except (OSError, ValueError) as exc:  # changed, gone, unreadable, folder closed
                log.debug("library %r: not hashed %r: %s", name, path, exc)
                continue
            if self._dirs.get(name) is not folder or (name, path) in self._pending:
                continue  # unpublished meanwhile, or a newer version is queued
            self.hashed += 1
            self._store.put_entry(name, CatalogueEntry(path=path, size=fp.size, mtime_ns=fp.mtime_ns, inode=fp.inode,
                                                       sha256=sha))

    # -- serving paired devices -------------------------------------------------------------------

    def _visible(self, device_id: str) -> list[LibraryRecord]:
        return [r for r in self._store.list_libraries() if device_id in r.devices]

    def _published(self, name: str, device_id: str) -> LibraryRecord | None:
        record = self._store.get_library(name)
        return record if record is not None and device_id in record.devices else None

    async def serve(self, session: SignalSession) -> None:
        """Serve one browsing device on the library address (a standing-address handler)."""
        link = self._link()
        try:
            async with open_data_channel(session, Role.OFFERER, session_ice(session, link.ice),
                                         receive_limit=CONTROL_RECEIVE_LIMIT) as channel:
                # holds=None: an unpaired or pending device is refused outright, never held for approval
                creds = replace(self._credentials(), holds=None, seal=link.encrypt)
                auth = await authenticate(channel, Role.OFFERER.value, creds)
                assert auth.peer_device_key is not None
                record = self._devices.by_key(auth.peer_device_key)
                if record is None or record.status is not DeviceStatus.APPROVED:
                    return
                self._devices.touch(record.device_id)
                await self._answer(ControlLink(channel), channel, auth, record.device_id, link)
        except AuthenticationFailed as exc:
            log.warning("library: a device failed to authenticate: %s", exc)
        except (ProtocolError, TransferFailed, trio.TooSlowError, *RETRYABLE) as exc:
            log.info("library session ended: %s", exc)

    async def _answer(self, conn: ControlLink, channel: MessageTransport, auth: Authenticated, device_id: str,
                      link: Link) -> None:
        for _ in range(MAX_REQUESTS):
            try:
                with trio.fail_after(IDLE_TIMEOUT):
                    request = await conn.request()
            except RemoteProtocolError as exc:
                await conn.send(Failure(code="bad_request", message=str(exc)[:1000]))
                return
            match request:
                case Bye():
                    return
                case ListLibraries():
                    infos = []
                    for record in self._visible(device_id):
                        files, size = self._store.totals(record.name)
                        infos.append(LibraryInfo(name=record.name, files=files, size=size))
                    await conn.send(Libraries(libraries=tuple(infos)))
                case ListEntries():
                    await conn.send(self._page(request, device_id))
                case Pull():
                    await self._pull(conn, channel, auth, request, device_id, link)
                    return

    def _page(self, request: ListEntries, device_id: str) -> Reply:
        if self._published(request.library, device_id) is None:
            return Failure(code="not_found", message=f"no library {request.library!r} here")
        rows = self._store.entries(request.library, prefix=request.prefix, after=request.after,
                                   limit=request.limit + 1)
        more = len(rows) > request.limit
        entries = tuple(Entry(path=r.path, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256)
                        for r in rows[:request.limit])
        while True:
            page = Entries(library=request.library, entries=entries, more=more)
            try:
                encode(page)
            except LocalProtocolError:  # long paths: a page that fits
                entries, more = entries[: len(entries) // 2], True
                continue
            return page

    async def _pull(self, conn: ControlLink, channel: MessageTransport, auth: Authenticated, request: Pull,
                    device_id: str, link: Link) -> None:
        library = self._published(request.library, device_id)
        folder = self._dirs.get(request.library)
        if library is None:
            await conn.send(Failure(code="not_found", message=f"no library {request.library!r} here"))
            return
        if folder is None:
            await conn.send(Failure(code="busy", message="the library's folder cannot be read right now"))
            return
        rows: list[CatalogueEntry] = []
        changed = []
        for wanted in request.files:
            row = self._store.entry(request.library, wanted.path)
            if row is None or row.sha256 != wanted.sha256:
                changed.append(wanted.path)
            else:
                rows.append(row)
        if changed:
            await conn.send(Failure(code="changed", message=f"{len(changed)} file(s) changed or went since they "
                                                            f"were listed, e.g. {changed[0][:200]!r}; list again"))
            return
        await conn.send(Sending(share=request.share, count=len(rows), size=sum(r.size for r in rows)))
        log.info("library %r: sending %d file(s) to device %s", request.library, len(rows), device_id)
        path = await transfer_path(channel, auth, Role.OFFERER, link.ice, lambda _route, _detail: None)
        entries = [FileEntry(path=r.path, size=r.size, sha256=r.sha256) for r in rows]

        def open_source(index: int) -> SourceFile:
            row = rows[index]
            try:
                return folder.open_source(row.path, Fingerprint(size=row.size, mtime_ns=row.mtime_ns, inode=row.inode))
            except (SourceChanged, FileNotFoundError, UnsafePath) as exc:
                raise TransferFailed(f"{row.path!r} changed since it was listed: {exc}") from None

        try:
            await run_sender(path.transport, request.share, entries, open_source, lambda _acked, _moved: None,
                             seal_key=frame_seal_key(auth, path), compression=session_codec(link.compress))
        except BaseException:
            path.close()
            raise
        await path.aclose()
        if hasattr(channel, "wait_flushed"):
            await channel.wait_flushed()


def _hash_version(folder: OutboxDir, path: str, fp: Fingerprint) -> str:
    """SHA-256 of the file at ``path`` if it is version ``fp`` before and after reading it.
    Raises ``OSError`` (``SourceChanged`` when it changed)."""
    with folder.open_source(path, fp) as source:
        sha = sha256_fd(source.fd)
        if Fingerprint.of(os.fstat(source.fd)) != fp:
            raise SourceChanged(f"{path!r} changed while being hashed")
    return sha

