"""Signaling v1 message layer: strict parsing, serialization, and fuzzing (no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.protocol.errors import LocalProtocolError, RemoteProtocolError
from daemon.protocol.signaling import (
    CLIENT_MESSAGE_TYPES,
    MAX_DATA_DEPTH,
    MAX_FRAME_BYTES,
    MAX_PRESENCE_SHARES,
    MAX_REQUEST_ID,
    SERVER_MESSAGE_TYPES,
    Error,
    ErrorCode,
    Host,
    Hosted,
    Join,
    Joined,
    Leave,
    Left,
    MessageError,
    MessageType,
    Peer,
    Ping,
    Pong,
    Presence,
    PresenceReply,
    Relay,
    Unhost,
    Unhosted,
    Hello,
    MemberJoined,
    MemberLeft,
    Resume,
    Resumed,
    Welcome,
    is_resume_token,
    RoomCreate,
    RoomCreated,
    RoomJoin,
    RoomJoined,
    RoomLeave,
    RoomLeft,
    RoomText,
    Text,
    is_code,
    is_room_id,
    is_share_id,
    parse_client_message,
    parse_server_message,
    serialize,
)

SHARE = "share_ABCDEFGH-1234"
KEY = "k" * 32


def bad(text: str, *, client: bool = True) -> MessageError:
    parse = parse_client_message if client else parse_server_message
    with pytest.raises(MessageError) as info:
        parse(text)
    assert isinstance(info.value, RemoteProtocolError)
    return info.value


# --- valid messages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"type":"host","share":"share_ABCDEFGH-1234","host_key":"' + KEY + '","code":true}',
            Host(share=SHARE, host_key=KEY, code=True),
        ),
        ('{"type":"unhost","share":"share_ABCDEFGH-1234","id":7}', Unhost(share=SHARE, id=7)),
        ('{"type":"join","code":"012345","id":"a-1"}', Join(code="012345", id="a-1")),
        ('{"type":"join","share":"share_ABCDEFGH-1234"}', Join(share=SHARE)),
        ('{"type":"join","code":"12"}', Join(code="12")),  # format is the server's business
        (
            '{"type":"relay","session":"s1","data":{"sdp":"v=0","n":[1,2.5,null,true]}}',
            Relay(session="s1", data={"sdp": "v=0", "n": [1, 2.5, None, True]}),
        ),
        ('{"type":"leave","session":"s1"}', Leave(session="s1")),
        ('{"type":"ping"}', Ping()),
        ('{"id":-3,"type":"ping"}', Ping(id=-3)),
    ],
)
def test_client_messages_parse(text: str, expected: Any) -> None:
    assert parse_client_message(text) == expected


@pytest.mark.parametrize(
    "message",
    [
        Hosted(share=SHARE, code="000001", expires_at=1_700_000_300.0, id=1),
        Hosted(share=SHARE, code=None, expires_at=None),
        Unhosted(share=SHARE),
        Joined(session="abc", share=SHARE, id="x"),
        Peer(session="abc", share=SHARE),
        Relay(session="abc", data={"candidate": "a=1", "x": {"y": []}}),
        Left(session="abc"),
        Left(session="abc", id=4),
        Pong(id=MAX_REQUEST_ID),
        Error(code=ErrorCode.JOIN_FAILED, message="no such code or share", id=2),
        Error(code="some_future_code", message=""),
    ],
)
def test_server_messages_round_trip(message: Any) -> None:
    text = serialize(message)
    assert parse_server_message(text) == message
    obj = json.loads(text)
    assert obj["type"] == message.TYPE.value
    assert next(iter(obj)) == "type"


def test_serialize_is_compact_and_omits_absent_ids() -> None:
    assert serialize(Ping()) == '{"type":"ping"}'
    assert serialize(Join(code="123456", id=1)) == '{"type":"join","code":"123456","id":1}'
    hosted = serialize(Hosted(share=SHARE, code=None, expires_at=None))
    expected = {"type": "hosted", "share": SHARE, "code": None, "expires_at": None}
    assert json.loads(hosted) == expected


def test_every_type_is_an_enum_member_and_directions_are_closed() -> None:
    assert set(CLIENT_MESSAGE_TYPES) | set(SERVER_MESSAGE_TYPES) == {t.value for t in MessageType}
    assert set(CLIENT_MESSAGE_TYPES) & set(SERVER_MESSAGE_TYPES) == {"relay", "text", "presence"}
    assert bad('{"type":"hosted","share":"' + SHARE + '","code":null,"expires_at":null}')
    host = {"type": "host", "share": SHARE, "host_key": KEY, "code": True}
    assert bad(json.dumps(host), client=False)


# --- invalid input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        '"ping"',
        "null",
        '{"type":"ping"',  # truncated
        '{"type":"ping","type":"ping"}',  # duplicate key
        '{"type":"relay","session":"s","data":{"a":NaN}}',
        '{"type":"relay","session":"s","data":{"a":Infinity}}',
        '{"type":"relay","session":"s","data":{"a":1e999}}',
        '{"type":"relay","session":"s","data":{"a":' + "9" * 5000 + "}}",  # int digit limit
        "[" * 100_000 + "]" * 100_000,  # json recursion limit; also > 64 KiB
        "[" * 30_000 + "]" * 30_000,
    ],
)
def test_malformed_json_is_rejected(text: str) -> None:
    error = bad(text)
    assert error.request_id is None
    assert error.code in (ErrorCode.BAD_MESSAGE, ErrorCode.MESSAGE_TOO_LARGE)


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"type": 1},
        {"type": None},
        {"type": "nope"},
        {"type": "PING"},
        {"type": "host", "share": SHARE, "host_key": KEY},  # missing
        {"type": "host", "share": SHARE, "host_key": KEY, "code": 1},  # int is not bool
        {"type": "host", "share": SHARE, "host_key": KEY, "code": True, "extra": 1},
        {"type": "host", "share": "short", "host_key": KEY, "code": True},
        {"type": "host", "share": SHARE + "!", "host_key": KEY, "code": True},
        {"type": "host", "share": "x" * 65, "host_key": KEY, "code": True},
        {"type": "host", "share": SHARE, "host_key": "k" * 15, "code": True},
        {"type": "host", "share": SHARE, "host_key": "k" * 129, "code": True},
        {"type": "host", "share": SHARE, "host_key": "k" * 15 + "\ud800", "code": True},
        {"type": "join"},
        {"type": "join", "code": "123456", "share": SHARE},
        {"type": "join", "code": None, "share": SHARE},
        {"type": "join", "code": 123456},
        {"type": "join", "code": "1" * 129},
        {"type": "relay", "session": "s", "data": []},
        {"type": "relay", "session": "s", "data": "x"},
        {"type": "relay", "session": "s"},
        {"type": "relay", "session": "", "data": {}},
        {"type": "relay", "session": "a b", "data": {}},
        {"type": "relay", "session": "s", "data": {"s": "\udfff"}},
        {"type": "relay", "session": "s", "data": {"\ud800": 1}},
        {"type": "leave", "session": 5},
        {"type": "ping", "id": True},
        {"type": "ping", "id": 1.0},
        {"type": "ping", "id": None},
        {"type": "ping", "id": ""},
        {"type": "ping", "id": "x" * 65},
        {"type": "ping", "id": MAX_REQUEST_ID + 1},
        {"type": "ping", "id": [1]},
    ],
)
def test_schema_violations_are_rejected(obj: dict[str, Any]) -> None:
    assert bad(json.dumps(obj)).code == ErrorCode.BAD_MESSAGE


def test_data_depth_is_bounded() -> None:
    def nested(depth: int) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for _ in range(depth - 1):
            data = {"a": data}
        return data

    ok = {"type": "relay", "session": "s", "data": nested(MAX_DATA_DEPTH)}
    assert isinstance(parse_client_message(json.dumps(ok)), Relay)
    too_deep = {"type": "relay", "session": "s", "data": nested(MAX_DATA_DEPTH + 1)}
    assert "deeper" in str(bad(json.dumps(too_deep)))
    lists = {"type": "relay", "session": "s", "data": {"a": json.loads("[" * 40 + "]" * 40)}}
    assert "deeper" in str(bad(json.dumps(lists)))


def test_readable_ids_are_salvaged_for_error_replies() -> None:
    assert bad('{"type":"nope","id":9}').request_id == 9
    assert bad('{"type":"join","id":"r1"}').request_id == "r1"
    assert bad('{"type":"host","id":3,"share":"x"}').request_id == 3
    assert bad('{"type":"ping","id":1.5}').request_id is None
    assert bad('{"id":4}').request_id == 4


def test_error_messages_do_not_echo_large_input() -> None:
    error = bad(json.dumps({"type": "x" * 10_000}))
    assert len(str(error)) < 100
    error = bad(json.dumps({"type": "ping", "k" * 10_000: 1}))
    assert len(str(error)) < 100


def test_frame_size_limit_counts_utf8_bytes() -> None:
    padding = MAX_FRAME_BYTES - len('{"type":"relay","session":"s","data":{"p":""}}')
    frame = {"type": "relay", "session": "s", "data": {"p": "a" * padding}}
    exact = json.dumps(frame, separators=(",", ":"))
    assert len(exact.encode()) == MAX_FRAME_BYTES
    assert isinstance(parse_client_message(exact), Relay)
    over = exact.replace('"p":"a', '"p":"é', 1)  # same characters, one more byte
    assert bad(over).code == ErrorCode.MESSAGE_TOO_LARGE


def test_serialize_refuses_oversize_and_non_json() -> None:
    with pytest.raises(LocalProtocolError) as info:
        serialize(Relay(session="s", data={"p": "a" * MAX_FRAME_BYTES}))
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE
    data: dict[str, Any] = {"ok": 1}
    message = Relay(session="s", data=data)
    data["bad"] = {1, 2}  # mutated after validation
    with pytest.raises(LocalProtocolError):
        serialize(message)
    with pytest.raises(LocalProtocolError):
        serialize("ping")  # type: ignore[arg-type]


def test_construction_validates_with_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        Join()
    with pytest.raises(LocalProtocolError):
        Relay(session="s", data={"x": float("nan")})
    with pytest.raises(LocalProtocolError):
        Relay(session="s", data={"x": (1, 2)})  # type: ignore[dict-item]
    with pytest.raises(LocalProtocolError):
        Hosted(share=SHARE, code="123456", expires_at=None)
    with pytest.raises(LocalProtocolError):
        Error(code="Bad Code", message="x")
    with pytest.raises(LocalProtocolError):
        parse_client_message(b'{"type":"ping"}')  # type: ignore[arg-type]


def test_format_predicates() -> None:
    assert is_code("000000") and not is_code("12345") and not is_code("１２３４５６")
    assert not is_code("123456\n") and not is_code(123456)
    assert is_share_id("a" * 16) and not is_share_id("a" * 15) and not is_share_id("a" * 16 + "\n")


# --- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        "type", "id", "share", "host_key", "code", "session", "data", "message", "expires_at",
        "shares", "online", "x",
    ]
)
type_names = st.sampled_from([t.value for t in MessageType] + ["", "nope"])
message_like = st.dictionaries(field_names, json_values | type_names, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, message_like))
def test_random_json_only_ever_raises_message_error(value: Any) -> None:
    text = json.dumps(value)
    for parse in (parse_client_message, parse_server_message):
        try:
            message = parse(text)
        except MessageError:
            continue
        assert parse(serialize(message)) == message


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_only_ever_raises_message_error(text: str) -> None:
    for parse in (parse_client_message, parse_server_message):
        try:
            parse(text)
        except MessageError:
            pass


def utf8_text(**kwargs: Any) -> st.SearchStrategy[str]:
    """Text without lone surrogates (which are not valid on the wire)."""
    return st.text(st.characters(codec="utf-8"), **kwargs)


share_ids = st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True)
session_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
request_ids = (
    st.none()
    | st.integers(-MAX_REQUEST_ID, MAX_REQUEST_ID)
    | utf8_text(min_size=1, max_size=64)
)
codes = st.from_regex(r"[0-9]{6}", fullmatch=True)
utf8_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | utf8_text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(utf8_text(max_size=8), children, max_size=4),
    max_leaves=20,
)
relay_data = st.dictionaries(utf8_text(max_size=8), utf8_json, max_size=4)

client_messages = st.one_of(
    st.builds(
        Host,
        share=share_ids,
        host_key=utf8_text(min_size=16, max_size=128),
        code=st.booleans(),
        id=request_ids,
    ),
    st.builds(Unhost, share=share_ids, id=request_ids),
    st.builds(Join, code=codes, id=request_ids),
    st.builds(Join, share=share_ids, id=request_ids),
    st.builds(Relay, session=session_ids, data=relay_data, id=request_ids),
    st.builds(Leave, session=session_ids, id=request_ids),
    st.builds(Ping, id=request_ids),
    st.builds(Presence, shares=st.lists(share_ids, max_size=MAX_PRESENCE_SHARES), id=request_ids),
)


@settings(max_examples=200, deadline=None)
@given(client_messages)
def test_client_messages_round_trip(message: Any) -> None:
    assert parse_client_message(serialize(message)) == message


# --- rooms ----------------------------------------------------------------------------------

ROOM = "room_ABCDEFGH-1234"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"room_create","password":"pw"}', RoomCreate(password="pw")),
        (
            '{"type":"room_create","password":"pw","name":"kitchen","id":1}',
            RoomCreate(password="pw", name="kitchen", id=1),
        ),
        (
            '{"type":"room_join","room":"' + ROOM + '","password":"p","id":"a"}',
            RoomJoin(room=ROOM, password="p", id="a"),
        ),
        ('{"type":"room_join","room":"nope","password":"p"}', RoomJoin(room="nope", password="p")),
        ('{"type":"room_leave","room":"' + ROOM + '"}', RoomLeave(room=ROOM)),
        ('{"type":"text","room":"' + ROOM + '","text":""}', Text(room=ROOM, text="")),
        ('{"type":"text","room":"' + ROOM + '","text":"h\u00e9"}', Text(room=ROOM, text="hé")),
    ],
)
def test_room_client_messages_parse_and_round_trip(text: str, expected: Any) -> None:
    assert parse_client_message(text) == expected
    assert parse_client_message(serialize(expected)) == expected


@pytest.mark.parametrize(
    "message",
    [
        RoomCreated(room=ROOM, member="m1", expires_at=1.5, name="kitchen", id=1),
        RoomCreated(room=ROOM, member="m1", expires_at=2),
        RoomJoined(room=ROOM, member="m2", members=["m1", "m3"], expires_at=3.0, id="x"),
        RoomJoined(room=ROOM, member="m2", members=[], expires_at=3.0, name="n"),
        RoomLeft(room=ROOM, id=4),
        RoomLeft(room=ROOM),
        MemberJoined(room=ROOM, member="m9"),
        MemberLeft(room=ROOM, member="m9"),
        RoomText(room=ROOM, member="m1", text="hello"),
    ],
)
def test_room_server_messages_round_trip(message: Any) -> None:
    assert parse_server_message(serialize(message)) == message


def test_text_direction_decides_the_class() -> None:
    frame = '{"type":"text","room":"' + ROOM + '","member":"m1","text":"hi"}'
    assert parse_server_message(frame) == RoomText(room=ROOM, member="m1", text="hi")
    assert bad(frame).code == "bad_message"  # a client may not claim a member id
    assert bad('{"type":"text","room":"' + ROOM + '","text":"hi"}', client=False)


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "room_create"},
        {"type": "room_create", "password": ""},
        {"type": "room_create", "password": None},
        {"type": "room_create", "password": 123},
        {"type": "room_create", "password": "p" * 257},
        {"type": "room_create", "password": "\ud800"},
        {"type": "room_create", "password": "p", "name": ""},
        {"type": "room_create", "password": "p", "name": None},
        {"type": "room_create", "password": "p", "name": "n" * 65},
        {"type": "room_create", "password": "p", "room": ROOM},
        {"type": "room_join", "room": ROOM},
        {"type": "room_join", "room": 5, "password": "p"},
        {"type": "room_join", "room": "r" * 129, "password": "p"},
        {"type": "room_join", "room": ROOM, "password": ["p"]},
        {"type": "room_leave", "room": "short"},
        {"type": "room_leave", "room": "bad room id here!"},
        {"type": "room_leave"},
        {"type": "text", "room": ROOM},
        {"type": "text", "room": ROOM, "text": "x" * 4097},
        {"type": "text", "room": ROOM, "text": True},
        {"type": "text", "room": ROOM, "text": "x", "member": "m1"},
        {"type": "room_created", "room": ROOM, "member": "m", "expires_at": 1},
    ],
)
def test_room_schema_violations_are_rejected(obj: dict[str, Any]) -> None:
    text = json.dumps(obj)
    assert bad(text).code == "bad_message"


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "room_created", "room": ROOM, "member": "m", "expires_at": True},
        {"type": "room_created", "room": ROOM, "member": "m", "expires_at": None},
        {"type": "room_created", "room": ROOM, "member": "", "expires_at": 1},
        {"type": "room_created", "room": "x", "member": "m", "expires_at": 1},
        {"type": "room_joined", "room": ROOM, "member": "m", "members": "m1", "expires_at": 1},
        {"type": "room_joined", "room": ROOM, "member": "m", "members": [1], "expires_at": 1},
        {"type": "room_joined", "room": ROOM, "member": "m", "members": ["a b"], "expires_at": 1},
        {
            "type": "room_joined",
            "room": ROOM,
            "member": "m",
            "members": ["m"] * 257,
            "expires_at": 1,
        },
        {"type": "member_joined", "room": ROOM},
        {"type": "member_left", "room": ROOM, "member": "m", "id": 1},
        {"type": "text", "room": ROOM, "member": "m", "text": "x" * 4097},
        {"type": "room_left", "room": ROOM, "id": None},
    ],
)
def test_room_server_schema_violations_are_rejected(obj: dict[str, Any]) -> None:
    assert bad(json.dumps(obj), client=False).code == "bad_message"


def test_room_predicates_and_local_errors() -> None:
    assert is_room_id(ROOM) and not is_room_id("short") and not is_room_id(ROOM + "!")
    assert not is_room_id(None)
    with pytest.raises(LocalProtocolError):
        RoomJoined(room=ROOM, member="m", members=("m1",), expires_at=1)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        RoomCreated(room=ROOM, member="m", expires_at=float("nan"))


# --- resume ---------------------------------------------------------------------------------

TOKEN = "T" * 43


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"hello"}', Hello()),
        ('{"type":"hello","id":3}', Hello(id=3)),
        ('{"type":"resume","token":"' + TOKEN + '","id":"r"}', Resume(token=TOKEN, id="r")),
        ('{"type":"resume","token":""}', Resume(token="")),  # format is the server's business
    ],
)
def test_resume_client_messages_parse(text: str, expected: Any) -> None:
    assert parse_client_message(text) == expected
    assert parse_client_message(serialize(expected)) == expected


@pytest.mark.parametrize(
    "message",
    [
        Welcome(token=TOKEN, grace=30, id=1),
        Welcome(token=TOKEN, grace=0.5),
        Resumed(token=TOKEN, id="x"),
        Resumed(token="a-_" * 20),
    ],
)
def test_resume_server_messages_round_trip(message: Any) -> None:
    assert parse_server_message(serialize(message)) == message


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "hello", "token": TOKEN},
        {"type": "hello", "id": None},
        {"type": "resume"},
        {"type": "resume", "token": None},
        {"type": "resume", "token": 123},
        {"type": "resume", "token": "t" * 129},
        {"type": "resume", "token": "\ud800"},
        {"type": "resume", "token": TOKEN, "share": SHARE},
        {"type": "welcome", "token": TOKEN, "grace": 30},
    ],
)
def test_resume_client_schema_violations(obj: dict[str, Any]) -> None:
    assert bad(json.dumps(obj)).code == "bad_message"


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "welcome", "token": TOKEN},
        {"type": "welcome", "token": TOKEN, "grace": 0},
        {"type": "welcome", "token": TOKEN, "grace": -1},
        {"type": "welcome", "token": TOKEN, "grace": True},
        {"type": "welcome", "token": TOKEN, "grace": "30"},
        {"type": "welcome", "token": "short", "grace": 30},
        {"type": "welcome", "token": TOKEN + "!", "grace": 30},
        {"type": "resumed", "token": "t" * 65},
        {"type": "resumed"},
        {"type": "hello"},
    ],
)
def test_resume_server_schema_violations(obj: dict[str, Any]) -> None:
    assert bad(json.dumps(obj), client=False).code == "bad_message"
    assert bad('{"type":"welcome","token":"' + TOKEN + '","grace":1e999}', client=False)


def test_resume_token_predicate() -> None:
    assert is_resume_token(TOKEN) and not is_resume_token("t" * 31)
    assert not is_resume_token("t" * 65) and not is_resume_token(None)
    with pytest.raises(LocalProtocolError):
        Welcome(token=TOKEN, grace=float("inf"))


# --- presence -------------------------------------------------------------------------------

INBOX = "inbox-abcdefghijklmnopqrst"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type":"presence","shares":[]}', Presence(shares=[])),
        (
            '{"type":"presence","shares":["' + INBOX + '","' + SHARE + '"],"id":1}',
            Presence(shares=[INBOX, SHARE], id=1),
        ),
        (  # duplicates and any order are the client's business
            '{"type":"presence","shares":["' + SHARE + '","' + SHARE + '"],"id":"p"}',
            Presence(shares=[SHARE, SHARE], id="p"),
        ),
    ],
)
def test_presence_request_parses_and_round_trips(text: str, expected: Presence) -> None:
    assert parse_client_message(text) == expected
    assert parse_client_message(serialize(expected)) == expected


@pytest.mark.parametrize(
    "message",
    [
        PresenceReply(online=[], id=1),
        PresenceReply(online=[INBOX]),
        PresenceReply(online=sorted([INBOX, SHARE]), id="x"),
        PresenceReply(online=sorted(f"share_{i:011d}" for i in range(MAX_PRESENCE_SHARES))),
    ],
)
def test_presence_reply_round_trips(message: PresenceReply) -> None:
    assert parse_server_message(serialize(message)) == message


def test_presence_direction_decides_the_class() -> None:
    reply = '{"type":"presence","online":["' + INBOX + '"],"id":1}'
    assert parse_server_message(reply) == PresenceReply(online=[INBOX], id=1)
    assert bad(reply).code == "bad_message"  # a client does not send "online"
    assert bad('{"type":"presence","shares":[]}', client=False).code == "bad_message"


many = [f"share_{i:011d}" for i in range(MAX_PRESENCE_SHARES + 1)]


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "presence"},
        {"type": "presence", "shares": None},
        {"type": "presence", "shares": SHARE},
        {"type": "presence", "shares": {SHARE: True}},
        {"type": "presence", "shares": many},
        {"type": "presence", "shares": ["short"]},
        {"type": "presence", "shares": [SHARE + "!"]},
        {"type": "presence", "shares": ["x" * 65]},
        {"type": "presence", "shares": [1]},
        {"type": "presence", "shares": [None]},
        {"type": "presence", "shares": [[SHARE]]},
        {"type": "presence", "shares": [SHARE], "online": []},
        {"type": "presence", "shares": [], "id": None},
    ],
)
def test_presence_request_violations_are_bad_messages(obj: dict[str, Any]) -> None:
    error = bad(json.dumps(obj))
    assert error.code == "bad_message"


def test_presence_request_violation_keeps_its_id() -> None:
    assert bad(json.dumps({"type": "presence", "shares": many, "id": 7})).request_id == 7


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "presence"},
        {"type": "presence", "online": None},
        {"type": "presence", "online": many},
        {"type": "presence", "online": [SHARE, INBOX]},  # not sorted
        {"type": "presence", "online": [INBOX, INBOX]},  # duplicate
        {"type": "presence", "online": ["short"]},
        {"type": "presence", "online": [], "shares": []},
    ],
)
def test_presence_reply_violations_are_bad_messages(obj: dict[str, Any]) -> None:
    assert bad(json.dumps(obj), client=False).code == "bad_message"


def test_presence_local_errors() -> None:
    assert ErrorCode.RATE_LIMITED == "rate_limited"
    with pytest.raises(LocalProtocolError):
        Presence(shares=many)
    with pytest.raises(LocalProtocolError):
        Presence(shares=(SHARE,))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        PresenceReply(online=[SHARE, INBOX])
