"""Socket-free drivers for the transfer machines (h11's ``ConnectionPair`` idea).

``SenderDriver`` reads from in-memory sources, ``ReceiverDriver`` writes to an in-memory
"disk" with durable (fsynced) and volatile bytes, and ``Pair`` pumps bytes between them
through a pluggable transport (one frame per message, or arbitrary stream splits).
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections.abc import Callable, Sequence

from daemon.protocol.frames import LENGTH_PREFIX_SIZE
from daemon.protocol.messages import FileEntry
from daemon.protocol.transfer import TransferReceiver, TransferSender
from daemon.protocol.transfer_compression import Compression
from daemon.protocol.transfer_events import (
    Accepted,
    Acked,
    DataReceived,
    FileReceived,
    FileVerified,
    OfferReceived,
)
from daemon.protocol.transfer_states import RECEIVER_TERMINAL, SENDER_TERMINAL

__all__ = [
    "entry_for",
    "make_sources",
    "split_frames",
    "SenderDriver",
    "ReceiverDriver",
    "Pair",
    "whole_frames",
    "random_splits",
    "acked_events",
    "verified_files",
    "sha256",
    "ZlibCodec",
    "text_like",
]


def entry_for(index: int, data: bytes) -> FileEntry:
    return FileEntry(path=f"dir/file-{index}.bin", size=len(data), sha256=sha256(data))


def sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def make_sources(sizes: Sequence[int], seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes]


def text_like(size: int, seed: int = 0) -> bytes:
    """Log-like lines that compress well but are not constant (numbers and ids vary)."""
    rng = random.Random(seed)
    words = ["GET", "PUT", "/api/v1/shares", "/api/v1/transfers", "done", "ok", "peer", "relay"]
    out = bytearray()
    while len(out) < size:
        out += (
            f"{rng.randrange(10**9):09d} {rng.choice(words)} {rng.choice(words)} "
            f"id={rng.getrandbits(24):06x} n={rng.randrange(1000)}\n"
        ).encode()
    return bytes(out[:size])


class ZlibCodec:
    """A stdlib ``Compression`` for protocol tests (the product uses zstd, outside the package).

    ``decompress`` never produces more than ``raw_length`` bytes (``max_length``), so it is bomb-safe
    like the real codec. ``calls`` counts decompress calls (tests check they happen only after the
    position and window checks)."""

    def __init__(self, name: str = "zlib", worth_it: float = 0.9) -> None:
        self.name = name
        self.worth_it = worth_it
        self.calls = 0

    def compress(self, data: bytes | bytearray | memoryview) -> bytes | None:
        packed = zlib.compress(data, 1)
        return packed if len(packed) <= len(data) * self.worth_it else None

    def decompress(self, data: bytes | bytearray | memoryview, raw_length: int) -> bytes:
        self.calls += 1
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, raw_length)
        except zlib.error as exc:
            raise ValueError(str(exc)) from None
        if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data or len(out) != raw_length:
            raise ValueError(f"not one zlib stream of exactly {raw_length} bytes")
        return out


def split_frames(data: bytes) -> list[bytes]:
    """Cut a byte string made of whole frames into one ``bytes`` per frame."""
    frames, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + LENGTH_PREFIX_SIZE + length
        assert end <= len(data), "partial frame"
        frames.append(data[pos:end])
        pos = end
    return frames


Transport = Callable[[bytes], list[bytes]]


def whole_frames(data: bytes) -> list[bytes]:
    """Data-channel transport: one message per frame."""
    return split_frames(data)


def random_splits(seed: int, max_piece: int = 7000) -> Transport:
    """TCP-like transport: the stream cut at random points (pieces of 1..max_piece)."""
    rng = random.Random(seed)

    def cut(data: bytes) -> list[bytes]:
        pieces, pos = [], 0
        while pos < len(data):
            step = rng.randint(1, max_piece)
            pieces.append(data[pos : pos + step])
            pos += step
        return pieces

    return cut


class SenderDriver:
    """Drives a TransferSender from in-memory sources; checks the window invariant."""

    def __init__(
        self,
        sources: Sequence[bytes],
        *,
        max_payload: int = 16384,
        transfer_id: str = "t-1",
        compression: Compression | None = None,
    ) -> None:
        self.sources = list(sources)
        entries = [entry_for(i, s) for i, s in enumerate(sources)]
        self.machine = TransferSender(transfer_id, entries, compression=compression)
        self.max_payload = max_payload
        self.events: list[object] = []
        self.window: int | None = None
        self.max_in_flight = 0
        self.data_frames = 0

    def start(self) -> bytes:
        return self.machine.start()

    def pump(self, incoming: Sequence[bytes]) -> bytes:
        """Feed ``incoming`` messages, handle events, send what the window allows."""
        out = bytearray()
        if self.finished:
            return b""
        for message in incoming:
            self.machine.receive_data(message)
            while (event := self.machine.next_event()) is not None:
                self.events.append(event)
                if isinstance(event, Accepted):
                    self.window = event.window
        if self.finished:
            return b""
        while (request := self.machine.next_chunk(self.max_payload)) is not None:
            data = self.sources[request.file][request.offset : request.offset + request.length]
            out += self.machine.send_chunk(request.file, request.offset, data)
            self.data_frames += 1
            in_flight = self.machine.statistics().in_flight
            assert self.window is not None and in_flight <= self.window
            self.max_in_flight = max(self.max_in_flight, in_flight)
        return bytes(out)

    @property
    def finished(self) -> bool:
        return self.machine.state in SENDER_TERMINAL


class ReceiverDriver:
    """Drives a TransferReceiver into an in-memory disk.

    ``durable`` is what survives a crash (bytes fsynced and acked); ``volatile`` the
    bytes written since the last fsync. Each pump fsyncs and acks everything, then
    verifies complete files against the offered hash.
    """

    def __init__(
        self,
        durable: list[bytearray] | None = None,
        *,
        window: int = 256 * 1024,
        accept: bool = True,
        compression: Compression | None = None,
    ) -> None:
        self.machine = TransferReceiver(compression=compression)
        self.durable = durable
        self.volatile: list[bytearray] = []
        self.window = window
        self.accept = accept
        self.events: list[object] = []
        self.to_verify: list[int] = []
        self.final: set[int] = set()

    def start(self) -> bytes:
        return self.machine.start()

    def pump(self, incoming: Sequence[bytes]) -> bytes:
        out = bytearray()
        if self.finished:
            return b""
        for message in incoming:
            self.machine.receive_data(message)
            while (event := self.machine.next_event()) is not None:
                self.events.append(event)
                out += self._handle(event)
        if self.machine.state.name == "RECEIVING":
            out += self.fsync_and_ack()
            out += self.verify_all()
        return bytes(out)

    def _handle(self, event: object) -> bytes:
        if isinstance(event, OfferReceived):
            count = len(event.files)
            if self.durable is None:
                self.durable = [bytearray() for _ in range(count)]
            self.volatile = [bytearray() for _ in range(count)]
            if not self.accept:
                return self.machine.reject("no thanks")
            out = self.machine.accept([len(d) for d in self.durable], self.window)
            while (queued := self.machine.next_event()) is not None:
                self.events.append(queued)
                out += self._handle(queued)
            return out
        if isinstance(event, DataReceived):
            assert self.durable is not None
            disk = self.durable[event.file] + self.volatile[event.file]
            assert event.offset == len(disk), "machine emitted non-contiguous data"
            self.volatile[event.file] += event.data
        elif isinstance(event, FileReceived):
            self.to_verify.append(event.file)
        return b""

    def fsync_and_ack(self) -> bytes:
        assert self.durable is not None
        out = bytearray()
        for index, pending in enumerate(self.volatile):
            if pending:
                self.durable[index] += pending
                pending.clear()
                out += self.machine.ack(index, len(self.durable[index]))
        return bytes(out)

    def verify_all(self) -> bytes:
        assert self.durable is not None
        out = bytearray()
        while self.to_verify and self.machine.state.name == "RECEIVING":
            index = self.to_verify.pop(0)
            if sha256(self.durable[index]) == self.machine.files[index].sha256:
                self.final.add(index)
                out += self.machine.file_verified(index)
            else:
                self.durable[index].clear()
                out += self.machine.file_failed(index, "sha256 mismatch")
        return bytes(out)

    @property
    def finished(self) -> bool:
        return self.machine.state in RECEIVER_TERMINAL


class Pair:
    """A sender and a receiver connected by ``transport`` (applied in both directions)."""

    def __init__(
        self, sender: SenderDriver, receiver: ReceiverDriver, transport: Transport = whole_frames
    ) -> None:
        self.sender = sender
        self.receiver = receiver
        self.transport = transport
        self.to_receiver = transport(sender.start())
        self.to_sender = transport(receiver.start())

    def step(self) -> None:
        incoming, self.to_receiver = self.to_receiver, []
        self.to_sender += self.transport(self.receiver.pump(incoming))
        incoming, self.to_sender = self.to_sender, []
        self.to_receiver += self.transport(self.sender.pump(incoming))

    def run(self, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            if self.sender.finished and self.receiver.finished:
                return
            self.step()
        raise AssertionError("transfer did not finish")


def acked_events(events: Sequence[object]) -> list[Acked]:
    return [e for e in events if isinstance(e, Acked)]


def verified_files(events: Sequence[object]) -> list[int]:
    return [e.file for e in events if isinstance(e, FileVerified)]
