"""The inbox (list, download with ``Range``, delete) and the outbox queue."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from daemon import ApplianceAPI
from daemon.facade import InboxDownload

from .errors import GUARDED, error_responses
from .models import InboxFileOut, OutboxItemOut, OutboxPriorityIn, inbox_file_out, outbox_item_out
from .ranges import Unsatisfiable, content_disposition, parse_range

__all__ = ["inbox_routes", "READ_SIZE"]

READ_SIZE = 256 * 1024


async def _body(download: InboxDownload, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        offset, end = start, start + length
        while offset < end:
            chunk = await download.read(offset, min(READ_SIZE, end - offset))
            if not chunk:  # the file shrank meanwhile: end early (the client sees a short body)
                return
            offset += len(chunk)
            yield chunk
    finally:
        download.close()


def _relative(path: str) -> str:
    """The ``{path:path}`` parameter starts with '/': the inbox path is what follows."""
    return path[1:] if path.startswith("/") else path


def inbox_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    @get("/api/v1/inbox", guards=[guard], tags=["inbox"], responses=error_responses(*GUARDED))
    async def list_inbox(
        prefix: Annotated[str, Parameter(max_length=4096, description="keep paths that start with this")] = "",
    ) -> list[InboxFileOut]:
        """Every file in the inbox (symlinks and the private ``.doorstep`` folder left out),
        sorted by path, with the transfer and SHA-256 of files a transfer placed there."""
        return [inbox_file_out(f) for f in await appliance.inbox_files(prefix)]

    @get("/api/v1/inbox/{path:path}", guards=[guard], tags=["inbox"], media_type="application/octet-stream",
         responses={
             206: ResponseSpec(data_container=bytes, media_type="application/octet-stream",
                               description="the range asked for (Content-Range says which)", generate_examples=False),
             **error_responses(*GUARDED, 404, 416),
         })
    async def download(request: Request, path: str) -> Response[Any]:
        """The file's bytes (``Accept-Ranges: bytes``; one ``Range`` answers 206, one outside the
        file 416). Symlinks are never followed; ``.doorstep`` is never served."""
        opened = await appliance.open_inbox_file(_relative(path))
        headers = {
            "accept-ranges": "bytes",
            "content-disposition": content_disposition(opened.path.rsplit("/", 1)[-1]),
            "last-modified": email.utils.formatdate(opened.mtime, usegmt=True),
            "cache-control": "no-store",
        }
        try:
            wanted = parse_range(request.headers.get("range"), opened.size)
        except Unsatisfiable:
            opened.close()
            return Response({"error": "range_not_satisfiable", "message": f"the file has {opened.size} bytes"},
                            status_code=416, media_type="application/json",
                            headers={"content-range": f"bytes */{opened.size}", "accept-ranges": "bytes"})
        if wanted is None:
            start, length, status = 0, opened.size, 200
        else:
            start, length, status = wanted.start, wanted.length, 206
            headers["content-range"] = wanted.content_range()
        headers["content-length"] = str(length)
        return Stream(_body(opened, start, length), status_code=status, headers=headers,
                      media_type="application/octet-stream")

    @delete("/api/v1/inbox/{path:path}", guards=[guard], tags=["inbox"], responses=error_responses(*GUARDED, 404))
    async def delete_file(path: str) -> None:
        """Delete a file of the inbox (its folders stay)."""
        await appliance.delete_inbox_file(_relative(path))

    @get("/api/v1/outbox", guards=[guard], sync_to_thread=False, tags=["outbox"], responses=error_responses(*GUARDED))
    def list_outbox() -> list[OutboxItemOut]:
        """The outbox queue, oldest first: each version of each file dropped into a device's
        folder, and what became of it."""
        return [outbox_item_out(item) for item in appliance.outbox_queue()]

    @patch("/api/v1/outbox/{item_id:int}", guards=[guard], sync_to_thread=False, tags=["outbox"],
           responses=error_responses(*GUARDED, 404))
    def set_priority(item_id: int, data: OutboxPriorityIn) -> OutboxItemOut:
        """Move a waiting file ahead of (``high``) or behind (``low``) the device's other files."""
        return outbox_item_out(appliance.set_outbox_priority(item_id, data.priority))

    return [list_inbox, download, delete_file, list_outbox, set_priority]
