"""The CLI's one seam to the local daemon: :class:`ApiClient`, a thin wrapper over ``httpx.Client``.

It knows the daemon's base URL and bearer token, and it translates every failure at this boundary
into a :class:`CliError` that carries the message for the user and the exit code::

    CliError                    exit 1: something went wrong; the message says what
    ├── UsageError              exit 2: the command line itself is wrong
    │   └── TokenError          exit 2: no API token could be found
    └── ApiError                exit 1: the daemon answered with an error status (``.status``)
                                        or did not answer at all (``.status`` is None)

Where the token comes from (never from argv): ``--token-stdin`` (one line read from stdin) if given,
else ``$DOORSTEP_TOKEN``, else ``<state_dir>/api-token``. Where the daemon is: ``--url``, else
``$DOORSTEP_URL``, else the config's ``http.listen`` (with the port from ``<state_dir>/runtime.json``
when the daemon was told to pick one).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import httpx

from .config import Config
from .tokens import read_api_token

__all__ = ["ApiClient", "ApiError", "CliError", "TokenError", "UsageError", "daemon_url", "quote_id",
           "quote_path", "resolve_token"]

API_PREFIX = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class CliError(Exception):
    """A failure to report as ``doorstep: <message>`` on stderr, exiting with ``exit_code``."""

    exit_code = 1


class UsageError(CliError):
    exit_code = 2


class TokenError(UsageError):
    pass


class ApiError(CliError):
    """The daemon refused a request (``status`` set) or could not be reached (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def resolve_token(config: Config, *, from_stdin: bool, stdin: IO[str] | None = None) -> str:
    """The API token; raises :class:`TokenError` (exit 2) saying where it looked."""
    if from_stdin:
        stream = stdin if stdin is not None else sys.stdin
        if stream.isatty():
            line = getpass.getpass("doorstep API token: ")
        else:
            line = stream.readline()
        token = line.strip()
        if not token:
            raise TokenError("--token-stdin: stdin gave no token (expected one line)")
        return token
    token = os.environ.get("DOORSTEP_TOKEN", "").strip()
    if token:
        return token
    try:
        return read_api_token(config.state_dir)
    except (OSError, ValueError) as exc:
        raise TokenError(f"no API token ({exc}); set DOORSTEP_TOKEN, pass --token-stdin, "
                         "or --config the daemon's state_dir") from None


def daemon_url(config: Config, explicit: str | None = None) -> str:
    """The daemon's base URL (no trailing slash, no ``/api/v1``)."""
    url = explicit or os.environ.get("DOORSTEP_URL", "").strip()
    if url:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"daemon URL {url!r} must start with http:// or https://")
        url = url.rstrip("/")
        return url[: -len(API_PREFIX)] if url.endswith(API_PREFIX) else url
    listen = config.http_listen
    port = listen.port
    if port == 0:  # the daemon picked a port and wrote it down
        try:
            port = int(json.loads((config.state_dir / "runtime.json").read_text())["http_port"])
        except (OSError, ValueError, KeyError, TypeError):
            raise CliError(f"http.listen is {listen} and {config.state_dir / 'runtime.json'} does not say "
                           "which port the daemon took: is it running?") from None
    host = listen.connect_host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def quote_path(path: str) -> str:
    """Quote a slash-separated path for a URL, keeping the slashes."""
    return urllib.parse.quote(path, safe="/")


def quote_id(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class ApiClient:
    """The control API at ``base_url`` (e.g. ``http://127.0.0.1:8080``), authenticated with ``token``.

    Paths are relative to ``/api/v1``. Every method raises :class:`ApiError` for an error status or a
    transport failure; nothing else escapes from a request, except while iterating a response from
    :meth:`stream` (then raw ``httpx`` errors propagate: the caller decides whether to reconnect).
    ``transport`` is the test seam (``httpx.MockTransport``).
    """

    def __init__(self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None,
                 timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url
        self._http = httpx.Client(base_url=base_url + API_PREFIX, headers={"Authorization": f"Bearer {token}"},
                                  timeout=timeout, transport=transport)

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; return the (2xx) response, its body read."""
        with self._mapped(method, path):
            response = self._http.request(method, path, **kwargs)
        self._check(method, path, response)
        return response

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET and decode JSON."""
        return self._json(self.request("GET", path, params=_params(params)))

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        """POST a JSON body (or ``files=``/``data=``/``content=`` in ``kwargs``) and decode the answer."""
        if body is not None:
            kwargs["json"] = body
        return self._json(self.request("POST", path, **kwargs))

    def delete(self, path: str) -> Any:
        response = self.request("DELETE", path)
        return self._json(response) if response.content else None

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed 2xx response (for downloads and server-sent events), closed on exit."""
        with self._mapped(method, path):
            request = self._http.build_request(method, path, **kwargs)
            response = self._http.send(request, stream=True)
        try:
            if response.is_error:
                with self._mapped(method, path):
                    response.read()
                self._check(method, path, response)
            yield response
        finally:
            response.close()

    # -- error mapping ---------------------------------------------------------------------------

    @contextmanager
    def _mapped(self, method: str, path: str) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ApiError(f"the daemon at {self.base_url} did not answer {method} {path} in time "
                           f"({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ApiError(f"the daemon at {self.base_url} did not answer: {exc or type(exc).__name__}") from None

    def _check(self, method: str, path: str, response: httpx.Response) -> None:
        if not response.is_error:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        code = None
        text = response.text.strip()[:200] or response.reason_phrase
        if isinstance(body, dict):
            code = body.get("error") if isinstance(body.get("error"), str) else None
            message = body.get("message") or body.get("detail")
            if isinstance(message, str):
                text = message
            if code is None and response.status_code in (404, 405) and text in ("Not Found", "Method Not Allowed"):
                text = (f"the daemon at {self.base_url} has no {method} {API_PREFIX}{path}: "
                        "it may be older than this doorstep")
        raise ApiError(f"{text} (HTTP {response.status_code})", status=response.status_code, code=code)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"the daemon answered {response.request.url.path} with something that is not JSON "
                           f"(HTTP {response.status_code})") from None


def _params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {key: value for key, value in params.items() if value is not None}
