"""Settings: the effective configuration, and the few keys that change while the daemon runs."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, patch

from daemon import ApplianceAPI, ApplianceError

from .errors import GUARDED, error_responses
from .models import SettingsOut, SettingsPatch

__all__ = ["settings_routes"]


def settings_routes(appliance: ApplianceAPI, guard: Any) -> list[Any]:
    @get("/api/v1/settings", guards=[guard], sync_to_thread=False, tags=["settings"],
         responses=error_responses(*GUARDED))
    def get_settings() -> SettingsOut:
        """Every configuration key (dotted, as in the TOML file) with its effective value;
        secrets and the paths of files holding secrets are left out."""
        return appliance.settings()

    @patch("/api/v1/settings", guards=[guard], tags=["settings"], responses=error_responses(*GUARDED, 500))
    async def patch_settings(request: Request, data: SettingsPatch) -> SettingsOut:
        """Change ``inbox.unpaired``, ``inbox.per_device``, ``transfer.encrypt``,
        ``outbox.after_send`` and/or ``share.ttl`` now; saved to ``<state_dir>/settings.json``
        and read back at the next start (an env var or a flag still wins over it)."""
        try:  # again, strictly: litestar's decoding would take "60" for 60 and "true" for true
            data = msgspec.json.decode(await request.body(), type=SettingsPatch, strict=True)
        except msgspec.ValidationError as exc:
            raise ApplianceError(f"invalid settings: {exc}", code="bad_request") from None
        changes = data.changes()
        if not changes:
            raise ApplianceError("nothing to change: give at least one setting", code="bad_request")
        return await appliance.update_settings(changes)

    return [get_settings, patch_settings]
