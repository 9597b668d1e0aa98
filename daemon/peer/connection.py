"""Set up a WebRTC data channel to a peer over a signaling session, as a trio context manager.

The sharer (host) is the *offerer*: it creates the channel and the offer. The joiner *answers*.
aiortc gathers every candidate before ``setLocalDescription`` returns, so one offer and one answer
carry everything; trickled ``candidate`` messages are neither sent nor needed here.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import trio
from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from daemon.ice import IceConfig
from daemon.runtime.bridge import run_asyncio, to_trio_soon
from daemon.taskgroups import open_scoped

from .channel import DEFAULT_MAX_MESSAGE, DataChannelTransport
from .errors import NoRoute, PeerError
from .host_addresses import restrict_host_addresses
from .sctp_tuning import install as install_sctp_tuning

__all__ = ["Role", "SignalChannel", "open_data_channel", "dtls_fingerprints", "CHANNEL_LABEL"]

CHANNEL_LABEL = "doorstep-transfer/1"
MAX_SDP_BYTES = 32 * 1024
CONNECT_TIMEOUT = 30.0
NO_ROUTE_TEXT = ("could not connect to the peer: no ICE candidate pair worked (a symmetric NAT or a "
                 "firewall between the two, and no TURN relay to fall back on)")

log = logging.getLogger("doorstep.peer")

# Candidate types from nearest to farthest: a pair's route is the farther of its two ends.
_ROUTE_ORDER = ("host", "prflx", "srflx", "relay")


class Role(enum.Enum):
    OFFERER = "offerer"
    ANSWERER = "answerer"


class SignalChannel(Protocol):
    """What the handshake needs from a signaling session: send and receive JSON objects."""

    async def send(self, data: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any]: ...


def _rtc_configuration(ice: IceConfig) -> RTCConfiguration:
    servers = [RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential) for s in ice.servers]
    return RTCConfiguration(iceServers=servers)


def _validated_sdp(message: dict[str, Any], kind: str) -> str:
    """Return the SDP of a peer's ``{"kind": kind, "sdp": ...}`` message, or raise PeerError."""
    if not isinstance(message, dict) or message.get("kind") != kind:
        raise PeerError(f"expected an SDP {kind} from the peer")
    sdp = message.get("sdp")
    if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp.encode()) > MAX_SDP_BYTES:
        raise PeerError(f"peer sent an invalid SDP {kind}")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on garbage
        raise PeerError(f"peer sent an unparsable SDP {kind}: {exc}") from None
    if not any(m.kind == "application" for m in parsed.media):
        raise PeerError(f"peer's SDP {kind} has no data channel")
    return sdp


def dtls_fingerprints(sdp: str) -> str:
    """The DTLS certificate fingerprints an SDP announces for its data channel, canonical:
    ``"sha-256 AB:CD:..."`` items (algorithm lower-case, hex upper-case), sorted, comma-joined.

    aiortc checks the peer's certificate against *every* fingerprint of a supported algorithm,
    so the whole set is what names the peer's certificate. Raises PeerError when there is none.
    """
    found = set()
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "application" and media.dtls is not None:
            found.update(f"{f.algorithm.lower()} {f.value.upper()}" for f in media.dtls.fingerprints)
    if not found:
        raise PeerError("the SDP carries no DTLS fingerprint")
    return ",".join(sorted(found))


def _remote_max_message_size(sdp: str) -> int:
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "application" and media.sctpCapabilities is not None:
            return media.sctpCapabilities.maxMessageSize or DEFAULT_MAX_MESSAGE
    return DEFAULT_MAX_MESSAGE


async def _wait_open(transport: DataChannelTransport, channel: RTCDataChannel, pc: RTCPeerConnection) -> None:
    opened = trio.Event()
    failed = trio.Event()
    channel.on("open", to_trio_soon(opened.set))

    def on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            failed.set()

    pc.on("connectionstatechange", to_trio_soon(on_state))
    if transport.is_open:
        return
    async with open_scoped() as nursery:

        async def watch_failure() -> None:
            await failed.wait()
            raise NoRoute(NO_ROUTE_TEXT)

        nursery.start_soon(watch_failure)
        await opened.wait()
        nursery.cancel_scope.cancel()


async def _offer(pc: RTCPeerConnection, signal: SignalChannel, receive_limit: int) -> DataChannelTransport:
    channel = pc.createDataChannel(CHANNEL_LABEL, ordered=True)
    transport = DataChannelTransport(channel, receive_limit=receive_limit)
    await run_asyncio(pc.setLocalDescription, await run_asyncio(pc.createOffer))
    await signal.send({"kind": "offer", "sdp": pc.localDescription.sdp})
    sdp = _validated_sdp(await signal.receive(), "answer")
    await _set_remote(pc, sdp, "answer")
    await _wait_open(transport, channel, pc)
    return transport


async def _answer(pc: RTCPeerConnection, signal: SignalChannel, receive_limit: int) -> DataChannelTransport:
    arrived, transports = trio.open_memory_channel[DataChannelTransport](1)
    token = trio.lowlevel.current_trio_token()

    def on_datachannel(channel: RTCDataChannel) -> None:
        # Runs on the asyncio side: wrap the channel at once, before it can deliver a message.
        transport = DataChannelTransport(channel, receive_limit=receive_limit, token=token)
        token.run_sync_soon(arrived.send_nowait, (transport, channel))

    pc.on("datachannel", on_datachannel)
    sdp = _validated_sdp(await signal.receive(), "offer")
    await _set_remote(pc, sdp, "offer")
    await run_asyncio(pc.setLocalDescription, await run_asyncio(pc.createAnswer))
    await signal.send({"kind": "answer", "sdp": pc.localDescription.sdp})
    transport, channel = await transports.receive()
    if transport.label != CHANNEL_LABEL:
        raise PeerError(f"peer opened an unexpected channel {transport.label[:64]!r}")
    await _wait_open(transport, channel, pc)
    return transport


def _selected_route(pc: RTCPeerConnection) -> tuple[str, str]:
    """``(route, detail)`` of the ICE pair carrying the data channel, e.g. ``("srflx", "host/srflx")``.

    aiortc has no getStats for this; the nominated pair of component 1 lives in aioice's
    ``Connection._nominated``, reached through SCTP -> DTLS -> ICE transport. ``detail`` is
    ``local-type/remote-type`` as this side sees it (aioice pairs from the socket's own candidate, so
    the local end is ``host`` or ``relay``); ``route`` is the farther of the two. ``("unknown", ...)``
    when aiortc's internals have moved.
    """
    try:
        pair = pc.sctp.transport.transport._connection._nominated[1]
        local, remote = pair.local_candidate.type, pair.remote_candidate.type
    except (AttributeError, KeyError, TypeError):
        return "unknown", "unknown"
    route = max((local, remote), key=lambda t: _ROUTE_ORDER.index(t) if t in _ROUTE_ORDER else -1)
    return route, f"{local}/{remote}"


async def _set_remote(pc: RTCPeerConnection, sdp: str, kind: str) -> None:
    try:
        await run_asyncio(pc.setRemoteDescription, RTCSessionDescription(sdp=sdp, type=kind))
    except (ValueError, Exception) as exc:
        raise PeerError(f"peer's SDP {kind} was refused: {exc}") from None


@asynccontextmanager
async def open_data_channel(
    signal: SignalChannel,
    role: Role,
    ice: IceConfig,
    *,
    receive_limit: int,
    timeout: float = CONNECT_TIMEOUT,
) -> AsyncIterator[DataChannelTransport]:
    """Connect to the peer at the other end of ``signal`` and yield the open data channel.

    The channel's ``local_fingerprints`` and ``remote_fingerprints`` (see :func:`dtls_fingerprints`)
    name the two DTLS certificates of this connection as this side saw them in the SDPs; nothing
    here authenticates the peer: that is the authentication step's job, run over the channel.
    Its ``route`` (``host``, ``prflx``, ``srflx`` or ``relay``) and ``route_detail``
    (``local-type/remote-type``) name the selected ICE candidate pair, also logged once at INFO.

    Raises PeerError when the handshake fails or does not finish within ``timeout`` seconds.
    On exit the peer connection is closed (also on cancellation).
    """
    restrict_host_addresses(ice.addresses)
    install_sctp_tuning()  # process-wide, idempotent; DOORSTEP_SCTP_TUNING=off gives aiortc as shipped
    pc = RTCPeerConnection(configuration=_rtc_configuration(ice))
    try:
        with trio.move_on_after(timeout) as scope:
            handshake = _offer if role is Role.OFFERER else _answer
            transport = await handshake(pc, signal, receive_limit)
        if scope.cancelled_caught:
            if pc.remoteDescription is not None:  # SDP exchanged: ICE found no way through
                raise NoRoute(f"{NO_ROUTE_TEXT} within {timeout:.0f} s")
            raise PeerError(f"the peer did not complete the WebRTC handshake within {timeout:.0f} s")
        transport.max_message_size = _remote_max_message_size(pc.remoteDescription.sdp)
        transport.local_fingerprints = dtls_fingerprints(pc.localDescription.sdp)
        transport.remote_fingerprints = dtls_fingerprints(pc.remoteDescription.sdp)
        transport.route, transport.route_detail = _selected_route(pc)
        log.info("connected via %s (%s)", transport.route, transport.route_detail)
        yield transport
    finally:
        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await run_asyncio(pc.close)
