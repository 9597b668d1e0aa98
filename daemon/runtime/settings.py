"""Live settings: the effective configuration as the owner sees it, and the few keys that change
while the daemon runs (``PATCH /api/v1/settings``).

A change is validated by the key's own parser (:mod:`daemon.runtime.config`), applied through the
listeners (the appliance), then saved to ``<state_dir>/settings.json`` (0600, atomically), which
:func:`~daemon.runtime.config.load_config` reads back at the next start, between the TOML file and
the environment. What is left out of the view: ``turn.secret_file`` and ``http.password_file``
(paths to secrets) and any password in the ``signal.store`` URL.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from daemon.storage import write_secret_file

from .config import KEYS, SETTABLE, SETTINGS_FILE, Config, Listen, parse_value, read_settings_file

__all__ = ["LiveSettings", "SettingError", "config_view", "HIDDEN"]

log = logging.getLogger("doorstep.settings")

HIDDEN = frozenset({"turn.secret_file", "http.password_file"})
"""Keys never shown: they name files that hold secrets."""


class SettingError(ValueError):
    """A change that cannot be made; the message names the key."""


def _json_value(value: Any) -> Any:
    if isinstance(value, (Listen, Path)):
        return str(value)
    if isinstance(value, (frozenset, set)):
        return sorted(str(v) for v in value)
    if isinstance(value, tuple):
        if len(value) == 2 and all(isinstance(v, int) for v in value):
            return f"{value[0]}-{value[1]}"  # a port range
        return [str(v) for v in value]
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    return value


def _redact_url(url: str) -> str:
    """``url`` without a password in its user info."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}" if user else f":***@{netloc}"))


def config_view(config: Config) -> dict[str, Any]:
    """Every configuration key (dotted names, as in the TOML file) with its effective value as
    JSON, except :data:`HIDDEN`; ``inbox.dir``/``outbox.dir`` show the folders in use."""
    out: dict[str, Any] = {}
    for key in KEYS:
        if key in HIDDEN:
            continue
        value = getattr(config, key.replace(".", "_"))
        if key == "signal.store":
            value = _redact_url(value)
        out[key] = _json_value(value)
    return out


class LiveSettings:
    """The daemon's configuration plus the owner's live changes. ``state_dir`` is where
    ``settings.json`` lives; listeners registered with :meth:`on_change` get ``{key: value}``
    (parsed values) for each applied change."""

    def __init__(self, config: Config, *, state_dir: Path | None = None) -> None:
        self.config = config
        self._path = (state_dir or config.state_dir) / SETTINGS_FILE
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    def on_change(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def view(self) -> dict[str, Any]:
        return config_view(self.config)

    def update(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Validate every change and apply them all; returns them parsed, for :meth:`save`.
        Values are JSON values (booleans for the boolean keys, a positive number of seconds for
        ``share.ttl``, strings for the choices). Raises :class:`SettingError` (nothing applied)
        for an unknown or fixed key or a bad value."""
        if not changes:
            raise SettingError("nothing to change")
        parsed: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in SETTABLE:
                fixed = "cannot be changed while the daemon runs" if key in KEYS else "is not a setting"
                raise SettingError(f"{key!r} {fixed}; these can: {', '.join(sorted(SETTABLE))}")
            parsed[key] = self._parse(key, value)
        self.config = dataclasses.replace(self.config, **{k.replace(".", "_"): v for k, v in parsed.items()})
        for listener in self._listeners:
            listener(parsed)
        log.info("settings changed: %s", ", ".join(f"{k}={v!r}" for k, v in parsed.items()))
        return parsed

    @staticmethod
    def _parse(key: str, value: Any) -> Any:
        default = KEYS[key][0]
        boolean = default in ("true", "false")
        if boolean != isinstance(value, bool) or (not boolean and not isinstance(value, (str, int, float))):
            raise SettingError(f"{key}: {value!r} is not a {'boolean' if boolean else 'valid value'}")
        if key == "share.ttl" and not isinstance(value, (int, float)):
            raise SettingError(f"{key}: {value!r} is not a number of seconds")
        if key != "share.ttl" and not boolean and not isinstance(value, str):
            raise SettingError(f"{key}: {value!r} is not a string")
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        try:
            return parse_value(key, text)
        except ValueError as exc:
            raise SettingError(f"{key}: {exc}") from None

    def save(self, parsed: Mapping[str, Any]) -> None:
        """Merge ``parsed`` (from :meth:`update`) into ``settings.json``. Blocking (fsync): run it
        in a worker thread. Raises ``OSError``."""
        try:
            saved = {key: parse_value(key, text) for key, text in read_settings_file(self._path).items()}
        except ValueError:  # a broken file (ConfigError) is replaced by a good one
            saved = {}
        saved.update(parsed)
        write_secret_file(self._path, (json.dumps(saved, indent=2, sort_keys=True) + "\n").encode())
