"""The control API: a litestar app over the daemon's :class:`daemon.ApplianceAPI` facade.

It holds no state of its own and never touches files: every route translates HTTP into one facade
call and the result (frozen snapshots) back into JSON. Errors become JSON bodies
``{"error": code, "message": text}`` with a fitting status (``control_api.errors``).

Routes live by subject: ``routes_transfers``, ``routes_shares``, ``routes_inbox`` (and the outbox),
``routes_events`` (SSE), ``routes_settings``; health, stats, metrics, pairing and devices here.
Response bodies are the typed structs of ``control_api.models``, so the OpenAPI schema
(``/api/v1/schema``) says exactly what each route answers.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Litestar, Request, delete, get, patch, post
from litestar.openapi import OpenAPIConfig
from msgspec import Struct

from daemon import ApplianceAPI, ApplianceError, render_prometheus
from daemon.facade import DeviceBookAPI

from control_api.errors import GUARDED, error_responses, exception_handlers
from control_api.models import DeviceOut, HealthOut, IdentityOut, PairOffer, device_out
from control_api.routes_events import event_routes
from control_api.routes_inbox import inbox_routes
from control_api.routes_mailbox import mailbox_routes
from control_api.routes_library import library_routes
from control_api.routes_settings import settings_routes
from control_api.routes_shares import share_routes
from control_api.routes_transfers import transfer_routes
from control_api.routes_upload import upload_routes
from control_api.security import WebSecurity, WebSettings
from control_api.web import web_ui_routes

__all__ = ["create_app"]


class PairRequest(Struct, forbid_unknown_fields=True):
    """Join another appliance's pairing offer (both fields), or, empty, make an offer."""

    code: str | None = None
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


def create_app(appliance: ApplianceAPI, *, api_token: str, web: WebSettings | None = None) -> Litestar:
    """Build the app. Every route except ``/api/v1/health``, the schema and login needs the bearer
    ``api_token`` or a web session (``control_api.security``); ``web`` sets the Host allowlist."""
    security = WebSecurity(api_token, web)
    guard = security.guard

    @get("/api/v1/health", sync_to_thread=False, tags=["appliance"], responses=error_responses(403))
    def health() -> HealthOut:
        return msgspec.convert(appliance.health(), HealthOut)

    @get("/api/v1/stats", guards=[guard], tags=["appliance"], responses=error_responses(*GUARDED))
    async def stats() -> dict[str, Any]:
        return await appliance.stats()

    @get("/metrics", guards=[guard], media_type="text/plain; version=0.0.4", tags=["appliance"],
         responses=error_responses(*GUARDED))
    async def metrics() -> str:
        return render_prometheus(await appliance.stats())

    @get("/api/v1/identity", guards=[guard], sync_to_thread=False, tags=["devices"],
         responses=error_responses(*GUARDED))
    def identity() -> IdentityOut:
        """This appliance's device id, current key and fingerprint words."""
        return msgspec.convert(appliance.identity_info(), IdentityOut)

    @post("/api/v1/identity/rotate", guards=[guard], status_code=200, sync_to_thread=False, tags=["devices"],
          responses=error_responses(*GUARDED, 500, 501))
    def rotate_identity() -> IdentityOut:
        """Replace the device key with a fresh one signed by the old one. Paired devices follow it
        the next time they connect (no pairing again); whoever holds the old key is refused by
        every device that has seen the new one."""
        return msgspec.convert(appliance.rotate_identity(), IdentityOut)

    @post("/api/v1/pair", guards=[guard], status_code=200, tags=["devices"],
          responses=error_responses(*GUARDED, 404, 503))
    async def pair(data: PairRequest) -> PairOffer | DeviceOut:
        """Without a body's ``code``, offer a pairing code; with ``code`` and ``signal``, join the
        other appliance's offer (answers that device)."""
        if data.code is None:
            return msgspec.convert(await appliance.offer_pairing(), PairOffer)
        if not data.signal:
            raise ApplianceError("joining a pairing offer needs the other appliance's signal URL", code="bad_request")
        return device_out(await appliance.pair_with(data.code, data.signal))

    @get("/api/v1/devices", guards=[guard], sync_to_thread=False, tags=["devices"],
         responses=error_responses(*GUARDED))
    def list_devices() -> list[DeviceOut]:
        book = appliance.devices
        return [device_out(book.describe(d)) for d in book.list()]

    @get("/api/v1/devices/{device_id:str}", guards=[guard], sync_to_thread=False, tags=["devices"],
         responses=error_responses(*GUARDED, 404))
    def get_device(device_id: str) -> DeviceOut:
        book = appliance.devices
        return device_out(book.describe(book.get(device_id)))

    @patch("/api/v1/devices/{device_id:str}", guards=[guard], tags=["devices"],
           responses=error_responses(*GUARDED, 404))
    async def patch_device(request: Request, device_id: str) -> DeviceOut:
        """Rename (``name``), approve or revoke (``status``) a device."""
        change = _device_patch(await request.body())
        return device_out(_apply_device_patch(appliance.devices, device_id, change))

    @delete("/api/v1/devices/{device_id:str}", guards=[guard], sync_to_thread=False, tags=["devices"],
            responses=error_responses(*GUARDED, 404))
    def forget_device(device_id: str) -> None:
        appliance.devices.forget(device_id)

    app = Litestar(
        route_handlers=[health, stats, metrics, identity, rotate_identity, pair, list_devices, get_device, patch_device, forget_device,
                        *transfer_routes(appliance, guard), *share_routes(appliance, guard),
                        *inbox_routes(appliance, guard), *event_routes(appliance, guard),
                        *settings_routes(appliance, guard),
                        *mailbox_routes(appliance, guard),  # store-and-forward of sealed bundles
                        *library_routes(appliance, guard),  # /api/v1/libraries, /api/v1/devices/{id}/libraries
                        *upload_routes(appliance, guard),  # PUT /api/v1/inbox/{path}
                        *web_ui_routes(signal_url=appliance.health().get("signal"))],  # the web UI: static web_ui/ at /, and /r/{code}
        exception_handlers=exception_handlers(),
        openapi_config=OpenAPIConfig(title="doorstep control API", version="1", path="/api/v1/schema"),
        request_max_body_size=1024 * 1024,
        logging_config=None,  # the daemon owns logging; litestar must not reconfigure it
    )
    return security.install(app)  # Host allowlist in front of everything; login/session/logout routes
