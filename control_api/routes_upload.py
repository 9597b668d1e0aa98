"""``PUT /api/v1/inbox/{path}``: send a file to the appliance; it lands in the inbox, verified.

The raw body is the file (``curl -T FILE URL/api/v1/inbox/``, or the web UI's upload with
progress), streamed to disk as it arrives. ``Content-Length`` is required: the daemon checks
that exactly that much arrived. An optional ``X-Content-SHA256`` header (64 hex digits) is the
client's digest; the file must match it. The answer (201) is the receive transfer, done: its
file's ``final_path`` says where it went (``name (1).ext`` when the name was taken; nothing is
overwritten) and its ``sha256`` what the daemon hashed and verified on disk. Every upload shows in
``GET /api/v1/events`` as it goes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, put
from litestar.exceptions import InternalServerException
from litestar.params import Parameter

from daemon import ApplianceAPI, ApplianceError, Upload

from .errors import GUARDED, error_responses
from .models import TransferOut, transfer_out

__all__ = ["upload_routes", "DIGEST_HEADER"]

DIGEST_HEADER = "X-Content-SHA256"
MAX_UPLOAD = 2**63 - 1


async def _body(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except InternalServerException:  # litestar's "client disconnected prematurely"
        raise ApplianceError("the client went away before the whole file arrived", code="incomplete") from None


def _relative(path: str) -> str:
    return path[1:] if path.startswith("/") else path


def upload_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    @put("/api/v1/inbox/{path:path}", guards=[guard], request_max_body_size=None, status_code=201, tags=["inbox"],
         responses=error_responses(*GUARDED, 409, 411, 413, 507))
    async def upload(
        request: Request,
        path: str,
        sha256: Annotated[str | None, Parameter(
            header=DIGEST_HEADER, required=False, pattern="^[0-9a-fA-F]{64}$",
            description="the client's SHA-256 of the file (hex); the upload fails unless it matches")] = None,
    ) -> TransferOut:
        """Store the raw body as the file ``path`` (folders are created; the name is sanitized)
        in the inbox: answers the finished receive transfer."""
        length = request.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_UPLOAD:
            raise ApplianceError("send the file with a Content-Length", code="length_required", status=411)
        upload_in = Upload(path=_relative(path), chunks=_body(request))
        return transfer_out(await appliance.upload_to_inbox(upload_in, size=int(length), sha256=sha256))

    return [upload]
