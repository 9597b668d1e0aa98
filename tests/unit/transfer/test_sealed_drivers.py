"""``run_sender``/``run_receiver`` with app-layer encryption, over an in-memory transport pair.

Real files, a real inbox and journal in ``tmp_path``; a man in the middle on the sender-to-receiver
direction sees (and may alter) every message, as a broken or hostile relay of the decrypted
channel would. The guarantees under test: tampered, replayed, reordered or cut-short sealed frames
fail the attempt, nothing unauthenticated is written, and no such file reaches its final name.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from daemon.protocol import FileEntry
from daemon.protocol.frames import (
    DATA_HEADER_SIZE,
    SEAL_HEADER_SIZE,
    SEALED_FRAME_OVERHEAD,
    FrameKind,
    encode_sealed_data_frame,
    sealed_payload_limit,
)
from daemon.protocol.transfer_compression import Compression
from daemon.state import Direction, StateDB
from daemon.storage import Inbox, SourceFile
from daemon.transfer import (
    SealingMismatch,
    TamperedData,
    TransferFailed,
    TransferInterrupted,
    run_receiver,
    run_sender,
)
from daemon.transfer import receiving

KEY = bytes(range(32))
OTHER_KEY = bytes(reversed(range(32)))
SHARE = "share-1"
MESSAGE = 64 * 1024
CHUNK = sealed_payload_limit(MESSAGE)  # 65478 plaintext bytes per sealed frame
CLOSE = object()
"""Returned by a middle: close the connection instead of forwarding."""

Middle = Callable[[bytes], "list[bytes] | object"]


def data_position(message: bytes) -> tuple[int, int, int] | None:
    """``(kind, file, offset)`` if ``message`` is exactly one DATA, SEALED_DATA or COMPRESSED_DATA frame."""
    if len(message) < 5 + DATA_HEADER_SIZE or message[4] not in (
        FrameKind.DATA, FrameKind.SEALED_DATA, FrameKind.COMPRESSED_DATA
    ):
        return None
    (length,) = struct.unpack_from(">I", message)
    if length + 4 != len(message):
        return None
    file, offset = struct.unpack_from(">IQ", message, 5)
    return message[4], file, offset


def with_offset(message: bytes, offset: int) -> bytes:
    """The frame with its (unauthenticated) offset field rewritten."""
    out = bytearray(message)
    struct.pack_into(">Q", out, 9, offset)
    return bytes(out)


class Endpoint:
    """One end of an in-memory ``MessageTransport`` pair; ``middle`` filters what it sends."""

    def __init__(self, send: trio.MemorySendChannel[bytes], receive: trio.MemoryReceiveChannel[bytes],
                 middle: Middle | None = None) -> None:
        self.max_message_size = MESSAGE
        self._send, self._receive, self._middle = send, receive, middle
        self.sent: list[bytes] = []

    async def send(self, data: bytes) -> None:
        assert len(data) <= self.max_message_size
        self.sent.append(data)
        forwarded = [data] if self._middle is None else self._middle(data)
        if forwarded is CLOSE:
            self.close()
            return
        for message in forwarded:  # type: ignore[union-attr]
            try:
                await self._send.send(message)
            except trio.ClosedResourceError:
                raise trio.BrokenResourceError("closed") from None

    async def receive(self) -> bytes:
        try:
            return await self._receive.receive()
        except trio.ClosedResourceError:
            raise trio.EndOfChannel from None

    def close(self) -> None:
        self._send.close()

    def data_frames(self) -> list[bytes]:
        return [m for m in self.sent if data_position(m) is not None]


class Setup:
    """Source files, the receiver's inbox and journal, and ``run()`` for one attempt."""

    def __init__(self, root: Path, files: dict[str, bytes]) -> None:
        self.root = root
        self.files = files
        self.src = root / "src"
        for name, content in files.items():
            path = self.src / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        self.entries = [FileEntry(path=name, size=len(content), sha256=hashlib.sha256(content).hexdigest())
                        for name, content in files.items()]
        self.inbox = Inbox(root / "inbox")
        self.journal = StateDB(root / "state.db")
        self.journal.add_transfer("rx-1", Direction.RECEIVE)
        self.attempts = 0
        self.sender_end: Endpoint | None = None

    def open_source(self, index: int) -> SourceFile:
        name = self.entries[index].path
        return SourceFile(os.open(self.src / name, os.O_RDONLY), name)

    async def run(self, *, sender_key: bytes | None, receiver_key: bytes | None,
                  middle: Middle | None = None, sender_compression: Compression | None = None,
                  receiver_compression: Compression | None = None) -> tuple[object, object]:
        """One attempt; returns (sender result or exception, receiver result or exception).
        ``*_compression``: the drivers' ``compression`` (``test_compressed_drivers``)."""
        to_receiver, from_sender = trio.open_memory_channel[bytes](math.inf)
        to_sender, from_receiver = trio.open_memory_channel[bytes](math.inf)
        sender_end = self.sender_end = Endpoint(to_receiver, from_receiver, middle)
        receiver_end = Endpoint(to_sender, from_sender)
        results: dict[str, object] = {}
        resume = self.attempts > 0
        self.attempts += 1

        async def sender() -> None:
            await run_sender(sender_end, SHARE, self.entries, self.open_source, lambda *_: None,
                             seal_key=sender_key, compression=sender_compression)

        async def receiver() -> object:
            return await run_receiver(receiver_end, inbox=self.inbox, journal=self.journal, transfer_id="rx-1",
                                      expect_share=SHARE if resume else None, report=lambda *_: None,
                                      seal_key=receiver_key, compression=receiver_compression)

        async def side(name: str, run: Callable[[], object], end: Endpoint) -> None:
            try:
                results[name] = await run()  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                results[name] = exc
            finally:
                end.close()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(side, "sender", sender, sender_end)
                nursery.start_soon(side, "receiver", receiver, receiver_end)
        return results["sender"], results["receiver"]

    def placed(self) -> dict[str, bytes]:
        """Every file under its final name in the inbox (the private ``.doorstep`` area excluded)."""
        root = self.root / "inbox"
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and ".doorstep" not in p.relative_to(root).parts}

    def partial(self, index: int) -> bytes:
        return (self.root / "inbox" / ".doorstep" / "partial" / SHARE / f"{index}.part").read_bytes()


def content(size: int, seed: int) -> bytes:
    return hashlib.shake_256(f"{seed}".encode()).digest(size)


MARKER = b"PLAINTEXT-MARKER-" * 64


# -- round trips and agreement -------------------------------------------------------


async def test_sealed_round_trip_and_nothing_in_the_clear(tmp_path: Path) -> None:
    files = {"a.bin": content(300_000, 1), "empty.txt": b"", "d/e/marker.txt": MARKER,
             "z.bin": content(CHUNK, 2)}
    setup = Setup(tmp_path, files)
    sent, received = await setup.run(sender_key=KEY, receiver_key=KEY)
    assert sent is None and not isinstance(received, Exception)
    assert setup.placed() == files
    assert setup.sender_end is not None
    frames = setup.sender_end.data_frames()
    assert {f[4] for f in frames} == {FrameKind.SEALED_DATA}
    assert not any(MARKER[:32] in message for message in setup.sender_end.sent)
    # a.bin: 5 chunks; empty.txt: one empty FINAL chunk; marker.txt: 1; z.bin: exactly one full chunk
    assert len(frames) == 5 + 1 + 1 + 1
    assert len(frames[0]) == CHUNK + SEALED_FRAME_OVERHEAD + SEAL_HEADER_SIZE == MESSAGE
    assert len(frames[1]) == CHUNK + SEALED_FRAME_OVERHEAD


async def test_plaintext_round_trip_still_works(tmp_path: Path) -> None:
    files = {"a.bin": content(200_000, 3), "empty.txt": b""}
    setup = Setup(tmp_path, files)
    sent, received = await setup.run(sender_key=None, receiver_key=None)
    assert sent is None and not isinstance(received, Exception)
    assert setup.placed() == files
    assert setup.sender_end is not None
    assert {f[4] for f in setup.sender_end.data_frames()} == {FrameKind.DATA}


@pytest.mark.parametrize(("sender_key", "receiver_key"), [(KEY, None), (None, KEY)])
async def test_mismatch_is_refused_by_both_before_any_file_byte(
    tmp_path: Path, sender_key: bytes | None, receiver_key: bytes | None
) -> None:
    setup = Setup(tmp_path, {"a.bin": content(100_000, 4)})
    sent, received = await setup.run(sender_key=sender_key, receiver_key=receiver_key)
    assert isinstance(sent, SealingMismatch) and isinstance(received, SealingMismatch)
    assert isinstance(sent, TransferFailed) and isinstance(received, TransferFailed)
    assert setup.sender_end is not None and setup.sender_end.data_frames() == []
    assert setup.placed() == {}


async def test_different_keys_fail_at_the_first_frame(tmp_path: Path) -> None:
    setup = Setup(tmp_path, {"a.bin": content(100_000, 5)})
    sent, received = await setup.run(sender_key=KEY, receiver_key=OTHER_KEY)
    assert isinstance(received, TamperedData)
    assert isinstance(sent, TransferInterrupted)
    assert setup.placed() == {} and setup.partial(0) == b""


# -- tampering -----------------------------------------------------------------------


def on_data_frame(target: int, action: Callable[[bytes, list[bytes]], "list[bytes] | object"]) -> Middle:
    """A middle applying ``action(frame, held)`` to the ``target``-th DATA frame (0-based)."""
    seen = [0]
    held: list[bytes] = []

    def middle(message: bytes) -> list[bytes] | object:
        if data_position(message) is None:
            return [message]
        index = seen[0]
        seen[0] += 1
        if index == target:
            return action(message, held)
        return [message]

    return middle


def flip(position: int) -> Callable[[bytes, list[bytes]], list[bytes]]:
    def action(frame: bytes, held: list[bytes]) -> list[bytes]:
        bad = bytearray(frame)
        bad[position] ^= 0x10
        return [bytes(bad)]

    return action


def replay_rewritten() -> Middle:
    """Frame 1 is forwarded, then forwarded again posing as the next chunk (offset rewritten);
    the real next chunk is dropped."""
    state: dict[str, bytes] = {}

    def middle(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is None:
            return [message]
        _, _, offset = position
        if offset == CHUNK:
            state["frame"] = message
            return [message]
        if offset == 2 * CHUNK and "frame" in state:
            return [with_offset(state.pop("frame"), offset)]
        return [message]

    return middle


def swap_rewritten(*, rewrite: bool) -> Middle:
    """Frames 1 and 2 delivered as 2, 1 (with their offsets rewritten to look in order, or not)."""
    held: list[bytes] = []

    def middle(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is None:
            return [message]
        _, _, offset = position
        if offset == CHUNK:
            held.append(message)
            return []
        if offset == 2 * CHUNK and held:
            first = held.pop()
            if rewrite:
                return [with_offset(message, CHUNK), with_offset(first, 2 * CHUNK)]
            return [message, first]
        return [message]

    return middle


def drop_final_then_cut() -> Middle:
    """The file's last chunk never arrives; the connection is cut instead."""

    def middle(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is not None and position[2] == 4 * CHUNK:
            return CLOSE
        return [message]

    return middle


TAMPERS: dict[str, tuple[Middle, type[Exception]]] = {
    "flip-ciphertext-first-frame": (on_data_frame(0, flip(-5)), TamperedData),
    "flip-stream-header": (on_data_frame(0, flip(5 + DATA_HEADER_SIZE + 3)), TamperedData),
    "flip-ciphertext-later-frame": (on_data_frame(2, flip(5 + DATA_HEADER_SIZE + 100)), TamperedData),
    "flip-mac": (on_data_frame(3, flip(-1)), TamperedData),
    "replay-with-rewritten-offset": (replay_rewritten(), TamperedData),
    "swap-with-rewritten-offsets": (swap_rewritten(rewrite=True), TamperedData),
    "swap-as-sent": (swap_rewritten(rewrite=False), TransferInterrupted),  # bad_offset
    "flip-offset-field": (on_data_frame(1, flip(16)), TransferInterrupted),  # bad_offset
    "final-chunk-never-arrives": (drop_final_then_cut(), TransferInterrupted),
}


@pytest.mark.parametrize("name", list(TAMPERS))
async def test_tampering_fails_and_nothing_is_finalized(tmp_path: Path, name: str) -> None:
    middle, expected = TAMPERS[name]
    original = content(4 * CHUNK + 1000, 6)  # five chunks, the last one short
    setup = Setup(tmp_path, {"a.bin": original})
    sent, received = await setup.run(sender_key=KEY, receiver_key=KEY, middle=middle)
    assert type(received) is expected, received
    assert isinstance(sent, Exception)  # the receiver's error report, or the cut connection
    assert setup.placed() == {}
    # whatever reached the partial file is an authentic prefix of the original
    partial = setup.partial(0)
    assert original.startswith(partial) and len(partial) < len(original)


async def test_tampering_in_a_later_file_leaves_earlier_files_intact(tmp_path: Path) -> None:
    files = {"first.bin": content(100_000, 7), "second.bin": content(3 * CHUNK, 8)}
    setup = Setup(tmp_path, files)
    # DATA frames: first.bin -> 0, 1; second.bin -> 2, 3, 4. Flip a byte inside second.bin's 2nd chunk.
    sent, received = await setup.run(sender_key=KEY, receiver_key=KEY, middle=on_data_frame(3, flip(-30)))
    assert isinstance(received, TamperedData)
    assert setup.placed() == {"first.bin": files["first.bin"]}
    assert files["second.bin"].startswith(setup.partial(1))


async def test_tampered_attempt_then_honest_resume_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiving, "SYNC_EVERY", 1)  # checkpoint after every frame
    original = content(4 * CHUNK + 1000, 9)
    setup = Setup(tmp_path, {"a.bin": original})
    _, received = await setup.run(sender_key=KEY, receiver_key=KEY, middle=on_data_frame(2, flip(-2)))
    assert isinstance(received, TamperedData) and setup.placed() == {}
    assert setup.journal.files("rx-1")[0].offset == 2 * CHUNK  # two authentic chunks were durable

    sent, received = await setup.run(sender_key=KEY, receiver_key=KEY)
    assert sent is None and not isinstance(received, Exception)
    assert setup.placed() == {"a.bin": original}
    assert setup.sender_end is not None
    frames = setup.sender_end.data_frames()
    assert data_position(frames[0]) == (FrameKind.SEALED_DATA, 0, 2 * CHUNK)
    assert len(frames[0]) == CHUNK + SEALED_FRAME_OVERHEAD + SEAL_HEADER_SIZE  # a new stream, new header


async def test_chunks_of_an_earlier_attempt_cannot_be_spliced_into_a_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 is cut after two chunks; the attacker kept attempt 1's third chunk (same file,
    same offset, same key) and grafts it, under attempt 2's fresh stream header, into attempt 2."""
    monkeypatch.setattr(receiving, "SYNC_EVERY", 1)
    original = content(4 * CHUNK + 1000, 10)
    setup = Setup(tmp_path, {"a.bin": original})
    captured: list[bytes] = []

    def cut_after_two(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is not None and position[2] == 2 * CHUNK:
            captured.append(message)
            return CLOSE
        return [message]

    _, received = await setup.run(sender_key=KEY, receiver_key=KEY, middle=cut_after_two)
    assert isinstance(received, TransferInterrupted) and captured
    assert setup.journal.files("rx-1")[0].offset == 2 * CHUNK

    def graft(message: bytes) -> list[bytes] | object:
        position = data_position(message)
        if position is not None and position[2] == 2 * CHUNK:
            header = message[5 + DATA_HEADER_SIZE : 5 + DATA_HEADER_SIZE + SEAL_HEADER_SIZE]
            old_chunk = captured[0][5 + DATA_HEADER_SIZE :]
            return [encode_sealed_data_frame(0, 2 * CHUNK, old_chunk, header=header)]
        return [message]

    _, received = await setup.run(sender_key=KEY, receiver_key=KEY, middle=graft)
    assert isinstance(received, TamperedData)
    assert setup.placed() == {}

    sent, received = await setup.run(sender_key=KEY, receiver_key=KEY)
    assert sent is None and setup.placed() == {"a.bin": original}


async def test_sender_side_errors(tmp_path: Path) -> None:
    """The sender maps the receiver's ``bad_seal`` report to TamperedData too."""
    setup = Setup(tmp_path, {"a.bin": content(3 * CHUNK, 11)})
    sent, received = await setup.run(sender_key=KEY, receiver_key=KEY, middle=on_data_frame(1, flip(-1)))
    assert isinstance(received, TamperedData)
    assert isinstance(sent, TamperedData), sent

