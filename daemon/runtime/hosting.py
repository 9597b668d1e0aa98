"""The sending side of the appliance: host every live share on a signaling server and serve joiners.

One signaling connection hosts all shares. Each joined session gets a task that runs the WebRTC
handshake and the sender. A new session for a share supersedes the share's previous one (the
receiver came back to resume; the old connection is dead or dying).

Every session authenticates its joiner before a byte of the share moves: by the share's code the
first time (SPAKE2), by the resume secret that first session left behind afterwards. A joiner that
committed to a wrong code burns it: the code is forgotten and, if nobody ever authenticated for
the share, the share is retired. So each code admits exactly one online guess.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

import trio

from daemon.ice import IceConfig
from daemon.peer import PeerError
from daemon.signaling import Hosted, SignalingClient, SignalSession, open_signaling
from daemon.state import Direction, ShareRecord, StateDB, TransferState
from daemon.storage import ShareSpool
from daemon.transfer.errors import TransferFailed, TransferInterrupted

from daemon.protocol.auth import AuthMode

from .authentication import Authenticated, AuthenticationFailed, Credentials
from .backoff import backoff_delay
from .fetching import RETRYABLE
from .sessions import send_over_session

__all__ = ["ShareHost", "SessionHandler"]

SessionHandler = Callable[[SignalSession], Awaitable[None]]

log = logging.getLogger("doorstep.host")


class ShareHost:
    """Keeps shares hosted and serves their receivers. Run :meth:`run` in a nursery with ``start``."""

    def __init__(self, *, signal_url: str, db: StateDB, spool: ShareSpool, ice: IceConfig,
                 codes: dict[str, tuple[str | None, float | None]], encrypt: bool = False, compress: bool = True,
                 on_retire: Callable[[ShareRecord], None] | None = None,
                 on_route: Callable[[str, str, str], None] | None = None) -> None:
        """``codes``: share id -> (code, expiry) of the codes issued for shares, kept (in memory) as
        long as the share lives: a joiner interrupted before it authenticated proves the code again.
        ``on_retire(share)`` runs once a share was retired (for the event stream); ``on_route(transfer
        id, route, detail)`` once per session, when its path is chosen (``direct`` or an ICE route)."""
        self._on_retire = on_retire
        self._on_route = on_route
        self.signal_url = signal_url
        self._codes = codes
        self.encrypt = encrypt
        self.compress = compress
        self._db = db
        self._spool = spool
        self._ice = ice
        self._client: SignalingClient | None = None
        self._connected = trio.Event()
        self._sessions: dict[str, trio.CancelScope] = {}
        self._standing: dict[str, tuple[str, SessionHandler]] = {}
        """Addresses that are not shares (the inbox address, pairing offers) and their handlers."""
        self._code_spent: set[str] = set()
        """Shares whose code authenticated a joiner in this run (codes are in memory only)."""

    async def host(self, share: ShareRecord, *, code: bool) -> Hosted:
        """Register ``share`` on the signaling server (with a fresh code if asked)."""
        with trio.fail_after(10):
            await self._connected.wait()
        assert self._client is not None
        return await self._client.host(share.share_id, share.host_key, code=code)

    async def host_address(self, address: str, handler: SessionHandler, *, code: bool) -> Hosted:
        """Host ``address`` (not a share) and hand each joined session to ``handler``; it stays
        hosted across reconnects (without a code) until :meth:`drop_address`."""
        self._standing[address] = (secrets.token_urlsafe(24), handler)
        with trio.fail_after(10):
            await self._connected.wait()
        assert self._client is not None
        return await self._client.host(address, self._standing[address][0], code=code)

    async def drop_address(self, address: str) -> None:
        if self._standing.pop(address, None) is not None and self._client is not None:
            try:
                await self._client.unhost(address)
            except RETRYABLE:
                pass

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected to the signaling server forever, reconnecting with backoff."""
        attempt = 0
        while True:
            try:
                async with open_signaling(self.signal_url, resume=True) as client, trio.open_nursery() as sessions:
                    for share in self._db.list_shares():
                        await client.host(share.share_id, share.host_key, code=False)
                    for address, (host_key, _handler) in list(self._standing.items()):
                        await client.host(address, host_key, code=False)
                    self._client = client
                    self._connected.set()
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
                    attempt = 0
                    async for session in client.incoming():
                        sessions.start_soon(self._serve, session)
            except RETRYABLE as exc:
                log.warning("signaling connection lost (%s); reconnecting", exc)
            finally:
                self._client = None
                self._connected = trio.Event()
            await trio.sleep(backoff_delay(attempt))
            attempt += 1

    async def _serve(self, session: SignalSession) -> None:
        standing = self._standing.get(session.share)
        if standing is not None:
            try:
                await standing[1](session)
            finally:
                await _leave_quietly(session)
            return
        share = self._db.get_share(session.share)
        if share is None:
            await session.leave()
            return
        previous = self._sessions.get(share.share_id)
        if previous is not None:
            previous.cancel()
        with trio.CancelScope() as scope:
            self._sessions[share.share_id] = scope
            try:
                await self._send(share, session)
            finally:
                if self._sessions.get(share.share_id) is scope:
                    del self._sessions[share.share_id]

    async def _send(self, share: ShareRecord, session: SignalSession) -> None:
        record = self._db.find_transfer(share.share_id, Direction.SEND)
        assert record is not None, "every share has its send transfer"
        if record.state is TransferState.PAUSED:  # the owner paused it: turn the receiver away until resumed
            log.info("share %s is paused; its receiver is turned away", record.id)
            await _leave_quietly(session)
            return
        self._db.set_state(record.id, TransferState.ACTIVE)

        def report(acked: int, moved: int) -> None:
            self._db.set_progress(record.id, acked, moved)

        def route(route: str, detail: str) -> None:
            if self._on_route is not None:
                self._on_route(record.id, route, detail)

        try:
            await send_over_session(
                session, self._ice, credentials=self._credentials(share.share_id),
                on_authenticated=lambda auth: self._authenticated(share.share_id, auth), encrypt=self.encrypt, compress=self.compress,
                on_route=route, share_id=share.share_id, files=share.files, share_dir=self._spool.open(share.share_id),
                report=report,
            )
        except AuthenticationFailed as exc:
            log.warning("share %s: a joiner failed to authenticate (%s)", record.id, exc)
            if exc.secret_tested:
                await self._burn_code(share.share_id, record.id)
        except TransferFailed as exc:
            log.warning("share %s failed: %s", record.id, exc)
            self._db.set_state(record.id, TransferState.FAILED, str(exc))
            await self.retire(share.share_id)
        except (TransferInterrupted, PeerError, *RETRYABLE) as exc:
            log.info("share %s interrupted (%s); waiting for the receiver to resume", record.id, exc)
            self._db.set_state(record.id, TransferState.RETRYING, str(exc))
        except Exception as exc:  # a bug: fail this transfer loudly, keep the daemon's others going
            log.exception("share %s hit an internal error", record.id)
            self._db.set_state(record.id, TransferState.FAILED, f"internal error: {exc!r}")
        else:
            self._db.set_progress(record.id, share.size)
            self._db.set_state(record.id, TransferState.DONE)
            await self.retire(share.share_id)
        finally:
            await _leave_quietly(session)

    def _credentials(self, share_id: str) -> Credentials:
        """Code (and, for a browser page, origin) while the code is live and unspent; resume once
        a receiver authenticated. We host on our own signaling server, which is the origin that
        served any page joining here, so origin mode is as safe as the page's trust in it."""
        passwords: dict[AuthMode, bytes] = {}
        code, _expires = self._codes.get(share_id, (None, None))
        code_live = code is not None and share_id not in self._code_spent
        if code_live:
            passwords[AuthMode.CODE] = code.encode()
        secret = self._db.secret("share", share_id)
        if secret is not None:
            passwords[AuthMode.RESUME] = secret
        return Credentials(passwords=passwords, origin=code_live)

    def _authenticated(self, share_id: str, auth: Authenticated) -> None:
        if auth.mode is AuthMode.CODE:
            self._db.set_secret("share", share_id, auth.key.resume_secret(share_id))
        if auth.mode in (AuthMode.CODE, AuthMode.ORIGIN):
            self._code_spent.add(share_id)  # from now on only the resume secret opens this share

    async def _burn_code(self, share_id: str, transfer_id: str) -> None:
        """A joiner tested a guess and lost: the code is spent; a share nobody got into is retired."""
        code, _expires = self._codes.pop(share_id, (None, None))
        if code is None:
            return
        log.warning("share %s: its code is burned after a failed authentication", transfer_id)
        if self._db.secret("share", share_id) is None:
            self._db.set_state(transfer_id, TransferState.FAILED,
                               "someone tried the code and failed to prove it; share the files again for a new code")
            await self.retire(share_id)

    def code_spent(self, share_id: str) -> bool:
        """True once the share's code authenticated a joiner (in this run): it opens nothing more."""
        return share_id in self._code_spent

    def cancel_session(self, share_id: str) -> bool:
        """Cut off the session serving ``share_id`` now, if there is one (the owner cancelled its
        transfer). True if there was one."""
        scope = self._sessions.get(share_id)
        if scope is None:
            return False
        scope.cancel()
        return True

    async def retire(self, share_id: str) -> None:
        """Stop hosting a finished or expired share and delete its files and record."""
        share = self._db.get_share(share_id)
        client = self._client
        if client is not None:
            try:
                await client.unhost(share_id)
            except RETRYABLE:
                pass
        self._db.remove_share(share_id)
        self._spool.remove(share_id)
        if share is not None and self._on_retire is not None:
            self._on_retire(share)


async def _leave_quietly(session: SignalSession) -> None:
    """Leave ``session`` (shielded, at most 2 s); a signaling connection already gone is fine."""
    with trio.move_on_after(2) as cleanup:
        cleanup.shield = True
        try:
            await session.leave()
        except RETRYABLE:
            pass
