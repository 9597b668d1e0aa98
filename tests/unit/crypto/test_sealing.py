"""Frame sealing (libsodium secretstream): round trips, and every way a chunk must fail to open."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.crypto.sealing import (
    HEADER_SIZE,
    KEY_SIZE,
    TAG_SIZE,
    FrameOpener,
    FrameSealer,
    SealError,
    SealingKey,
)
from daemon.protocol.frames import SEAL_HEADER_SIZE, SEAL_TAG_SIZE

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
TID = "share-1"


def seal_stream(
    chunks: list[bytes], *, key: bytes = KEY, tid: str = TID, file: int = 0, start: int = 0
) -> tuple[bytes, list[tuple[int, bytes, bool]]]:
    """Header and ``(offset, sealed, final)`` per chunk; the last chunk is FINAL."""
    sealer = FrameSealer(key, transfer_id=tid, file_index=file, offset=start)
    out, offset = [], start
    for i, chunk in enumerate(chunks):
        final = i == len(chunks) - 1
        out.append((offset, sealer.seal(chunk, offset=offset, final=final), final))
        offset += len(chunk)
    assert sealer.finished
    return sealer.header, out


def opener(header: bytes, *, key: bytes = KEY, tid: str = TID, file: int = 0, start: int = 0) -> FrameOpener:
    return FrameOpener(key, header, transfer_id=tid, file_index=file, offset=start)


CHUNKS = [b"alpha" * 100, b"beta" * 50, b"gamma" * 10]


def test_sizes_match_the_protocol_constants() -> None:
    assert (KEY_SIZE, HEADER_SIZE, TAG_SIZE) == (32, SEAL_HEADER_SIZE, SEAL_TAG_SIZE) == (32, 24, 17)


def test_round_trip() -> None:
    header, sealed = seal_stream(CHUNKS)
    assert len(header) == HEADER_SIZE
    assert [len(s) for _, s, _ in sealed] == [len(c) + TAG_SIZE for c in CHUNKS]
    receiver = opener(header)
    got = [receiver.open(s, offset=o, final=f) for o, s, f in sealed]
    assert got == CHUNKS and receiver.finished and receiver.offset == sum(map(len, CHUNKS))
    receiver.finish()


def test_memoryview_input_and_resume_offset() -> None:
    header, sealed = seal_stream(CHUNKS, start=1000, file=7)
    receiver = opener(header, start=1000, file=7)
    assert [receiver.open(memoryview(s), offset=o, final=f) for o, s, f in sealed] == CHUNKS


def test_empty_file_is_one_empty_final_chunk() -> None:
    header, sealed = seal_stream([b""])
    assert [len(s) for _, s, _ in sealed] == [TAG_SIZE]
    receiver = opener(header)
    assert not receiver.finished
    assert receiver.open(sealed[0][1], offset=0, final=True) == b""
    assert receiver.finished


def test_ciphertext_differs_from_plaintext_and_between_streams() -> None:
    header_a, a = seal_stream([b"x" * 64])
    header_b, b = seal_stream([b"x" * 64])
    assert header_a != header_b and a[0][1] != b[0][1]
    assert b"x" * 16 not in a[0][1]


@pytest.mark.parametrize("position", [0, 1, 16, 100, -17, -16, -1])
def test_flipped_bit_in_a_chunk(position: int) -> None:
    header, sealed = seal_stream(CHUNKS)
    offset, chunk, final = sealed[0]
    bad = bytearray(chunk)
    bad[position] ^= 0x01
    with pytest.raises(SealError):
        opener(header).open(bytes(bad), offset=offset, final=final)


@pytest.mark.parametrize("position", [0, 11, 23])
def test_flipped_bit_in_the_header(position: int) -> None:
    header, sealed = seal_stream(CHUNKS)
    bad = bytearray(header)
    bad[position] ^= 0x80
    with pytest.raises(SealError):
        opener(bytes(bad)).open(sealed[0][1], offset=0, final=False)


@pytest.mark.parametrize(
    ("field", "value"),
    [("tid", "share-2"), ("tid", "share-1x"), ("file", 1), ("start", 1), ("key", OTHER_KEY)],
)
def test_associated_data_and_key_are_bound(field: str, value: object) -> None:
    """A chunk opened as if for another transfer, file, start offset (or with another key) fails."""
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header, **{field: value})  # type: ignore[arg-type]
    offset = value if field == "start" else 0
    with pytest.raises(SealError):
        receiver.open(sealed[0][1], offset=offset, final=False)  # type: ignore[arg-type]


def test_wrong_chunk_offset() -> None:
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header)
    receiver.open(sealed[0][1], offset=0, final=False)
    with pytest.raises(SealError):
        receiver.open(sealed[1][1], offset=sealed[1][0] + 1, final=False)


def test_replayed_chunk() -> None:
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header)
    receiver.open(sealed[0][1], offset=0, final=False)
    with pytest.raises(SealError):  # the same chunk again, claiming the next offset
        receiver.open(sealed[0][1], offset=sealed[1][0], final=False)


def test_swapped_chunks() -> None:
    """Chunks 0 and 1 swapped, with the offsets rewritten to look in order."""
    header, sealed = seal_stream([b"a" * 10, b"b" * 10, b"c" * 10])
    with pytest.raises(SealError):
        opener(header).open(sealed[1][1], offset=0, final=False)


def test_dropped_chunk() -> None:
    header, sealed = seal_stream([b"a" * 10, b"b" * 10, b"c" * 10])
    receiver = opener(header)
    receiver.open(sealed[0][1], offset=0, final=False)
    with pytest.raises(SealError):
        receiver.open(sealed[2][1], offset=10, final=False)


def test_missing_final_chunk_never_completes() -> None:
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header)
    for offset, chunk, final in sealed[:-1]:
        receiver.open(chunk, offset=offset, final=final)
    assert not receiver.finished
    with pytest.raises(SealError):
        receiver.finish()


def test_truncation_with_a_forged_size_fails() -> None:
    """A receiver told the file ends after chunk 1 expects FINAL there: the MESSAGE tag fails."""
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header)
    receiver.open(sealed[0][1], offset=0, final=False)
    with pytest.raises(SealError, match="does not end the stream"):
        receiver.open(sealed[1][1], offset=sealed[1][0], final=True)


def test_premature_final_tag_fails() -> None:
    sealer = FrameSealer(KEY, transfer_id=TID, file_index=0, offset=0)
    chunk = sealer.seal(b"abc", offset=0, final=True)
    with pytest.raises(SealError, match="ends the stream early"):
        opener(sealer.header).open(chunk, offset=0, final=False)


def test_nothing_opens_after_the_final_chunk() -> None:
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header)
    for offset, chunk, final in sealed:
        receiver.open(chunk, offset=offset, final=final)
    with pytest.raises(SealError):
        receiver.open(sealed[-1][1], offset=receiver.offset, final=True)


def test_an_opener_stays_broken_after_a_failure() -> None:
    header, sealed = seal_stream(CHUNKS)
    receiver = opener(header)
    with pytest.raises(SealError):
        receiver.open(sealed[0][1][:-1] + b"\x00", offset=0, final=False)
    with pytest.raises(SealError, match="failed earlier"):
        receiver.open(sealed[0][1], offset=0, final=False)
    with pytest.raises(SealError):
        receiver.finish()


def test_a_resumed_stream_does_not_accept_chunks_of_the_earlier_one() -> None:
    """Stream A covered [0, 30); the resume at 10 is stream B: A's chunk for offset 10 fails in B."""
    _, first = seal_stream([b"a" * 10, b"b" * 10, b"c" * 10])
    header_b, second = seal_stream([b"b" * 10, b"c" * 10], start=10)
    with pytest.raises(SealError):
        opener(header_b, start=10).open(first[1][1], offset=10, final=False)
    # ...and B's chunks open only in B
    receiver = opener(header_b, start=10)
    assert receiver.open(second[0][1], offset=10, final=False) == b"b" * 10


def test_short_inputs_are_seal_errors() -> None:
    header, _ = seal_stream(CHUNKS)
    with pytest.raises(SealError):
        opener(header[:-1])
    with pytest.raises(SealError):
        opener(header).open(b"\x00" * (TAG_SIZE - 1), offset=0, final=False)


def test_sealer_misuse_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError) as short_key:
        FrameSealer(b"k" * 31, transfer_id=TID, file_index=0, offset=0)
    assert not isinstance(short_key.value, SealError)
    with pytest.raises(ValueError):
        FrameSealer(KEY, transfer_id="", file_index=0, offset=0)
    with pytest.raises(ValueError):
        FrameSealer(KEY, transfer_id=TID, file_index=-1, offset=0)
    sealer = FrameSealer(KEY, transfer_id=TID, file_index=0, offset=0)
    with pytest.raises(ValueError, match="offset"):
        sealer.seal(b"x", offset=1, final=False)
    sealer.seal(b"x", offset=0, final=True)
    with pytest.raises(ValueError, match="finished"):
        sealer.seal(b"y", offset=1, final=True)


def test_sealing_key_makes_matching_streams_and_hides_the_key() -> None:
    keys = SealingKey(KEY)
    assert KEY.hex() not in repr(keys) and str(KEY) not in repr(keys)
    sealer = keys.sealer(TID, 3, 5)
    chunk = sealer.seal(b"hello", offset=5, final=True)
    assert keys.opener(TID, 3, 5, sealer.header).open(chunk, offset=5, final=True) == b"hello"
    with pytest.raises(SealError):
        SealingKey(OTHER_KEY).opener(TID, 3, 5, sealer.header).open(chunk, offset=5, final=True)
    with pytest.raises(ValueError):
        SealingKey(b"short")


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = draw(st.binary(min_size=0, max_size=4096))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12, unique=True)))
    bounds = [0, *[c for c in cuts if 0 < c < len(data)], len(data)]
    return data, [b - a for a, b in zip(bounds, bounds[1:], strict=False)] or [0]


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        out.append(data[pos : pos + size])
        pos += size
    return out


@settings(max_examples=150, deadline=None)
@given(chunked(), st.integers(0, 1 << 40), st.integers(0, (1 << 32) - 1))
def test_any_chunking_round_trips(case: tuple[bytes, list[int]], start: int, file: int) -> None:
    data, sizes = case
    chunks = split(data, sizes)
    header, sealed = seal_stream(chunks, start=start, file=file)
    receiver = opener(header, start=start, file=file)
    assert b"".join(receiver.open(s, offset=o, final=f) for o, s, f in sealed) == data
    receiver.finish()


@settings(max_examples=150, deadline=None)
@given(chunked(), st.data())
def test_any_flipped_bit_is_caught_at_its_chunk(case: tuple[bytes, list[int]], data: st.DataObject) -> None:
    chunks = split(*case)
    header, sealed = seal_stream(chunks)
    victim = data.draw(st.integers(0, len(sealed) - 1))
    offset, chunk, final = sealed[victim]
    bit = data.draw(st.integers(0, len(chunk) * 8 - 1))
    bad = bytearray(chunk)
    bad[bit // 8] ^= 1 << (bit % 8)
    receiver = opener(header)
    for o, s, f in sealed[:victim]:
        receiver.open(s, offset=o, final=f)
    with pytest.raises(SealError):
        receiver.open(bytes(bad), offset=offset, final=final)


@settings(max_examples=100, deadline=None)
@given(chunked(), st.data())
def test_any_reordering_is_caught(case: tuple[bytes, list[int]], data: st.DataObject) -> None:
    """Delivering the chunks in any order other than the sealed one fails at the first misplaced chunk
    (offsets are taken as the receiver would expect them, as if rewritten by an attacker)."""
    chunks = split(*case)
    header, sealed = seal_stream(chunks)
    order = data.draw(st.permutations(range(len(sealed))))
    receiver = opener(header)
    expected = 0
    for position, index in enumerate(order):
        _, chunk, _ = sealed[index]
        size = len(chunk) - TAG_SIZE
        final = position == len(order) - 1
        if index != position:
            with pytest.raises(SealError):
                receiver.open(chunk, offset=expected, final=final)
            return
        receiver.open(chunk, offset=expected, final=final)
        expected += size
    receiver.finish()


def test_random_keys_and_large_chunks() -> None:
    key = os.urandom(KEY_SIZE)
    payload = os.urandom(256 * 1024)
    header, sealed = seal_stream([payload, payload[:1000]], key=key)
    receiver = opener(header, key=key)
    assert receiver.open(sealed[0][1], offset=0, final=False) == payload
    assert receiver.open(sealed[1][1], offset=len(payload), final=True) == payload[:1000]
