"""One transfer attempt over one signaling session: WebRTC handshake, authentication, the direct-path
negotiation, then the transfer driver. Nothing about the share crosses the channel before
authentication succeeded.

The transfer runs over the direct TCP path when both sides allow it (``IceConfig.direct``, config
``transfer.direct``) and one side reaches the other within ``DIRECT_TIMEOUT``; otherwise over the
data channel, as before. On the direct path DATA frames are not sealed again when
``transfer.encrypt`` is on: the whole TCP stream is already secretstream-encrypted under keys
derived from the session key (``daemon.direct``), which gives what sealed frames give on the data
channel (confidentiality and integrity end to end, bound to the authenticated peers). A broken
direct connection fails the attempt like a broken data channel; the retry resumes from the
durable offsets, over whichever path the new session finds.

Shared by the daemon and the standalone CLI, which differ only in where state and files live.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from daemon.direct import DirectPath, negotiate_direct
from daemon.ice import IceConfig
from daemon.peer import Role, SignalChannel, open_data_channel
from daemon.protocol import FileEntry
from daemon.protocol.auth import AuthMode
from daemon.state import FileRecord, StateDB
from daemon.storage import Inbox, ShareDir
from daemon.transfer import MessageTransport, ReceiveOutcome, run_receiver, run_sender
from daemon.transfer.receiving import ReceiveReport, receive_limit
from daemon.transfer.sending import SendReport
from daemon.transfer.zstd_codec import ZstdCompression

from .authentication import Authenticated, Credentials, authenticate

__all__ = ["send_over_session", "receive_over_session", "session_ice", "choose_path", "frame_seal_key", "session_codec",
           "CONTROL_RECEIVE_LIMIT", "OnRoute"]

log = logging.getLogger("doorstep.session")

# A sender receives only small control frames (acks): a few MiB of queue is plenty.
CONTROL_RECEIVE_LIMIT = 4 * 1024 * 1024


OnAuthenticated = Callable[[Authenticated], None]
OnRoute = Callable[[str, str], None]
"""Called once per attempt, before the transfer starts, with the route it takes (``direct``, or
the data channel's ICE route: ``host``, ``srflx``, ``prflx``, ``relay``) and its detail."""


def _ignore_route(route: str, detail: str) -> None:
    pass


SHARED_KEY_MODES = frozenset({AuthMode.CODE, AuthMode.RESUME, AuthMode.PAIR, AuthMode.DEVICE})
"""Authentication modes after which both sides hold one session key: the direct path is
negotiated after these only (a browser page, say, proves nothing in-band and speaks no TCP)."""


def session_ice(signal: SignalChannel, ice: IceConfig) -> IceConfig:
    """``ice`` plus the STUN/TURN servers the signaling server handed out for this session
    (``SignalSession.ice_servers``; a channel without them adds nothing)."""
    servers = tuple(getattr(signal, "ice_servers", ()))
    return replace(ice, servers=ice.servers + servers) if servers else ice


def frame_seal_key(auth: Authenticated, path: DirectPath) -> bytes | None:
    """The DATA-frame key of this session when app-layer encryption is on (either side asked) and
    the transfer stays on the data channel; None on the direct path, whose stream is sealed whole."""
    if path.direct is not None:
        log.info("peer authenticated (%s); direct path, a sealed TCP stream", auth.mode)
        return None
    log.info("peer authenticated (%s); %s", auth.mode, "sealed DATA frames" if auth.seal else "DTLS only")
    return auth.key.derive("doorstep/v1/frames") if auth.seal else None


def session_codec(compress: bool) -> ZstdCompression | None:
    """This side's compression codec for one attempt (``transfer.compress``): a fresh one each
    time, its zstd contexts are per session. Used only where both hellos name it and DATA frames
    are not sealed (docs/protocol.md, section 11)."""
    return ZstdCompression() if compress else None


async def choose_path(channel: MessageTransport, auth: Authenticated, role: Role, ice: IceConfig,
                       on_route: OnRoute) -> DirectPath:
    """Run the direct-path negotiation (only in modes where both sides hold the same session key:
    both know the mode, so both skip it alike); report and log the route the transfer takes."""
    if auth.mode in SHARED_KEY_MODES:
        path = await negotiate_direct(channel, auth.key, role.value, enabled=ice.direct, addresses=ice.addresses)
    else:
        path = DirectPath(channel, None, f"no shared session key in {auth.mode} mode")
    if path.direct is not None:
        log.info("transfer route: direct (%s)", path.route_detail)
    else:
        log.info("transfer route: %s (%s), data channel: %s", path.route, path.route_detail, path.reason)
    on_route(path.route, path.route_detail)
    return path


async def send_over_session(
    signal: SignalChannel,
    ice: IceConfig,
    *,
    credentials: Credentials,
    on_authenticated: OnAuthenticated,
    role: Role = Role.OFFERER,
    encrypt: bool = False,
    compress: bool = True,
    on_route: OnRoute = _ignore_route,
    share_id: str,
    files: tuple[FileRecord, ...],
    share_dir: ShareDir,
    report: SendReport,
) -> None:
    """Connect over ``signal`` (as ``role``: the host offers, a pushing joiner answers),
    authenticate the peer, and send the share's files.

    ``on_authenticated`` runs once the peer proved itself, before any file byte moves;
    ``on_route(route, detail)`` once the path is chosen (see :data:`OnRoute`). Raises
    AuthenticationFailed (a TransferFailed) when the peer did not prove itself.
    """
    entries = [FileEntry(path=f.path, size=f.size, sha256=f.sha256) for f in files]

    def open_source(index: int):
        return share_dir.open_source(files[index].path)

    async with open_data_channel(signal, role, session_ice(signal, ice), receive_limit=CONTROL_RECEIVE_LIMIT) as channel:
        auth = await authenticate(channel, role.value, replace(credentials, seal=encrypt))
        on_authenticated(auth)
        path = await choose_path(channel, auth, role, ice, on_route)
        try:
            await run_sender(path.transport, share_id, entries, open_source, report, seal_key=frame_seal_key(auth, path),
                             compression=session_codec(compress))
        except BaseException:
            path.close()
            raise
        await path.aclose()
        await channel.wait_flushed()


async def receive_over_session(
    signal: SignalChannel,
    ice: IceConfig,
    *,
    credentials: Credentials,
    on_authenticated: OnAuthenticated,
    role: Role = Role.ANSWERER,
    encrypt: bool = False,
    compress: bool = True,
    on_route: OnRoute = _ignore_route,
    placement: Callable[[Authenticated], tuple[bool, str]] | None = None,
    journal_for: Callable[[str], str] | None = None,
    inbox: Inbox,
    journal: StateDB,
    transfer_id: str,
    expect_share: str | None,
    report: ReceiveReport,
) -> ReceiveOutcome:
    """Answer the sharer's data channel over ``signal``, authenticate, and receive into ``inbox``.

    ``credentials`` name the mode (code or resume); ``on_authenticated`` runs before the offer is read,
    ``on_route(route, detail)`` once the path is chosen.
    ``placement(auth)`` -> (place, folder): whether verified files go into the inbox now (False:
    they are held for approval) and under which subfolder; default (True, "").
    """
    async with open_data_channel(signal, role, session_ice(signal, ice), receive_limit=receive_limit(262144)) as channel:
        auth = await authenticate(channel, role.value, replace(credentials, seal=encrypt))
        on_authenticated(auth)
        place, folder = placement(auth) if placement is not None else (True, "")
        path = await choose_path(channel, auth, role, ice, on_route)
        try:
            outcome = await run_receiver(
                path.transport, inbox=inbox, journal=journal, transfer_id=transfer_id, expect_share=expect_share,
                report=report, seal_key=frame_seal_key(auth, path), place=place, folder=folder, journal_for=journal_for,
                compression=session_codec(compress),
            )
        except BaseException:
            path.close()
            raise
        await path.aclose()
        await channel.wait_flushed()
        return outcome

