"""Model-based test of the whole transfer system: machines, driver, disk and a bad network.

The model: in-memory source files; a receiver "disk" with durable bytes (survive a crash)
and volatile bytes (written, not yet fsynced); two frame queues forming the network,
on which rules deliver in order, deliver out of order, duplicate, drop or corrupt frames;
a ``kill`` rule that loses volatile bytes and in-flight frames, then recreates both
machines and resumes from the durable offsets, as the real driver does.

Invariants:

* a file is marked final only when its bytes equal the source (the driver verifies the
  SHA-256 from "disk" before calling ``file_verified``), and the sender learns of a
  verified file or of DONE only when the receiver really marked it so;
* the sender never has more than ``window`` bytes in flight;
* on a session without network faults nothing fails, except a ``hash_mismatch`` caused
  by bytes corrupted in an earlier session;
* (teardown) from any reachable state, restarting over a perfect network reaches DONE
  with every file equal to its source.

``CompressedTransferSystem`` runs the same model with a codec on both sides (the stdlib
``ZlibCodec`` double) and files that compress, that stop compressing halfway, and that never do:
corrupting a COMPRESSED_DATA frame then fails the session (``bad_compression``) instead of the hash.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from collections.abc import Callable

from daemon.protocol.errors import RemoteProtocolError
from daemon.protocol.frames import COMPRESSED_FRAME_OVERHEAD, DATA_FRAME_OVERHEAD, FrameKind
from daemon.protocol.transfer import HASH_MISMATCH, TransferReceiver, TransferSender, error_reply
from daemon.protocol.transfer_events import (
    DataReceived,
    FileReceived,
    FileVerified,
    OfferReceived,
    PeerFailed,
    TransferDone,
)
from daemon.protocol.transfer_states import (
    RECEIVER_TERMINAL,
    SENDER_TERMINAL,
    ReceiverState,
    SenderState,
)
from daemon.protocol.transfer_compression import Compression
from tests.unit.protocol.transfer_helpers import (
    ZlibCodec,
    entry_for,
    make_sources,
    sha256,
    split_frames,
    text_like,
)

DIRECTIONS = st.sampled_from(["to_receiver", "to_sender"])


PAYLOAD_OFFSET = {FrameKind.DATA: DATA_FRAME_OVERHEAD, FrameKind.COMPRESSED_DATA: COMPRESSED_FRAME_OVERHEAD}


def mixed_sources(sizes: list[int], seed: int) -> list[bytes]:
    """Text (compresses), text then random (stops compressing), random (never does), in turn."""
    noise = make_sources(sizes, seed=seed)
    out = []
    for index, (size, random_bytes) in enumerate(zip(sizes, noise, strict=True)):
        text = text_like(size, seed + index)
        out.append([text, text[: size // 2] + random_bytes[size // 2 :], random_bytes][index % 3])
    return out


class TransferSystem(RuleBasedStateMachine):
    codec: Callable[[], Compression] | None = None
    """Build both machines with ``codec()`` (and compressible sources) when set."""

    # -- setup -----------------------------------------------------------------------

    @initialize(
        sizes=st.lists(st.sampled_from([0, 1, 1000, 70_000, 200_000]), min_size=1, max_size=4),
        window=st.sampled_from([65_536, 100_000, 1 << 20]),
        payload=st.sampled_from([4096, 16_384, 65_519]),
    )
    def setup(self, sizes: list[int], window: int, payload: int) -> None:
        seed = sum(sizes) + len(sizes)
        self.sources = make_sources(sizes, seed) if self.codec is None else mixed_sources(sizes, seed)
        self.entries = [entry_for(i, s) for i, s in enumerate(self.sources)]
        self.window = window
        self.payload = payload
        self.durable = [bytearray() for _ in sizes]
        self.final = [False] * len(sizes)
        self.connect()

    def connect(self) -> None:
        """(Re)start a session: fresh machines, empty network, volatile bytes lost."""
        codec = type(self).codec
        self.sender = TransferSender("t-1", self.entries, compression=codec and codec())
        self.receiver = TransferReceiver(compression=codec and codec())
        self.volatile = [bytearray() for _ in self.sources]
        self.acked = [0] * len(self.sources)
        self.to_verify: list[int] = []
        self.verified_now: set[int] = set()
        self.failures: list[str] = []
        self.faulty = False
        self.to_receiver = split_frames(self.sender.start())
        self.to_sender = split_frames(self.receiver.start())

    # -- sender-side driver -------------------------------------------------------

    def sender_live(self) -> bool:
        return self.sender.state not in SENDER_TERMINAL

    def receiver_live(self) -> bool:
        return self.receiver.state not in RECEIVER_TERMINAL

    def feed_sender(self, frame: bytes) -> None:
        if not self.sender_live():
            return
        try:
            self.sender.receive_data(frame)
            while (event := self.sender.next_event()) is not None:
                self.on_sender_event(event)
        except RemoteProtocolError as exc:
            self.failures.append(exc.code)
            self.to_receiver.append(error_reply(exc))

    def on_sender_event(self, event: object) -> None:
        if isinstance(event, FileVerified):
            assert event.file in self.verified_now
        elif isinstance(event, TransferDone):
            assert self.verified_now == set(range(len(self.sources)))
            assert all(self.final)
        elif isinstance(event, PeerFailed):
            self.failures.append(event.code)

    @rule(count=st.integers(1, 8))
    def sender_sends(self, count: int) -> None:
        for _ in range(count):
            if not self.sender_live():
                return
            request = self.sender.next_chunk(self.payload)
            if request is None:
                return
            data = self.sources[request.file][request.offset : request.offset + request.length]
            self.to_receiver.append(self.sender.send_chunk(request.file, request.offset, data))

    # -- receiver-side driver -----------------------------------------------------

    def feed_receiver(self, frame: bytes) -> None:
        if not self.receiver_live():
            return
        try:
            self.receiver.receive_data(frame)
            while (event := self.receiver.next_event()) is not None:
                self.on_receiver_event(event)
        except RemoteProtocolError as exc:
            self.failures.append(exc.code)
            self.to_sender.append(error_reply(exc))

    def on_receiver_event(self, event: object) -> None:
        if isinstance(event, OfferReceived):
            offsets = [len(d) for d in self.durable]
            self.acked = list(offsets)
            self.to_sender.append(self.receiver.accept(offsets, self.window))
        elif isinstance(event, DataReceived):
            written = len(self.durable[event.file]) + len(self.volatile[event.file])
            assert event.offset == written, "DataReceived not contiguous with the disk"
            self.volatile[event.file] += event.data
        elif isinstance(event, FileReceived):
            self.to_verify.append(event.file)
        elif isinstance(event, PeerFailed):
            self.failures.append(event.code)

    @rule()
    def fsync(self) -> None:
        """Volatile bytes become durable; a live receiver acks them."""
        for index, pending in enumerate(self.volatile):
            self.durable[index] += pending
            pending.clear()
            if self.receiver.state is ReceiverState.RECEIVING and (
                len(self.durable[index]) > self.acked[index]
            ):
                self.acked[index] = len(self.durable[index])
                self.to_sender.append(self.receiver.ack(index, self.acked[index]))

    @rule()
    def verify(self) -> None:
        """fsync + ack, then hash the file from disk, like the real driver."""
        if not self.to_verify or self.receiver.state is not ReceiverState.RECEIVING:
            return
        file = self.to_verify.pop(0)
        self.fsync()
        if sha256(self.durable[file]) == self.entries[file].sha256:
            assert self.durable[file] == self.sources[file]
            self.final[file] = True
            self.verified_now.add(file)
            self.to_sender += split_frames(self.receiver.file_verified(file))
        else:
            self.durable[file].clear()  # the driver discards a file that failed
            self.failures.append(HASH_MISMATCH)
            self.to_sender.append(self.receiver.file_failed(file, "sha256 mismatch"))

    # -- network ------------------------------------------------------------------

    def feed(self, direction: str, frame: bytes) -> None:
        if direction == "to_receiver":
            self.feed_receiver(frame)
        else:
            self.feed_sender(frame)

    @rule(direction=DIRECTIONS, count=st.integers(1, 10))
    def deliver(self, direction: str, count: int) -> None:
        queue = getattr(self, direction)
        for _ in range(min(count, len(queue))):
            self.feed(direction, queue.pop(0))

    @rule(
        kind=st.sampled_from(["reorder", "drop", "duplicate", "corrupt"]),
        direction=DIRECTIONS,
        index=st.integers(0, 1 << 20),
    )
    def network_fault(self, kind: str, direction: str, index: int) -> None:
        """Misbehave with one frame in flight (at ``index`` modulo the queue length)."""
        queue = getattr(self, direction)
        if kind == "corrupt":
            self.corrupt(index)
        elif kind == "reorder" and len(queue) >= 2:
            self.faulty = True
            self.feed(direction, queue.pop(1 + index % (len(queue) - 1)))
        elif kind == "drop" and queue:
            self.faulty = True
            queue.pop(index % len(queue))
        elif kind == "duplicate" and queue:
            self.faulty = True
            position = index % len(queue)
            queue.insert(position, queue[position])

    def corrupt(self, index: int) -> None:
        """Flip one payload bit of a DATA frame in flight (caught only by the hash) or of a
        COMPRESSED_DATA frame (caught by the codec, or by the hash)."""
        data_frames = [i for i, f in enumerate(self.to_receiver) if f[4] in PAYLOAD_OFFSET]
        if data_frames:
            self.faulty = True
            position = data_frames[index % len(data_frames)]
            frame = bytearray(self.to_receiver[position])
            start = PAYLOAD_OFFSET[FrameKind(frame[4])]
            frame[start + index % (len(frame) - start)] ^= 0x01
            self.to_receiver[position] = bytes(frame)

    @rule()
    def pump(self) -> None:
        """One round over a perfect network: deliver everything, send, fsync, verify."""
        self.deliver("to_receiver", len(self.to_receiver))
        self.deliver("to_sender", len(self.to_sender))
        self.sender_sends(1000)
        self.fsync()
        while self.to_verify and self.receiver.state is ReceiverState.RECEIVING:
            self.verify()

    @rule()
    def kill(self) -> None:
        """Crash both ends: in-flight frames and volatile bytes are lost; restart."""
        self.connect()

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def final_files_equal_sources(self) -> None:
        for index, final in enumerate(self.final):
            if final:
                assert self.durable[index] == self.sources[index]

    @invariant()
    def window_respected(self) -> None:
        assert self.sender.statistics().in_flight <= self.window

    @invariant()
    def wire_bytes_never_exceed_file_bytes(self) -> None:
        sent = self.sender.statistics()
        received = self.receiver.statistics()
        assert sent.wire <= sent.sent and received.wire <= received.received
        if type(self).codec is None:
            assert (sent.wire, received.wire) == (sent.sent, received.received)

    @invariant()
    def clean_sessions_do_not_fail(self) -> None:
        if not self.faulty:
            assert set(self.failures) <= {HASH_MISMATCH}, self.failures

    # -- liveness ---------------------------------------------------------------------

    def run_perfect_network(self) -> None:
        """Pump both sides over a lossless in-order network until both have finished."""
        for _ in range(1000):
            if not (self.sender_live() or self.receiver_live()):
                return
            self.pump()
        raise AssertionError(f"stuck: sender {self.sender.state}, receiver {self.receiver.state}")

    def teardown(self) -> None:
        if not hasattr(self, "sender"):
            return
        # Each failed perfect session discards at least one corrupt file, so n + 1 suffice.
        for attempt in range(len(self.sources) + 2):
            if attempt or self.faulty:
                self.connect()
            self.run_perfect_network()
            assert set(self.failures) <= {HASH_MISMATCH}, self.failures
            if self.sender.state is SenderState.DONE:
                break
        assert self.sender.state is SenderState.DONE
        assert self.receiver.state is ReceiverState.DONE
        assert [bytes(d) for d in self.durable] == self.sources
        assert all(self.final)


TransferSystem.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestTransferSystem = TransferSystem.TestCase


class CompressedTransferSystem(TransferSystem):
    codec = ZlibCodec


CompressedTransferSystem.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCompressedTransferSystem = CompressedTransferSystem.TestCase
