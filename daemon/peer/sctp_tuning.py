"""Process-level tuning of aiortc's SCTP (the one place doorstep changes how aiortc behaves).

aiortc's SCTP is pure Python and costs tens of microseconds per ~1160-byte packet on each side; on
a data channel between two daemons the receiver is CPU-bound inside aiortc (see bench/RESULTS.md).
This module cuts the per-packet work without forking aiortc: :func:`install` replaces the
``RTCSctpTransport`` class that ``aiortc.rtcpeerconnection`` instantiates with the subclass
:class:`TunedSctpTransport` below. Every peer connection created after ``install()`` uses it, on
both sides of every connection (daemon to daemon, and the daemon's end of a browser's connection).
Nothing on the wire changes format: packets are ordinary SCTP, so any SCTP peer (Chromium's dcsctp,
stock aiortc) interoperates. What changes, and why:

1. **SACKs per receive batch, not per packet** (receiver). Stock aiortc answers every packet with a
   SACK: one SCTP packet, one DTLS record and one ``sendto`` per ~1160 bytes received, about a
   third of the receiver's CPU. Here a SACK for in-order data is deferred to the end of the event
   loop iteration that received it (``loop.call_soon``), so one SACK covers every packet the loop
   drained from the socket at once (typically the sender's whole burst), and at most
   ``SACK_EVERY_PACKETS`` packets go unacknowledged. The delay is one loop iteration (microseconds),
   far below the 200 ms RFC 9260 (section 6.2) allows, so retransmission timers never notice.
   Packets that reveal loss (gaps or duplicates) and packets carrying anything but DATA are
   acknowledged immediately, as stock aiortc does, so fast retransmit is unchanged.
2. **Larger bursts** (sender). aiortc lets one SACK release at most 4 new packets beyond the flight
   (RFC 9260's optional Max.Burst). With one SACK per batch that would shrink the flight on every
   SACK, so the burst limit here is ``MAX_BURST_PACKETS``; the congestion window still bounds the
   flight. In slow start the window grows by the bytes a SACK newly acknowledges, capped at
   ``SACK_EVERY_PACKETS`` MTUs (RFC 9260 section 7.2.1 allows L MTUs; stock uses L = 1, which with
   fewer SACKs would grow the window proportionally slower).
3. **Linear reassembly** (receiver). aiortc's ``InboundStream.pop_messages`` rescans the whole
   partial message on every arriving fragment: quadratic in the message size (a 256 KiB message
   is 226 fragments, about 25,000 chunk visits). :class:`_InboundStream` remembers how far the
   head message is known to be contiguous and only looks at new fragments; anything unusual
   (out-of-order arrival, unordered messages, FORWARD TSN) falls back to aiortc's own scan.
4. **Cheap in-order bookkeeping** (receiver). ``_mark_received`` rebuilds and sorts its
   gap/duplicate sets on every chunk; for the next-expected TSN with no gaps outstanding it now
   just advances the cumulative TSN (same result).

5. **Larger UDP socket buffers** (both). At ~1160 bytes per datagram, the kernel's default receive
   buffer (212,992 bytes) overflows whenever the receiving loop falls a few milliseconds behind;
   each drop costs a retransmission and a halved congestion window, and a lost tail waits for the
   1 s minimum retransmission timeout. ``start`` asks for ``SOCKET_BUFFER`` bytes on every ICE
   socket of the connection; the kernel caps this at ``net.core.rmem_max`` / ``wmem_max``
   (raise those on the appliance to benefit fully).

``DOORSTEP_SCTP_TUNING`` (read by :func:`install` when called without arguments) selects the parts:
unset or ``all`` for all of them, ``off`` for aiortc as shipped, or a comma-separated subset of
:data:`FEATURES`: a switch for benchmarks and for ruling the tuning out when a peer misbehaves.

All of it is confined to this module and checked by tests/unit/peer/test_sctp_tuning.py (the
reassembly against aiortc's on random arrival orders) and by the integration and browser tests.
The figures that justify each part are in bench/RESULTS.md ("WebRTC path tuning").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import logging
import os
import socket

import aiortc
import aiortc.rtcpeerconnection
from aiortc import rtcsctptransport as _sctp
from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    SCTP_TSN_MODULO,
    USERDATA_MAX_LENGTH,
    DataChunk,
    InboundStream,
    InitChunk,
    RTCSctpTransport,
    parse_packet,
    tsn_plus_one,
)

__all__ = ["FEATURES", "TunedSctpTransport", "install", "installed_features"]

SACK_EVERY_PACKETS = 16
"""At most this many packets go without a SACK (and the slow-start window grows by at most this
many MTUs per SACK)."""
MAX_BURST_PACKETS = 64
"""At most this many new packets leave per SACK (stock aiortc: 4)."""

TESTED_AIORTC = "1.16."
"""The aiortc release line whose ``_transmit`` and ``_handle_data`` the overrides below follow."""

SOCKET_BUFFER = 4 * 1024 * 1024
"""SO_RCVBUF and SO_SNDBUF asked for on each ICE socket (the kernel caps them)."""

FEATURES = frozenset({"sack", "burst", "reassembly", "received", "buffers"})
"""The independent parts of the tuning; :func:`install` enables all of them unless told otherwise
(``bench/sctp_tuning.py`` measures them one by one)."""

_enabled: frozenset[str] = frozenset()
_warned: list[bool] = []


def installed_features() -> frozenset[str]:
    """What :func:`install` enabled in this process (empty: stock aiortc)."""
    return _enabled


def install(features: Iterable[str] | None = None) -> None:
    """Make every ``RTCPeerConnection`` created from now on in this process use :class:`TunedSctpTransport`
    with ``features`` (a subset of :data:`FEATURES`; None: what ``DOORSTEP_SCTP_TUNING`` says, all by
    default). An empty set restores aiortc's own class. Idempotent; call it again to change the features."""
    global _enabled
    chosen = _from_environment() if features is None else frozenset(features)
    unknown = chosen - FEATURES
    if unknown:
        raise ValueError(f"unknown SCTP tuning features: {sorted(unknown)}")
    if chosen and not aiortc.__version__.startswith(TESTED_AIORTC) and not _warned:
        _warned.append(True)
        logging.getLogger("doorstep.peer").warning(
            "SCTP tuning follows aiortc %sx but aiortc %s is installed: check daemon/peer/sctp_tuning.py "
            "against it (DOORSTEP_SCTP_TUNING=off disables the tuning)", TESTED_AIORTC, aiortc.__version__)
    _enabled = chosen
    aiortc.rtcpeerconnection.RTCSctpTransport = TunedSctpTransport if chosen else RTCSctpTransport


def _from_environment() -> frozenset[str]:
    text = os.environ.get("DOORSTEP_SCTP_TUNING", "all").strip().lower()
    if text in ("", "all", "on", "true", "1"):
        return FEATURES
    if text in ("off", "none", "false", "0"):
        return frozenset()
    return frozenset(part.strip() for part in text.split(",") if part.strip())


class _InboundStream(InboundStream):
    """``InboundStream`` whose ``pop_messages`` is linear in the fragments received.

    ``_checked`` > 0 means: ``reassembly[:_checked]`` are the first fragments of the next ordered
    message (starting with a FIRST fragment whose stream sequence number is ``sequence_number``),
    with consecutive TSNs and no LAST fragment. A new fragment appended right after them either
    extends that prefix (nothing to deliver yet: O(1)) or completes the message (then aiortc's own
    scan runs once for the message). Anything else resets ``_checked`` and uses aiortc's scan.
    """

    def __init__(self) -> None:
        super().__init__()
        self._checked = 0
        self._checked_seq = -1

    def add_chunk(self, chunk: DataChunk) -> None:
        reassembly = self.reassembly
        if reassembly and (chunk.tsn - reassembly[-1].tsn) % SCTP_TSN_MODULO >= 1 << 31:
            self._checked = 0  # inserted before the end (out of order): rescan
        super().add_chunk(chunk)

    def pop_messages(self) -> Iterator[tuple[int, int, bytes]]:
        reassembly = self.reassembly
        checked = self._checked
        if checked and self._checked_seq == self.sequence_number and checked <= len(reassembly):
            expected = tsn_plus_one(reassembly[checked - 1].tsn)
            while checked < len(reassembly):
                chunk = reassembly[checked]
                if chunk.tsn != expected:  # a gap: nothing more can be delivered until it fills
                    self._checked = checked
                    return
                if chunk.flags & (SCTP_DATA_LAST_FRAG | SCTP_DATA_FIRST_FRAG):
                    break  # the message is complete (or something odd): let aiortc's scan decide
                checked += 1
                expected = (expected + 1) % SCTP_TSN_MODULO
            else:
                self._checked = checked
                return
        yield from super().pop_messages()
        self._checked, self._checked_seq = self._head_prefix(), self.sequence_number

    def prune_chunks(self, tsn: int) -> int:
        self._checked = 0
        return super().prune_chunks(tsn)

    def _head_prefix(self) -> int:
        """Length of the contiguous, incomplete, deliverable-next ordered message at the head (or 0)."""
        reassembly = self.reassembly
        if not reassembly:
            return 0
        head = reassembly[0]
        if (head.flags & SCTP_DATA_UNORDERED or not head.flags & SCTP_DATA_FIRST_FRAG
                or head.stream_seq != self.sequence_number):
            return 0
        count, expected = 0, head.tsn
        for chunk in reassembly:
            if chunk.tsn != expected or (count and chunk.flags & SCTP_DATA_FIRST_FRAG):
                return 0
            if chunk.flags & SCTP_DATA_LAST_FRAG:
                return 0  # aiortc's scan would have delivered it; be safe and rescan next time
            count += 1
            expected = (expected + 1) % SCTP_TSN_MODULO
        return count


class TunedSctpTransport(RTCSctpTransport):
    """aiortc's ``RTCSctpTransport`` with the changes listed in this module's docstring."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        features = _enabled
        self._tune_sack = "sack" in features
        self._tune_burst = "burst" in features
        self._tune_reassembly = "reassembly" in features
        self._tune_received = "received" in features
        self._tune_buffers = "buffers" in features
        self._sack_scheduled = False
        self._packets_unacked = 0

    async def start(self, remoteCaps: _sctp.RTCSctpCapabilities | None, remotePort: int) -> None:
        if self._tune_buffers:
            _enlarge_socket_buffers(self.transport)
        await super().start(remoteCaps, remotePort)

    # -- receiver --------------------------------------------------------------------------------

    def _get_inbound_stream(self, stream_id: int) -> InboundStream:
        if not self._tune_reassembly:
            return super()._get_inbound_stream(stream_id)
        stream = self._inbound_streams.get(stream_id)
        if stream is None:
            stream = self._inbound_streams[stream_id] = _InboundStream()
        return stream

    def _mark_received(self, tsn: int) -> bool:
        last = self._last_received_tsn
        if (self._tune_received and last is not None and not self._sack_misordered
                and tsn == (last + 1) % SCTP_TSN_MODULO):
            self._last_received_tsn = tsn
            if self._sack_duplicates:  # keep only those above the new cumulative TSN, as aiortc does
                self._sack_duplicates = [x for x in self._sack_duplicates if _sctp.uint32_gt(x, tsn)]
            return False
        return super()._mark_received(tsn)

    async def _handle_data(self, data: bytes) -> None:
        if not self._tune_sack:
            return await super()._handle_data(data)
        try:
            _, _, verification_tag, chunks = parse_packet(data)
        except ValueError:
            return
        init = any(isinstance(chunk, InitChunk) for chunk in chunks)
        if init:
            assert len(chunks) == 1
        if verification_tag != (0 if init else self._local_verification_tag):
            return
        data_only = True
        for chunk in chunks:
            if not isinstance(chunk, DataChunk):
                data_only = False
            await self._receive_chunk(chunk)
        if not self._sack_needed:
            return
        self._packets_unacked += 1
        if (not data_only or self._sack_misordered or self._sack_duplicates
                or self._association_state != self.State.ESTABLISHED
                or self._packets_unacked >= SACK_EVERY_PACKETS):
            await self._send_sack()
        elif not self._sack_scheduled:
            self._sack_scheduled = True
            self._loop.call_soon(self._deferred_sack)

    async def _send_sack(self) -> None:
        self._packets_unacked = 0
        await super()._send_sack()

    def _deferred_sack(self) -> None:
        self._sack_scheduled = False
        if self._sack_needed and self._association_state == self.State.ESTABLISHED:
            self._loop.create_task(self._send_sack_quietly())

    async def _send_sack_quietly(self) -> None:
        if not self._sack_needed:  # an immediate SACK went out meanwhile
            return
        try:
            await self._send_sack()
        except ConnectionError:  # the DTLS transport closed meanwhile: nothing left to acknowledge
            pass

    # -- sender ----------------------------------------------------------------------------------

    async def _receive_sack_chunk(self, chunk: _sctp.SackChunk) -> None:
        if not self._tune_burst:
            return await super()._receive_sack_chunk(chunk)
        # Slow start: let the window grow by what this SACK newly acknowledged (up to L MTUs,
        # L = SACK_EVERY_PACKETS) instead of one MTU, by crediting the difference afterwards.
        in_slow_start = (self._fast_recovery_exit is None and self._cwnd <= self._ssthresh
                         and self._flight_size >= self._cwnd)
        acked = 0
        if in_slow_start:
            for sent in self._sent_queue:
                if not _sctp.uint32_gte(chunk.cumulative_tsn, sent.tsn):
                    break
                if not sent._acked:
                    acked += sent._book_size
        before = self._cwnd
        await super()._receive_sack_chunk(chunk)
        if in_slow_start and self._cwnd == before + min(acked, USERDATA_MAX_LENGTH) and acked:
            self._cwnd = before + min(acked, SACK_EVERY_PACKETS * USERDATA_MAX_LENGTH)

    async def _transmit(self) -> None:
        if not self._tune_burst:
            return await super()._transmit()
        # aiortc's _transmit with Max.Burst = MAX_BURST_PACKETS instead of 4 (2 in fast recovery).
        if self._forward_tsn_chunk is not None:
            await self._send_chunk(self._forward_tsn_chunk)
            self._forward_tsn_chunk = None
            if not self._t3_handle:
                self._t3_start()

        if self._fast_recovery_exit is not None:
            burst_size = 2 * USERDATA_MAX_LENGTH
        else:
            burst_size = MAX_BURST_PACKETS * USERDATA_MAX_LENGTH
        cwnd = min(self._flight_size + burst_size, self._cwnd)

        retransmit_earliest = True
        for chunk in self._sent_queue:
            if chunk._retransmit:
                if self._fast_recovery_transmit:
                    self._fast_recovery_transmit = False
                elif self._flight_size >= cwnd:
                    return
                self._flight_size_increase(chunk)
                chunk._misses = 0
                chunk._retransmit = False
                chunk._sent_count += 1
                await self._send_chunk(chunk)
                if retransmit_earliest:
                    self._t3_restart()
            retransmit_earliest = False

        now = None
        while self._outbound_queue and self._flight_size < cwnd:
            chunk = self._outbound_queue.popleft()
            self._sent_queue.append(chunk)
            self._flight_size_increase(chunk)
            chunk._sent_count += 1
            if now is None:
                now = _sctp.time.time()
            chunk._sent_time = now
            await self._send_chunk(chunk)
            if not self._t3_handle:
                self._t3_start()


def _enlarge_socket_buffers(dtls: object) -> None:
    """Ask for SOCKET_BUFFER bytes of send and receive buffer on every UDP socket of this
    connection's ICE agent (reached through aiortc's and aioice's private attributes; nothing
    happens if they moved)."""
    try:
        protocols = dtls.transport._connection._protocols  # type: ignore[attr-defined]
    except AttributeError:
        return
    for protocol in protocols:
        transport = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            continue
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
            except OSError:
                pass
