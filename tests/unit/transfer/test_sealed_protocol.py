"""Sealed sessions at the protocol level: the machines with a real ``SealingKey``, socket-free."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.crypto.sealing import SealingKey
from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import (
    DATA_FRAME_OVERHEAD,
    DATA_HEADER_SIZE,
    MAX_FRAME_LENGTH,
    MAX_SEALED_PAYLOAD,
    SEAL_HEADER_SIZE,
    SEAL_TAG_SIZE,
    SEALED_FRAME_OVERHEAD,
    FrameDecoder,
    FrameKind,
    SealedDataFrame,
    encode_control_frame,
    encode_data_frame,
    encode_sealed_data_frame,
    sealed_payload_limit,
)
from daemon.protocol.messages import Hello, decode_message, encode_message
from daemon.protocol.transfer import TransferReceiver, TransferSender
from daemon.protocol.transfer_events import DataReceived, FileReceived, OfferReceived
from daemon.protocol.transfer_sealing import BAD_SEAL, SEALING_MISMATCH
from daemon.protocol.transfer_states import ReceiverState, SenderState
from tests.unit.protocol.transfer_helpers import (
    Pair,
    ReceiverDriver,
    SenderDriver,
    entry_for,
    make_sources,
    random_splits,
    split_frames,
    verified_files,
)

KEY = SealingKey(bytes(range(32)))


def sealed_pair(sources: list[bytes], durable: list[bytearray] | None = None, **pair: object) -> Pair:
    sender = SenderDriver(sources, max_payload=16384)
    sender.machine = TransferSender("t-1", [entry_for(i, s) for i, s in enumerate(sources)], sealing=KEY)
    receiver = ReceiverDriver(durable)
    receiver.machine = TransferReceiver(sealing=KEY)
    return Pair(sender, receiver, **pair)  # type: ignore[arg-type]


def body(frame: bytes) -> dict[str, object]:
    return json.loads(frame[5:])


# -- framing and messages ------------------------------------------------------------


def test_sealed_frame_round_trip_and_limits() -> None:
    frame = encode_sealed_data_frame(3, 7, b"c" * SEAL_TAG_SIZE, header=b"h" * SEAL_HEADER_SIZE)
    assert frame[4] == FrameKind.SEALED_DATA == 0x03
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    got = decoder.next_frame()
    assert isinstance(got, SealedDataFrame)
    assert (got.file, got.offset, bytes(got.sealed)) == (3, 7, b"h" * 24 + b"c" * 17)
    assert SEALED_FRAME_OVERHEAD == DATA_FRAME_OVERHEAD + SEAL_TAG_SIZE == 34
    assert sealed_payload_limit(262144) == 262144 - 58 == 262086
    assert sealed_payload_limit(65536) == 65478
    assert sealed_payload_limit(1 << 24) == MAX_SEALED_PAYLOAD
    biggest = 1 + DATA_HEADER_SIZE + SEAL_HEADER_SIZE + MAX_SEALED_PAYLOAD + SEAL_TAG_SIZE
    assert biggest == MAX_FRAME_LENGTH
    encode_sealed_data_frame(0, 0, bytes(MAX_SEALED_PAYLOAD + SEAL_TAG_SIZE), header=bytes(24))
    with pytest.raises(LocalProtocolError):
        encode_sealed_data_frame(0, 0, bytes(MAX_SEALED_PAYLOAD + SEAL_TAG_SIZE + 1), header=bytes(24))
    with pytest.raises(LocalProtocolError):
        encode_sealed_data_frame(0, 0, bytes(SEAL_TAG_SIZE - 1))
    with pytest.raises(LocalProtocolError):
        encode_sealed_data_frame(0, 0, bytes(SEAL_TAG_SIZE), header=bytes(23))
    with pytest.raises(LocalProtocolError):
        sealed_payload_limit(58)


@pytest.mark.parametrize("body_size", [0, DATA_HEADER_SIZE, DATA_HEADER_SIZE + SEAL_TAG_SIZE - 1])
def test_sealed_frame_without_a_chunk_is_malformed(body_size: int) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(struct.pack(">IB", 1 + body_size, 0x03) + bytes(body_size))
    with pytest.raises(RemoteProtocolError) as failure:
        decoder.next_frame()
    assert failure.value.code == "frame_malformed"


def test_hello_says_sealed_only_when_true() -> None:
    assert body(encode_message(Hello())) == {"type": "hello", "version": 1}
    assert encode_message(Hello(sealed=True))[5:] == b'{"type":"hello","version":1,"sealed":true}'
    assert decode_message(b'{"type":"hello","version":1,"sealed":true}') == Hello(sealed=True)
    assert decode_message(b'{"type":"hello","version":1,"sealed":false}') == Hello()
    assert decode_message(b'{"type":"hello","version":1}') == Hello()
    for bad in (b'"yes"', b"1", b"null", b"[]"):
        with pytest.raises(RemoteProtocolError) as failure:
            decode_message(b'{"type":"hello","version":1,"sealed":' + bad + b"}")
        assert failure.value.code == "bad_message"
    with pytest.raises(RemoteProtocolError) as failure:  # still no other optional field anywhere
        decode_message(b'{"type":"done","sealed":true}')
    assert failure.value.code == "bad_message"


# -- whole transfers -----------------------------------------------------------------

SIZES = [0, 1, 5000, 40000, 0, 32768]


@pytest.mark.parametrize("transport", ["whole", "split"])
def test_sealed_transfer_round_trip(transport: str) -> None:
    sources = make_sources(SIZES, seed=4)
    pair = sealed_pair(sources, **({"transport": random_splits(9)} if transport == "split" else {}))
    sent: list[bytes] = []
    if transport == "whole":
        original = pair.sender.pump

        def recording(incoming: list[bytes]) -> bytes:
            out = original(incoming)
            sent.extend(split_frames(out))
            return out

        pair.sender.pump = recording  # type: ignore[method-assign]
    pair.run()
    assert pair.sender.machine.state is SenderState.DONE
    assert pair.receiver.machine.state is ReceiverState.DONE
    assert [bytes(d) for d in pair.receiver.durable or []] == sources
    assert sorted(verified_files(pair.sender.events)) == list(range(len(SIZES)))
    if transport == "whole":
        data = [f for f in sent if f[4] != FrameKind.CONTROL]
        assert data and all(f[4] == FrameKind.SEALED_DATA for f in data)
        # one frame per 16 KiB chunk, one empty FINAL chunk per empty file; first frames carry the header
        # each file's first frame carries the stream header; every frame costs 34 bytes
        plain, seen = [0] * len(SIZES), set()
        for frame in data:
            file, offset = struct.unpack_from(">IQ", frame, 5)
            assert offset == plain[file]
            header = 0 if file in seen else SEAL_HEADER_SIZE
            seen.add(file)
            plain[file] += len(frame) - SEALED_FRAME_OVERHEAD - header
        assert plain == SIZES
        assert len(data) == sum(max(1, -(-size // 16384)) for size in SIZES)


def test_sealed_resume_starts_new_streams_at_the_accepted_offsets() -> None:
    sources = make_sources([30000, 0, 20000], seed=5)
    durable = [bytearray(sources[0][:12345]), bytearray(), bytearray(sources[2])]
    pair = sealed_pair(sources, durable)
    pair.run()
    assert [bytes(d) for d in durable] == sources
    assert pair.receiver.machine.statistics().resumed == 12345 + 20000


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 40000), min_size=1, max_size=5),
    st.integers(0, 2**32 - 1),
    st.data(),
)
def test_any_sealed_transfer_round_trips(sizes: list[int], seed: int, data: st.DataObject) -> None:
    sources = make_sources(sizes, seed=seed)
    durable = [bytearray(s[: data.draw(st.integers(0, len(s)))]) for s in sources]
    pair = sealed_pair(sources, durable, transport=random_splits(seed))
    pair.run()
    assert [bytes(d) for d in durable] == sources


def test_empty_files_complete_only_with_their_final_chunk() -> None:
    sources = make_sources([0, 10], seed=1)
    entries = [entry_for(i, s) for i, s in enumerate(sources)]
    for sealing, expected in ((None, [FileReceived(file=0)]), (KEY, [])):
        sender = TransferSender("t-1", entries, sealing=sealing)
        receiver = TransferReceiver(sealing=sealing)
        hello = receiver.start()
        receiver.receive_data(sender.start())
        sender.receive_data(hello)
        assert isinstance(receiver.next_event(), OfferReceived)
        accept = receiver.accept([0, 0], 65536)
        assert list(iter(receiver.next_event, None)) == expected
        if sealing is None:
            continue
        sender.receive_data(accept)
        sender.next_event()
        request = sender.next_chunk(1000)
        assert request is not None and (request.file, request.offset, request.length) == (0, 0, 0)
        receiver.receive_data(sender.send_chunk(0, 0, b""))
        assert list(iter(receiver.next_event, None)) == [FileReceived(file=0)]


def test_sealed_sender_limits_max_payload() -> None:
    sender = TransferSender("t-1", [entry_for(0, b"x")], sealing=KEY)
    with pytest.raises(LocalProtocolError):
        sender.next_chunk(MAX_SEALED_PAYLOAD + 1)


# -- agreement: no downgrade ---------------------------------------------------------


@pytest.mark.parametrize(("sender_key", "receiver_key"), [(KEY, None), (None, KEY)])
def test_hello_mismatch_is_refused_by_both_sides(
    sender_key: SealingKey | None, receiver_key: SealingKey | None
) -> None:
    sender = TransferSender("t-1", [entry_for(0, b"abc")], sealing=sender_key)
    receiver = TransferReceiver(sealing=receiver_key)
    to_sender = receiver.start()
    receiver.receive_data(sender.start())
    with pytest.raises(RemoteProtocolError) as at_receiver:
        receiver.next_event()
    assert at_receiver.value.code == SEALING_MISMATCH and receiver.state is ReceiverState.ERROR
    sender.receive_data(to_sender)
    with pytest.raises(RemoteProtocolError) as at_sender:
        sender.next_event()
    assert at_sender.value.code == SEALING_MISMATCH and sender.state is SenderState.ERROR


def accepted_receiver(sealing: SealingKey | None, data: bytes = b"abcdef") -> TransferReceiver:
    """A receiver that got a hello claiming ``sealing`` and an offer, and accepted from 0."""
    receiver = TransferReceiver(sealing=sealing)
    receiver.start()
    offer = TransferSender("t-1", [entry_for(0, data)], sealing=sealing).start()
    receiver.receive_data(offer)
    assert isinstance(receiver.next_event(), OfferReceived)
    receiver.accept([0], 65536)
    return receiver


def test_plaintext_data_in_a_sealed_session_is_refused() -> None:
    receiver = accepted_receiver(KEY)
    receiver.receive_data(encode_data_frame(0, 0, b"abcdef"))
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert failure.value.code == SEALING_MISMATCH


def test_sealed_data_in_a_plain_session_is_refused() -> None:
    receiver = accepted_receiver(None)
    sealer = KEY.sealer("t-1", 0, 0)
    sealed = sealer.seal(b"abcdef", offset=0, final=True)
    receiver.receive_data(encode_sealed_data_frame(0, 0, sealed, header=sealer.header))
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert failure.value.code == SEALING_MISMATCH


# -- tampering -----------------------------------------------------------------------


def sealed_frames(data: bytes, sizes: list[int], *, key: SealingKey = KEY) -> list[bytes]:
    sealer = key.sealer("t-1", 0, 0)
    frames, offset = [], 0
    for i, size in enumerate(sizes):
        chunk = data[offset : offset + size]
        sealed = sealer.seal(chunk, offset=offset, final=offset + size == len(data))
        frames.append(encode_sealed_data_frame(0, offset, sealed, header=sealer.header if i == 0 else b""))
        offset += size
    return frames


def feed(receiver: TransferReceiver, frames: list[bytes]) -> list[object]:
    events: list[object] = []
    for frame in frames:
        receiver.receive_data(frame)
        events.extend(iter(receiver.next_event, None))
    return events


def expect_bad_seal(receiver: TransferReceiver, frame: bytes, code: str = BAD_SEAL) -> None:
    receiver.receive_data(frame)
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert failure.value.code == code
    assert receiver.state is ReceiverState.ERROR and receiver.next_event() is None


DATA = bytes(range(60))


def test_untampered_frames_open() -> None:
    receiver = accepted_receiver(KEY, DATA)
    events = feed(receiver, sealed_frames(DATA, [20, 20, 20]))
    assert b"".join(bytes(e.data) for e in events if isinstance(e, DataReceived)) == DATA
    assert events[-1] == FileReceived(file=0)


@pytest.mark.parametrize("position", [-1, -17, 5 + DATA_HEADER_SIZE, 5 + DATA_HEADER_SIZE + SEAL_HEADER_SIZE])
def test_flipped_byte_in_the_first_frame(position: int) -> None:
    receiver = accepted_receiver(KEY, DATA)
    frame = bytearray(sealed_frames(DATA, [20, 20, 20])[0])
    frame[position] ^= 0x40
    expect_bad_seal(receiver, bytes(frame))


def test_flipped_byte_in_a_later_frame_emits_nothing_for_it() -> None:
    receiver = accepted_receiver(KEY, DATA)
    frames = sealed_frames(DATA, [20, 20, 20])
    events = feed(receiver, frames[:1])
    assert [bytes(e.data) for e in events if isinstance(e, DataReceived)] == [DATA[:20]]
    bad = bytearray(frames[1])
    bad[-3] ^= 1
    expect_bad_seal(receiver, bytes(bad))


def test_replayed_frame_with_a_rewritten_offset() -> None:
    receiver = accepted_receiver(KEY, DATA)
    frames = sealed_frames(DATA, [20, 20, 20])
    feed(receiver, frames[:2])
    replay = bytearray(frames[1])
    struct.pack_into(">Q", replay, 9, 40)  # frame 1 again, posing as the chunk at offset 40
    expect_bad_seal(receiver, bytes(replay))


def test_plain_replay_and_reorder_fail_the_position_check() -> None:
    receiver = accepted_receiver(KEY, DATA)
    frames = sealed_frames(DATA, [20, 20, 20])
    feed(receiver, frames[:2])
    expect_bad_seal(receiver, frames[1], code="bad_offset")


def test_swapped_frames_with_rewritten_offsets() -> None:
    receiver = accepted_receiver(KEY, DATA)
    frames = sealed_frames(DATA, [20, 20, 20])
    feed(receiver, frames[:1])
    swapped = bytearray(frames[2])
    struct.pack_into(">Q", swapped, 9, 20)
    expect_bad_seal(receiver, bytes(swapped))


def test_first_frame_without_its_header() -> None:
    receiver = accepted_receiver(KEY, DATA)
    frames = sealed_frames(DATA, [20, 20, 20])
    stripped = encode_sealed_data_frame(0, 0, frames[0][5 + DATA_HEADER_SIZE + SEAL_HEADER_SIZE :])
    expect_bad_seal(receiver, stripped)


def test_truncated_file_is_never_complete() -> None:
    """The sender's last chunk never comes: no FileReceived, whatever else arrives."""
    receiver = accepted_receiver(KEY, DATA)
    frames = sealed_frames(DATA, [20, 20, 20])
    events = feed(receiver, frames[:2])
    assert not any(isinstance(e, FileReceived) for e in events)
    receiver.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert failure.value.code == "unexpected_eof"


def test_stream_ended_early_is_refused() -> None:
    """A sender that seals FINAL before the offered size (a forged shorter stream) is caught."""
    receiver = accepted_receiver(KEY, DATA)
    sealer = KEY.sealer("t-1", 0, 0)
    early = encode_sealed_data_frame(0, 0, sealer.seal(DATA[:20], offset=0, final=True), header=sealer.header)
    expect_bad_seal(receiver, early)


def test_empty_chunk_inside_a_file_is_refused() -> None:
    receiver = accepted_receiver(KEY, DATA)
    sealer = KEY.sealer("t-1", 0, 0)
    empty = encode_sealed_data_frame(0, 0, sealer.seal(b"", offset=0, final=False), header=sealer.header)
    expect_bad_seal(receiver, empty)


def test_wrong_key() -> None:
    receiver = accepted_receiver(KEY, DATA)
    other = SealingKey(bytes(32))
    expect_bad_seal(receiver, sealed_frames(DATA, [60], key=other)[0])


def test_stream_for_another_transfer() -> None:
    receiver = accepted_receiver(KEY, DATA)
    sealer = KEY.sealer("t-2", 0, 0)
    frame = encode_sealed_data_frame(0, 0, sealer.seal(DATA, offset=0, final=True), header=sealer.header)
    expect_bad_seal(receiver, frame)


def test_window_counts_plaintext() -> None:
    data = bytes(70000)
    receiver = accepted_receiver(KEY, data)
    frames = sealed_frames(data, [65536, 70000 - 65536])
    events = feed(receiver, frames[:1])
    assert receiver.statistics().received == 65536 and events
    expect_bad_seal(receiver, frames[1], code="window")


def test_control_frames_are_not_affected() -> None:
    receiver = accepted_receiver(KEY, DATA)
    receiver.receive_data(encode_control_frame(b'{"type":"cancel","reason":"bye"}'))
    assert receiver.next_event() is not None and receiver.state is ReceiverState.CANCELLED


@pytest.mark.parametrize("sealing", [None, KEY])
def test_data_after_the_last_file_is_bad_file(sealing: SealingKey | None) -> None:
    """With every file complete, a frame naming file ``len(files)`` is a protocol error (not an
    IndexError)."""
    receiver = TransferReceiver(sealing=sealing)
    receiver.start()
    receiver.receive_data(TransferSender("t-1", [entry_for(0, b"abc")], sealing=sealing).start())
    assert isinstance(receiver.next_event(), OfferReceived)
    receiver.accept([3], 65536)
    assert list(iter(receiver.next_event, None)) == [FileReceived(file=0)]
    if sealing is None:
        frame = encode_data_frame(1, 0, b"x")
    else:
        sealer = KEY.sealer("t-1", 1, 0)
        frame = encode_sealed_data_frame(1, 0, sealer.seal(b"x", offset=0, final=True), header=sealer.header)
    expect_bad_seal(receiver, frame, code="bad_file")
