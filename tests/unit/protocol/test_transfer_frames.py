"""Framing: round trips, arbitrary splits, every malformed case with its error code."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import (
    DATA_FRAME_OVERHEAD,
    DATA_HEADER_SIZE,
    MAX_CONTROL_BODY,
    MAX_DATA_PAYLOAD,
    MAX_FRAME_LENGTH,
    ControlFrame,
    DataFrame,
    FrameDecoder,
    data_payload_limit,
    encode_control_frame,
    encode_data_frame,
)


def decode_all(*chunks: bytes) -> list[ControlFrame | DataFrame]:
    decoder = FrameDecoder()
    frames = []
    for chunk in chunks:
        decoder.receive_data(chunk)
        while (frame := decoder.next_frame()) is not None:
            frames.append(frame)
    return frames


def raw(length: int, kind: int, body: bytes = b"") -> bytes:
    return struct.pack(">IB", length, kind) + body


def remote_error(data: bytes, *, eof: bool = False) -> RemoteProtocolError:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    if eof:
        decoder.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        while decoder.next_frame() is not None:
            pass
    return info.value


# -- encoding ------------------------------------------------------------------------


def test_control_frame_layout() -> None:
    assert encode_control_frame(b'{"a":1}') == b"\x00\x00\x00\x08\x01" + b'{"a":1}'


def test_data_frame_layout() -> None:
    frame = encode_data_frame(3, 2**40 + 5, b"xyz")
    assert frame == (
        b"\x00\x00\x00\x10\x02" + b"\x00\x00\x00\x03" + (2**40 + 5).to_bytes(8, "big") + b"xyz"
    )
    assert len(frame) == DATA_FRAME_OVERHEAD + 3
    assert DATA_HEADER_SIZE == 12


def test_data_payload_limit_fits_messages() -> None:
    assert data_payload_limit(65536) == 65536 - 4 - 1 - 12
    assert len(encode_data_frame(0, 0, bytes(data_payload_limit(65536)))) == 65536
    assert data_payload_limit(1 << 30) == MAX_DATA_PAYLOAD
    with pytest.raises(LocalProtocolError):
        data_payload_limit(DATA_FRAME_OVERHEAD)


@pytest.mark.parametrize(
    ("file", "offset", "payload"),
    [(-1, 0, b"x"), (2**32, 0, b"x"), (0, -1, b"x"), (0, 2**64, b"x"), (0, 0, b"")],
)
def test_encode_data_rejects_bad_arguments(file: int, offset: int, payload: bytes) -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_data_frame(file, offset, payload)
    assert info.value.code == "bad_argument"


def test_encode_limits() -> None:
    encode_control_frame(bytes(MAX_CONTROL_BODY))
    with pytest.raises(LocalProtocolError) as info:
        encode_control_frame(bytes(MAX_CONTROL_BODY + 1))
    assert info.value.code == "frame_too_large"
    encode_data_frame(0, 0, bytes(MAX_DATA_PAYLOAD))
    with pytest.raises(LocalProtocolError):
        encode_data_frame(0, 0, bytes(MAX_DATA_PAYLOAD + 1))


# -- decoding ------------------------------------------------------------------------


def test_round_trip_mixed_frames() -> None:
    stream = (
        encode_control_frame(b"{}")
        + encode_data_frame(1, 7, b"hello")
        + encode_control_frame(b'{"type":"done"}')
    )
    frames = decode_all(stream)
    assert frames[0] == ControlFrame(body=b"{}")
    assert isinstance(frames[1], DataFrame)
    assert (frames[1].file, frames[1].offset, bytes(frames[1].payload)) == (1, 7, b"hello")
    assert frames[2] == ControlFrame(body=b'{"type":"done"}')


def test_whole_frame_payload_is_zero_copy() -> None:
    message = encode_data_frame(0, 0, b"a" * 1000)
    (frame,) = decode_all(message)
    assert isinstance(frame, DataFrame)
    assert frame.payload.obj is message
    assert frame.payload.readonly


def test_payload_survives_later_input() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_data_frame(0, 0, b"first") + encode_data_frame(0, 5, b"x")[:3])
    frame = decoder.next_frame()
    assert decoder.next_frame() is None
    decoder.receive_data(encode_data_frame(0, 5, b"x")[3:])
    assert isinstance(frame, DataFrame) and bytes(frame.payload) == b"first"
    assert decoder.next_frame() is not None


frame_strategy = st.one_of(
    st.binary(max_size=300).map(encode_control_frame),
    st.tuples(
        st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.binary(min_size=1, max_size=300)
    ).map(lambda t: encode_data_frame(*t)),
)


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(frame_strategy, max_size=12), data=st.data())
def test_arbitrary_splits_round_trip(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    expected = decode_all(*frames)
    decoder = FrameDecoder()
    got = []
    for piece in pieces:
        if piece:
            decoder.receive_data(piece)
        while (frame := decoder.next_frame()) is not None:
            got.append(frame)
    decoder.receive_data(b"")
    assert decoder.next_frame() is None and decoder.closed
    assert got == expected
    assert len(got) == len(frames)


def test_bytearray_input_is_copied() -> None:
    buffer = bytearray(encode_data_frame(0, 0, b"abc"))
    decoder = FrameDecoder()
    decoder.receive_data(buffer)
    buffer[-1] = ord("z")
    frame = decoder.next_frame()
    assert isinstance(frame, DataFrame) and bytes(frame.payload) == b"abc"


# -- malformed input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\x00\x00\x00", "frame_empty"),
        (struct.pack(">I", MAX_FRAME_LENGTH + 1), "frame_too_large"),
        (struct.pack(">I", 0xFFFFFFFF), "frame_too_large"),
        (raw(1 + MAX_CONTROL_BODY + 1, 0x01), "frame_too_large"),
        (raw(5, 0x00), "frame_kind"),
        (raw(5, 0x05), "frame_kind"),
        (raw(5, 0xFF), "frame_kind"),
        (raw(1, 0x02), "frame_malformed"),
        (raw(1 + DATA_HEADER_SIZE, 0x02, bytes(DATA_HEADER_SIZE)), "frame_malformed"),
    ],
)
def test_malformed_header(data: bytes, code: str) -> None:
    """Bad headers are reported as soon as the header bytes are buffered."""
    assert remote_error(data).code == code


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        b"\x00\x00\x00\x05",
        raw(5, 0x01, b"{}"),
        encode_data_frame(0, 0, b"abc")[:-1],
        encode_control_frame(b"{}") + b"\x00\x00",
    ],
)
def test_truncated_at_eof(data: bytes) -> None:
    assert remote_error(data, eof=True).code == "frame_truncated"


def test_clean_eof() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode_control_frame(b"{}"))
    decoder.receive_data(b"")
    assert decoder.at_eof and not decoder.closed
    assert decoder.next_frame() == ControlFrame(body=b"{}")
    assert decoder.next_frame() is None and decoder.closed
    with pytest.raises(LocalProtocolError) as info:
        decoder.receive_data(b"more")
    assert info.value.code == "after_eof"


def test_decoder_is_broken_after_error() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError):
        decoder.next_frame()
    with pytest.raises(LocalProtocolError) as info:
        decoder.next_frame()
    assert info.value.code == "state"


def test_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    """Rough encode+decode speed of 256 KiB DATA frames, whole and split in 64 KiB reads."""
    payload = bytes(256 * 1024)
    rounds = 200
    start = time.perf_counter()
    decoder = FrameDecoder()
    for i in range(rounds):
        frame = encode_data_frame(0, i * len(payload), payload)
        decoder.receive_data(frame)
        assert decoder.next_frame() is not None
    whole = rounds * len(payload) / (time.perf_counter() - start) / 1e6
    start = time.perf_counter()
    for i in range(rounds):
        frame = encode_data_frame(0, i * len(payload), payload)
        for pos in range(0, len(frame), 65536):
            decoder.receive_data(frame[pos : pos + 65536])
        assert decoder.next_frame() is not None
    split = rounds * len(payload) / (time.perf_counter() - start) / 1e6
    with capsys.disabled():
        print(f"\n  frames: whole {whole:.0f} MB/s, split {split:.0f} MB/s (encode+decode)")
