"""The record layer, socket-free: round trips, and every hostile stream fails cleanly."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.direct.records import (
    HEADER_SIZE, MAX_RECORD, PREFIX_SIZE, TAG_SIZE, Record, RecordError, RecordReader, RecordSealer,
)
from daemon.protocol.errors import LocalProtocolError

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def seal_stream(messages: list[bytes], *, key: bytes = KEY, final: bool = True) -> tuple[bytes, list[bytes]]:
    """The stream header and each record's wire bytes (prefix + ciphertext)."""
    sealer = RecordSealer(key)
    records = [b"".join(sealer.seal(m)) for m in messages]
    if final:
        records.append(b"".join(sealer.seal(b"", final=True)))
    return sealer.header, records


def read_stream(wire: bytes, *, key: bytes = KEY) -> tuple[list[bytes], bool]:
    """Feed ``wire`` as a driver does (exact sizes): the plaintexts, and whether it ended cleanly.
    Raises RecordError; a stream that stops mid-record is reported as not closed."""
    reader, out, at = RecordReader(key), [], 0
    while (need := reader.bytes_needed) and at + need <= len(wire):
        record = reader.receive(wire[at : at + need])
        at += need
        if record is not None and not record.final:
            out.append(record.plaintext)
    if reader.closed and at != len(wire):
        with pytest.raises(RecordError):
            reader.receive(wire[at : at + 1])
        raise RecordError("data after the end of the stream")
    return out, reader.closed


@given(st.lists(st.binary(max_size=2000), max_size=8))
def test_round_trip(messages: list[bytes]) -> None:
    header, records = seal_stream(messages)
    assert read_stream(header + b"".join(records)) == (messages, True)


def test_a_full_size_record_round_trips() -> None:
    message = bytes(range(256)) * (MAX_RECORD // 256) + b"x" * (MAX_RECORD % 256)
    header, records = seal_stream([message])
    assert len(records[0]) == PREFIX_SIZE + MAX_RECORD + TAG_SIZE
    assert read_stream(header + b"".join(records)) == ([message], True)


def test_the_length_prefix_counts_the_ciphertext() -> None:
    header, records = seal_stream([b"abc"], final=False)
    assert len(header) == HEADER_SIZE and struct.unpack(">I", records[0][:4])[0] == 3 + TAG_SIZE


@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=6), st.data())
def test_truncation_is_never_a_clean_end(messages: list[bytes], data: st.DataObject) -> None:
    header, records = seal_stream(messages)
    wire = header + b"".join(records)
    cut = data.draw(st.integers(0, len(wire) - 1))
    _, closed = read_stream(wire[:cut])
    assert not closed


@given(st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=6), st.data())
@settings(max_examples=200)
def test_any_flipped_bit_fails(messages: list[bytes], data: st.DataObject) -> None:
    header, records = seal_stream(messages)
    wire = bytearray(header + b"".join(records))
    at = data.draw(st.integers(0, len(wire) - 1))
    wire[at] ^= 1 << data.draw(st.integers(0, 7))
    try:
        plaintexts, closed = read_stream(bytes(wire))
    except RecordError:
        return
    # A flipped length bit may only make the reader wait for bytes that never come: never a clean end,
    # and never a message that was not sent.
    assert not closed and plaintexts == messages[: len(plaintexts)]


@given(st.lists(st.binary(min_size=1, max_size=100), min_size=2, max_size=6), st.data())
def test_reordered_dropped_or_replayed_records_fail(messages: list[bytes], data: st.DataObject) -> None:
    header, records = seal_stream(messages, final=False)
    i = data.draw(st.integers(0, len(records) - 2))
    how = data.draw(st.sampled_from(["swap", "drop", "replay"]))
    if how == "swap":
        records[i], records[i + 1] = records[i + 1], records[i]
    elif how == "drop":
        del records[i]
    else:
        records.insert(i + 1, records[i])
    with pytest.raises(RecordError):
        read_stream(header + b"".join(records))


def test_a_stream_under_another_key_fails() -> None:
    header, records = seal_stream([b"hello"])
    with pytest.raises(RecordError):
        read_stream(header + b"".join(records), key=OTHER)


def test_records_of_another_stream_fail() -> None:
    header, _ = seal_stream([b"one"])
    _, other_records = seal_stream([b"one"])
    with pytest.raises(RecordError):
        read_stream(header + b"".join(other_records))


@pytest.mark.parametrize("length", [0, TAG_SIZE - 1, MAX_RECORD + TAG_SIZE + 1, 0xFFFFFFFF])
def test_lengths_out_of_bounds_are_refused_before_reading(length: int) -> None:
    header, _ = seal_stream([])
    reader = RecordReader(KEY)
    reader.receive(header)
    with pytest.raises(RecordError):
        reader.receive(struct.pack(">I", length))
    assert reader.bytes_needed == 0
    with pytest.raises(RecordError):
        reader.receive(b"")


def test_data_after_final_fails() -> None:
    sealer = RecordSealer(KEY)
    wire = sealer.header + b"".join(sealer.seal(b"", final=True))
    with pytest.raises(LocalProtocolError):
        sealer.seal(b"more")
    reader = RecordReader(KEY)
    for size in (HEADER_SIZE, PREFIX_SIZE, TAG_SIZE):
        result = reader.receive(wire[:size])
        wire = wire[size:]
    assert result == Record(b"", True) and reader.closed
    with pytest.raises(RecordError):
        reader.receive(b"\x00\x00\x00\x11")


def test_oversized_records_are_our_mistake() -> None:
    with pytest.raises(LocalProtocolError):
        RecordSealer(KEY).seal(bytes(MAX_RECORD + 1))
