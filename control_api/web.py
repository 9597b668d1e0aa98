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

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


def _with_security_headers(response: Response[Any]) -> Response[Any]:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def web_ui_routes(directory: Path = WEB_UI_DIR) -> list[Any]:
    """The static router for ``directory`` at ``/`` and the ``/r/{code}`` page; none needs a login."""
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
