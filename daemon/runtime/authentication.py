"""Run the authentication step (``daemon.protocol.auth``) on an open data channel.

Both sides call :func:`authenticate` right after the channel opens and before the transfer
protocol: nothing about the share (not even its manifest) crosses the channel until it returns.
It binds the connection's two DTLS certificates (as each side saw them in the SDPs) to a secret
only the two real peers hold: the code (SPAKE2), a resume secret from an earlier session
(SPAKE2), or pinned device keys (Ed25519). A relay that terminated DTLS on both sides makes the
two sides see different certificates, so the check fails on both.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from daemon.crypto import (
    DEVICE_AUTH_LABEL,
    PAIRING_LABEL,
    BadSignature,
    CodePake,
    DeviceIdentity,
    EphemeralExchange,
    KeyRotation,
    PakeError,
    SessionKey,
    verify_chain,
    verify_channel,
)
from daemon.peer import DataChannelTransport
from daemon.protocol import ProtocolError, RemoteProtocolError
from daemon.protocol.auth import MAX_REVOKED, AuthConfirm, AuthFailed, AuthHandshake, AuthHello, AuthIdentity, AuthMode
from daemon.protocol.frames import ControlFrame, FrameDecoder
from daemon.transfer.errors import TransferFailed, TransferInterrupted

__all__ = ["AuthenticationFailed", "ModeRefused", "Authenticated", "Credentials", "authenticate", "AUTH_TIMEOUT"]

log = logging.getLogger(__name__)
_M = TypeVar("_M", AuthHello, AuthConfirm, AuthIdentity)

AUTH_TIMEOUT = 20.0
"""Seconds the whole step may take (SPAKE2 and Ed25519 cost milliseconds; the rest is the network)."""

FAILURE_TEXT = "could not authenticate the peer"


class AuthenticationFailed(TransferFailed):
    """The peer did not prove what the mode requires: wrong code, a man in the middle, an unknown
    or revoked device. Never retried with the same secret."""

    secret_tested: bool = False
    """Both sides committed to a password (exchanged PAKE hellos) before the step failed: for a
    code, the peer spent its one guess."""


    untrusted_device_key: bytes | None = None
    """device mode: the key of a peer that proved it holds it, but is not trusted here."""


class ModeRefused(AuthenticationFailed):
    """The responder cannot authenticate in the mode the initiator chose (for instance a resume
    it holds no secret for). Nothing was tested; the initiator may try another mode."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """What this side proves itself with, and which devices it trusts.

    ``mode``: the initiator's (joiner's) choice; ``None`` for the responder (host), which follows
    the initiator if it can. ``passwords``: the secret for each PAKE mode this side can do (the
    code for code/pair, the resume secret for resume). ``identity``: this install's device key
    (device/pair). ``trusts``: for device mode, whether a peer's public key is paired and approved;
    without it device mode is refused. ``name``: the device name announced when pairing.
    """

    mode: AuthMode | None = None
    passwords: Mapping[AuthMode, bytes] = field(default_factory=dict)
    identity: DeviceIdentity | None = None
    trusts: Callable[[bytes], bool] | None = None
    holds: Callable[[bytes], bool] | None = None
    """device mode, responder: whether a key that is not trusted may still connect, its transfers
    held for the owner's approval (``Authenticated.peer_trusted`` is then False)."""
    name: str = "doorstep"
    signal_url: str | None = None
    """pair: the public signaling URL we tell the peer to reach us at later."""
    seal: bool = False
    """Ask for sealed DATA frames (``transfer.encrypt``); they are on if either side asks."""
    rotate: Callable[[bytes, bytes], None] | None = None
    """device mode: ``rotate(pinned_key, current_key)`` when a trusted device proved (by its
    rotation chain) that ``current_key`` replaced a key pinned here; re-pin it."""
    revoked: Callable[[], Sequence[bytes]] | None = None
    """device mode: keys of devices the owner revoked here, announced to trusted peers."""
    revoke: Callable[[Sequence[bytes]], None] | None = None
    """device mode: apply the revocations a trusted (approved) peer announced."""
    origin: bool = False
    """Responder: accept a browser page in origin mode (nothing proved in-band). Only a host on
    its own signaling server, for a share whose code is live and unspent, may set it: the page
    trusts that server (the origin that served it), and nobody else can have joined yet."""

    def can(self, mode: AuthMode) -> bool:
        if mode is AuthMode.ORIGIN:  # an initiator needs nothing to trust its origin
            return self.origin or self.mode is AuthMode.ORIGIN
        if mode is AuthMode.DEVICE:
            return self.identity is not None and self.trusts is not None
        return mode in self.passwords and (mode is not AuthMode.PAIR or self.identity is not None)


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The outcome: the session key both sides hold, and the peer's device key and name if it
    proved one (device and pair modes)."""

    key: SessionKey
    mode: AuthMode
    seal: bool = False
    """Seal DATA frames with ``key.derive("doorstep/v1/frames")``: either side asked."""
    peer_device_key: bytes | None = None
    peer_name: str | None = None
    peer_signal_url: str | None = None
    """pair: where the peer said it can be reached."""
    peer_trusted: bool = True
    """False for a device admitted by ``Credentials.holds``: what it sends waits for approval."""
    peer_root_key: bytes | None = None
    """device/pair: the key the peer was first paired with, which names it (its device key if it
    never rotated)."""


async def authenticate(
    channel: DataChannelTransport, role: str, credentials: Credentials, *, timeout: float = AUTH_TIMEOUT
) -> Authenticated:
    """Prove ourselves to the peer on ``channel`` and check its proof. ``role``: offerer/answerer.

    Raises:
        AuthenticationFailed: the peer's proof was wrong or missing, or it refused ours (the peer
            is told why when the channel still works). ``secret_tested`` says whether the peer got
            as far as committing to a password guess: the host burns a code once that happened,
            however the step ended, so every code admits one online guess.
        TransferInterrupted: the channel closed or stalled before the peer said anything.
    """
    run = _Run(channel, role, credentials)
    try:
        with trio.fail_after(timeout):
            return await run.go()
    except AuthenticationFailed as exc:
        exc.secret_tested = run.committed
        raise
    except (trio.TooSlowError, trio.EndOfChannel, trio.ClosedResourceError, trio.BrokenResourceError) as exc:
        what = "did not finish" if isinstance(exc, trio.TooSlowError) else "was cut"
        if run.committed:
            failed = AuthenticationFailed(f"{FAILURE_TEXT}: the authentication step {what}")
            failed.secret_tested = True
            raise failed from None
        raise TransferInterrupted(f"the connection {what} before authentication") from None


class _Run:
    """One side of one authentication step."""

    def __init__(self, channel: DataChannelTransport, role: str, credentials: Credentials) -> None:
        self.channel = channel
        self.role = role
        self.peer_role = "answerer" if role == "offerer" else "offerer"
        self.creds = credentials
        self.machine = AuthHandshake(credentials.mode)
        """The responder's machine adopts the initiator's mode from its hello."""
        self.decoder = FrameDecoder()
        self.committed = False
        self.seal = credentials.seal
        """We sent a PAKE hello and have the peer's: a guess was made."""
        ours, theirs = channel.local_fingerprints, channel.remote_fingerprints
        if not ours or not theirs:
            raise AuthenticationFailed(f"{FAILURE_TEXT}: the connection has no DTLS fingerprints")
        self.offerer_fp, self.answerer_fp = (ours, theirs) if role == "offerer" else (theirs, ours)

    async def go(self) -> Authenticated:
        try:
            return await self._run()
        except (_RefusedByPeer, _ModeRefusedByPeer):
            raise
        except ModeRefused as exc:
            await self._tell_peer(str(exc), code="unsupported_mode")
            raise
        except AuthenticationFailed as exc:
            await self._tell_peer(str(exc))
            raise
        except (ProtocolError, PakeError, BadSignature) as exc:
            await self._tell_peer(str(exc))
            raise AuthenticationFailed(f"{FAILURE_TEXT}: {exc}") from None

    async def _run(self) -> Authenticated:
        mode = self.creds.mode
        peer_hello = None
        if mode is None:  # responder: the initiator names the mode
            peer_hello = await self._expect(AuthHello)
            mode = peer_hello.mode
            if not self.creds.can(mode):
                raise ModeRefused(f"{FAILURE_TEXT}: it asked for {mode} authentication, "
                                  "which this side cannot do here")
        elif not self.creds.can(mode):
            raise ValueError(f"these credentials cannot do {mode} authentication")
        if mode is AuthMode.DEVICE:
            return await self._device(peer_hello)
        if mode is AuthMode.ORIGIN:
            return await self._origin(peer_hello)
        return await self._pake(mode, peer_hello)

    # -- origin (a browser page this appliance served) ----------------------------------------

    async def _origin(self, peer_hello: AuthHello | None) -> Authenticated:
        """Exchange the two hellos; the key is this side's own (there is no shared secret), so
        nothing is sealed and nothing can be resumed with it."""
        await self.channel.send(self.machine.send_hello(AuthHello(mode=AuthMode.ORIGIN)))
        if peer_hello is None:
            await self._expect(AuthHello)
        self.machine.mark_authenticated()
        return Authenticated(SessionKey(secrets.token_bytes(32)), mode=AuthMode.ORIGIN, seal=False)

    # -- code, resume, pair -------------------------------------------------------------------

    async def _pake(self, mode: AuthMode, peer_hello: AuthHello | None) -> Authenticated:
        pake = CodePake(self.creds.passwords[mode])
        await self.channel.send(self.machine.send_hello(AuthHello(mode=mode, seal=self.creds.seal, pake=pake.start())))
        hello = peer_hello or await self._expect(AuthHello)
        self.seal = self.creds.seal or hello.seal
        assert hello.pake is not None
        self.committed = True
        key = pake.finish(hello.pake)
        tag = key.confirm_tag(self.role, self.offerer_fp, self.answerer_fp)
        await self.channel.send(self.machine.send_confirm(tag))
        confirm = await self._expect(AuthConfirm)
        if not key.verify_confirm(confirm.tag, self.peer_role, self.offerer_fp, self.answerer_fp):
            raise AuthenticationFailed(
                f"{FAILURE_TEXT}: the code did not match, or someone is in the middle of the connection"
            )
        self.machine.confirmed()
        if mode is not AuthMode.PAIR:
            self.machine.mark_authenticated()
            return Authenticated(key, mode=mode, seal=self.seal)
        return await self._exchange_identities(key)

    async def _exchange_identities(self, key: SessionKey) -> Authenticated:
        identity = self._identity()
        signature = identity.sign_channel(label=PAIRING_LABEL, role=self.role, offerer_fingerprint=self.offerer_fp,
                                          answerer_fingerprint=self.answerer_fp)
        await self.channel.send(self.machine.send_identity(identity.public_key, self.creds.name, signature,
                                                           self.creds.signal_url, _links(identity)))
        peer = await self._expect(AuthIdentity)
        verify_channel(peer.device_key, peer.signature, label=PAIRING_LABEL, role=self.peer_role,
                       offerer_fingerprint=self.offerer_fp, answerer_fingerprint=self.answerer_fp)
        keys = _chain_keys(peer.rotations, peer.device_key)
        self.machine.mark_authenticated()
        return Authenticated(key, mode=AuthMode.PAIR, seal=self.seal, peer_device_key=peer.device_key,
                             peer_name=peer.name, peer_signal_url=peer.signal, peer_root_key=keys[0])

    # -- device --------------------------------------------------------------------------------

    async def _device(self, peer_hello: AuthHello | None) -> Authenticated:
        identity = self._identity()
        assert self.creds.trusts is not None
        exchange = EphemeralExchange()
        signature = identity.sign_channel(label=DEVICE_AUTH_LABEL, role=self.role, offerer_fingerprint=self.offerer_fp,
                                          answerer_fingerprint=self.answerer_fp, extra=exchange.public_key)
        revoked = tuple(self.creds.revoked())[:MAX_REVOKED] if self.creds.revoked is not None else ()
        hello = AuthHello(mode=AuthMode.DEVICE, seal=self.creds.seal, device_key=identity.public_key,
                          ephemeral=exchange.public_key, signature=signature, rotations=_links(identity),
                          revoked=revoked)
        if peer_hello is not None:  # responder: check the initiator before proving anything
            self._check_device(peer_hello)
        await self.channel.send(self.machine.send_hello(hello))
        peer = peer_hello or self._check_device(await self._expect(AuthHello))
        assert peer.ephemeral is not None
        self.seal = self.creds.seal or peer.seal
        offerer_eph, answerer_eph = (
            (exchange.public_key, peer.ephemeral) if self.role == "offerer" else (peer.ephemeral, exchange.public_key)
        )
        key = exchange.finish(peer.ephemeral, offerer_public=offerer_eph, answerer_public=answerer_eph)
        self.machine.mark_authenticated()
        assert self.creds.trusts is not None and peer.device_key is not None
        return self._device_outcome(key, peer)

    def _device_outcome(self, key: SessionKey, peer: AuthHello) -> Authenticated:
        """Follow the peer's key rotation (re-pin) and apply its revocations, now that it proved
        itself; only a trusted (approved) peer may do either."""
        assert self.creds.trusts is not None and peer.device_key is not None
        keys = _chain_keys(peer.rotations, peer.device_key)
        pinned = self._pinned_key(keys)
        trusted = pinned is not None
        if trusted and pinned != peer.device_key and self.creds.rotate is not None:
            log.info("a paired device rotated its key; following it")
            self.creds.rotate(pinned, peer.device_key)
        if trusted and peer.revoked and self.creds.revoke is not None:
            self.creds.revoke(peer.revoked)
        return Authenticated(key, mode=AuthMode.DEVICE, seal=self.seal, peer_device_key=peer.device_key,
                             peer_trusted=trusted, peer_root_key=keys[0])

    def _pinned_key(self, keys: tuple[bytes, ...]) -> bytes | None:
        """The newest key of the peer's chain this side trusts (its current key, or one it
        rotated away from since we last saw it); None if none is trusted."""
        assert self.creds.trusts is not None
        return next((k for k in reversed(keys) if self.creds.trusts(k)), None)

    def _check_device(self, peer: AuthHello) -> AuthHello:
        assert peer.device_key is not None and peer.ephemeral is not None and peer.signature is not None
        verify_channel(peer.device_key, peer.signature, label=DEVICE_AUTH_LABEL, role=self.peer_role,
                       offerer_fingerprint=self.offerer_fp, answerer_fingerprint=self.answerer_fp,
                       extra=peer.ephemeral)
        keys = _chain_keys(peer.rotations, peer.device_key)
        trusted = self._pinned_key(keys) is not None
        if not trusted and not (self.creds.holds is not None and self.creds.holds(peer.device_key)):
            refused = AuthenticationFailed(f"{FAILURE_TEXT}: its device is not paired with this one, or was revoked")
            refused.untrusted_device_key = peer.device_key
            raise refused
        return peer

    # -- plumbing ------------------------------------------------------------------------------

    def _identity(self) -> DeviceIdentity:
        if self.creds.identity is None:
            raise ValueError(f"{self.creds.mode} mode needs a device identity")
        return self.creds.identity

    async def _expect(self, kind: type[_M]) -> _M:
        body = await self._next_body()
        message = self.machine.receive(body)
        if isinstance(message, AuthFailed):
            if message.code == "unsupported_mode":
                raise _ModeRefusedByPeer(message.reason)
            raise _RefusedByPeer(message.reason)
        if not isinstance(message, kind):
            raise RemoteProtocolError(f"expected {kind.__name__}, got {type(message).__name__}", code="bad_state")
        return message

    async def _next_body(self) -> bytes:
        """The next message, which must be exactly one CONTROL frame (nothing may trail it: the
        transfer protocol starts on a fresh decoder once authentication is over)."""
        self.decoder.receive_data(await self.channel.receive())
        frame = self.decoder.next_frame()
        if not isinstance(frame, ControlFrame) or self.decoder.buffered:
            raise RemoteProtocolError("authentication messages are whole CONTROL frames", code="bad_frame")
        return frame.body

    async def _tell_peer(self, reason: str, *, code: str = "failed") -> None:
        with trio.move_on_after(2):
            try:
                await self.channel.send(self.machine.send_failed(reason, code=code))
            except Exception:  # the channel may already be gone; the local error is what matters
                log.debug("could not tell the peer that authentication failed", exc_info=True)


def _links(identity: DeviceIdentity) -> tuple[tuple[bytes, bytes, bytes], ...]:
    return tuple((link.old, link.new, link.signature) for link in identity.rotations)


def _chain_keys(rotations: Sequence[tuple[bytes, bytes, bytes]], current: bytes) -> tuple[bytes, ...]:
    """The peer's keys, first to current, from its rotation chain. Raises ``BadSignature``."""
    return verify_chain([KeyRotation(*link) for link in rotations], current)


class _RefusedByPeer(AuthenticationFailed):
    def __init__(self, reason: str) -> None:
        super().__init__(f"{FAILURE_TEXT}: it refused our proof ({reason[:200]})")


class _ModeRefusedByPeer(ModeRefused):
    def __init__(self, reason: str) -> None:
        super().__init__(f"{FAILURE_TEXT}: it cannot do this kind of authentication ({reason[:200]})")
