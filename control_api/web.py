"""The web UI's static files (``web_ui/``), served by the control API without authentication.

``/`` answers ``web_ui/index.html`` and every other path below ``/`` the file of that name;
``/r/{code}`` (the share link printed with every code) answers the same page, which shows that
share. The files hold no secrets: the page logs in through ``POST /api/v1/login`` like any client.

Every answer carries a strict Content-Security-Policy (scripts, styles, images and connections
from this origin only, no inline script, no framing), ``nosniff`` and ``no-referrer``: defence in
depth behind the page's own rule of putting every string it gets into the DOM as text.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.response import File
from litestar.static_files import create_static_files_router

__all__ = ["web_ui_routes", "WEB_UI_DIR", "SECURITY_HEADERS"]

log = logging.getLogger("doorstep.http")

WEB_UI_DIR = Path(__file__).resolve().parent.parent / "web_ui"
"""Beside the ``control_api`` package: the source tree, or site-packages once installed."""

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'{connect}; "
        "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")

SECURITY_HEADERS = {
    "content-security-policy": _CSP.format(connect=""),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def signaling_sources(signal_url: str | None) -> str:
    """CSP ``connect-src`` sources for the signaling server at ``signal_url`` (a page receives by code
    over WebRTC, signaled there): its origin, and any host on its port when it names a loopback
    host (a page opened from the LAN then connects to its own address on that port)."""
    if not signal_url or "://" not in signal_url:
        return ""
    scheme, _, rest = signal_url.partition("://")
    netloc = rest.split("/", 1)[0]
    if scheme not in ("ws", "wss") or not netloc or any(c in netloc for c in " ;,'\""):
        return ""
    sources = [f"{scheme}://{netloc}"]
    host, _, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if host in _LOOPBACK_HOSTS and port.isdigit():
        sources.append(f"{scheme}://*:{port}")
    return " " + " ".join(sources)


def web_ui_routes(directory: Path = WEB_UI_DIR, *, signal_url: str | None = None) -> list[Any]:
    """The static router for ``directory`` at ``/`` and the ``/r/{code}`` page; none needs a login.

    ``signal_url``: where pages reach signaling, admitted by the pages' Content-Security-Policy."""
    headers = {**SECURITY_HEADERS, "content-security-policy": _CSP.format(connect=signaling_sources(signal_url))}

    def _with_security_headers(response: Response[Any]) -> Response[Any]:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    no_cache = CacheControlHeader(no_cache=True)  # revalidate: a new release shows at once
    static = create_static_files_router(
        "/", directories=[directory], html_mode=True, name="web_ui", cache_control=no_cache,
        after_request=_with_security_headers, include_in_schema=False,
    )
    index = directory / "index.html"
    if not index.is_file():  # the API works without it; the page answers 404
        log.warning("no web UI at %s: the control API runs without it", directory)

    @get("/r/{code:str}", include_in_schema=False, sync_to_thread=False, cache_control=no_cache,
         after_request=_with_security_headers)
    def share_link(code: str) -> File:
        """The share link: the web UI's page, which reads the code from its own address."""
        if not index.is_file():
            raise NotFoundException("the web UI is not installed")
        return File(index, content_disposition_type="inline", media_type="text/html")

    return [static, share_link]
