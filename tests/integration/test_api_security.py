"""The control API's web security against a real daemon: Host allowlist, login, cookie, CSRF, logout,
the login rate limit, and no secret in any URL the server hands out."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nacl.pwhash
import pytest

from tests.integration.harness import Daemon

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
URL = re.compile(r"""[a-z][a-z0-9+.-]*:(?://|image/)[^\s"'<>\\]+""")


def _password_file(path: Path) -> Path:
    path.write_bytes(nacl.pwhash.argon2id.str(PASSWORD.encode()) + b"\n")
    path.chmod(0o600)
    return path


def _login(daemon: Daemon, **body: str) -> httpx.Response:
    return httpx.post(daemon.base + "/api/v1/login", json=body, timeout=30)


def _session(daemon: Daemon) -> tuple[httpx.Client, str]:
    """A client holding a fresh session cookie, and that session's CSRF token."""
    answer = _login(daemon, token=daemon.token)
    assert answer.status_code == 200, answer.text
    client = httpx.Client(base_url=daemon.base, cookies=answer.cookies, timeout=30)
    return client, answer.json()["csrf"]


def _set_cookie(response: httpx.Response) -> tuple[str, dict[str, str], list[str]]:
    """(value, {attribute: value}, [flags]) of the one Set-Cookie header, attribute names lower-cased."""
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    name_value, *attributes = [part.strip() for part in headers[0].split(";")]
    name, _, value = name_value.partition("=")
    assert name == "doorstep_session"
    pairs = {k.lower(): v for k, _, v in (a.partition("=") for a in attributes if "=" in a)}
    flags = [a.lower() for a in attributes if "=" not in a]
    return value, pairs, flags


def _raw_get(daemon: Daemon, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", daemon.runtime["http_port"]), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "[::1", "a b"])
def test_a_foreign_host_is_refused_before_any_route_or_auth(daemon: Daemon, host: str) -> None:
    bearer = {"Authorization": f"Bearer {daemon.token}", "Host": host}
    for method, path in [("GET", "/api/v1/health"), ("GET", "/metrics"), ("GET", "/api/v1/transfers"),
                         ("GET", "/api/v1/schema/openapi.json"), ("GET", "/no/such/route"),
                         ("POST", "/api/v1/login"), ("PUT", "/api/v1/shares/x")]:
        answer = httpx.request(method, daemon.base + path, headers=bearer, content=b"{}")
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
        assert answer.json()["error"] == "bad_host"
    assert daemon.api("GET", "/api/v1/shares").json() == [], "the refused PUT shared nothing"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]:1", "192.168.77.5:8080",
                                  "[2001:db8::1]"])
def test_own_names_and_ip_literals_pass(daemon: Daemon, host: str) -> None:
    answer = httpx.get(daemon.base + "/api/v1/health", headers={"Host": host})
    assert answer.status_code == 200, answer.text


def test_a_request_without_host_gets_400(daemon: Daemon) -> None:
    answer = _raw_get(daemon, b"GET /api/v1/health HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b'"missing_host"' in answer, answer


def test_configured_hosts_replace_the_derived_names(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon("a", DOORSTEP_HTTP_ALLOWED_HOSTS="pi.example,doorstep.lan",
                          DOORSTEP_HTTP_PUBLIC_URL="https://share.example:8443/")
    for host, status in [("pi.example", 200), ("doorstep.lan:8080", 200), ("share.example", 200),
                         ("localhost", 403), ("127.0.0.1", 200), ("evil.example", 403)]:
        assert httpx.get(daemon.base + "/api/v1/health", headers={"Host": host}).status_code == status, host


def test_token_login_sets_a_strict_httponly_cookie(daemon: Daemon) -> None:
    answer = _login(daemon, token=daemon.token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    value, attributes, flags = _set_cookie(answer)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value), "32 random bytes, base64url"
    assert value not in (daemon.token, body["csrf"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body["csrf"])
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/"
    assert attributes["max-age"] == str(12 * 3600)
    assert "httponly" in flags
    assert "secure" not in flags, "plain http: a Secure cookie would never come back"

    assert _login(daemon, token="not-the-token").status_code == 401
    assert _login(daemon, password=PASSWORD).status_code == 401, "no password file: password login is off"
    both = _login(daemon, token=daemon.token, password=PASSWORD)
    assert both.status_code == 400 and "set-cookie" not in both.headers


def test_the_cookie_is_secure_behind_an_https_public_url(start_daemon: Callable[..., Daemon]) -> None:
    daemon = start_daemon("a", DOORSTEP_HTTP_PUBLIC_URL="https://doorstep.example")
    answer = _login(daemon, token=daemon.token)
    _, attributes, flags = _set_cookie(answer)
    assert "secure" in flags and attributes["samesite"].lower() == "strict"


def test_password_login_and_brute_force_gets_429(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = start_daemon("a", DOORSTEP_HTTP_PASSWORD_FILE=str(_password_file(tmp_path / "password")))
    good = _login(daemon, password=PASSWORD)
    assert good.status_code == 200, good.text
    assert httpx.get(daemon.base + "/api/v1/transfers", cookies=good.cookies).status_code == 200

    with ThreadPoolExecutor(20) as pool:  # parallel guesses cannot slip past the budget
        statuses = sorted(pool.map(lambda i: _login(daemon, password=f"guess {i}").status_code, range(20)))
    assert statuses == [401] * 5 + [429] * 15, statuses
    limited = _login(daemon, password=PASSWORD)
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert _login(daemon, token=daemon.token).status_code == 429, "the budget is per address, not per method"
    assert "set-cookie" not in limited.headers
    assert daemon.api("GET", "/api/v1/transfers").status_code == 200, "bearer auth is not rate-limited"
    assert httpx.get(daemon.base + "/api/v1/transfers", cookies=good.cookies).status_code == 200


def test_a_bad_password_file_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "password"
    bad.write_text("hunter2\n")
    daemon = Daemon(tmp_path / "a", DOORSTEP_HTTP_PASSWORD_FILE=str(bad))
    with pytest.raises(AssertionError, match="argon2id"):
        daemon.start(timeout=20)


def test_cookie_auth_needs_the_csrf_token_for_unsafe_methods(daemon: Daemon) -> None:
    client, csrf = _session(daemon)
    with client:
        assert client.get("/api/v1/transfers").status_code == 200, "safe methods need no CSRF token"
        assert client.get("/api/v1/session").json()["csrf"] == csrf

        for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": csrf[:-1]},
                        {"X-CSRF-Token": "é".encode("latin-1") * 43}):
            refused = client.put("/api/v1/shares/note.txt", content=b"hello", headers=headers)
            assert refused.status_code == 403, (headers, refused.text)
            assert refused.json()["error"] == "csrf"
            assert client.delete("/api/v1/devices/nobody", headers=headers).status_code == 403
        assert client.get("/api/v1/shares").json() == [], "nothing was shared by the refused requests"

        for origin in ("http://evil.example", "null", f"http://localhost:{daemon.runtime['http_port']}"):
            cross = client.put("/api/v1/shares/note.txt", content=b"hello",
                               headers={"X-CSRF-Token": csrf, "Origin": origin})
            assert cross.status_code == 403 and cross.json()["error"] == "csrf", origin

        ok = client.put("/api/v1/shares/note.txt", content=b"hello", headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 201, ok.text
        same_origin = client.put("/api/v1/shares/other.txt", content=b"hello",
                                 headers={"X-CSRF-Token": csrf, "Origin": daemon.base})
        assert same_origin.status_code == 201, same_origin.text
        assert client.delete("/api/v1/devices/nobody", headers={"X-CSRF-Token": csrf}).status_code == 404

        other, other_csrf = _session(daemon)
        with other:
            mixed = client.put("/api/v1/shares/x.txt", content=b"x", headers={"X-CSRF-Token": other_csrf})
            assert mixed.status_code == 403, "a CSRF token is bound to its own session"


def test_bearer_auth_needs_no_csrf_token_and_beats_the_cookie(daemon: Daemon) -> None:
    assert daemon.api("PUT", "/api/v1/shares/a.txt", content=b"a").status_code == 201
    client, _ = _session(daemon)
    with client:
        wrong = client.get("/api/v1/transfers", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, "a bad Authorization header is not rescued by a good cookie"
        session = client.get("/api/v1/session", headers={"Authorization": f"Bearer {daemon.token}"})
        assert session.json() == {"csrf": None, "expires_at": None}
    assert httpx.get(daemon.base + "/api/v1/transfers", cookies={"doorstep_session": "forged"}).status_code == 401


def test_logout_ends_the_session(daemon: Daemon) -> None:
    client, csrf = _session(daemon)
    with client:
        assert client.post("/api/v1/logout").status_code == 403, "logout is an unsafe method too"
        assert client.get("/api/v1/transfers").status_code == 200
        cookie = client.cookies["doorstep_session"]
        out = client.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        value, attributes, _ = _set_cookie(out)
        assert value in ("", '""') and attributes["max-age"] == "0"
    stale = httpx.get(daemon.base + "/api/v1/transfers", cookies={"doorstep_session": cookie})
    assert stale.status_code == 401
    replay = httpx.put(daemon.base + "/api/v1/shares/x", content=b"x", cookies={"doorstep_session": cookie},
                       headers={"X-CSRF-Token": csrf})
    assert replay.status_code == 401


def _urls(value: Any) -> list[str]:
    return URL.findall(value if isinstance(value, str) else str(value))


def test_no_secret_in_any_url_the_server_generates(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = start_daemon("a", DOORSTEP_HTTP_PASSWORD_FILE=str(_password_file(tmp_path / "password")))
    login = _login(daemon, password=PASSWORD)
    cookie, csrf = login.cookies["doorstep_session"], login.json()["csrf"]
    secrets = {"api token": daemon.token, "session cookie": cookie, "csrf token": csrf, "password": PASSWORD,
               "password (urlencoded)": PASSWORD.replace(" ", "+")}

    answers = [login, httpx.get(daemon.base + "/api/v1/health")]
    share = daemon.api("PUT", "/api/v1/shares/report.txt", content=b"report")
    assert share.status_code == 201
    answers.append(share)
    form = daemon.api("POST", "/api/v1/shares", files={"file": ("b.txt", b"b")})
    assert form.status_code == 201
    answers.append(form)
    for path in ("/api/v1/shares", "/api/v1/transfers", "/api/v1/devices", "/api/v1/stats", "/metrics",
                 "/api/v1/session", "/api/v1/schema/openapi.json"):
        answers.append(daemon.api("GET", path))
    answers.append(httpx.get(daemon.base + "/api/v1/session", cookies={"doorstep_session": cookie}))
    answers.append(daemon.api("POST", "/api/v1/pair", json={}))

    found = []
    for answer in answers:
        assert answer.status_code < 400, (answer.request.url, answer.text)
        for header in ("location", "content-location", "link", "refresh"):
            assert header not in answer.headers, (answer.request.url, header)
        found += _urls(answer.text)
    assert found, "the check saw URLs at all"
    share_links = {s["url"]: s["code"] for s in (share.json(), form.json())}
    for url in found:
        for name, secret in secrets.items():
            assert secret not in url, f"{name} in {url}"
        if url in share_links:  # share links carry their code by design, and nothing else
            assert re.fullmatch(r"https?://[^/]+/r/" + share_links[url], url), url
        assert share.json()["share_id"] not in url, f"share id (a join capability) in {url}"
