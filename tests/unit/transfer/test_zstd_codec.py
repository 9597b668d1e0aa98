"""The zstd codec (``ZstdCompression``) alone and inside the machines, sealed sessions included."""

from __future__ import annotations

import json
import os
import struct

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.crypto.sealing import SealingKey
from daemon.protocol.errors import RemoteProtocolError
from daemon.protocol.frames import MAX_DATA_PAYLOAD, FrameKind, encode_compressed_data_frame
from daemon.protocol.messages import Hello, encode_message
from daemon.protocol.transfer import TransferReceiver, TransferSender
from daemon.protocol.transfer_compression import BAD_COMPRESSION, Compression
from daemon.protocol.transfer_events import DataReceived, OfferReceived
from daemon.protocol.transfer_sealing import SEALING_MISMATCH
from daemon.protocol.transfer_states import ReceiverState, SenderState
from daemon.transfer.zstd_codec import ZstdCompression
from tests.unit.protocol.transfer_helpers import Pair, ReceiverDriver, SenderDriver, entry_for, split_frames, text_like

KEY = SealingKey(bytes(range(32)))
TEXT = text_like(300_000, seed=7)
CODEC = ZstdCompression()


def test_it_is_a_compression() -> None:
    codec: Compression = ZstdCompression()
    assert codec.name == "zstd"


def test_text_round_trips_and_random_is_not_worth_it() -> None:
    chunk = TEXT[:262_127]
    packed = CODEC.compress(chunk)
    assert packed is not None and len(packed) < len(chunk) / 2
    assert CODEC.decompress(packed, len(chunk)) == chunk
    assert CODEC.decompress(memoryview(packed), len(chunk)) == chunk
    assert CODEC.compress(os.urandom(262_127)) is None
    assert CODEC.compress(b"ab") is None


def test_one_object_serves_many_chunks() -> None:
    codec = ZstdCompression()
    for start in range(0, len(TEXT), 50_000):
        chunk = TEXT[start : start + 50_000]
        packed = codec.compress(chunk)
        assert packed is not None and codec.decompress(packed, len(chunk)) == chunk


PACKED = zstandard.ZstdCompressor(level=1).compress(TEXT[:10_000])
NO_SIZE = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(TEXT[:10_000])
BOMB = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(bytes(MAX_DATA_PAYLOAD))


@pytest.mark.parametrize(
    ("data", "raw_length"),
    [
        (PACKED, 9_999),  # the header announces another size
        (PACKED, 10_001),
        (NO_SIZE, 9_999),  # no size in the header: output bounded by raw_length
        (NO_SIZE, 10_001),
        (BOMB, 1000),  # 1 MiB of zeros behind a 1000-byte claim
        (PACKED + b"x", 10_000),  # trailing bytes
        (PACKED + PACKED, 10_000),  # a second frame
        (PACKED[:-4], 10_000),  # truncated
        (b"garbage that is not zstd", 10),
        (b"", 10),
        (zstandard.ZstdCompressor().compress(b""), 1),
    ],
)
def test_refusals(data: bytes, raw_length: int) -> None:
    with pytest.raises(ValueError):
        CODEC.decompress(data, raw_length)


def test_a_frame_without_its_size_still_decompresses() -> None:
    assert CODEC.decompress(NO_SIZE, 10_000) == TEXT[:10_000]
    assert CODEC.decompress(BOMB, MAX_DATA_PAYLOAD) == bytes(MAX_DATA_PAYLOAD)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(1, len(PACKED)), st.integers(0, 10**6), st.integers(0, 7)).map(
            lambda cut: bytes(b ^ (1 << cut[2] if i == cut[1] % cut[0] else 0) for i, b in enumerate(PACKED[: cut[0]]))
        ),
    ),
    st.integers(1, 20_000),
)
def test_hostile_input_raises_value_error_or_returns_exactly_raw_length(data: bytes, raw_length: int) -> None:
    try:
        out = CODEC.decompress(data, raw_length)
    except ValueError:
        return
    assert len(out) == raw_length


# -- in the machines -------------------------------------------------------------------


def test_zstd_transfer_between_machines() -> None:
    sources = [TEXT, os.urandom(100_000), b"", TEXT[:10]]
    sender = SenderDriver(sources, compression=ZstdCompression(), max_payload=65_519)
    receiver = ReceiverDriver(compression=ZstdCompression(), window=1 << 20)
    Pair(sender, receiver).run()
    assert [bytes(d) for d in receiver.durable or []] == sources
    statistics = sender.machine.statistics()
    assert statistics.wire < len(TEXT) / 2 + 100_000 + 10


def test_hostile_zstd_frame_in_a_session() -> None:
    receiver = TransferReceiver(compression=ZstdCompression())
    receiver.start()
    receiver.receive_data(encode_message(Hello(compress=("zstd",))))
    receiver.receive_data(TransferSender("t-1", [entry_for(0, TEXT[:5000])]).start()[len(encode_message(Hello())) :])
    assert isinstance(receiver.next_event(), OfferReceived)
    receiver.accept([0], 65536)
    receiver.receive_data(encode_compressed_data_frame(0, 0, 1000, BOMB))
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert failure.value.code == BAD_COMPRESSION and receiver.statistics().received == 0


# -- sealed sessions never compress --------------------------------------------------------


def hello_fields(frame: bytes) -> dict[str, object]:
    (length,) = struct.unpack_from(">I", frame)
    return json.loads(frame[5 : 4 + length])


def test_a_sealed_machine_does_not_offer_its_codec() -> None:
    for machine in (TransferSender("t-1", [entry_for(0, b"x")], sealing=KEY, compression=CODEC),
                    TransferReceiver(sealing=KEY, compression=CODEC)):
        assert hello_fields(machine.start()) == {"type": "hello", "version": 1, "sealed": True}


def test_sealed_session_with_codecs_on_both_sides_sends_sealed_frames_only() -> None:
    sources = [TEXT[:100_000], b""]
    sender = SenderDriver(sources)
    sender.machine = TransferSender("t-1", [entry_for(i, s) for i, s in enumerate(sources)], sealing=KEY,
                                    compression=ZstdCompression())
    receiver = ReceiverDriver()
    receiver.machine = TransferReceiver(sealing=KEY, compression=ZstdCompression())
    sent: list[bytes] = []
    original = sender.pump

    def recording(incoming: list[bytes]) -> bytes:
        out = original(incoming)
        sent.extend(split_frames(out))
        return out

    sender.pump = recording  # type: ignore[method-assign]
    Pair(sender, receiver).run()
    assert sender.machine.state is SenderState.DONE and receiver.machine.state is ReceiverState.DONE
    assert [bytes(d) for d in receiver.durable or []] == sources
    assert {f[4] for f in sent if f[4] != FrameKind.CONTROL} == {FrameKind.SEALED_DATA}
    assert not sender.machine.compressing and not receiver.machine.compressing


def test_a_sealed_receiver_refuses_compressed_frames() -> None:
    receiver = TransferReceiver(sealing=KEY, compression=ZstdCompression())
    receiver.start()
    receiver.receive_data(encode_message(Hello(sealed=True, compress=("zstd",))))
    offer = TransferSender("t-1", [entry_for(0, TEXT[:5000])], sealing=KEY).start()
    receiver.receive_data(offer[len(encode_message(Hello(sealed=True))) :])
    assert isinstance(receiver.next_event(), OfferReceived)
    receiver.accept([0], 65536)
    packed = CODEC.compress(TEXT[:5000])
    assert packed is not None
    receiver.receive_data(encode_compressed_data_frame(0, 0, 5000, packed))
    with pytest.raises(RemoteProtocolError) as failure:
        receiver.next_event()
    assert failure.value.code == SEALING_MISMATCH
    assert not any(isinstance(e, DataReceived) for e in [receiver.next_event()])
