"""The sending side of the appliance: host every live share on a signaling server and serve joiners.

One signaling connection hosts all shares. Each joined session gets a task that runs the WebRTC
handshake and the sender. A new session for a share supersedes the share's previous one (the
receiver came back to resume; the old connection is dead or dying).
"""

from __future__ import annotations

import logging

import trio

from daemon.ice import IceConfig
from daemon.peer import PeerError
from daemon.signaling import Hosted, SignalingClient, SignalSession, open_signaling
from daemon.state import Direction, ShareRecord, StateDB, TransferState
from daemon.storage import ShareSpool
from daemon.transfer.errors import TransferFailed, TransferInterrupted

from .backoff import backoff_delay
from .fetching import RETRYABLE
from .sessions import send_over_session

__all__ = ["ShareHost"]

log = logging.getLogger("doorstep.host")


class ShareHost:
    """Keeps shares hosted and serves their receivers. Run :meth:`run` in a nursery with ``start``."""

    def __init__(self, *, signal_url: str, db: StateDB, spool: ShareSpool, ice: IceConfig) -> None:
        self.signal_url = signal_url
        self._db = db
        self._spool = spool
        self._ice = ice
        self._client: SignalingClient | None = None
        self._connected = trio.Event()
        self._sessions: dict[str, trio.CancelScope] = {}

    async def host(self, share: ShareRecord, *, code: bool) -> Hosted:
        """Register ``share`` on the signaling server (with a fresh code if asked)."""
        with trio.fail_after(10):
            await self._connected.wait()
        assert self._client is not None
        return await self._client.host(share.share_id, share.host_key, code=code)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected to the signaling server forever, reconnecting with backoff."""
        attempt = 0
        while True:
            try:
                async with open_signaling(self.signal_url, resume=True) as client, trio.open_nursery() as sessions:
                    for share in self._db.list_shares():
                        await client.host(share.share_id, share.host_key, code=False)
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
        self._db.set_state(record.id, TransferState.ACTIVE)

        def report(acked: int, moved: int) -> None:
            self._db.set_progress(record.id, acked, moved)

        try:
            await send_over_session(
                session, self._ice, share_id=share.share_id, files=share.files,
                share_dir=self._spool.open(share.share_id), report=report,
            )
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
            with trio.move_on_after(2) as cleanup:
                cleanup.shield = True
                try:
                    await session.leave()
                except RETRYABLE:
                    pass

    async def retire(self, share_id: str) -> None:
        """Stop hosting a finished or expired share and delete its files and record."""
        client = self._client
        if client is not None:
            try:
                await client.unhost(share_id)
            except RETRYABLE:
                pass
        self._db.remove_share(share_id)
        self._spool.remove(share_id)
