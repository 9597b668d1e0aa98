"""Errors as the control API answers them: always JSON ``{"error": code, "message": text}``.

:func:`exception_handlers` turns the facade's :class:`~daemon.ApplianceError`, litestar's own
HTTP errors (validation, unknown routes, bodies too large, missing credentials) and anything
unexpected (500, logged) into that shape; :func:`error_responses` documents them in the OpenAPI
schema, so that every status a route may answer is declared with its body.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from daemon import ApplianceError

__all__ = ["ErrorBody", "error_responses", "exception_handlers", "GUARDED"]

log = logging.getLogger("doorstep.http")


class ErrorBody(msgspec.Struct):
    """Every error the control API answers."""

    error: str
    """Machine-readable code, e.g. ``bad_request``, ``unknown_transfer``, ``finished``."""
    message: str
    """What went wrong, for a person."""


_DESCRIPTIONS = {
    400: "the request is malformed or a value is invalid",
    401: "no valid bearer token or session",
    403: "refused: a foreign Host, a foreign Origin, or no CSRF token with a session",
    404: "no such thing",
    409: "not possible in the current state",
    413: "the request body (or the text) is too large",
    416: "the range is outside the file",
    500: "an internal error (logged)",
    502: "the other side could not be reached",
    503: "a service the daemon needs is unreachable",
}
GUARDED = (400, 401, 403)
"""Statuses any guarded route may answer: a bad request, no credentials, a refused Host/CSRF."""

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_media_type", 416: "range_not_satisfiable",
          429: "rate_limited", 500: "internal", 503: "unavailable"}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI ``responses`` declaring :class:`ErrorBody` for each of ``statuses``."""
    return {status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
                                 generate_examples=False)
            for status in statuses}


def _body(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response({"error": code, "message": message}, status_code=status, headers=headers,
                    media_type="application/json")


def _appliance_error(_: Request, exc: ApplianceError) -> Response[Any]:
    return _body(exc.code, str(exc), exc.status)


def _http_error(_: Request, exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    message = exc.detail or HTTPStatus(status).phrase
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        problems = "; ".join(
            f"{item.get('key') or item.get('source') or 'body'}: {item.get('message')}" if isinstance(item, dict)
            else str(item) for item in exc.extra)
        if problems:
            message = f"{message}: {problems}"
    headers = dict(exc.headers or {})
    return _body(_CODES.get(status, f"http_{status}"), message, status, headers or None)


def _internal_error(request: Request, exc: Exception) -> Response[Any]:
    if isinstance(exc, HTTPException):  # an HTTPException with status 500 raised on purpose
        return _http_error(request, exc)
    log.error("internal error answering %s %s", request.method, request.url.path, exc_info=exc)
    return _body("internal", "internal error (see the daemon's log)", 500)


def exception_handlers() -> dict[Any, Any]:
    """For ``Litestar(exception_handlers=...)``."""
    return {ApplianceError: _appliance_error, HTTPException: _http_error, 500: _internal_error}
