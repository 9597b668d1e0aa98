"""ICE configuration values."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["IceConfig", "IceServer", "parse_addresses"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IceServer:
    """One STUN or TURN server, as handed to a peer (urls like ``stun:host:3478``)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.urls or not all(u.startswith(("stun:", "turn:", "turns:")) for u in self.urls):
            raise ValueError(f"ICE server urls must be stun:/turn:/turns: URLs, got {self.urls!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class IceConfig:
    """How a peer gathers candidates.

    ``addresses``: when set, the only host addresses ICE may gather (loopback allowed); ``None``
    means every address of every interface. ``servers``: STUN/TURN servers; empty means host
    candidates only (never a public default). ``direct`` (config ``transfer.direct``): after
    authentication, offer the peer direct TCP candidates on the same host addresses and move the
    transfer there if one connects (``daemon.direct``).
    """

    addresses: tuple[str, ...] | None = None
    servers: tuple[IceServer, ...] = ()
    direct: bool = True


def parse_addresses(text: str | None) -> tuple[str, ...] | None:
    """Parse ``DOORSTEP_ICE_ADDRESSES`` (comma list of IP addresses); empty or None means no restriction.

    Raises ValueError naming the bad entry.
    """
    if not text or not text.strip():
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValueError(f"ice.addresses: {item!r} is not an IP address") from None
    return tuple(out) or None
