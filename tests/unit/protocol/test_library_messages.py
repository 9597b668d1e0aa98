"""Library protocol messages: round trips, strict validation, and hostile bytes that can only ever
raise RemoteProtocolError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.frames import MAX_CONTROL_BODY
from daemon.protocol.library import (
    MAX_PAGE, MAX_PULL_FILES, Bye, Entries, Entry, Failure, LibraryInfo, Libraries, ListEntries, ListLibraries, Pull,
    Sending, Wanted, check_relpath, decode_reply, decode_request, encode,
)

SHA = "ab" * 32


def _body(frame: bytes) -> bytes:
    return frame[5:]  # length prefix and kind


MESSAGES = [
    ListLibraries(), Bye(), ListEntries(library="Photos 2024", prefix="a/b", after="a/b/c", limit=5),
    Pull(library="x", share="pull-1", files=(Wanted(path="a", sha256=SHA), Wanted(path="b/c", sha256=SHA))),
]
REPLIES = [
    Libraries(libraries=(LibraryInfo(name="x", files=2, size=10),)),
    Entries(library="x", entries=(Entry(path="a", size=1, mtime_ns=-5, sha256=SHA),
                                  Entry(path="b/é", size=0, mtime_ns=10**18, sha256=SHA)), more=True),
    Sending(share="pull-1", count=2, size=11), Failure(code="not_found", message="no"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_requests_round_trip(message) -> None:
    assert decode_request(_body(encode(message))) == message


@pytest.mark.parametrize("message", REPLIES)
def test_replies_round_trip(message) -> None:
    assert decode_reply(_body(encode(message))) == message


def test_a_reply_is_not_a_request_and_the_other_way_round() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        decode_request(_body(encode(REPLIES[0])))
    assert caught.value.code == "unexpected_message"
    with pytest.raises(RemoteProtocolError) as caught:
        decode_reply(_body(encode(MESSAGES[0])))
    assert caught.value.code == "unexpected_message"


@pytest.mark.parametrize("path", [
    "", "/etc/passwd", "a//b", "a/./b", "../x", "a/..", "a\\b", "a\nb", "a\x00b", "a\x7f", "a\u0085b", "x/",
    "\ud800", "a/" * 70 + "b", "a" * 4097,
])
def test_hostile_paths_are_refused(path: str) -> None:
    with pytest.raises(LocalProtocolError):
        check_relpath(path)
    with pytest.raises(LocalProtocolError):
        Entry(path=path, size=1, mtime_ns=0, sha256=SHA)
    body = json.dumps({"type": "entries", "library": "x", "more": False,
                       "entries": [{"path": path, "size": 1, "mtime_ns": 0, "sha256": SHA}]}).encode()
    with pytest.raises(RemoteProtocolError) as caught:
        decode_reply(body)
    assert caught.value.code in ("bad_message", "bad_json")


@pytest.mark.parametrize("path", ["a", "a b/c.d", "ünïcode/名前.txt", "CON", "a/.b", "-x"])
def test_usable_paths_pass(path: str) -> None:
    assert check_relpath(path) == path


@pytest.mark.parametrize("body", [
    b'{"type": "list", "library": "x", "limit": true}',
    b'{"type": "list", "library": "x", "limit": 0}',
    b'{"type": "list", "library": "x", "limit": 2001}',
    b'{"type": "list", "library": "x", "limit": 1.0}',
    b'{"type": "list", "library": "../x"}',
    b'{"type": "list", "library": "x", "extra": 1}',
    b'{"type": "list"}',
    b'{"type": "pull", "library": "x", "share": "a/b", "files": [{"path": "a", "sha256": "' + SHA.encode() + b'"}]}',
    b'{"type": "pull", "library": "x", "share": "s", "files": []}',
    b'{"type": "pull", "library": "x", "share": "s", "files": "ab"}',
    b'{"type": "pull", "library": "x", "share": "s", "files": [{"path": "a", "sha256": "AB"}]}',
    b'{"type": "pull", "library": "x", "share": "s", "files": [{"path": "a", "sha256": "' + SHA.encode()
    + b'"}, {"path": "a", "sha256": "' + SHA.encode() + b'"}]}',
    b'{"type": "bye", "type": "bye"}',
    b'{"type": "nope"}',
    b'{"type": 1}',
    b'[]',
    b'{"type": "bye", "x": NaN}',
    b'\xff',
])
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_request(body)


def test_entries_must_be_sorted_and_unique() -> None:
    entry = {"path": "b", "size": 1, "mtime_ns": 0, "sha256": SHA}
    for entries in ([entry, {**entry, "path": "a"}], [entry, entry]):
        body = json.dumps({"type": "entries", "library": "x", "more": False, "entries": entries}).encode()
        with pytest.raises(RemoteProtocolError):
            decode_reply(body)


def test_bounds() -> None:
    with pytest.raises(LocalProtocolError):
        Pull(library="x", share="s", files=tuple(Wanted(path=f"f{i}", sha256=SHA) for i in range(MAX_PULL_FILES + 1)))
    with pytest.raises(LocalProtocolError):
        Entries(library="x", more=False,
                entries=tuple(Entry(path=f"{i:06}", size=0, mtime_ns=0, sha256=SHA) for i in range(MAX_PAGE + 1)))
    big = Entries(library="x", more=False, entries=tuple(
        Entry(path=f"{i:06}/" + "n" * 1000, size=0, mtime_ns=0, sha256=SHA) for i in range(MAX_PAGE)))
    with pytest.raises(LocalProtocolError) as caught:
        encode(big)
    assert caught.value.code == "too_large"
    assert len(encode(Entries(library="x", more=False, entries=big.entries[:500]))) <= MAX_CONTROL_BODY + 5


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20)
TYPES = st.sampled_from(["list_libraries", "list", "pull", "bye", "libraries", "entries", "sending", "error", "x"])
FIELDS = st.sampled_from(["library", "prefix", "after", "limit", "share", "files", "libraries", "entries", "more",
                          "count", "size", "code", "message", "path", "sha256", "name", "mtime_ns"])


@st.composite
def hostile_objects(draw) -> bytes:
    obj = {"type": draw(TYPES)}
    for name in draw(st.lists(FIELDS, max_size=6)):
        obj[name] = draw(JSON | st.lists(st.dictionaries(FIELDS, JSON, max_size=5), max_size=3))
    return json.dumps(obj).encode()


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), hostile_objects()))
def test_hostile_input_only_raises_remote_protocol_errors(body: bytes) -> None:
    for decode in (decode_request, decode_reply):
        try:
            message = decode(body)
        except RemoteProtocolError:
            continue
        assert decode(_body(encode(message))) == message  # whatever passed is a valid message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_check_relpath_never_lets_a_traversal_through(path: str) -> None:
    try:
        check_relpath(path)
    except LocalProtocolError:
        return
    parts = path.split("/")
    assert all(part not in ("", ".", "..") for part in parts) and "\\" not in path and "\x00" not in path
