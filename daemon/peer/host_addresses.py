"""Restrict the host addresses aioice gathers.

aioice has no option for this and leaves 127.0.0.1 out on purpose; doorstep needs both (tests keep
every check on loopback with ``DOORSTEP_ICE_ADDRESSES=127.0.0.1``; an appliance may pin its LAN
address). aioice looks ``get_host_addresses`` up in its module namespace at gather time, so we
replace that one function, process-wide, with a filter over the configured list.
"""

from __future__ import annotations

import aioice.ice

__all__ = ["restrict_host_addresses"]

_ORIGINAL = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: tuple[str, ...] | None) -> None:
    """Gather only ``addresses`` from now on (``None`` restores aioice's own choice)."""
    if addresses is None:
        aioice.ice.get_host_addresses = _ORIGINAL
        return
    allowed = list(addresses)

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured
