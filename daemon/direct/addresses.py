"""Which local addresses the direct path listens on and dials from, and which candidates it dials.

The same host addresses ICE may use (``IceConfig.addresses``):

- configured (``ice.addresses``): exactly those, loopback included if listed; a dial to a peer's
  candidate is bound to a configured address of the same kind (loopback to loopback, otherwise the
  first configured non-loopback address of the family), so no packet leaves from another address;
- not configured: every interface address, as aioice enumerates them, minus loopback and
  link-local; the kernel picks the source address of a dial.

A peer's candidate is dialled only if it is a unicast address we could reach under that policy:
never loopback unless loopback was configured here too (a remote peer has no business pointing us
at our own machine's services), never link-local (needs a zone), never unspecified, multicast or
IPv4-mapped (refused when decoded already).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import ifaddr

from .messages import Candidate

__all__ = ["host_addresses", "listen_addresses", "dial_plan"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_addresses() -> tuple[str, ...]:
    """Every interface's unicast addresses, without loopback and link-local (canonical text)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast):
                found.append(str(address))
    return tuple(dict.fromkeys(found))


def listen_addresses(configured: tuple[str, ...] | None) -> tuple[str, ...]:
    """Where to listen: ``configured`` (canonical, de-duplicated; never a wildcard, multicast or
    link-local address, which cannot be a candidate), else :func:`host_addresses`."""
    if configured is None:
        return host_addresses()
    parsed = (ipaddress.ip_address(a) for a in configured)
    usable = (a for a in parsed if not (a.is_unspecified or a.is_multicast or a.is_link_local))
    return tuple(dict.fromkeys(str(a) for a in usable))


def dial_plan(candidates: Iterable[Candidate], configured: tuple[str, ...] | None) -> list[tuple[Candidate, str | None]]:
    """The peer's candidates we may dial, each with the local address to bind the connection to
    (None: any, the kernel chooses), in the peer's order."""
    plan: list[tuple[Candidate, str | None]] = []
    locals_ = None if configured is None else [ipaddress.ip_address(a) for a in configured]
    for candidate in candidates:
        target = candidate.address
        if target.is_link_local:
            continue
        if locals_ is None:
            if not target.is_loopback:
                plan.append((candidate, None))
            continue
        same = _same_kind(target, locals_)
        if same:
            plan.append((candidate, str(same[0])))
    return plan


def _same_kind(target: IPAddress, locals_: Iterable[IPAddress]) -> list[IPAddress]:
    return [a for a in locals_ if a.version == target.version and a.is_loopback == target.is_loopback]
