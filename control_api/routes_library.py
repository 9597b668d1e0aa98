"""Libraries: folders this appliance publishes to paired devices (``/api/v1/libraries``), and the
libraries paired devices publish to us (``/api/v1/devices/{id}/libraries``): browse and pull.

The appliance provides ``library`` (:class:`daemon.runtime.library.LibraryService`) and
``library_client`` (:class:`daemon.runtime.library_client.LibraryClient`); an appliance without
them answers 503.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import delete, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_202_ACCEPTED
from msgspec import Struct

from daemon import ApplianceAPI, ApplianceError

from .errors import GUARDED, error_responses

__all__ = ["library_routes"]


class LibraryRequest(Struct, forbid_unknown_fields=True):
    name: str
    """1-64 letters, digits, spaces or ``_.-``; the folder name on the devices that pull."""
    path: str
    """The folder to publish (absolute, on this appliance)."""
    devices: list[str]
    """Ids of the paired devices that may browse and pull it (at least one)."""


class LibraryOut(Struct):
    name: str
    path: str
    devices: list[str]
    files: int
    """Files in the catalogue (hashed)."""
    size: int
    pending: int
    """Files waiting to be hashed."""
    watching: bool
    """The folder is watched (False: it cannot be read right now)."""


class PeerLibraryOut(Struct):
    name: str
    files: int
    size: int


class EntryOut(Struct):
    path: str
    size: int
    mtime: float
    sha256: str


class CatalogueOut(Struct):
    library: str
    prefix: str
    truncated: bool
    entries: list[EntryOut]


class PullRequest(Struct, forbid_unknown_fields=True):
    prefix: str = ""
    """The subtree to pull ('' = the whole library)."""


class PullOut(Struct):
    library: str
    prefix: str
    files: int
    """Files listed under the prefix."""
    size: int
    already_here: int
    """Files whose SHA-256 this appliance already holds: not pulled."""
    requested: int
    bytes: int
    remaining: int
    """Wanted files left for a later pull (one pull asks for at most 1000)."""
    truncated: bool
    transfer_id: str | None
    """The receive transfer bringing the files (None: nothing to pull)."""
    message: str


def _service(appliance: ApplianceAPI, attribute: str) -> Any:
    service = getattr(appliance, attribute, None)
    if service is None:
        raise ApplianceError("this appliance has no libraries", code="not_supported", status=503)
    return service


def library_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    @post("/api/v1/libraries", guards=[guard], status_code=201, tags=["libraries"],
          responses=error_responses(*GUARDED, 404, 503))
    async def publish(data: LibraryRequest) -> LibraryOut:
        """Publish a folder to paired devices (again: replace its folder and devices)."""
        described = await _service(appliance, "library").publish(data.name, data.path, data.devices)
        return msgspec.convert(described, LibraryOut)

    @get("/api/v1/libraries", guards=[guard], sync_to_thread=False, tags=["libraries"],
         responses=error_responses(*GUARDED, 503))
    def list_libraries() -> list[LibraryOut]:
        return [msgspec.convert(d, LibraryOut) for d in _service(appliance, "library").libraries()]

    @get("/api/v1/libraries/{name:str}", guards=[guard], sync_to_thread=False, tags=["libraries"],
         responses=error_responses(*GUARDED, 404, 503))
    def get_library(name: str) -> LibraryOut:
        return msgspec.convert(_service(appliance, "library").library(name), LibraryOut)

    @get("/api/v1/libraries/{name:str}/files", guards=[guard], sync_to_thread=False, tags=["libraries"],
         responses=error_responses(*GUARDED, 404, 503))
    def own_catalogue(name: str, prefix: str = "", after: str = "",
                      limit: int = Parameter(default=2000, ge=1, le=2000)) -> CatalogueOut:
        """This appliance's own catalogue of a library, a page at a time (``after``: the last path seen)."""
        rows = _service(appliance, "library").catalogue(name, prefix, after=after, limit=limit)
        return CatalogueOut(library=name, prefix=prefix.strip("/"), truncated=len(rows) == limit,
                            entries=[EntryOut(path=r.path, size=r.size, mtime=r.mtime_ns / 1e9, sha256=r.sha256)
                                     for r in rows])

    @delete("/api/v1/libraries/{name:str}", guards=[guard], tags=["libraries"],
            responses=error_responses(*GUARDED, 404, 503))
    async def unpublish(name: str) -> None:
        await _service(appliance, "library").unpublish(name)

    peer_errors = error_responses(*GUARDED, 403, 404, 409, 502, 503)

    @get("/api/v1/devices/{device_id:str}/libraries", guards=[guard], tags=["libraries"], responses=peer_errors)
    async def peer_libraries(device_id: str) -> list[PeerLibraryOut]:
        """The libraries a paired device publishes to this appliance (asked over P2P)."""
        found = await _service(appliance, "library_client").libraries(device_id)
        return [msgspec.convert(d, PeerLibraryOut) for d in found]

    @get("/api/v1/devices/{device_id:str}/libraries/{name:str}", guards=[guard], tags=["libraries"],
         responses=peer_errors)
    async def peer_catalogue(device_id: str, name: str, prefix: str = "") -> CatalogueOut:
        """A paired device's catalogue of a library, at or below ``prefix``."""
        return msgspec.convert(await _service(appliance, "library_client").browse(device_id, name, prefix), CatalogueOut)

    @post("/api/v1/devices/{device_id:str}/libraries/{name:str}/pull", guards=[guard], status_code=HTTP_202_ACCEPTED,
          tags=["libraries"], responses=peer_errors)
    async def pull(device_id: str, name: str, data: PullRequest) -> PullOut:
        """Pull a subtree into the inbox (under the library's name), leaving out files whose SHA-256
        is already here; answers once the transfer started."""
        return msgspec.convert(await _service(appliance, "library_client").pull(device_id, name, data.prefix), PullOut)

    return [publish, list_libraries, get_library, own_catalogue, unpublish, peer_libraries, peer_catalogue, pull]
