"""One transfer attempt over one signaling session: WebRTC handshake, authentication, then the
transfer driver. Nothing about the share crosses the channel before authentication succeeded.

Shared by the daemon and the standalone CLI, which differ only in where state and files live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from daemon.ice import IceConfig
from daemon.peer import Role, SignalChannel, open_data_channel
from daemon.protocol import FileEntry
from daemon.state import FileRecord, StateDB
from daemon.storage import Inbox, ShareDir
from daemon.transfer import ReceiveOutcome, run_receiver, run_sender
from daemon.transfer.receiving import ReceiveReport, receive_limit
from daemon.transfer.sending import SendReport

from .authentication import Authenticated, Credentials, authenticate

__all__ = ["send_over_session", "receive_over_session", "session_ice", "CONTROL_RECEIVE_LIMIT"]

log = logging.getLogger("doorstep.session")

# A sender receives only small control frames (acks): a few MiB of queue is plenty.
CONTROL_RECEIVE_LIMIT = 4 * 1024 * 1024


OnAuthenticated = Callable[[Authenticated], None]


def session_ice(signal: SignalChannel, ice: IceConfig) -> IceConfig:
    """``ice`` plus the STUN/TURN servers the signaling server handed out for this session
    (``SignalSession.ice_servers``; a channel without them adds nothing)."""
    servers = tuple(getattr(signal, "ice_servers", ()))
    return IceConfig(addresses=ice.addresses, servers=ice.servers + servers) if servers else ice


def _seal_key(auth: Authenticated) -> bytes | None:
    """The DATA-frame key of this session when app-layer encryption is on (either side asked)."""
    log.info("peer authenticated (%s); %s", auth.mode, "sealed DATA frames" if auth.seal else "DTLS only")
    return auth.key.derive("doorstep/v1/frames") if auth.seal else None


async def send_over_session(
    signal: SignalChannel,
    ice: IceConfig,
    *,
    credentials: Credentials,
    on_authenticated: OnAuthenticated,
    role: Role = Role.OFFERER,
    encrypt: bool = False,
    share_id: str,
    files: tuple[FileRecord, ...],
    share_dir: ShareDir,
    report: SendReport,
) -> None:
    """Connect over ``signal`` (as ``role``: the host offers, a pushing joiner answers),
    authenticate the peer, and send the share's files.

    ``on_authenticated`` runs once the peer proved itself, before any file byte moves. Raises
    AuthenticationFailed (a TransferFailed) when it did not.
    """
    entries = [FileEntry(path=f.path, size=f.size, sha256=f.sha256) for f in files]

    def open_source(index: int):
        return share_dir.open_source(files[index].path)

    async with open_data_channel(signal, role, session_ice(signal, ice), receive_limit=CONTROL_RECEIVE_LIMIT) as channel:
        auth = await authenticate(channel, role.value, replace(credentials, seal=encrypt))
        on_authenticated(auth)
        await run_sender(channel, share_id, entries, open_source, report, seal_key=_seal_key(auth))
        await channel.wait_flushed()


async def receive_over_session(
    signal: SignalChannel,
    ice: IceConfig,
    *,
    credentials: Credentials,
    on_authenticated: OnAuthenticated,
    role: Role = Role.ANSWERER,
    encrypt: bool = False,
    placement: Callable[[Authenticated], tuple[bool, str]] | None = None,
    journal_for: Callable[[str], str] | None = None,
    inbox: Inbox,
    journal: StateDB,
    transfer_id: str,
    expect_share: str | None,
    report: ReceiveReport,
) -> ReceiveOutcome:
    """Answer the sharer's data channel over ``signal``, authenticate, and receive into ``inbox``.

    ``credentials`` name the mode (code or resume); ``on_authenticated`` runs before the offer is read.
    ``placement(auth)`` -> (place, folder): whether verified files go into the inbox now (False:
    they are held for approval) and under which subfolder; default (True, "").
    """
    async with open_data_channel(signal, role, session_ice(signal, ice), receive_limit=receive_limit(262144)) as channel:
        auth = await authenticate(channel, role.value, replace(credentials, seal=encrypt))
        on_authenticated(auth)
        place, folder = placement(auth) if placement is not None else (True, "")
        outcome = await run_receiver(
            channel, inbox=inbox, journal=journal, transfer_id=transfer_id, expect_share=expect_share, report=report,
            seal_key=_seal_key(auth), place=place, folder=folder, journal_for=journal_for,
        )
        await channel.wait_flushed()
        return outcome

