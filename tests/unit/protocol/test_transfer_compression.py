"""Compressed sessions at the protocol level: COMPRESSED_DATA framing, ``hello.compress``,
negotiation, the sender's content choice and the receiver's limits, socket-free, with the stdlib
``ZlibCodec`` double (the zstd codec and sealed sessions: ``tests/unit/transfer``)."""

from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import (
    COMPRESSED_FRAME_OVERHEAD,
    COMPRESSED_HEADER_SIZE,
    DATA_FRAME_OVERHEAD,
    MAX_DATA_PAYLOAD,
    MAX_FRAME_LENGTH,
    CompressedDataFrame,
    FrameDecoder,
    FrameKind,
    encode_compressed_data_frame,
    encode_data_frame,
)
from daemon.protocol.messages import Hello, decode_message, encode_message
from daemon.protocol.transfer import TransferReceiver, TransferSender
from daemon.protocol.transfer_compression import (
    BAD_COMPRESSION,
    COMPRESSION_MISMATCH,
    GIVE_UP_AFTER,
    Compression,
)
from daemon.protocol.transfer_events import DataReceived, FileReceived, OfferReceived
from daemon.protocol.transfer_states import ReceiverState, SenderState
from tests.unit.protocol.transfer_helpers import (
    Pair,
    ReceiverDriver,
    SenderDriver,
    ZlibCodec,
    entry_for,
    make_sources,
    random_splits,
    split_frames,
    text_like,
    verified_files,
)

TEXT = text_like(100_000, seed=1)
NOISE = make_sources([100_000], seed=2)[0]


def kinds(frames: list[bytes]) -> list[FrameKind]:
    return [FrameKind(f[4]) for f in frames if f[4] != FrameKind.CONTROL]


def hello_body(frame: bytes) -> dict[str, object]:
    return json.loads(frame[5 : 5 + struct.unpack_from(">I", frame)[0] - 1])


# -- framing ---------------------------------------------------------------------------


def test_compressed_frame_layout_and_round_trip() -> None:
    frame = encode_compressed_data_frame(3, 1 << 40, 5000, b"zz")
    assert frame == struct.pack(">IBIQI", 1 + 16 + 2, 0x04, 3, 1 << 40, 5000) + b"zz"
    assert COMPRESSED_HEADER_SIZE == 16 and COMPRESSED_FRAME_OVERHEAD == DATA_FRAME_OVERHEAD + 4 == 21
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    got = decoder.next_frame()
    assert isinstance(got, CompressedDataFrame)
    assert (got.file, got.offset, got.raw_length, bytes(got.compressed)) == (3, 1 << 40, 5000, b"zz")
    assert got.compressed.readonly


@pytest.mark.parametrize(
    ("file", "offset", "raw_length", "compressed"),
    [
        (0, 0, 0, b"z"),
        (0, 0, MAX_DATA_PAYLOAD + 1, b"z"),
        (0, 0, 10, b""),
        (0, 0, 10, bytes(MAX_DATA_PAYLOAD - 3)),
        (1 << 32, 0, 10, b"z"),
        (0, 1 << 64, 10, b"z"),
    ],
)
def test_encoder_refuses_bad_arguments(file: int, offset: int, raw_length: int, compressed: bytes) -> None:
    with pytest.raises(LocalProtocolError) as failure:
        encode_compressed_data_frame(file, offset, raw_length, compressed)
    assert failure.value.code == "bad_argument"


def test_largest_compressed_frame_fits_the_frame_limit() -> None:
    frame = encode_compressed_data_frame(0, 0, MAX_DATA_PAYLOAD, bytes(MAX_DATA_PAYLOAD - 4))
    assert struct.unpack_from(">I", frame)[0] == MAX_FRAME_LENGTH


def raw_frame(body: bytes) -> bytes:
    return struct.pack(">IB", 1 + len(body), 0x04) + body


@pytest.mark.parametrize(
    "data",
    [
        raw_frame(b""),
        raw_frame(bytes(COMPRESSED_HEADER_SIZE)),  # no compressed byte
        raw_frame(struct.pack(">IQI", 0, 0, 0) + b"z"),  # raw_length 0
        raw_frame(struct.pack(">IQI", 0, 0, MAX_DATA_PAYLOAD + 1) + b"z"),
        raw_frame(struct.pack(">IQI", 0, 0, 0xFFFFFFFF) + b"z"),
        # the header alone is enough to refuse a bad raw_length (the body is not awaited)
        raw_frame(struct.pack(">IQI", 0, 0, 0) + bytes(1000))[: 5 + COMPRESSED_HEADER_SIZE],
    ],
)
def test_malformed_compressed_frames(data: bytes) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    with pytest.raises(RemoteProtocolError) as failure:
        decoder.next_frame()
    assert failure.value.code == "frame_malformed"


def test_truncated_compressed_frame_at_eof() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_compressed_data_frame(0, 0, 10, b"abc")[:-1])
    decoder.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as failure:
        decoder.next_frame()
    assert failure.value.code == "frame_truncated"


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=1, max_size=300), st.integers(1, MAX_DATA_PAYLOAD), st.integers(1, 40))
def test_compressed_frames_survive_any_split(compressed: bytes, raw_length: int, piece: int) -> None:
    stream = encode_compressed_data_frame(1, 2, raw_length, compressed) + encode_data_frame(1, 3, b"x")
    decoder = FrameDecoder()
    frames = []
    for start in range(0, len(stream), piece):
        decoder.receive_data(stream[start : start + piece])
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    assert len(frames) == 2 and isinstance(frames[0], CompressedDataFrame)
    assert bytes(frames[0].compressed) == compressed and frames[0].raw_length == raw_length


# -- hello.compress ------------------------------------------------------------------


def test_hello_names_codecs_only_when_it_has_one() -> None:
    assert hello_body(encode_message(Hello())) == {"type": "hello", "version": 1}
    assert encode_message(Hello(compress=("zstd",)))[5:] == b'{"type":"hello","version":1,"compress":["zstd"]}'
    assert decode_message(b'{"type":"hello","version":1,"compress":["zstd","lz4"]}') == Hello(
        compress=("zstd", "lz4")
    )
    both = b'{"type":"hello","version":1,"sealed":true,"compress":["zstd"]}'
    assert decode_message(both) == Hello(sealed=True, compress=("zstd",))


@pytest.mark.parametrize(
    "value",
    [b"[]", b'"zstd"', b"null", b"[1]", b'["ZSTD"]', b'[""]', b'["a","a"]', b'["' + b"x" * 33 + b'"]',
     b"[" + b",".join(b'"c%d"' % i for i in range(9)) + b"]", b'["zstd",null]', b'{"zstd":1}'],
)
def test_bad_compress_fields(value: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as failure:
        decode_message(b'{"type":"hello","version":1,"compress":' + value + b"}")
    assert failure.value.code == "bad_message"


def test_compress_only_in_hello() -> None:
    with pytest.raises(RemoteProtocolError) as failure:
        decode_message(b'{"type":"done","compress":["zstd"]}')
    assert failure.value.code == "bad_message"


def test_invalid_codec_name_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError) as failure:
        TransferReceiver(compression=ZlibCodec(name="Not Valid"))
    assert failure.value.code == "bad_argument"


# -- negotiation ---------------------------------------------------------------------


def run_pair(sources: list[bytes], sender_codec: Compression | None, receiver_codec: Compression | None,
             **pair: object) -> tuple[Pair, list[bytes]]:
    """A whole transfer; returns the pair and every frame the sender sent (one per message)."""
    sender = SenderDriver(sources, compression=sender_codec)
    receiver = ReceiverDriver(compression=receiver_codec)
    sent: list[bytes] = []
    original = sender.pump

    def recording(incoming: list[bytes]) -> bytes:
        out = original(incoming)
        sent.extend(split_frames(out))
        return out

    sender.pump = recording  # type: ignore[method-assign]
    result = Pair(sender, receiver, **pair)  # type: ignore[arg-type]
    sent.extend(result.to_receiver)  # hello and offer, sent before the first pump
    result.run()
    assert sender.machine.state is SenderState.DONE and receiver.machine.state is ReceiverState.DONE
    assert [bytes(d) for d in receiver.durable or []] == sources
    return result, sent


@pytest.mark.parametrize(
    ("sender_codec", "receiver_codec", "compressed"),
    [
        ("zlib", "zlib", True),
        ("zlib", None, False),
        (None, "zlib", False),
        (None, None, False),
        ("zlib", "other", False),  # both have a codec, but not the same one
    ],
)
def test_negotiation_matrix(sender_codec: str | None, receiver_codec: str | None, compressed: bool) -> None:
    def codec(name: str | None) -> ZlibCodec | None:
        return None if name is None else ZlibCodec(name=name)

    pair, sent = run_pair([TEXT, b"", NOISE], codec(sender_codec), codec(receiver_codec))
    hellos = [hello_body(f) for f in sent if f[4] == FrameKind.CONTROL][:1]
    assert hellos[0].get("compress") == ([sender_codec] if sender_codec else None)
    assert pair.sender.machine.compressing is compressed
    assert pair.receiver.machine.compressing is compressed
    assert (FrameKind.COMPRESSED_DATA in kinds(sent)) is compressed
    statistics = pair.sender.machine.statistics()
    assert (statistics.wire < statistics.sent) is compressed
    assert pair.receiver.machine.statistics().wire == statistics.wire


def test_text_shrinks_and_random_goes_plain_after_two_tries() -> None:
    pair, sent = run_pair([TEXT, NOISE], ZlibCodec(), ZlibCodec())
    frames = [f for f in sent if f[4] != FrameKind.CONTROL]
    per_file: dict[int, list[FrameKind]] = {0: [], 1: []}
    for frame in frames:
        per_file[struct.unpack_from(">I", frame, 5)[0]].append(FrameKind(frame[4]))
    assert set(per_file[0]) == {FrameKind.COMPRESSED_DATA}
    assert per_file[1] == [FrameKind.DATA] * len(per_file[1])
    statistics = pair.sender.machine.statistics()
    assert statistics.sent == len(TEXT) + len(NOISE)
    assert statistics.wire < len(TEXT) / 2 + len(NOISE)


class CountingCodec(ZlibCodec):
    def __init__(self) -> None:
        super().__init__()
        self.compress_calls = 0

    def compress(self, data: bytes | bytearray | memoryview) -> bytes | None:
        self.compress_calls += 1
        return super().compress(data)


def test_incompressible_files_cost_two_trial_compressions_each() -> None:
    codec = CountingCodec()
    noise = make_sources([100_000, 100_000], seed=3)
    run_pair(noise, codec, ZlibCodec())
    assert codec.compress_calls == 2 * GIVE_UP_AFTER


def test_a_file_that_stops_compressing_goes_plain_for_its_rest() -> None:
    mixed = TEXT[:50_000] + NOISE[:50_000]
    codec = CountingCodec()
    pair, sent = run_pair([mixed, TEXT[:40_000]], codec, ZlibCodec())
    data = [(struct.unpack_from(">I", f, 5)[0], FrameKind(f[4])) for f in sent if f[4] != FrameKind.CONTROL]
    first = [kind for file, kind in data if file == 0]
    # 16 KiB chunks: three of text (the 4th straddles), then random: two misses, then plain
    assert first[:3] == [FrameKind.COMPRESSED_DATA] * 3
    assert first[-2:] == [FrameKind.DATA] * 2
    assert [kind for file, kind in data if file == 1] == [FrameKind.COMPRESSED_DATA] * 3  # a new file tries again
    assert codec.compress_calls == 5 + 3


def test_compressed_frames_are_never_larger_than_plain_ones() -> None:
    """A codec that claims success with output that would not shrink the frame is overruled."""

    class Stubborn(ZlibCodec):
        def compress(self, data: bytes | bytearray | memoryview) -> bytes | None:
            return zlib.compress(data, 0)  # stored: larger than the input

    pair, sent = run_pair([TEXT[:1000], b"abc"], Stubborn(), ZlibCodec())
    assert kinds(sent) == [FrameKind.DATA, FrameKind.DATA]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(["text", "noise", "mixed", "tiny"]), min_size=1, max_size=4),
    st.lists(st.integers(0, 60_000), min_size=4, max_size=4),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_any_compressed_transfer_round_trips(kinds_: list[str], sizes: list[int], seed: int,
                                             data: st.DataObject) -> None:
    sources = []
    for kind, size in zip(kinds_, sizes, strict=False):
        text, noise = text_like(size, seed), make_sources([size], seed)[0]
        sources.append({"text": text, "noise": noise, "mixed": text[: size // 2] + noise[size // 2 :],
                        "tiny": text[: size % 7]}[kind])
    durable = [bytearray(s[: data.draw(st.integers(0, len(s)))]) for s in sources]
    sender = SenderDriver(sources, compression=ZlibCodec(), max_payload=data.draw(st.sampled_from([100, 16384])))
    receiver = ReceiverDriver(durable, compression=ZlibCodec(), window=65536)
    Pair(sender, receiver, transport=random_splits(seed)).run()
    assert [bytes(d) for d in durable] == sources
    assert sorted(verified_files(sender.events)) == list(range(len(sources)))


# -- the receiver's limits -----------------------------------------------------------


def receiver_with(data: bytes, *, codec: ZlibCodec | None, sender_names: tuple[str, ...] = ("zlib",),
                  window: int = 65536) -> TransferReceiver:
    """A receiver after a hello naming ``sender_names`` and a one-file offer, accepted from 0."""
    receiver = TransferReceiver(compression=codec)
    receiver.start()
    receiver.receive_data(encode_message(Hello(compress=sender_names)))
    receiver.receive_data(TransferSender("t-1", [entry_for(0, data)]).start()[len(encode_message(Hello())):])
    assert isinstance(receiver.next_event(), OfferReceived)
    receiver.accept([0], window)
    return receiver


def refused(receiver: TransferReceiver, frame: bytes) -> str:
    receiver.receive_data(frame)
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert receiver.state is ReceiverState.ERROR and receiver.next_event() is None
    return failure.value.code


def test_receiver_accepts_plain_and_compressed_frames_in_one_file() -> None:
    receiver = receiver_with(TEXT[:30_000], codec=ZlibCodec())
    frames = [encode_compressed_data_frame(0, 0, 10_000, zlib.compress(TEXT[:10_000])),
              encode_data_frame(0, 10_000, TEXT[10_000:20_000]),
              encode_compressed_data_frame(0, 20_000, 10_000, zlib.compress(TEXT[20_000:30_000]))]
    events = []
    for frame in frames:
        receiver.receive_data(frame)
        events.extend(iter(receiver.next_event, None))
    assert b"".join(bytes(e.data) for e in events if isinstance(e, DataReceived)) == TEXT[:30_000]
    assert events[-1] == FileReceived(file=0)
    assert all(e.data.readonly for e in events if isinstance(e, DataReceived))
    statistics = receiver.statistics()
    assert statistics.received == 30_000 and statistics.wire < 30_000


@pytest.mark.parametrize(
    ("codec", "sender_names"),
    [(None, ("zlib",)), (ZlibCodec(), ()), (ZlibCodec(), ("zstd",)), (None, ())],
)
def test_compressed_frame_without_agreement(codec: ZlibCodec | None, sender_names: tuple[str, ...]) -> None:
    receiver = receiver_with(TEXT[:1000], codec=codec, sender_names=sender_names)
    frame = encode_compressed_data_frame(0, 0, 1000, zlib.compress(TEXT[:1000]))
    assert refused(receiver, frame) == COMPRESSION_MISMATCH


def test_sender_refuses_data_frames() -> None:
    sender = TransferSender("t-1", [entry_for(0, b"abc")], compression=ZlibCodec())
    sender.start()
    sender.receive_data(encode_message(Hello(compress=("zlib",))))
    sender.receive_data(encode_compressed_data_frame(0, 0, 3, zlib.compress(b"abc")))
    with pytest.raises(RemoteProtocolError) as failure:
        sender.next_event()
    assert failure.value.code == "unexpected_message"


GOOD = zlib.compress(TEXT[:10_000])

HOSTILE = {
    "garbage": (encode_compressed_data_frame(0, 0, 10_000, b"\x00garbage" * 10), BAD_COMPRESSION),
    "raw_length too small (a bomb)": (encode_compressed_data_frame(0, 0, 9_999, GOOD), BAD_COMPRESSION),
    "raw_length too large": (encode_compressed_data_frame(0, 0, 10_001, GOOD), BAD_COMPRESSION),
    "truncated stream": (encode_compressed_data_frame(0, 0, 10_000, GOOD[:-5]), BAD_COMPRESSION),
    "trailing bytes": (encode_compressed_data_frame(0, 0, 10_000, GOOD + b"x"), BAD_COMPRESSION),
    "zeros bomb": (encode_compressed_data_frame(0, 0, 1000, zlib.compress(bytes(MAX_DATA_PAYLOAD))),
                   BAD_COMPRESSION),
    "gap": (encode_compressed_data_frame(0, 1, 10_000, GOOD), "bad_offset"),
    "other file": (encode_compressed_data_frame(1, 0, 10_000, GOOD), "bad_file"),
    "past the end": (encode_compressed_data_frame(0, 0, 60_000, GOOD), "bad_offset"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_compressed_frames(name: str) -> None:
    frame, code = HOSTILE[name]
    codec = ZlibCodec()
    receiver = receiver_with(TEXT[:50_000], codec=codec)
    assert refused(receiver, frame) == code
    assert codec.calls == (1 if code == BAD_COMPRESSION else 0)  # positions are checked first
    assert receiver.statistics().received == 0


def test_window_is_checked_with_raw_length_before_decompressing() -> None:
    data = bytes(70_000)
    codec = ZlibCodec()
    receiver = receiver_with(data, codec=codec, window=65536)
    receiver.receive_data(encode_compressed_data_frame(0, 0, 60_000, zlib.compress(data[:60_000])))
    assert isinstance(receiver.next_event(), DataReceived)
    assert codec.calls == 1
    assert refused(receiver, encode_compressed_data_frame(0, 60_000, 10_000, zlib.compress(data[:10_000]))) == "window"
    assert codec.calls == 1


class Lying(ZlibCodec):
    """A codec that does not honour its contract (returns a longer result)."""

    def decompress(self, data: bytes | bytearray | memoryview, raw_length: int) -> bytes:
        return bytes(raw_length + 1)


def test_output_of_the_wrong_length_is_refused_even_from_a_lax_codec() -> None:
    receiver = receiver_with(TEXT[:1000], codec=Lying())
    frame = encode_compressed_data_frame(0, 0, 1000, zlib.compress(TEXT[:1000]))
    assert refused(receiver, frame) == BAD_COMPRESSION


def damaged(cut: int, position: int) -> bytes:
    """``GOOD`` cut to ``cut`` bytes with one bit flipped."""
    out = bytearray(GOOD[:cut])
    out[position % cut] ^= 0x01
    return bytes(out)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=1, max_size=200),
        st.tuples(st.integers(1, len(GOOD)), st.integers(0, 10**6)).map(lambda cut: damaged(*cut)),
    ),
    st.integers(0, 20_000),
    st.integers(0, 3),
)
def test_any_hostile_compressed_frame_fails_cleanly(compressed: bytes, raw_length: int, offset: int) -> None:
    """Any payload, any ``raw_length`` (the header is built by hand, so 0 and oversize occur):
    a remote error with a known code and no event, or exactly the bytes it claims."""
    body = struct.pack(">IQI", 0, offset, raw_length) + compressed
    receiver = receiver_with(TEXT[:10_000], codec=ZlibCodec())
    receiver.receive_data(struct.pack(">IB", 1 + len(body), 0x04) + body)
    try:
        events = list(iter(receiver.next_event, None))
    except RemoteProtocolError as exc:
        assert exc.code in {BAD_COMPRESSION, "frame_malformed", "bad_offset", "window"}
        assert receiver.state is ReceiverState.ERROR and receiver.next_event() is None
        assert receiver.statistics().received == 0
        return
    assert offset == 0 and receiver.statistics().received == raw_length  # it really was a valid frame
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == raw_length
