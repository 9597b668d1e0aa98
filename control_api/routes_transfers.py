"""Transfers: list (filtered), get, cancel, retry, pause, resume; and ``POST /api/v1/receive`` which
starts one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import get, post
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED
from msgspec import Struct

from daemon import ApplianceAPI, Direction, TransferState

from .errors import GUARDED, error_responses
from .models import TRANSFER_STATES, TransferOut, transfer_out

__all__ = ["transfer_routes", "STATE_LIST_PATTERN"]

_STATE = "|".join(TRANSFER_STATES)
STATE_LIST_PATTERN = f"^({_STATE})(,({_STATE}))*$"
MAX_LIMIT = 10_000


class ReceiveRequest(Struct, forbid_unknown_fields=True):
    code: str
    """The 6-digit code of the share."""
    signal: str | None = None
    """The sharer's signaling URL (ws:// or wss://); default: this appliance's."""


def transfer_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    @get("/api/v1/transfers", guards=[guard], sync_to_thread=False, tags=["transfers"],
         responses=error_responses(*GUARDED))
    def list_transfers(
        state_list: Annotated[str | None, QueryParameter(
            name="state", pattern=STATE_LIST_PATTERN, description=f"comma-separated states to keep: {', '.join(TRANSFER_STATES)}",
        )] = None,
        direction: Annotated[Literal["send", "receive"] | None, Parameter(description="keep one direction")] = None,
        limit: Annotated[int | None, Parameter(ge=1, le=MAX_LIMIT, description="keep the newest N")] = None,
    ) -> list[TransferOut]:
        """Transfers, oldest first."""
        states = frozenset(TransferState(s) for s in state_list.split(",")) if state_list is not None else None
        records = appliance.transfers(states=states, direction=Direction(direction) if direction else None,
                                      limit=limit)
        return [transfer_out(t) for t in records]

    @get("/api/v1/transfers/{transfer_id:str}", guards=[guard], sync_to_thread=False, tags=["transfers"],
         responses=error_responses(*GUARDED, 404))
    def get_transfer(transfer_id: str) -> TransferOut:
        return transfer_out(appliance.transfer(transfer_id))

    @post("/api/v1/transfers/{transfer_id:str}/cancel", guards=[guard], status_code=200, tags=["transfers"],
          responses=error_responses(*GUARDED, 404, 409))
    async def cancel_transfer(transfer_id: str) -> TransferOut:
        """Stop a transfer that is not finished (it ends ``cancelled``); 409 if it is finished."""
        return transfer_out(await appliance.cancel_transfer(transfer_id))

    @post("/api/v1/transfers/{transfer_id:str}/retry", guards=[guard], status_code=HTTP_202_ACCEPTED,
          tags=["transfers"], responses=error_responses(*GUARDED, 404, 409))
    async def retry_transfer(transfer_id: str) -> TransferOut:
        """Start a failed or cancelled transfer again from its durable offsets: a receive fetched
        by share id, or a push. 409 for anything else."""
        return transfer_out(await appliance.retry_transfer(transfer_id))

    @post("/api/v1/transfers/{transfer_id:str}/pause", guards=[guard], status_code=200, tags=["transfers"],
          responses=error_responses(*GUARDED, 404, 409))
    async def pause_transfer(transfer_id: str) -> TransferOut:
        """Stop moving bytes now (within a second) and keep everything: a receive we fetch, a push
        we send, or a share we host (its receiver is turned away until resumed). 409 for uploads,
        held transfers, pushes we receive, and finished or paused transfers."""
        return transfer_out(await appliance.pause_transfer(transfer_id))

    @post("/api/v1/transfers/{transfer_id:str}/resume", guards=[guard], status_code=HTTP_202_ACCEPTED,
          tags=["transfers"], responses=error_responses(*GUARDED, 404, 409))
    async def resume_transfer(transfer_id: str) -> TransferOut:
        """Continue a paused transfer from its durable offsets. 409 unless it is paused."""
        return transfer_out(await appliance.resume_transfer(transfer_id))

    @post("/api/v1/receive", guards=[guard], status_code=HTTP_202_ACCEPTED, tags=["transfers"],
          responses=error_responses(*GUARDED, 404, 502, 503))
    async def receive(data: ReceiveRequest) -> TransferOut:
        """Fetch a share by its code into the inbox; answers once the sharer was reached."""
        return transfer_out(await appliance.receive(data.code, signal_url=data.signal))

    return [list_transfers, get_transfer, cancel_transfer, retry_transfer, pause_transfer, resume_transfer, receive]
