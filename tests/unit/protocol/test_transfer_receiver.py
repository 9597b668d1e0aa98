"""TransferReceiver against a scripted sender: data validation, acks, verification, lifecycle."""

from __future__ import annotations

import pytest

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import ControlFrame, FrameDecoder, encode_data_frame
from daemon.protocol.messages import (
    Accept,
    Ack,
    Cancel,
    Done,
    Error,
    Hello,
    Offer,
    Reject,
    Verified,
    decode_message,
    encode_message,
)
from daemon.protocol.transfer import TransferReceiver
from daemon.protocol.transfer_events import (
    Cancelled,
    DataReceived,
    FileReceived,
    OfferReceived,
    PeerFailed,
)
from daemon.protocol.transfer_states import ReceiverState
from tests.unit.protocol.transfer_helpers import entry_for, make_sources

W = 65536
SOURCES = make_sources([10, 0, 100_000, 5])
FILES = tuple(entry_for(i, s) for i, s in enumerate(SOURCES))
OFFER = encode_message(Offer(transfer_id="t-1", files=FILES))


def messages(data: bytes) -> list[object]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    out: list[object] = []
    while (frame := decoder.next_frame()) is not None:
        assert isinstance(frame, ControlFrame)
        out.append(decode_message(frame.body))
    return out


def events(receiver: TransferReceiver, *frames: bytes) -> list[object]:
    for frame in frames:
        receiver.receive_data(frame)
    out: list[object] = []
    while (event := receiver.next_event()) is not None:
        out.append(event)
    return out


def data(file: int, offset: int, length: int) -> bytes:
    """A DATA frame with the source bytes, padded with junk beyond the source's end."""
    source = SOURCES[file] if file < len(SOURCES) else b""
    return encode_data_frame(file, offset, source[offset : offset + length].ljust(length, b"?"))


def offered() -> TransferReceiver:
    receiver = TransferReceiver()
    assert messages(receiver.start()) == [Hello()]
    got = events(receiver, encode_message(Hello()), OFFER)
    assert got == [OfferReceived(transfer_id="t-1", files=FILES)]
    assert receiver.state is ReceiverState.OFFER_RECEIVED
    assert receiver.transfer_id == "t-1" and receiver.files == FILES
    return receiver


def accepted(
    offsets: list[int] | None = None, window: int = W
) -> tuple[TransferReceiver, list[object]]:
    receiver = offered()
    offsets = offsets if offsets is not None else [0] * len(FILES)
    assert messages(receiver.accept(offsets, window)) == [
        Accept(offsets=tuple(offsets), window=window)
    ]
    assert receiver.state is ReceiverState.RECEIVING
    return receiver, events(receiver)


def remote_failure(receiver: TransferReceiver, *frames: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        events(receiver, *frames)
    assert receiver.state is ReceiverState.ERROR
    return info.value


def test_accept_queues_already_complete_files() -> None:
    _, got = accepted()
    assert got == [FileReceived(file=1)]  # the zero-size file
    _, got = accepted([10, 0, 100, 5])
    assert got == [FileReceived(file=0), FileReceived(file=1), FileReceived(file=3)]


def test_data_events_are_contiguous_and_complete_files() -> None:
    receiver, _ = accepted()
    got = events(receiver, data(0, 0, 4), data(0, 4, 6), data(2, 0, 1000))
    assert got == [
        DataReceived(file=0, offset=0, data=memoryview(SOURCES[0][:4])),
        DataReceived(file=0, offset=4, data=memoryview(SOURCES[0][4:])),
        FileReceived(file=0),
        DataReceived(file=2, offset=0, data=memoryview(SOURCES[2][:1000])),
    ]
    assert isinstance(got[0], DataReceived) and got[0].data.readonly


def test_full_transfer_with_acks_verification_and_done() -> None:
    receiver, _ = accepted([0, 0, 90_000, 0])
    got = events(receiver, data(0, 0, 10), data(2, 90_000, 10_000), data(3, 0, 5))
    assert [e.file for e in got if isinstance(e, FileReceived)] == [0, 2, 3]
    out = receiver.ack(0, 10) + receiver.ack(2, 100_000) + receiver.ack(3, 5)
    for file in (1, 0, 2):
        out += receiver.file_verified(file)
    assert receiver.state is ReceiverState.RECEIVING
    out += receiver.file_verified(3)
    assert receiver.state is ReceiverState.DONE
    assert messages(out) == [
        Ack(file=0, offset=10),
        Ack(file=2, offset=100_000),
        Ack(file=3, offset=5),
        Verified(file=1),
        Verified(file=0),
        Verified(file=2),
        Verified(file=3),
        Done(),
    ]
    stats = receiver.statistics()
    assert (stats.total, stats.resumed, stats.received, stats.acked, stats.files_verified) == (
        100_015,
        90_000,
        10_015,
        100_015,
        4,
    )
    receiver.receive_data(encode_message(Cancel(reason="crossed")))
    receiver.receive_data(b"")
    assert receiver.next_event() is None


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([data(2, 0, 10)], "bad_file"),  # not the current file
        ([data(1, 0, 1)], "bad_file"),  # zero-size file
        ([data(9, 0, 1)], "bad_file"),  # no such file
        ([data(0, 1, 3)], "bad_offset"),  # gap
        ([data(0, 0, 4), data(0, 0, 4)], "bad_offset"),  # duplicate
        ([data(0, 0, 4), data(0, 2, 4)], "bad_offset"),  # overlap
        ([data(0, 0, 4), data(0, 8, 2)], "bad_offset"),  # reorder: (0, 4) overtaken
        ([data(0, 0, 11)], "bad_offset"),  # beyond size
        ([data(0, 0, 10), data(0, 10, 1)], "bad_file"),  # after the file completed
        ([data(0, 0, 10), data(2, 0, 50_000), data(2, 50_000, 20_000)], "window"),
        ([encode_message(Ack(file=0, offset=1))], "unexpected_message"),
        ([encode_message(Offer(transfer_id="t", files=FILES))], "unexpected_message"),
        ([encode_message(Hello())], "unexpected_message"),
        ([encode_message(Done())], "unexpected_message"),
    ],
)
def test_strict_checks_while_receiving(frames: list[bytes], code: str) -> None:
    receiver, _ = accepted()
    failure = None
    seen = []
    for frame in frames:
        receiver.receive_data(frame)
        try:
            while (event := receiver.next_event()) is not None:
                seen.append(event)
        except RemoteProtocolError as exc:
            failure = exc
            break
    assert failure is not None and failure.code == code
    assert receiver.state is ReceiverState.ERROR
    good = sum(len(e.data) for e in seen if isinstance(e, DataReceived))
    assert good == sum(len(f) - 17 for f in frames[:-1] if f[4] == 2)  # nothing invalid emitted


def test_window_counts_acks() -> None:
    receiver, _ = accepted()
    events(receiver, data(0, 0, 10), data(2, 0, W - 10))
    receiver.ack(2, 30_000)
    events(receiver, data(2, W - 10, 30_000))
    with pytest.raises(RemoteProtocolError) as info:
        events(receiver, data(2, W - 10 + 30_000, 1))
    assert info.value.code == "window"


@pytest.mark.parametrize(
    "frames",
    [
        [data(0, 0, 1)],
        [encode_message(Hello()), data(0, 0, 1)],
        [encode_message(Hello()), OFFER, data(0, 0, 1)],
        [OFFER],
        [encode_message(Hello()), encode_message(Accept(offsets=(0,), window=W))],
        [encode_message(Hello()), OFFER, OFFER],
    ],
)
def test_out_of_order_messages_before_accept(frames: list[bytes]) -> None:
    receiver = TransferReceiver()
    receiver.start()
    assert remote_failure(receiver, *frames).code == "unexpected_message"


def test_peer_version_mismatch() -> None:
    receiver = TransferReceiver()
    receiver.start()
    failure = remote_failure(receiver, b'\x00\x00\x00\x1d\x01{"type":"hello","version":7}')
    assert failure.code == "version"


# -- local calls -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offsets", "window"),
    [
        ([0, 0, 0], W),
        ([0] * 5, W),
        ([11, 0, 0, 0], W),
        ([0, 1, 0, 0], W),
        ([0] * 4, W - 1),
        ([-1, 0, 0, 0], W),
    ],
)
def test_accept_arguments_are_checked(offsets: list[int], window: int) -> None:
    receiver = offered()
    with pytest.raises(LocalProtocolError):
        receiver.accept(offsets, window)
    assert receiver.state is ReceiverState.ERROR


def test_accept_before_offer() -> None:
    receiver = TransferReceiver()
    receiver.start()
    with pytest.raises(LocalProtocolError) as info:
        receiver.accept([0], W)
    assert info.value.code == "state"


@pytest.mark.parametrize(("file", "offset"), [(0, 0), (0, 5), (2, 1), (9, 1), (1, 0), (0, True)])
def test_ack_must_grow_and_not_exceed_received(file: int, offset: int) -> None:
    receiver, _ = accepted()
    events(receiver, data(0, 0, 4))
    receiver.ack(0, 2)
    with pytest.raises(LocalProtocolError):
        receiver.ack(file, offset)
    assert receiver.state is ReceiverState.ERROR


def test_ack_of_earlier_file_after_moving_on() -> None:
    receiver, _ = accepted()
    events(receiver, data(0, 0, 10), data(2, 0, 100))
    assert messages(receiver.ack(2, 50) + receiver.ack(0, 10)) == [
        Ack(file=2, offset=50),
        Ack(file=0, offset=10),
    ]


@pytest.mark.parametrize("case", ["incomplete", "unacked", "twice", "no_such_file"])
def test_file_verified_preconditions(case: str) -> None:
    receiver, _ = accepted()
    events(receiver, data(0, 0, 10), data(2, 0, 100))
    if case == "incomplete":
        receiver.ack(2, 100)
        call = lambda: receiver.file_verified(2)  # noqa: E731
    elif case == "unacked":
        call = lambda: receiver.file_verified(0)  # noqa: E731
    elif case == "twice":
        receiver.file_verified(1)
        call = lambda: receiver.file_verified(1)  # noqa: E731
    else:
        call = lambda: receiver.file_verified(4)  # noqa: E731
    with pytest.raises(LocalProtocolError):
        call()
    assert receiver.state is ReceiverState.ERROR


def test_file_failed_sends_error_and_is_fatal() -> None:
    receiver, _ = accepted()
    events(receiver, data(0, 0, 10))
    receiver.ack(0, 10)
    out = receiver.file_failed(0, "sha256 mismatch")
    assert messages(out) == [Error(code="hash_mismatch", message="file 0: sha256 mismatch")]
    assert receiver.state is ReceiverState.ERROR
    assert receiver.next_event() is None
    with pytest.raises(LocalProtocolError):
        receiver.ack(0, 10)


def test_file_failed_requires_a_complete_file() -> None:
    receiver, _ = accepted()
    with pytest.raises(LocalProtocolError):
        receiver.file_failed(0, "x")


def test_reject() -> None:
    receiver = offered()
    assert messages(receiver.reject("not now")) == [Reject(reason="not now")]
    assert receiver.state is ReceiverState.REJECTED
    receiver.receive_data(data(0, 0, 1))
    assert receiver.next_event() is None


def test_cancel_both_ways() -> None:
    receiver, _ = accepted()
    assert events(receiver, encode_message(Cancel(reason="stop"))) == [Cancelled(reason="stop")]
    assert receiver.state is ReceiverState.CANCELLED

    receiver, _ = accepted([10, 0, 0, 0])  # FileReceived(0), FileReceived(1) queued...
    receiver = offered()
    receiver.accept([10, 0, 0, 0], W)
    assert messages(receiver.cancel("user")) == [Cancel(reason="user")]
    assert receiver.next_event() is None  # ...and dropped by the local cancel
    receiver.receive_data(data(0, 0, 10))  # in flight when we cancelled
    assert receiver.next_event() is None


def test_peer_error() -> None:
    receiver = TransferReceiver()
    receiver.start()
    got = events(receiver, encode_message(Error(code="io", message="EIO")))
    assert got == [PeerFailed(code="io", message="EIO")]
    assert receiver.state is ReceiverState.ERROR


def test_eof_before_done_is_remote_error() -> None:
    receiver, _ = accepted()
    receiver.receive_data(data(0, 0, 10) + b"")
    receiver.receive_data(b"")
    assert [type(e) for e in _drain_until_error(receiver)] == [DataReceived, FileReceived]


def _drain_until_error(receiver: TransferReceiver) -> list[object]:
    got: list[object] = []
    with pytest.raises(RemoteProtocolError) as info:
        while (event := receiver.next_event()) is not None:
            got.append(event)
    assert info.value.code == "unexpected_eof"
    return got


def test_receive_after_eof_is_local_error() -> None:
    receiver, _ = accepted()
    receiver.receive_data(b"")
    with pytest.raises(LocalProtocolError) as info:
        receiver.receive_data(b"x")
    assert info.value.code == "after_eof"
