"""Sender and receiver machines talking to each other without sockets."""

from __future__ import annotations

import pytest

from daemon.protocol.transfer_events import (
    Accepted,
    Cancelled,
    FileReceived,
    PeerFailed,
    Rejected,
    TransferDone,
)
from daemon.protocol.transfer_states import ReceiverState, SenderState
from tests.unit.protocol.transfer_helpers import (
    Pair,
    ReceiverDriver,
    SenderDriver,
    acked_events,
    make_sources,
    random_splits,
    verified_files,
    whole_frames,
)

TRANSPORTS = {
    "data_channel": lambda: whole_frames,
    "tcp_small_reads": lambda: random_splits(1, max_piece=97),
    "tcp_large_reads": lambda: random_splits(2, max_piece=70_000),
    "coalesced": lambda: lambda data: [data] if data else [],
}


def assert_complete(pair: Pair, sources: list[bytes]) -> None:
    assert pair.sender.machine.state is SenderState.DONE
    assert pair.receiver.machine.state is ReceiverState.DONE
    assert pair.sender.events[-1] == TransferDone()
    assert pair.receiver.durable == [bytearray(s) for s in sources]
    assert sorted(verified_files(pair.sender.events)) == list(range(len(sources)))
    assert pair.receiver.final == set(range(len(sources)))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_many_files_including_empty_ones(transport: str) -> None:
    sizes = [0, 1, 0, 70_000, 12_345, 0, 300_000, *([100] * 40), 0]
    sources = make_sources(sizes, seed=3)
    pair = Pair(
        SenderDriver(sources, max_payload=16_384),
        ReceiverDriver(window=128 * 1024),
        TRANSPORTS[transport](),
    )
    pair.run()
    assert_complete(pair, sources)
    stats = pair.sender.machine.statistics()
    assert (stats.sent, stats.acked, stats.remaining, stats.in_flight) == (
        sum(sizes),
        sum(sizes),
        0,
        0,
    )


def test_only_empty_files() -> None:
    sources = [b"", b"", b""]
    pair = Pair(SenderDriver(sources), ReceiverDriver())
    pair.run()
    assert_complete(pair, sources)
    assert pair.sender.data_frames == 0


@pytest.mark.parametrize("window", [64 * 1024, 100_000, 1 << 20])
@pytest.mark.parametrize("max_payload", [1000, 65_519, 1 << 20])
def test_window_is_respected(window: int, max_payload: int) -> None:
    sources = make_sources([500_000, 3, 200_000])
    pair = Pair(SenderDriver(sources, max_payload=max_payload), ReceiverDriver(window=window))
    pair.run()
    assert_complete(pair, sources)
    assert pair.sender.max_in_flight == min(window, sum(map(len, sources)))


def test_window_stalls_without_acks() -> None:
    """A receiver that never acks gets exactly one window of data, then nothing."""
    sources = make_sources([1_000_000])
    sender = SenderDriver(sources, max_payload=10_000)
    receiver = ReceiverDriver(window=65_536)
    receiver.fsync_and_ack = lambda: b""  # type: ignore[method-assign]
    pair = Pair(sender, receiver)
    for _ in range(20):
        pair.step()
    assert receiver.machine.statistics().received == 65_536
    assert sender.machine.state is SenderState.SENDING
    assert sender.machine.next_chunk(10_000) is None


def test_resume_from_durable_offsets() -> None:
    sources = make_sources([50_000, 0, 80_000, 10, 40_000])
    durable = [
        bytearray(sources[0][:50_000]),
        bytearray(),
        bytearray(sources[2][:33_333]),
        bytearray(),
        bytearray(sources[4][:1]),
    ]
    pair = Pair(SenderDriver(sources), ReceiverDriver(durable=durable))
    pair.run()
    assert_complete(pair, sources)
    assert pair.sender.events[0] == Accepted(offsets=(50_000, 0, 33_333, 0, 1), window=256 * 1024)
    stats = pair.sender.machine.statistics()
    assert stats.resumed == 50_000 + 33_333 + 1
    assert stats.sent == sum(map(len, sources)) - stats.resumed
    # Files complete before the session were verified without a byte sent.
    received = [e.file for e in pair.receiver.events if isinstance(e, FileReceived)]
    assert received[:2] == [0, 1]


def test_interrupted_transfer_resumes_after_kill() -> None:
    """Kill mid-transfer (volatile bytes lost), restart both machines from durable bytes."""
    sources = make_sources([300_000, 5, 200_000], seed=9)
    first = Pair(SenderDriver(sources, max_payload=8000), ReceiverDriver(window=65_536))
    for _ in range(4):
        first.step()
    durable = first.receiver.durable
    assert durable is not None and 0 < sum(map(len, durable)) < sum(map(len, sources))
    second = Pair(SenderDriver(sources), ReceiverDriver(durable=durable))
    second.run()
    assert_complete(second, sources)


def test_corrupt_durable_bytes_fail_verification() -> None:
    sources = make_sources([1000, 2000])
    durable = [bytearray(b"\x00" * 1000), bytearray()]  # "complete" but wrong
    pair = Pair(SenderDriver(sources), ReceiverDriver(durable=durable))
    for _ in range(5):
        pair.step()
    assert pair.receiver.machine.state is ReceiverState.ERROR
    assert pair.sender.machine.state is SenderState.ERROR
    assert pair.sender.events[-1] == PeerFailed(
        code="hash_mismatch", message="file 0: sha256 mismatch"
    )
    assert 0 not in pair.receiver.final
    # The driver discarded the bad file; the next attempt fixes it.
    retry = Pair(SenderDriver(sources), ReceiverDriver(durable=pair.receiver.durable))
    retry.run()
    assert_complete(retry, sources)


def test_reject() -> None:
    pair = Pair(SenderDriver([b"x"]), ReceiverDriver(accept=False))
    pair.run()
    assert pair.sender.events == [Rejected(reason="no thanks")]
    assert pair.sender.machine.state is SenderState.REJECTED
    assert pair.receiver.machine.state is ReceiverState.REJECTED


def test_sender_cancels_mid_transfer() -> None:
    sources = make_sources([2_000_000])
    pair = Pair(SenderDriver(sources, max_payload=4096), ReceiverDriver())
    for _ in range(3):
        pair.step()
    assert pair.sender.machine.state is SenderState.SENDING
    pair.to_receiver += whole_frames(pair.sender.machine.cancel("user pressed stop"))
    pair.run()
    assert pair.receiver.events[-1] == Cancelled(reason="user pressed stop")
    assert pair.receiver.machine.state is ReceiverState.CANCELLED


def test_acks_are_cumulative_and_monotonic() -> None:
    sources = make_sources([200_000, 100_000])
    pair = Pair(SenderDriver(sources, max_payload=5000), ReceiverDriver(window=70_000))
    pair.run()
    last: dict[int, int] = {}
    for event in acked_events(pair.sender.events):
        assert event.offset > last.get(event.file, 0)
        last[event.file] = event.offset
    assert last == {0: 200_000, 1: 100_000}
