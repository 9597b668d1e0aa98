"""The mailbox (docs/mailbox.md): send sealed files to an offline device through an appliance,
and see or delete the bundles this daemon holds. Bundles are listed without file names: the
appliance never knows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from litestar import Request, delete, get, post
from litestar.datastructures import UploadFile
from msgspec import Struct, field

from daemon import ApplianceAPI, ApplianceError, Upload

from .errors import GUARDED, error_responses

__all__ = ["mailbox_routes"]

UPLOAD_READ_SIZE = 1024 * 1024


class MailboxAPI(Protocol):
    """What the routes need of ``daemon.runtime.mailbox.MailboxService``."""

    async def send(self, uploads: list[Upload], *, to: str, via: str, key: str | None = None) -> dict[str, Any]: ...

    def items(self) -> list[dict[str, Any]]: ...

    async def delete(self, item_id: str) -> None: ...


class BundleOut(Struct):
    """One sealed bundle this daemon holds: made here and waiting to be left with the appliance
    (``kind`` ``outgoing``), or left here for another device (``held``)."""

    id: str
    kind: str
    sender: str = field(name="from")
    to: str
    via: str
    """The device the bundle is pushed to next: the appliance, or the recipient itself."""
    size: int
    """Sealed bytes, manifest included."""
    files: int
    created: float
    expires: float
    attempts: int
    error: str | None
    transfer: str | None
    """The send transfer that shows its pushes."""


def _bundle_out(item: dict[str, Any]) -> BundleOut:
    return BundleOut(id=item["id"], kind=item["kind"], sender=item["from"], to=item["to"], via=item["via"],
                     size=item["size"], files=item["files"], created=item["created"], expires=item["expires"],
                     attempts=item["attempts"], error=item["error"], transfer=item["transfer"])


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_READ_SIZE):
        yield chunk


def _mailbox(appliance: ApplianceAPI) -> MailboxAPI:
    mailbox = getattr(appliance, "mailbox", None)
    if mailbox is None:
        raise ApplianceError("this daemon runs no mailbox", code="not_supported", status=501)
    return mailbox


def mailbox_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    @post("/api/v1/mailbox", guards=[guard], request_max_body_size=None, status_code=202, tags=["mailbox"],
          responses=error_responses(*GUARDED, 404, 409, 501))
    async def send(request: Request) -> BundleOut:
        """Seal the file parts of a multipart body for device ``to`` and leave them with the
        appliance ``via`` (fields; device ids as this daemon knows them). ``to``'s key is the one
        pinned by pairing with it; an optional ``key`` field (its base64url public key, as the
        appliance lists it) trusts the appliance's word for a device never paired with this one."""
        form = await request.form()
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        to, via, key = (form.get(name) for name in ("to", "via", "key"))
        if not files or not isinstance(to, str) or not isinstance(via, str):
            raise ApplianceError("give file parts and the fields 'to' and 'via'", code="bad_request")
        try:
            item = await _mailbox(appliance).send(
                [Upload(path=f.filename or "file", chunks=_upload_chunks(f)) for f in files], to=to, via=via,
                key=key if isinstance(key, str) and key else None)
        finally:
            for f in files:
                await f.close()
        return _bundle_out(item)

    @get("/api/v1/mailbox", guards=[guard], sync_to_thread=False, tags=["mailbox"],
         responses=error_responses(*GUARDED, 501))
    def list_bundles() -> list[BundleOut]:
        """The sealed bundles this daemon holds (no file names: it cannot know them)."""
        return [_bundle_out(item) for item in _mailbox(appliance).items()]

    @delete("/api/v1/mailbox/{bundle_id:str}", guards=[guard], tags=["mailbox"],
            responses=error_responses(*GUARDED, 404, 501))
    async def delete_bundle(bundle_id: str) -> None:
        """Drop a bundle (undelivered; its sender is not told)."""
        await _mailbox(appliance).delete(bundle_id)

    return [send, list_bundles, delete_bundle]
