"""``run_sender``/``run_receiver`` with ``compression=ZstdCompression()``, over an in-memory transport
pair (real files, inbox and journal; the harness of ``test_sealed_drivers``)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from daemon.protocol.frames import COMPRESSED_FRAME_OVERHEAD, FrameKind, encode_compressed_data_frame
from daemon.transfer import TransferInterrupted, receiving
from daemon.transfer.zstd_codec import ZstdCompression
from tests.unit.protocol.transfer_helpers import text_like
from tests.unit.transfer.test_sealed_drivers import CLOSE, KEY, Setup, data_position

TEXT = text_like(1_000_000, seed=11)
NOISE = os.urandom(400_000)


def code_of(exc: BaseException) -> str:
    """The protocol error code behind a driver error."""
    return getattr(exc.__cause__, "code", "")


def wire_bytes(setup: Setup) -> int:
    assert setup.sender_end is not None
    return sum(len(m) for m in setup.sender_end.sent)


def data_kinds(setup: Setup) -> dict[int, set[int]]:
    assert setup.sender_end is not None
    kinds: dict[int, set[int]] = {}
    for message in setup.sender_end.data_frames():
        position = data_position(message)
        assert position is not None
        kinds.setdefault(position[1], set()).add(position[0])
    return kinds


async def transfer(root: Path, files: dict[str, bytes], *, sender: bool, receiver: bool,
                   seal: bool = False) -> Setup:
    setup = Setup(root, files)
    sent, received = await setup.run(
        sender_key=KEY if seal else None, receiver_key=KEY if seal else None,
        sender_compression=ZstdCompression() if sender else None,
        receiver_compression=ZstdCompression() if receiver else None,
    )
    assert sent is None and not isinstance(received, Exception), (sent, received)
    assert setup.placed() == files
    return setup


async def test_text_and_random_files_round_trip_and_text_costs_fewer_wire_bytes(tmp_path: Path) -> None:
    files = {"log.txt": TEXT, "noise.bin": NOISE, "empty": b"", "d/tiny.txt": b"hi\n"}
    on = await transfer(tmp_path / "on", files, sender=True, receiver=True)
    off = await transfer(tmp_path / "off", files, sender=False, receiver=False)
    kinds = data_kinds(on)
    assert kinds[0] == {FrameKind.COMPRESSED_DATA}  # every chunk of the log shrinks
    assert kinds[1] == {FrameKind.DATA}  # random data goes plain
    assert kinds[3] == {FrameKind.DATA}  # too small to gain anything
    assert set().union(*data_kinds(off).values()) == {FrameKind.DATA}
    assert wire_bytes(on) < wire_bytes(off) - len(TEXT) / 2
    print(f"\n  wire bytes: compression off {wire_bytes(off)}, on {wire_bytes(on)}")


async def test_random_only_costs_no_extra_wire_bytes(tmp_path: Path) -> None:
    files = {"noise.bin": NOISE}
    on = await transfer(tmp_path / "on", files, sender=True, receiver=True)
    off = await transfer(tmp_path / "off", files, sender=False, receiver=False)
    hello_field = len(',"compress":["zstd"]')
    assert wire_bytes(on) == wire_bytes(off) + hello_field  # the sender's hello is all it costs


@pytest.mark.parametrize(("sender", "receiver"), [(True, False), (False, True)])
async def test_one_sided_compression_sends_plain_data(tmp_path: Path, sender: bool, receiver: bool) -> None:
    setup = await transfer(tmp_path, {"log.txt": TEXT[:300_000]}, sender=sender, receiver=receiver)
    assert data_kinds(setup) == {0: {FrameKind.DATA}}


async def test_sealed_session_ignores_compression(tmp_path: Path) -> None:
    setup = await transfer(tmp_path, {"log.txt": TEXT[:300_000], "e": b""}, sender=True, receiver=True, seal=True)
    assert set().union(*data_kinds(setup).values()) == {FrameKind.SEALED_DATA}


async def test_interrupted_compressed_transfer_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiving, "SYNC_EVERY", 1)  # checkpoint after every frame
    setup = Setup(tmp_path, {"log.txt": TEXT})
    seen = [0]

    def cut_after_three(message: bytes) -> list[bytes] | object:
        if data_position(message) is not None:
            seen[0] += 1
            if seen[0] == 4:
                return CLOSE
        return [message]

    codecs = {"sender_compression": ZstdCompression(), "receiver_compression": ZstdCompression()}
    _, received = await setup.run(sender_key=None, receiver_key=None, middle=cut_after_three, **codecs)
    assert isinstance(received, TransferInterrupted)
    durable = setup.journal.files("rx-1")[0].offset
    assert 0 < durable < len(TEXT) and TEXT.startswith(setup.partial(0))

    codecs = {"sender_compression": ZstdCompression(), "receiver_compression": ZstdCompression()}
    sent, received = await setup.run(sender_key=None, receiver_key=None, **codecs)
    assert sent is None and not isinstance(received, Exception)
    assert setup.placed() == {"log.txt": TEXT}
    first = data_position(setup.sender_end.data_frames()[0])  # type: ignore[union-attr]
    assert first == (FrameKind.COMPRESSED_DATA, 0, durable)


def corrupt_second_compressed_frame() -> object:
    seen = [0]

    def middle(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is None or position[0] != FrameKind.COMPRESSED_DATA:
            return [message]
        seen[0] += 1
        if seen[0] != 2:
            return [message]
        bad = bytearray(message)
        bad[COMPRESSED_FRAME_OVERHEAD + 10] ^= 0xFF
        struct.pack_into(">I", bad, 17, struct.unpack_from(">I", bad, 17)[0] - 1)  # and lie about the size
        return [bytes(bad)]

    return middle


async def test_a_corrupt_compressed_frame_fails_the_attempt_and_writes_nothing_of_it(tmp_path: Path) -> None:
    setup = Setup(tmp_path, {"log.txt": TEXT})
    sent, received = await setup.run(sender_key=None, receiver_key=None, middle=corrupt_second_compressed_frame(),
                                     sender_compression=ZstdCompression(), receiver_compression=ZstdCompression())
    assert isinstance(received, TransferInterrupted) and code_of(received) == "bad_compression"
    assert isinstance(sent, TransferInterrupted) and "bad_compression" in str(sent)
    assert setup.placed() == {}
    assert TEXT.startswith(setup.partial(0)) and len(setup.partial(0)) < len(TEXT)


async def test_compressed_frames_to_a_receiver_without_a_codec_are_refused(tmp_path: Path) -> None:
    """A sender that sends COMPRESSED_DATA although the receiver did not offer a codec (the
    middle rewrites its first DATA frame) breaks the protocol."""
    codec = ZstdCompression()

    def rewrite(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is None or position[0] != FrameKind.DATA:
            return [message]
        payload = message[17:]
        packed = codec.compress(payload)
        assert packed is not None
        return [encode_compressed_data_frame(position[1], position[2], len(payload), packed)]

    setup = Setup(tmp_path, {"log.txt": TEXT[:100_000]})
    sent, received = await setup.run(sender_key=None, receiver_key=None, middle=rewrite)
    assert isinstance(received, TransferInterrupted) and code_of(received) == "compression_mismatch"
    assert setup.placed() == {} and setup.partial(0) == b""
