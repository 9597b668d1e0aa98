"""Who may talk to the control API, and from where: Host allowlist, web login, CSRF, the auth guard.

Every mechanism lives here; ``create_app`` only installs them (see :meth:`WebSecurity.install`).
In the order a request meets them:

1. :class:`HostAllowlist`, an ASGI wrapper around the whole app, runs before routing, auth and any
   handler (``/api/v1/health``, ``/metrics`` and unknown paths included). A ``Host`` this appliance
   does not answer to gets 403 ``{"error": "bad_host"}``; a request without exactly one ``Host`` gets
   400 ``{"error": "missing_host"}``. This is the defence against DNS rebinding: a rebound page
   is same-origin with the appliance, but its requests carry the attacker's host name. IP address
   literals are always accepted, because a rebinding page can only ever send its own domain name.
   A websocket whose ``Origin`` is present and foreign is refused (403) here too.
2. :meth:`WebSecurity.guard`, on every route except health, the schema and login: either
   ``Authorization: Bearer <token>`` (scripts, the CLI; no CSRF token needed, since a page cannot set
   that header cross-origin), or the ``doorstep_session`` cookie of a live session. With the cookie,
   an unsafe method (anything but GET, HEAD, OPTIONS) also needs ``X-CSRF-Token`` equal to the
   session's CSRF token and, if the request has an ``Origin``, an allowed one: 403
   ``{"error": "csrf"}`` otherwise. No or bad credentials: 401.
3. The routes ``POST /api/v1/login`` (API token or password; sets the cookie, answers the CSRF
   token), ``GET /api/v1/session`` (the CSRF token again, for a reloaded page) and
   ``POST /api/v1/logout``. Failed logins are limited per client address (5 a minute, then 429).

Sessions live in memory only (a restart logs everyone out) and are keyed by the SHA-256 of the
cookie value, so a lookup never compares a secret byte by byte. Secrets are compared with
``hmac.compare_digest``; the password with libsodium's argon2id verify (``nacl.pwhash``).
No secret ever goes into a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import msgspec
import nacl.exceptions
import nacl.pwhash
import trio
from litestar import Litestar, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from control_api.errors import GUARDED, error_responses
from daemon import ApplianceError

__all__ = [
    "COOKIE_NAME",
    "CSRF_HEADER",
    "FailureBudget",
    "HostAllowlist",
    "OriginPolicy",
    "SessionTable",
    "WebSecurity",
    "WebSettings",
    "parse_host",
    "read_password_hash",
]

COOKIE_NAME = "doorstep_session"
CSRF_HEADER = "x-csrf-token"
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS = 64
LOGIN_FAILURES = 5
LOGIN_WINDOW = 60.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_SECRET_LENGTH = 1024  # characters of a token or password in a login body
PASSWORD_HASH_PREFIX = b"$argon2id$"
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSettings:
    """What the daemon's configuration says about web access (``http.*`` keys)."""

    allowed_hosts: frozenset[str] = frozenset({"localhost", "127.0.0.1", "::1"})
    """Host names (lower case, no port, no brackets) the API answers to, besides IP literals."""
    public_url: str = ""
    """``http.public_url``: its origin is allowed, and ``https`` there makes the cookie ``Secure``."""
    password_hash: bytes | None = field(default=None, repr=False)
    """An argon2id hash (``nacl.pwhash.argon2id.str``) enabling password login; None disables it."""


def read_password_hash(path: Path) -> bytes:
    """Read ``http.password_file``: one argon2id hash as made by ``nacl.pwhash.argon2id.str``.

    Raises OSError if the file cannot be read and ValueError if it holds no argon2id hash.
    """
    text = path.read_bytes().strip()
    if not text.startswith(PASSWORD_HASH_PREFIX) or b"\n" in text:
        raise ValueError(f"{path} does not hold one argon2id hash ('$argon2id$v=19$m=...')")
    return text


# -- Host and Origin -----------------------------------------------------------------------------


def parse_host(value: str) -> tuple[str, str | None] | None:
    """Split a ``Host`` header (or an origin's ``host[:port]``) into (host, port); None if malformed.

    The host comes back lower-cased, without IPv6 brackets or a trailing dot; IPv6 literals in
    their compressed form. An unbracketed IPv6 address is malformed, as in a URL.
    """
    text = value.strip().lower()
    port: str | None = None
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1:] if end > 0 else ""
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        try:
            host = str(ipaddress.IPv6Address(text[1:end]))
        except ValueError:
            return None
        if rest:
            port = rest[1:]
    else:
        host, sep, port_text = text.partition(":")
        if ":" in port_text:
            return None
        port = port_text if sep else None
        host = host.removesuffix(".")
        if not host or not _HOST_NAME.fullmatch(host) or ".." in host:
            return None
    if port is not None and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return host, port


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _origin_parts(origin: str) -> tuple[str, str, str | None] | None:
    """``scheme://host[:port]`` as (scheme, host, port) with the scheme's default port dropped."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or not rest or "/" in rest or "@" in rest:
        return None
    parsed = parse_host(rest)
    if parsed is None:
        return None
    host, port = parsed
    return scheme, host, None if port == _DEFAULT_PORTS[scheme] else port


class OriginPolicy:
    """Which ``Host`` names and which browser ``Origin`` values this appliance accepts."""

    def __init__(self, allowed_hosts: Iterable[str], public_url: str = "") -> None:
        hosts = {h.strip().strip("[]").lower().removesuffix(".") for h in allowed_hosts}
        scheme, _, rest = public_url.partition("://")
        self._public_origin = _origin_parts(f"{scheme}://{rest.split('/', 1)[0]}") if public_url else None
        if self._public_origin is not None:
            hosts.add(self._public_origin[1])
        self._hosts = frozenset(hosts)

    def host_allowed(self, host_header: str) -> bool:
        """Whether a ``Host`` header names this appliance (any port)."""
        parsed = parse_host(host_header)
        return parsed is not None and (parsed[0] in self._hosts or _is_ip_literal(parsed[0]))

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """Whether a browser ``Origin`` may act here: the request's own origin (same host and port
        as its ``Host``, which :meth:`host_allowed` already vetted) or ``http.public_url``'s."""
        parts = _origin_parts(origin)
        if parts is None:
            return False  # "null", garbage, a path: never one of ours
        if self._public_origin is not None and parts == self._public_origin:
            return True
        parsed = parse_host(host_header)
        if parsed is None:
            return False
        host, port = parsed
        return (parts[1], parts[2]) == (host, None if port == _DEFAULT_PORTS[parts[0]] else port)


class HostAllowlist:
    """ASGI wrapper: refuse foreign ``Host`` headers (and foreign websocket ``Origin``) up front."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = [v for k, v in scope["headers"] if k == b"host"]
        if len(hosts) != 1:
            await _refuse(scope, send, 400, "missing_host", "the request needs exactly one Host header")
            return
        host = hosts[0].decode("latin-1")
        if not self.policy.host_allowed(host):
            await _refuse(scope, send, 403, "bad_host",
                          "this appliance does not answer to that Host name; add it to http.allowed_hosts")
            return
        if scope["type"] == "websocket":
            origins = [v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"]
            if origins and not (len(origins) == 1 and self.policy.origin_allowed(origins[0], host)):
                await _refuse(scope, send, 403, "bad_origin", "websockets from that origin are refused")
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    if scope["type"] == "websocket":  # closing before accepting makes the server answer 403
        await send({"type": "websocket.close", "code": 1008, "reason": ""})
        return
    body = json.dumps({"error": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]})
    await send({"type": "http.response.body", "body": body})


# -- Sessions and the failure budget ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    csrf: str
    expires: float
    """Monotonic deadline."""
    expires_at: float
    """The same deadline in Unix time, for clients."""


class SessionTable:
    """Live web sessions, in memory, keyed by SHA-256 of the cookie value. At most ``limit``
    sessions: a new login beyond that ends the oldest one."""

    def __init__(self, *, lifetime: float = SESSION_LIFETIME, limit: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lifetime = lifetime
        self._limit = limit
        self._clock = clock
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def create(self) -> tuple[str, Session]:
        """Start a session; returns the cookie value (32 random bytes, base64url) and the session."""
        self._expire()
        while len(self._sessions) >= self._limit:
            self._sessions.popitem(last=False)
        cookie = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(csrf=secrets.token_urlsafe(32), expires=now + self._lifetime,
                          expires_at=time.time() + self._lifetime)
        self._sessions[_key(cookie)] = session
        return cookie, session

    def get(self, cookie: str) -> Session | None:
        session = self._sessions.get(_key(cookie))
        if session is not None and session.expires <= self._clock():
            del self._sessions[_key(cookie)]
            return None
        return session

    def end(self, cookie: str) -> None:
        self._sessions.pop(_key(cookie), None)

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


def _key(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).digest()


class FailureBudget:
    """At most ``failures`` failed attempts per key within a sliding ``window`` seconds.

    An attempt is charged *before* it is checked and refunded if it succeeds, so parallel
    attempts cannot slip past the budget while a slow check runs.
    """

    def __init__(self, *, failures: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW,
                 max_keys: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures = failures
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._charged: dict[str, deque[float]] = {}

    def charge(self, key: str) -> float | None:
        """Charge one attempt to ``key``: None if allowed, else seconds until one is allowed again."""
        now = self._clock()
        times = self._charged.get(key)
        if times is None:
            if len(self._charged) >= self._max_keys:
                self._prune(now)
            times = self._charged[key] = deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if len(times) >= self._failures:
            return max(times[0] + self._window - now, 0.001)
        times.append(now)
        return None

    def refund(self, key: str) -> None:
        """Take back the latest charge of ``key`` (the attempt succeeded)."""
        times = self._charged.get(key)
        if times:
            times.pop()

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._charged.items() if not t or t[-1] <= now - self._window]:
            del self._charged[key]
        while len(self._charged) >= self._max_keys:  # still full: forget the oldest key
            del self._charged[next(iter(self._charged))]


def client_key(host: str | None) -> str:
    """The budget key of a client address: IPv4 as is, IPv6 by its /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# -- The routes and the guard ----------------------------------------------------------------------

Secret = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SECRET_LENGTH)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of the API token or the web password (``http.password_file``)."""

    token: Secret | None = None
    password: Secret | None = None


class SessionInfo(msgspec.Struct):
    csrf: str | None
    """Send it back as ``X-CSRF-Token`` with every POST, PUT, PATCH and DELETE; None with bearer auth."""
    expires_at: float | None
    """Unix time the session ends (12 h after login); None with bearer auth."""


class WebSecurity:
    """The control API's credentials and the state of web logins."""

    def __init__(self, api_token: str, settings: WebSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        settings = settings or WebSettings()
        self._token = api_token.encode()
        self._password_hash = settings.password_hash
        self._secure = settings.public_url.lower().startswith("https://")
        self.policy = OriginPolicy(settings.allowed_hosts, settings.public_url)
        self.sessions = SessionTable(clock=clock)
        self.login_failures = FailureBudget(clock=clock)
        self._verifier = trio.CapacityLimiter(1)  # argon2id takes 64 MiB and ~0.1 s a check

    def guard(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:
        """Admit a bearer token, or a session cookie (plus the CSRF rule); raise otherwise."""
        authorization = connection.headers.get("authorization")
        if authorization is not None:
            if not hmac.compare_digest(authorization.encode(), b"Bearer " + self._token):
                raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")
            return
        cookie = connection.cookies.get(COOKIE_NAME)
        session = self.sessions.get(cookie) if cookie else None
        if session is None:
            raise NotAuthorizedException("log in (POST /api/v1/login) or send 'Authorization: Bearer <token>'")
        connection.scope.setdefault("state", {})["doorstep.session"] = (cookie, session)
        if connection.scope.get("method", "GET") in SAFE_METHODS:
            return
        origin = connection.headers.get("origin")
        host = connection.headers.get("host", "")
        if origin is not None and not self.policy.origin_allowed(origin, host):
            raise ApplianceError("cross-origin request refused", code="csrf", status=403)
        given = connection.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise ApplianceError(f"this request needs the session's {CSRF_HEADER!r} header",
                                 code="csrf", status=403)

    @property
    def route_handlers(self) -> list[Any]:
        """``POST /api/v1/login``, ``GET /api/v1/session``, ``POST /api/v1/logout``."""
        security = self

        @post("/api/v1/login", status_code=200, tags=["session"], operation_id="login",
              responses=error_responses(400, 401, 403, 429))
        async def login(request: Request, data: LoginRequest) -> Response[SessionInfo]:
            """Exchange the API token or the web password for a session cookie and a CSRF token."""
            return await security._login(request, data)

        @get("/api/v1/session", guards=[self.guard], tags=["session"], operation_id="session",
             responses=error_responses(*GUARDED), sync_to_thread=False)
        def session(request: Request) -> Response[SessionInfo]:
            """The current session's CSRF token (for a reloaded page); nulls with bearer auth."""
            found = request.scope.get("state", {}).get("doorstep.session")
            info = SessionInfo(csrf=found[1].csrf, expires_at=found[1].expires_at) if found else \
                SessionInfo(csrf=None, expires_at=None)
            return Response(info, headers={"cache-control": "no-store"})

        @post("/api/v1/logout", guards=[self.guard], status_code=204, tags=["session"], operation_id="logout",
              responses=error_responses(*GUARDED), response_cookies=[self._cookie("", max_age=0)],
              sync_to_thread=False)
        def logout(request: Request) -> None:
            """End the session of the cookie (if any) and clear the cookie."""
            found = request.scope.get("state", {}).get("doorstep.session")
            if found:
                security.sessions.end(found[0])

        return [login, session, logout]

    def install(self, app: Litestar) -> Litestar:
        """Register the session routes and put :class:`HostAllowlist` in front of everything."""
        for handler in self.route_handlers:
            app.register(handler)
        app.asgi_handler = HostAllowlist(app.asgi_handler, self.policy)
        return app

    async def _login(self, request: Request, data: LoginRequest) -> Response[Any]:
        origin = request.headers.get("origin")
        if origin is not None and not self.policy.origin_allowed(origin, request.headers.get("host", "")):
            return _error(403, "csrf", "cross-origin login refused")
        if (data.token is None) == (data.password is None):
            raise ValidationException("give exactly one of 'token' and 'password'")
        key = client_key(request.client.host if request.client else None)
        wait = self.login_failures.charge(key)
        if wait is not None:
            return _error(429, "rate_limited", "too many failed logins; try again later",
                          headers={"retry-after": str(math.ceil(wait))})
        if data.token is not None:
            ok = hmac.compare_digest(data.token.encode(), self._token)
        elif self._password_hash is None:
            ok = False
        else:
            ok = await trio.to_thread.run_sync(_verify_password, self._password_hash, data.password.encode(),
                                               limiter=self._verifier)
        if not ok:
            return _error(401, "bad_credentials", "wrong token or password")
        self.login_failures.refund(key)
        cookie, session = self.sessions.create()
        return Response(SessionInfo(csrf=session.csrf, expires_at=session.expires_at),
                        headers={"cache-control": "no-store"},
                        cookies=[self._cookie(cookie, max_age=int(SESSION_LIFETIME))])

    def _cookie(self, value: str, *, max_age: int) -> Cookie:
        return Cookie(key=COOKIE_NAME, value=value, max_age=max_age, path="/", httponly=True,
                      samesite="strict", secure=self._secure)


def _verify_password(password_hash: bytes, password: bytes) -> bool:
    try:
        return nacl.pwhash.verify(password_hash, password)
    except nacl.exceptions.InvalidkeyError:
        return False


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response({"error": code, "message": message}, status_code=status,
                    headers={"cache-control": "no-store", **(headers or {})})
