"""Control messages: exact wire form, round trips, strict schema with error codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import ControlFrame, FrameDecoder
from daemon.protocol.messages import (
    MAX_FILES,
    MIN_WINDOW,
    Accept,
    Ack,
    Cancel,
    Done,
    Error,
    FileEntry,
    Hello,
    Message,
    Offer,
    Reject,
    Verified,
    clip_text,
    decode_message,
    encode_message,
)

SHA = "ab" * 32
ENTRY = {"path": "a/b.txt", "size": 3, "sha256": SHA}


def body_of(message: Message) -> bytes:
    decoder = FrameDecoder()
    decoder.receive_data(encode_message(message))
    frame = decoder.next_frame()
    assert isinstance(frame, ControlFrame)
    return frame.body


def encoded(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def remote_code(body: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(body)
    return info.value.code


ALL_MESSAGES: list[Message] = [
    Hello(),
    Offer(transfer_id="t_1-A", files=(FileEntry(path="a/b.txt", size=3, sha256=SHA),)),
    Accept(offsets=(0,), window=MIN_WINDOW),
    Reject(reason="disk full"),
    Ack(file=0, offset=3),
    Verified(file=0),
    Done(),
    Cancel(reason=""),
    Error(code="hash_mismatch", message="file 0: sha256 mismatch ü"),
]


@pytest.mark.parametrize("message", ALL_MESSAGES, ids=lambda m: m.TYPE)
def test_round_trip(message: Message) -> None:
    assert decode_message(body_of(message)) == message


def test_exact_wire_form() -> None:
    assert body_of(Hello()) == b'{"type":"hello","version":1}'
    assert body_of(Accept(offsets=(0, 5), window=65536)) == (
        b'{"type":"accept","offsets":[0,5],"window":65536}'
    )
    assert body_of(ALL_MESSAGES[1]) == (
        b'{"type":"offer","transfer_id":"t_1-A","files":'
        b'[{"path":"a/b.txt","size":3,"sha256":"' + SHA.encode() + b'"}]}'
    )
    assert (
        body_of(Error(code="x", message="é"))
        == '{"type":"error","code":"x","message":"é"}'.encode()
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"hello"',
        b"\xff\xfe",
        b'{"type":"done"',
        "\ufeff{}".encode(),
        b'{"type":"done","type":"done"}',
        b"[" * 100_000,
    ],
)
def test_bad_json(body: bytes) -> None:
    assert remote_code(body) == "bad_json"


@pytest.mark.parametrize(
    "obj", [{}, {"type": "nope"}, {"type": 1}, {"type": None}, {"type": "HELLO", "version": 1}]
)
def test_unknown_message(obj: Any) -> None:
    assert remote_code(encoded(obj)) == "unknown_message"


@pytest.mark.parametrize("version", [0, 2, 99])
def test_version_mismatch(version: int) -> None:
    assert remote_code(encoded({"type": "hello", "version": version})) == "version"
    assert remote_code(encoded({"type": "hello", "version": version, "caps": []})) == "version"


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "hello"},
        {"type": "hello", "version": True},
        {"type": "hello", "version": 1.0},
        {"type": "hello", "version": "1"},
        {"type": "hello", "version": 1, "extra": 0},
        {"type": "done", "x": 1},
        {"type": "offer", "transfer_id": "", "files": [ENTRY]},
        {"type": "offer", "transfer_id": "a" * 65, "files": [ENTRY]},
        {"type": "offer", "transfer_id": "a/b", "files": [ENTRY]},
        {"type": "offer", "transfer_id": "t", "files": []},
        {"type": "offer", "transfer_id": "t", "files": {}},
        {"type": "offer", "transfer_id": "t", "files": [ENTRY, ENTRY]},
        {"type": "offer", "transfer_id": "t", "files": [[1]]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "path": ""}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "path": "a" * 4097}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "path": 5}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "size": -1}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "size": 2**63}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "size": 1.5}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "size": False}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "sha256": SHA.upper()}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "sha256": SHA[:-1]}]},
        {"type": "offer", "transfer_id": "t", "files": [{**ENTRY, "mode": 420}]},
        {"type": "offer", "transfer_id": "t", "files": [{"path": "a", "size": 1}]},
        {"type": "accept", "offsets": [], "window": MIN_WINDOW},
        {"type": "accept", "offsets": [-1], "window": MIN_WINDOW},
        {"type": "accept", "offsets": [0], "window": MIN_WINDOW - 1},
        {"type": "accept", "offsets": [0], "window": "big"},
        {"type": "accept", "offsets": [0.0], "window": MIN_WINDOW},
        {"type": "accept", "offsets": 0, "window": MIN_WINDOW},
        {"type": "reject"},
        {"type": "reject", "reason": None},
        {"type": "reject", "reason": "x" * 1025},
        {"type": "ack", "file": 0},
        {"type": "ack", "file": -1, "offset": 0},
        {"type": "ack", "file": MAX_FILES, "offset": 0},
        {"type": "ack", "file": 0, "offset": 2**63},
        {"type": "verified", "file": "0"},
        {"type": "cancel", "reason": ["x"]},
        {"type": "error", "code": "", "message": ""},
        {"type": "error", "code": "Bad Code", "message": ""},
        {"type": "error", "code": "x", "message": 3},
    ],
)
def test_bad_message(obj: Any) -> None:
    assert remote_code(encoded(obj)) == "bad_message"


def test_lone_surrogate_path_is_bad_message() -> None:
    body = (
        b'{"type":"offer","transfer_id":"t","files":[{"path":"\\ud800","size":0,"sha256":"'
        + SHA.encode()
        + b'"}]}'
    )
    assert remote_code(body) == "bad_message"


@pytest.mark.parametrize(
    "body",
    [
        b'{"type":"ack","file":0,"offset":NaN}',
        b'{"type":"ack","file":0,"offset":1' + b"0" * 5000 + b"}",
    ],
)
def test_non_finite_and_huge_numbers(body: bytes) -> None:
    assert remote_code(body) in {"bad_json"}


def test_local_construction_raises_local_error() -> None:
    with pytest.raises(LocalProtocolError) as info:
        FileEntry(path="a", size=-1, sha256=SHA)
    assert info.value.code == "bad_message"
    with pytest.raises(LocalProtocolError):
        Hello(version=2)
    with pytest.raises(LocalProtocolError):
        Offer(transfer_id="t", files="abc")  # type: ignore[arg-type]


def test_clip_text() -> None:
    assert clip_text("x" * 2000) == "x" * 1023 + "…"
    assert clip_text("a\ud800b") == "a?b"


path_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=50)


@settings(max_examples=50, deadline=None)
@given(
    paths=st.lists(path_text, min_size=1, max_size=20, unique=True),
    size=st.integers(0, 2**63 - 1),
)
def test_offer_round_trip_property(paths: list[str], size: int) -> None:
    offer = Offer(
        transfer_id="t", files=tuple(FileEntry(path=p, size=size, sha256=SHA) for p in paths)
    )
    assert decode_message(body_of(offer)) == offer
