"""control_api.security without a server: Host parsing, origins, the ASGI allowlist, sessions, budgets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from control_api.security import FailureBudget, HostAllowlist, OriginPolicy, SessionTable, client_key, parse_host


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("header", "parsed"), [
    ("pi.example", ("pi.example", None)),
    ("PI.Example.:8080", ("pi.example", "8080")),
    ("127.0.0.1:80", ("127.0.0.1", "80")),
    ("[::1]", ("::1", None)),
    ("[2001:DB8:0::1]:443", ("2001:db8::1", "443")),
    ("::1", None),
    ("[::1", None),
    ("[::1]x", None),
    ("[pi.example]", None),
    ("pi.example:", None),
    ("pi.example:80:80", None),
    ("pi.example:８０", None),
    ("a b", None),
    ("", None),
    (":80", None),
    ("evil..example", None),
    ("user@pi.example", None),
])
def test_parse_host(header: str, parsed: tuple[str, str | None] | None) -> None:
    assert parse_host(header) == parsed


def test_hosts_are_names_from_the_list_or_ip_literals() -> None:
    policy = OriginPolicy({"localhost", "pi.example"}, public_url="https://share.example:8443/ui")
    for host in ("localhost:8080", "LocalHost.", "pi.example", "share.example", "10.1.2.3:80", "[fe80::1]:8080",
                 "[::1]"):
        assert policy.host_allowed(host), host
    for host in ("evil.example", "pi.example.evil.example", "", "[::1", "10.1.2.3.nip.io", "localhost:http"):
        assert not policy.host_allowed(host), host


def test_origins_are_same_origin_or_the_public_url() -> None:
    policy = OriginPolicy({"localhost"}, public_url="https://share.example:8443/ui")
    assert policy.origin_allowed("http://localhost:8080", "localhost:8080")
    assert policy.origin_allowed("http://pi.example", "pi.example:80"), "default ports are dropped"
    assert policy.origin_allowed("https://share.example:8443", "127.0.0.1:8080"), "behind a TLS proxy"
    for origin in ("http://localhost:8081", "http://evil.example", "null", "", "http://localhost:8080/path",
                   "https://share.example", "file://", "http://user@localhost:8080"):
        assert not policy.origin_allowed(origin, "localhost:8080"), origin


async def _call(app: HostAllowlist, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        raise AssertionError("the allowlist never reads the body")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _allowlist() -> tuple[HostAllowlist, list[str]]:
    reached: list[str] = []

    async def inner(scope, receive, send) -> None:
        reached.append(scope["type"])

    return HostAllowlist(inner, OriginPolicy({"localhost"})), reached


async def test_the_allowlist_answers_before_the_app() -> None:
    app, reached = _allowlist()
    foreign = await _call(app, {"type": "http", "headers": [(b"host", b"evil.example")]})
    assert foreign[0]["status"] == 403 and json.loads(foreign[1]["body"])["error"] == "bad_host"
    for headers in ([], [(b"host", b"localhost"), (b"host", b"localhost")]):
        missing = await _call(app, {"type": "http", "headers": headers})
        assert missing[0]["status"] == 400 and json.loads(missing[1]["body"])["error"] == "missing_host"
    assert reached == []
    await _call(app, {"type": "http", "headers": [(b"host", b"localhost:8080")]})
    await _call(app, {"type": "lifespan"})
    assert reached == ["http", "lifespan"]


async def test_websockets_need_an_allowed_host_and_origin() -> None:
    app, reached = _allowlist()
    for headers in ([(b"host", b"evil.example")],
                    [(b"host", b"localhost:8080"), (b"origin", b"http://evil.example")],
                    [(b"host", b"localhost:8080"), (b"origin", b"null")]):
        sent = await _call(app, {"type": "websocket", "headers": headers})
        assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}], headers
    assert reached == []
    await _call(app, {"type": "websocket", "headers": [(b"host", b"localhost:8080")]})
    await _call(app, {"type": "websocket", "headers": [(b"host", b"localhost:8080"),
                                                       (b"origin", b"http://localhost:8080")]})
    assert reached == ["websocket", "websocket"]


def test_sessions_expire_and_are_bounded() -> None:
    clock = Clock()
    table = SessionTable(lifetime=100, limit=3, clock=clock)
    cookie, session = table.create()
    assert table.get(cookie) is session and table.get(cookie + "x") is None
    clock.now += 99.9
    assert table.get(cookie) is session
    clock.now += 0.1
    assert table.get(cookie) is None and len(table) == 0
    cookies = [table.create()[0] for _ in range(4)]
    assert table.get(cookies[0]) is None, "the oldest session made room"
    assert all(table.get(c) for c in cookies[1:])
    table.end(cookies[1])
    assert table.get(cookies[1]) is None and len(table) == 2


def test_failure_budget_charges_first_and_slides() -> None:
    clock = Clock()
    budget = FailureBudget(failures=2, window=60, clock=clock)
    assert budget.charge("a") is None
    budget.refund("a")  # a success costs nothing
    assert budget.charge("a") is None and budget.charge("a") is None
    assert budget.charge("a") == pytest.approx(60)
    assert budget.charge("b") is None, "budgets are per key"
    clock.now += 30
    assert budget.charge("a") == pytest.approx(30)
    clock.now += 30
    assert budget.charge("a") is None


def test_failure_budget_forgets_idle_keys_when_full() -> None:
    clock = Clock()
    budget = FailureBudget(failures=1, window=60, max_keys=2, clock=clock)
    budget.charge("a")
    clock.now += 61
    budget.charge("b")
    budget.charge("c")
    assert budget.charge("b") is not None and budget.charge("c") is not None


def test_client_keys_group_ipv6_by_64() -> None:
    assert client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("2001:db8:1:2:3::4") == client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown"
