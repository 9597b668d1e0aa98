"""The control API: a litestar app over the daemon's :class:`daemon.ApplianceAPI` facade.

It holds no state of its own and never touches files: every route translates HTTP into one facade
call and the result (frozen snapshots) back into JSON. Errors from the facade become JSON bodies
``{"error": code, "message": text}`` with a fitting status.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any, Literal

import msgspec
from litestar import Litestar, Request, Response, delete, get, patch, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.status_codes import HTTP_202_ACCEPTED
from msgspec import Struct

from daemon import ApplianceAPI, ApplianceError, ShareCreated, TransferRecord, Upload, render_prometheus
from daemon.facade import DeviceBookAPI

__all__ = ["create_app"]

UPLOAD_READ_SIZE = 1024 * 1024


class PairRequest(Struct, forbid_unknown_fields=True):
    """Join another appliance's pairing offer (both fields), or, empty, make an offer."""

    code: str | None = None
    signal: str | None = None


class PushRequest(Struct, forbid_unknown_fields=True):
    device: str


class ReceiveRequest(Struct, forbid_unknown_fields=True):
    code: str
    signal: str | None = None


class DevicePatch(Struct, forbid_unknown_fields=True):
    name: str | None = None
    status: Literal["approved", "revoked"] | None = None


def _device_patch(body: bytes) -> DevicePatch:
    """Decode a PATCH body; any problem is a JSON ``bad_request`` (400) that says what is wrong."""
    try:
        change = msgspec.json.decode(body, type=DevicePatch)
    except msgspec.ValidationError as exc:
        raise ApplianceError(f"invalid device change: {exc}", code="bad_request") from None
    except msgspec.DecodeError as exc:
        raise ApplianceError(f"the body is not JSON: {exc}", code="bad_request") from None
    if change.name is None and change.status is None:
        raise ApplianceError("nothing to change: give 'name' and/or 'status'", code="bad_request")
    return change


def _apply_device_patch(book: DeviceBookAPI, device_id: str, change: DevicePatch) -> dict[str, Any]:
    record = book.get(device_id)
    if change.name is not None:
        record = book.rename(device_id, change.name)
    if change.status == "approved":
        record = book.approve(device_id)
    elif change.status == "revoked":
        record = book.revoke(device_id)
    return book.describe(record)


def _transfer_json(record: TransferRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "direction": record.direction.value,
        "state": record.state.value,
        "bytes_done": record.bytes_done,
        "bytes_total": record.bytes_total,
        "bytes_moved": record.bytes_moved,
        "error": record.error,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256, "offset": f.offset, "final_path": f.final_path}
            for f in record.files
        ],
    }


def _share_json(share: ShareCreated) -> dict[str, Any]:
    return asdict(share)


def _require_token(token: str):
    expected = f"Bearer {token}".encode()

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        given = connection.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise NotAuthorizedException("a valid 'Authorization: Bearer <token>' header is required")

    return guard


async def _chunks(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in stream:
        if chunk:
            yield chunk


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_READ_SIZE):
        yield chunk


def create_app(appliance: ApplianceAPI, *, api_token: str) -> Litestar:
    """Build the app. ``api_token`` guards every route except ``/api/v1/health``."""
    guard = _require_token(api_token)

    @get("/api/v1/health", sync_to_thread=False)
    def health() -> dict[str, Any]:
        return appliance.health()

    @put("/api/v1/shares/{name:str}", guards=[guard], request_max_body_size=None, status_code=201)
    async def put_share(request: Request, name: str) -> dict[str, Any]:
        share = await appliance.create_share([Upload(path=name, chunks=_chunks(request.stream()))], name=name)
        return _share_json(share)

    @post("/api/v1/shares", guards=[guard], request_max_body_size=None, status_code=201)
    async def post_share(request: Request) -> dict[str, Any]:
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
        return _share_json(share)

    @get("/api/v1/stats", guards=[guard])
    async def stats() -> dict[str, Any]:
        return await appliance.stats()

    @get("/metrics", guards=[guard], media_type="text/plain; version=0.0.4")
    async def metrics() -> str:
        return render_prometheus(await appliance.stats())

    @get("/api/v1/shares", guards=[guard], sync_to_thread=False)
    def list_shares() -> list[dict[str, Any]]:
        return [_share_json(s) for s in appliance.shares()]

    @get("/api/v1/transfers", guards=[guard], sync_to_thread=False)
    def list_transfers() -> list[dict[str, Any]]:
        return [_transfer_json(t) for t in appliance.transfers()]

    @get("/api/v1/transfers/{transfer_id:str}", guards=[guard], sync_to_thread=False)
    def get_transfer(transfer_id: str) -> dict[str, Any]:
        record = appliance.transfer(transfer_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no transfer {transfer_id!r}")
        return _transfer_json(record)

    @post("/api/v1/receive", guards=[guard], status_code=HTTP_202_ACCEPTED)
    async def receive(data: ReceiveRequest) -> dict[str, Any]:
        return _transfer_json(await appliance.receive(data.code, signal_url=data.signal))

    @post("/api/v1/pair", guards=[guard], status_code=200)
    async def pair(data: PairRequest) -> dict[str, Any]:
        if data.code is None:
            return await appliance.offer_pairing()
        if not data.signal:
            raise ApplianceError("joining a pairing offer needs the other appliance's signal URL", code="bad_request")
        return await appliance.pair_with(data.code, data.signal)

    @post("/api/v1/shares/{share_id:str}/push", guards=[guard], status_code=HTTP_202_ACCEPTED)
    async def push_share(share_id: str, data: PushRequest) -> dict[str, Any]:
        return {"id": await appliance.push_share(share_id, data.device)}

    @get("/api/v1/devices", guards=[guard], sync_to_thread=False)
    def list_devices() -> list[dict[str, Any]]:
        book = appliance.devices
        return [book.describe(d) for d in book.list()]

    @get("/api/v1/devices/{device_id:str}", guards=[guard], sync_to_thread=False)
    def get_device(device_id: str) -> dict[str, Any]:
        book = appliance.devices
        return book.describe(book.get(device_id))

    @patch("/api/v1/devices/{device_id:str}", guards=[guard])
    async def patch_device(request: Request, device_id: str) -> dict[str, Any]:
        change = _device_patch(await request.body())
        return _apply_device_patch(appliance.devices, device_id, change)

    @delete("/api/v1/devices/{device_id:str}", guards=[guard], sync_to_thread=False)
    def forget_device(device_id: str) -> None:
        appliance.devices.forget(device_id)

    def appliance_error(_: Request, exc: ApplianceError) -> Response:
        return Response({"error": exc.code, "message": str(exc)}, status_code=exc.status)

    return Litestar(
        route_handlers=[health, put_share, post_share, stats, metrics, list_shares, list_transfers, get_transfer,
                        receive, pair, push_share, list_devices, get_device, patch_device, forget_device],
        exception_handlers={ApplianceError: appliance_error},
        openapi_config=OpenAPIConfig(title="doorstep control API", version="1", path="/api/v1/schema"),
        request_max_body_size=1024 * 1024,
        logging_config=None,  # the daemon owns logging; litestar must not reconfigure it
    )
