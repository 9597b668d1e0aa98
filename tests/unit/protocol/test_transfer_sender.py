"""TransferSender against a scripted receiver: happy path, chunking, strictness, lifecycle."""

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
    FileEntry,
    Hello,
    Offer,
    Reject,
    Verified,
    decode_message,
    encode_message,
)
from daemon.protocol.transfer import TransferSender, error_reply
from daemon.protocol.transfer_events import (
    Accepted,
    Acked,
    Cancelled,
    ChunkRequest,
    FileVerified,
    PeerFailed,
    Rejected,
    TransferDone,
)
from daemon.protocol.transfer_states import SenderState
from tests.unit.protocol.transfer_helpers import entry_for, make_sources

W = 65536
SOURCES = make_sources([10, 0, 100_000, 5])
FILES = [entry_for(i, s) for i, s in enumerate(SOURCES)]


def messages(data: bytes) -> list[object]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    out: list[object] = []
    while (frame := decoder.next_frame()) is not None:
        assert isinstance(frame, ControlFrame)
        out.append(decode_message(frame.body))
    return out


def events(sender: TransferSender, *frames: bytes) -> list[object]:
    for frame in frames:
        sender.receive_data(frame)
    out: list[object] = []
    while (event := sender.next_event()) is not None:
        out.append(event)
    return out


def accepted(offsets: list[int] | None = None, window: int = W) -> TransferSender:
    sender = TransferSender("t-1", FILES)
    sender.start()
    offsets = offsets if offsets is not None else [0] * len(FILES)
    got = events(
        sender,
        encode_message(Hello()),
        encode_message(Accept(offsets=tuple(offsets), window=window)),
    )
    assert got == [Accepted(offsets=tuple(offsets), window=window)]
    assert sender.state is SenderState.SENDING
    return sender


def send_all_possible(sender: TransferSender, max_payload: int) -> list[ChunkRequest]:
    requests = []
    while (request := sender.next_chunk(max_payload)) is not None:
        requests.append(request)
        data = SOURCES[request.file][request.offset : request.offset + request.length]
        sender.send_chunk(request.file, request.offset, data)
    return requests


def remote_failure(sender: TransferSender, *frames: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        events(sender, *frames)
    assert sender.state is SenderState.ERROR
    return info.value


def test_start_sends_hello_and_offer() -> None:
    sender = TransferSender("t-1", FILES)
    assert sender.state is SenderState.IDLE
    assert messages(sender.start()) == [Hello(), Offer(transfer_id="t-1", files=tuple(FILES))]
    assert sender.state is SenderState.AWAITING_HELLO
    assert sender.next_chunk(1000) is None


def test_chunks_follow_file_order_window_and_payload_limit() -> None:
    sender = accepted()
    requests = send_all_possible(sender, 30_000)
    assert requests == [
        ChunkRequest(file=0, offset=0, length=10),
        ChunkRequest(file=2, offset=0, length=30_000),
        ChunkRequest(file=2, offset=30_000, length=30_000),
        ChunkRequest(file=2, offset=60_000, length=W - 60_010),
    ]
    assert sender.statistics().in_flight == W
    assert events(sender, encode_message(Ack(file=0, offset=10))) == [Acked(file=0, offset=10)]
    assert send_all_possible(sender, 30_000) == [ChunkRequest(file=2, offset=W - 10, length=10)]


def test_full_happy_path_and_statistics() -> None:
    sender = accepted(offsets=[10, 0, 50_000, 0])
    stats = sender.statistics()
    assert (stats.total, stats.resumed, stats.remaining) == (100_015, 50_010, 50_005)
    send_all_possible(sender, 1 << 20)
    frames = [
        encode_message(Ack(file=2, offset=100_000)),
        encode_message(Ack(file=3, offset=5)),
        *(encode_message(Verified(file=i)) for i in range(4)),
        encode_message(Done()),
    ]
    got = events(sender, b"".join(frames))
    assert got[-1] == TransferDone()
    assert [e for e in got if isinstance(e, FileVerified)] == [
        FileVerified(file=i) for i in range(4)
    ]
    assert sender.state is SenderState.DONE
    stats = sender.statistics()
    assert (stats.sent, stats.acked, stats.in_flight, stats.remaining, stats.files_verified) == (
        50_005,
        100_015,
        0,
        0,
        4,
    )


def test_all_files_already_complete() -> None:
    sender = accepted(offsets=[f.size for f in FILES])
    assert sender.next_chunk(1000) is None
    got = events(
        sender, *(encode_message(Verified(file=i)) for i in range(4)), encode_message(Done())
    )
    assert got[-1] == TransferDone()


def test_short_read_is_allowed() -> None:
    sender = accepted()
    sender.next_chunk(1000)
    sender.send_chunk(0, 0, b"abc")
    assert sender.next_chunk(1000) == ChunkRequest(file=0, offset=3, length=7)


@pytest.mark.parametrize(
    ("file", "offset", "data"),
    [(2, 0, b"x"), (0, 1, b"x"), (0, 0, b""), (0, 0, b"x" * 11)],
)
def test_send_chunk_must_match_request(file: int, offset: int, data: bytes) -> None:
    sender = accepted()
    sender.next_chunk(1000)
    with pytest.raises(LocalProtocolError) as info:
        sender.send_chunk(file, offset, data)
    assert info.value.code == "bad_chunk"
    assert sender.state is SenderState.ERROR


def test_send_chunk_without_request() -> None:
    sender = accepted()
    with pytest.raises(LocalProtocolError) as info:
        sender.send_chunk(0, 0, b"x")
    assert info.value.code == "bad_chunk"


@pytest.mark.parametrize("max_payload", [0, -1, (1 << 20) + 1])
def test_next_chunk_rejects_bad_payload_size(max_payload: int) -> None:
    sender = accepted()
    with pytest.raises(LocalProtocolError):
        sender.next_chunk(max_payload)


# -- strict checking of the receiver ---------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (Accept(offsets=(0, 0, 0), window=W), "bad_accept"),
        (Accept(offsets=(0, 0, 0, 0, 0), window=W), "bad_accept"),
        (Accept(offsets=(11, 0, 0, 0), window=W), "bad_accept"),
        (Accept(offsets=(0, 1, 0, 0), window=W), "bad_accept"),
        (Ack(file=0, offset=1), "unexpected_message"),
        (Done(), "unexpected_message"),
        (Hello(), "unexpected_message"),
        (Offer(transfer_id="x", files=tuple(FILES)), "unexpected_message"),
    ],
)
def test_bad_answers_to_offer(message: object, code: str) -> None:
    sender = TransferSender("t-1", FILES)
    sender.start()
    failure = remote_failure(sender, encode_message(Hello()), encode_message(message))  # type: ignore[arg-type]
    assert failure.code == code


def test_accept_before_hello() -> None:
    sender = TransferSender("t-1", FILES)
    sender.start()
    failure = remote_failure(sender, encode_message(Accept(offsets=(0,) * 4, window=W)))
    assert failure.code == "unexpected_message"


def test_peer_version_mismatch() -> None:
    sender = TransferSender("t-1", FILES)
    sender.start()
    failure = remote_failure(sender, b'\x00\x00\x00\x1d\x01{"type":"hello","version":2}')
    assert failure.code == "version"
    assert messages(error_reply(failure))[0] == Error(code="version", message=str(failure))


def ack(file: int, offset: int) -> bytes:
    return encode_message(Ack(file=file, offset=offset))


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([ack(0, 11)], "bad_ack"),  # beyond size (and beyond sent)
        ([ack(2, 70_000)], "bad_ack"),  # beyond sent (65_526 sent)
        ([ack(0, 0)], "bad_ack"),  # not above acked
        ([ack(0, 5), ack(0, 5)], "bad_ack"),  # duplicate
        ([ack(0, 5), ack(0, 4)], "bad_ack"),  # backwards
        ([ack(4, 1)], "bad_ack"),  # no such file
        ([ack(1, 0)], "bad_ack"),  # zero-size file: nothing to ack
        ([encode_message(Verified(file=2))], "bad_verified"),  # not fully acked
        ([ack(0, 10), *[encode_message(Verified(file=0))] * 2], "bad_verified"),  # twice
        ([encode_message(Verified(file=9))], "bad_verified"),
        ([encode_message(Done())], "bad_done"),
        ([ack(0, 10), encode_message(Verified(file=0)), encode_message(Done())], "bad_done"),
        ([encode_data_frame(0, 0, b"x")], "unexpected_message"),
        ([encode_message(Accept(offsets=(0,) * 4, window=W))], "unexpected_message"),
        ([encode_message(Reject(reason="late"))], "unexpected_message"),
    ],
)
def test_strict_checks_while_sending(frames: list[bytes], code: str) -> None:
    sender = accepted()
    send_all_possible(sender, 1 << 20)
    assert remote_failure(sender, *frames).code == code


# -- lifecycle -------------------------------------------------------------------------


def test_reject() -> None:
    sender = TransferSender("t-1", FILES)
    sender.start()
    got = events(sender, encode_message(Hello()), encode_message(Reject(reason="no space")))
    assert got == [Rejected(reason="no space")]
    assert sender.state is SenderState.REJECTED
    sender.receive_data(b"garbage after the end is discarded")
    sender.receive_data(b"")
    assert sender.next_event() is None


def test_peer_cancel_and_local_cancel() -> None:
    sender = accepted()
    assert events(sender, encode_message(Cancel(reason="user"))) == [Cancelled(reason="user")]
    assert sender.state is SenderState.CANCELLED
    with pytest.raises(LocalProtocolError):
        sender.cancel("again")

    sender = accepted()
    send_all_possible(sender, 1000)
    assert messages(sender.cancel("bye")) == [Cancel(reason="bye")]
    assert sender.state is SenderState.CANCELLED
    assert sender.next_chunk(1000) is None
    sender.receive_data(ack(0, 10))  # crossed our cancel: ignored
    assert sender.next_event() is None


def test_peer_error_then_every_call_fails() -> None:
    sender = accepted()
    got = events(sender, encode_message(Error(code="disk_full", message="ENOSPC")))
    assert got == [PeerFailed(code="disk_full", message="ENOSPC")]
    assert sender.state is SenderState.ERROR
    assert sender.next_event() is None
    for call in (
        lambda: sender.receive_data(b"x"),
        lambda: sender.next_chunk(10),
        lambda: sender.cancel("x"),
        lambda: sender.fail("x", "y"),
    ):
        with pytest.raises(LocalProtocolError) as info:
            call()
        assert info.value.code == "state"


def test_local_fail() -> None:
    sender = accepted()
    assert messages(sender.fail("io_error", "read failed")) == [
        Error(code="io_error", message="read failed")
    ]
    assert sender.state is SenderState.ERROR
    sender = accepted()
    with pytest.raises(LocalProtocolError):
        sender.fail("Not A Code", "x")
    assert sender.state is SenderState.ERROR


def test_receive_before_start_is_local_error() -> None:
    sender = TransferSender("t-1", FILES)
    with pytest.raises(LocalProtocolError) as info:
        sender.receive_data(encode_message(Hello()))
    assert info.value.code == "state"
    assert sender.state is SenderState.ERROR


def test_start_twice() -> None:
    sender = TransferSender("t-1", FILES)
    sender.start()
    with pytest.raises(LocalProtocolError):
        sender.start()
    assert sender.state is SenderState.ERROR


def test_eof_mid_transfer_and_after_done() -> None:
    sender = accepted()
    sender.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        sender.next_event()
    assert info.value.code == "unexpected_eof"

    sender = accepted(offsets=[f.size for f in FILES])
    sender.receive_data(b"".join(encode_message(Verified(file=i)) for i in range(4)))
    sender.receive_data(encode_message(Done()))
    sender.receive_data(b"")
    assert events(sender)[-1] == TransferDone()
    assert sender.next_event() is None


def test_truncated_frame_at_eof() -> None:
    sender = accepted()
    sender.receive_data(ack(0, 10)[:-2])
    sender.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as info:
        sender.next_event()
    assert info.value.code == "frame_truncated"


def test_manifest_is_validated() -> None:
    with pytest.raises(LocalProtocolError) as info:
        TransferSender("bad id!", FILES)
    assert info.value.code == "bad_message"
    with pytest.raises(LocalProtocolError):
        TransferSender("t", [])
    huge = [FileEntry(path=f"{i:0200d}", size=0, sha256="0" * 64) for i in range(5000)]
    with pytest.raises(LocalProtocolError) as info:
        TransferSender("t", huge)
    assert info.value.code == "offer_too_large"
