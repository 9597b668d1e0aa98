"""Fetch a share by code (or resume it by share id) until it is complete, retrying what can be retried.

Used by the daemon (``POST /api/v1/receive`` and resume at start-up) and by ``doorstep receive``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from trio_websocket import ConnectionClosed, HandshakeError

from daemon.ice import IceConfig
from daemon.peer import NoRoute, PeerError
from daemon.signaling import JoinFailed, SignalingError, open_signaling
from daemon.state import StateDB, TransferState
from daemon.storage import Inbox
from daemon.transfer.errors import TransferFailed, TransferInterrupted
from daemon.transfer.receiving import ReceiveOutcome, ReceiveReport

from daemon.protocol.auth import AuthMode

from .authentication import Authenticated, Credentials, ModeRefused
from .backoff import backoff_delay
from .sessions import OnRoute, receive_over_session

__all__ = ["Fetch", "fetch", "RETRYABLE", "MAX_JOIN_FAILURES"]

log = logging.getLogger("doorstep.fetch")

RETRYABLE = (TransferInterrupted, PeerError, SignalingError, ConnectionClosed, HandshakeError, OSError)
MAX_JOIN_FAILURES = 8  # the sharer stays unreachable over ~2 minutes of backoff: give up


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch:
    """What to fetch: our journal id, where to signal, and a code (first time) or share id (resume)."""

    transfer_id: str
    signal_url: str
    code: str | None = None
    share_id: str | None = None
    encrypt: bool = False
    compress: bool = True
    max_no_route: int = 3
    """Attempts in a row that find no network path to the sharer before the fetch fails for good
    (the CLI, which a person waits for, gives up after the first)."""


async def fetch(
    job: Fetch,
    *,
    inbox: Inbox,
    journal: StateDB,
    ice: IceConfig,
    report: ReceiveReport,
    on_route: OnRoute | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> ReceiveOutcome | None:
    """Run attempts until the transfer completes (returns the outcome) or fails for good (returns None).

    ``task_status.started(share_id)`` fires once the first join succeeded; any error before that
    propagates to the starter (a wrong code surfaces as JoinFailed at once). Later errors are retried
    with backoff from durable offsets; a persistent failure is journaled as FAILED. ``on_route``
    hears the route of each attempt (``direct``, ``host``, ``relay``...).
    """
    share_id, code = job.share_id, job.code
    started = share_id is not None  # a resume has no starter waiting: every error is retried
    attempt = join_failures = no_route = 0
    while True:
        try:
            async with open_signaling(job.signal_url, resume=True) as signal:
                session = await (signal.join(share=share_id) if share_id else signal.join(code=code))
                share_id, code = session.share, None
                journal.set_share_id(job.transfer_id, share_id)
                if not started:
                    task_status.started(share_id)
                started = True
                journal.set_state(job.transfer_id, TransferState.ACTIVE)
                join_failures = 0
                outcome = await receive_over_session(
                    session, ice, credentials=_credentials(journal, job), on_authenticated=_remember(journal, job, share_id), encrypt=job.encrypt, compress=job.compress,
                    inbox=inbox, journal=journal, transfer_id=job.transfer_id, expect_share=share_id, report=report,
                    **({"on_route": on_route} if on_route is not None else {}),
                )
        except ModeRefused as exc:
            if started and job.code is not None and journal.secret("transfer", job.transfer_id) is not None:
                # The sharer never stored the resume secret (cut off mid-step): prove the code again.
                journal.forget_secret("transfer", job.transfer_id)
                continue
            if not started:
                raise
            journal.set_state(job.transfer_id, TransferState.FAILED, str(exc))
            return None
        except TransferFailed as exc:
            if not started:
                raise
            journal.set_state(job.transfer_id, TransferState.FAILED, str(exc))
            log.warning("transfer %s failed: %s", job.transfer_id, exc)
            return None
        except JoinFailed:
            if not started:
                raise
            join_failures += 1
            if join_failures >= MAX_JOIN_FAILURES:
                journal.set_state(job.transfer_id, TransferState.FAILED, "the sharer is no longer reachable")
                return None
            await _pause(journal, job.transfer_id, attempt, "waiting for the sharer to come back")
        except NoRoute as exc:
            if not started:
                raise
            no_route += 1
            if no_route >= job.max_no_route:
                journal.set_state(job.transfer_id, TransferState.FAILED, str(exc))
                log.warning("transfer %s failed: %s", job.transfer_id, exc)
                return None
            await _pause(journal, job.transfer_id, attempt, str(exc))
        except RETRYABLE as exc:
            if not started:
                raise
            await _pause(journal, job.transfer_id, attempt, str(exc) or type(exc).__name__)
        except Exception as exc:  # a bug: fail this transfer loudly, keep the daemon's others going
            if not started:
                raise
            log.exception("transfer %s hit an internal error", job.transfer_id)
            journal.set_state(job.transfer_id, TransferState.FAILED, f"internal error: {exc!r}")
            return None
        else:
            inbox.discard(outcome.share_id)
            journal.set_state(job.transfer_id, TransferState.DONE)
            return outcome
        attempt += 1


def _credentials(journal: StateDB, job: Fetch) -> Credentials:
    """Resume with the secret of an earlier authenticated attempt, else prove the code."""
    secret = journal.secret("transfer", job.transfer_id)
    if secret is not None:
        return Credentials(mode=AuthMode.RESUME, passwords={AuthMode.RESUME: secret})
    if job.code is None:
        raise TransferFailed("this transfer never authenticated its sharer and its code is gone; fetch it again")
    return Credentials(mode=AuthMode.CODE, passwords={AuthMode.CODE: job.code.encode()})


def _remember(journal: StateDB, job: Fetch, share_id: str):
    def on_authenticated(auth: Authenticated) -> None:
        if auth.mode is AuthMode.CODE:  # resumes keep the first session's secret, as the sharer does
            journal.set_secret("transfer", job.transfer_id, auth.key.resume_secret(share_id))

    return on_authenticated


async def _pause(journal: StateDB, transfer_id: str, attempt: int, reason: str) -> None:
    log.info("transfer %s interrupted (%s); retrying", transfer_id, reason)
    journal.set_state(transfer_id, TransferState.RETRYING, reason)
    await trio.sleep(backoff_delay(attempt))
