"""The ICE servers the signaling server hands to both ends of each new session.

:func:`session_ice_servers` turns the configuration into the callable
:class:`~daemon.signaling.SignalingServer` takes (``ice_servers``): given a session id it returns
``RTCIceServer``-shaped dicts,

- ``stun:HOST:PORT`` for the embedded STUN responder when it runs, and
- ``turn:HOST:PORT`` with TURN REST credentials minted for that session (``turn.ttl``, at most
  10 minutes) when ``turn.enabled``: the managed coturn on ``turn.listen`` with the secret in
  ``<state_dir>/turn-secret`` (created if missing), or the external server ``turn.url`` with the
  secret in ``turn.secret_file``.

HOST is ``ice.public_host`` when set; else the listen address when it names one; else (a wildcard
listen address) the host of ``signal.public_url`` or ``http.public_url``, which clients already
reach. With none of these the server is left out, with a warning: a loopback URL would send every
remote peer's ICE agent to its own machine, and aioice waits up to 5 s for an answer that never
comes before it offers any candidate. The secret is read once, here; credentials are never logged.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.ice.turn_credentials import mint

from .config import Config, Listen
from .turn_secret import ensure_turn_secret, read_turn_secret

__all__ = ["session_ice_servers", "server_url"]

log = logging.getLogger("doorstep.ice")

IceServers = Callable[[str], list[dict[str, Any]]]


def server_url(scheme: str, host: str, port: int) -> str:
    """``scheme:host:port``, an IPv6 literal in brackets (RFC 7064/7065)."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}:{shown}:{port}"


def _public_host(config: Config, listen: Listen, what: str) -> str | None:
    """The host peers are told to reach ``listen`` at, or None (with a warning) if unknown."""
    if config.ice_public_host:
        return config.ice_public_host
    if listen.host not in ("", "0.0.0.0", "::"):
        return listen.connect_host
    for url in (config.signal_public_url, config.http_public_url):
        host = urllib.parse.urlsplit(url).hostname if url else None
        if host:
            return host
    log.warning(
        "%s listens on every interface and neither ice.public_host nor a public URL is set: "
        "peers are not told about it", what,
    )
    return None


def session_ice_servers(
    config: Config, *, stun_port: int | None, clock: Callable[[], float] = time.time
) -> IceServers | None:
    """The ``ice_servers`` callable for the signaling server, or None when there is nothing to
    hand out (no STUN responder running, TURN disabled).

    ``stun_port``: the bound port of the embedded STUN responder, None when it does not run.
    ``clock``: unix seconds, for credential expiry.
    Raises OSError when a TURN secret file cannot be read or created, ValueError when it is empty.
    """
    fixed: list[dict[str, Any]] = []
    stun_host = None if stun_port is None else _public_host(config, config.stun_listen, "stun.listen")
    if stun_port is not None and stun_host is not None:
        fixed.append({"urls": [server_url("stun", stun_host, stun_port)]})
    turn: tuple[str, bytes] | None = None
    if config.turn_enabled:
        if config.turn_url:
            turn = (config.turn_url, read_turn_secret(Path(config.turn_secret_file)))
        else:
            turn_host = _public_host(config, config.turn_listen, "turn.listen")
            secret = ensure_turn_secret(config.state_dir)  # coturn needs it either way
            if turn_host is not None:
                turn = (server_url("turn", turn_host, config.turn_listen.port), secret)
    if not fixed and turn is None:
        return None

    def servers(session: str) -> list[dict[str, Any]]:
        result = [dict(server, urls=list(server["urls"])) for server in fixed]
        if turn is not None:
            url, secret = turn
            username, credential = mint(secret, ttl=config.turn_ttl, now=clock(), session=session)
            result.append({"urls": [url], "username": username, "credential": credential})
        return result

    return servers
