"""Shares: upload (raw ``PUT``, multipart ``POST``, text), list, revoke, QR code, push to a device."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, delete, get, post, put
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_202_ACCEPTED
from msgspec import Struct

from daemon import ApplianceAPI, Upload

from .errors import GUARDED, error_responses
from .models import ShareOut, TextShareRequest, share_out

__all__ = ["share_routes", "TEXT_BODY_LIMIT"]

UPLOAD_READ_SIZE = 1024 * 1024
TEXT_BODY_LIMIT = 8 * 1024 * 1024
"""A text share's JSON body: 1 MiB of text, escaped (the text itself is checked after decoding)."""


class PushRequest(Struct, forbid_unknown_fields=True):
    device: str
    """The paired device's id."""


class PushStarted(Struct):
    id: str
    """The send transfer's id."""


async def _chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        if chunk:
            yield chunk


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_READ_SIZE):
        yield chunk


def share_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    upload_errors = error_responses(*GUARDED, 503)

    async def upload_raw(request: Request, name: str) -> ShareOut:
        share = await appliance.create_share([Upload(path=name, chunks=_chunks(request.stream()))], name=name)
        return share_out(share)

    @put("/api/v1/shares/{name:str}", guards=[guard], request_max_body_size=None, status_code=201, tags=["shares"],
         responses=upload_errors)
    async def put_share(request: Request, name: str) -> ShareOut:
        """Share the raw body as one file called ``name`` (``curl -T FILE URL/``): answers the code,
        link and QR code."""
        return await upload_raw(request, name)

    # "/api/v1/shares/text" is a static route (POST, below): a file called "text" must still upload.
    @put("/api/v1/shares/text", guards=[guard], request_max_body_size=None, status_code=201, include_in_schema=False)
    async def put_share_named_text(request: Request) -> ShareOut:
        return await upload_raw(request, "text")

    @post("/api/v1/shares", guards=[guard], request_max_body_size=None, status_code=201, tags=["shares"],
          responses=upload_errors)
    async def post_share(request: Request) -> ShareOut:
        """Share the file parts of a multipart body (their file names keep folders);
        an optional ``name`` field names the share."""
        form = await request.form()
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise HTTPException(status_code=400, detail="multipart body has no file parts")
        uploads = [Upload(path=f.filename or "file", chunks=_upload_chunks(f)) for f in files]
        try:
            share = await appliance.create_share(uploads, name=str(form.get("name") or files[0].filename or "share"))
        finally:
            for f in files:
                await f.close()
        return share_out(share)

    @post("/api/v1/shares/text", guards=[guard], status_code=201, tags=["shares"],
          request_max_body_size=TEXT_BODY_LIMIT, responses=error_responses(*GUARDED, 413, 503))
    async def text_share(data: TextShareRequest) -> ShareOut:
        """Share a text (at most 1 MiB of UTF-8) as a ``.txt`` file."""
        return share_out(await appliance.create_text_share(data.text, name=data.name))

    @get("/api/v1/shares", guards=[guard], sync_to_thread=False, tags=["shares"],
         responses=error_responses(*GUARDED))
    def list_shares() -> list[ShareOut]:
        """Shares that are still held (waiting for their receiver, or being sent)."""
        return [share_out(s) for s in appliance.shares()]

    @delete("/api/v1/shares/{share_id:str}", guards=[guard], tags=["shares"],
            responses=error_responses(*GUARDED, 404))
    async def revoke_share(share_id: str) -> None:
        """Revoke a share: no longer hosted, its files deleted, its transfer cancelled."""
        await appliance.revoke_share(share_id)

    @get("/api/v1/shares/{share_id:str}/qr.svg", guards=[guard], sync_to_thread=False, tags=["shares"],
         media_type="image/svg+xml", responses=error_responses(*GUARDED, 404))
    def share_qr(share_id: str) -> Response[str]:
        """The share link as an SVG QR code; 404 when the share has no live code."""
        return Response(appliance.share_qr_svg(share_id), media_type="image/svg+xml",
                        headers={"cache-control": "no-store"})

    @post("/api/v1/shares/{share_id:str}/push", guards=[guard], status_code=HTTP_202_ACCEPTED, tags=["shares"],
          responses=error_responses(*GUARDED, 404, 409))
    async def push_share(share_id: str, data: PushRequest) -> PushStarted:
        """Send the share to a paired device's inbox, without a code."""
        return PushStarted(id=await appliance.push_share(share_id, data.device))

    return [put_share, put_share_named_text, post_share, text_share, list_shares, revoke_share, share_qr, push_share]
