"""coturn's configuration as data: :class:`CoturnSettings` in, ``turnserver.conf`` text out.

Pure: no file, process or clock. ``daemon.runtime.coturn`` writes the text (0600) and runs coturn
on it. Option names are coturn 4.6's (Debian 12's ``turnserver``).

What the rendered file guarantees, whatever the settings:

- TURN REST credentials only (``use-auth-secret`` + ``static-auth-secret``); the secret appears on
  that one line and nowhere else. No CLI, no web admin, no TCP relays, no multicast peers, loopback
  peers refused (coturn's default, never overridden), fingerprints on, nonces that go stale.
- ``denied-peer-ip`` for every range in :data:`DENIED_PEER_NETWORKS`: the relay never reaches into
  loopback, private, CGNAT, link-local, multicast, reserved or IPv4-mapped/translated addresses.
  ``allowed-peer-ip`` punches exactly the appliance's own addresses back in (coturn checks the
  allow list before the deny list; its loopback check comes before both).
- The log goes to stdout at normal verbosity (never ``verbose``, which prints credentials), no pid
  file, and a user database of our own (never the system's ``/var/lib/turn/turndb``, whose
  dynamic secrets or allow lists would otherwise apply).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["CoturnSettings", "DENIED_PEER_NETWORKS", "render_turnserver_conf"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DENIED_PEER_NETWORKS: Final[tuple[IPNetwork, ...]] = tuple(
    ipaddress.ip_network(text)
    for text in (
        # IPv4 (RFC 6890 special-purpose blocks that are not globally reachable, plus multicast)
        "0.0.0.0/8",  # "this network", including 0.0.0.0 (which Linux delivers to the host itself)
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT shared space
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, including cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved
        "255.255.255.255/32",  # limited broadcast
        # IPv6
        "::1/128",
        # "::/128" cannot be written: see _peer_range. coturn refuses :: (and 0.0.0.0) by itself.
        "::ffff:0:0/96",  # IPv4-mapped: ::ffff:127.0.0.1 is 127.0.0.1
        "64:ff9b::/96",  # NAT64 well-known prefix: reaches IPv4 through a translator
        "64:ff9b:1::/48",  # NAT64 local-use prefix
        "100::/64",  # discard-only
        "2001::/32",  # Teredo: embeds an IPv4 server and client
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4: embeds an IPv4 address
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
"""Peers the relay refuses (403 Forbidden IP) unless listed in ``allowed_peer_ips``."""

_SECRET: Final = re.compile(r"[A-Za-z0-9_+/=.-]{16,256}")
_REALM: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,126}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CoturnSettings:
    """Everything the rendered ``turnserver.conf`` depends on. Invalid values raise ValueError.

    ``listen_ip`` '' listens on every interface. ``relay_ips`` '' (empty) lets coturn relay from
    the address a client reached it on. ``external_ip`` is coturn's ``public[/private]`` mapping for
    a server behind a NAT. ``allowed_peer_ips`` are the appliance's own addresses, the only
    private ones the relay may reach; loopback, unspecified (coturn would read ``0.0.0.0`` or ``::``
    as "every address") and multicast addresses are refused here. TLS/DTLS listeners are on only with both ``tls_cert`` and ``tls_key``.
    """

    listen_ip: str
    listen_port: int
    relay_ips: tuple[str, ...] = ()
    relay_ports: tuple[int, int]
    external_ip: str = ""
    realm: str
    secret: bytes = field(repr=False)
    allowed_peer_ips: tuple[str, ...] = ()
    user_quota: int = 10
    """Concurrent allocations per username (one username per admitted signaling session)."""
    total_quota: int = 100
    """Concurrent allocations in all."""
    max_bps: int | None = None
    """Bytes per second per allocation (each direction); None for no limit."""
    stale_nonce: int = 600
    """Seconds a nonce lives before the client must authenticate again (438 Stale Nonce)."""
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if self.listen_ip:
            ipaddress.ip_address(self.listen_ip)
        for ip in self.relay_ips:
            ipaddress.ip_address(ip)
        if not 1 <= self.listen_port <= 65535:
            raise ValueError(f"listen_port {self.listen_port} is not a port")
        low, high = self.relay_ports
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"relay_ports {self.relay_ports} is not a range within 1024..65535")
        if self.external_ip:
            for part in self.external_ip.split("/"):
                ipaddress.ip_address(part)
            if self.external_ip.count("/") > 1:
                raise ValueError(f"external_ip {self.external_ip!r} is not public[/private]")
        if _REALM.fullmatch(self.realm) is None:
            raise ValueError(f"realm {self.realm!r} is not a host-name-like string")
        if _SECRET.fullmatch(self.secret.decode("ascii", "replace")) is None:
            raise ValueError("the TURN secret must be 16..256 characters of [A-Za-z0-9_+/=.-]")
        for text in self.allowed_peer_ips:
            ip = ipaddress.ip_address(text)
            if ip.is_loopback or ip.is_unspecified or ip.is_multicast:
                raise ValueError(f"allowed_peer_ips: {text} may never be a relay peer")
        if self.user_quota < 1 or self.total_quota < self.user_quota:
            raise ValueError("quotas must satisfy 1 <= user_quota <= total_quota")
        if self.max_bps is not None and self.max_bps < 1:
            raise ValueError("max_bps must be positive (or None)")
        if self.stale_nonce < 1:
            raise ValueError("stale_nonce must be positive")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both tls_cert and tls_key")


def _peer_range(network: IPNetwork) -> str:
    """coturn 4.6 takes ``ip`` or ``first-last``, not CIDR.

    Its range check (``ioa_addr_in_range``) reads an unspecified first address as "from the very
    lowest address of any family" and an unspecified last one as "to the very highest": a single
    ``0.0.0.0`` or ``::`` would match every address, and a range from ``::`` every IPv4 address
    too (families compare as numbers, AF_INET < AF_INET6). Measured with coturn 4.6.1: either
    turns the relay off for the whole internet. ``0.0.0.0-0.255.255.255`` is fine (an IPv6 peer
    fails its upper bound), so only those forms are refused here.
    """
    first = network.network_address
    if first.is_unspecified and (network.version == 6 or network.num_addresses == 1):
        raise ValueError(f"coturn would read {network} as every address")
    if network.num_addresses == 1:
        return str(network.network_address)
    return f"{network.network_address}-{network.broadcast_address}"


def render_turnserver_conf(settings: CoturnSettings, *, userdb: Path) -> str:
    """The ``turnserver.conf`` text for ``settings``; ``userdb`` is coturn's SQLite file (ours)."""
    s = settings
    lines = ["# Written by doorstep at every start of its coturn; edits are overwritten.", ""]
    lines += ["# listeners and relay"]
    if s.listen_ip:
        lines.append(f"listening-ip={s.listen_ip}")
    lines.append(f"listening-port={s.listen_port}")
    lines += [f"relay-ip={ip}" for ip in s.relay_ips]
    lines += [f"min-port={s.relay_ports[0]}", f"max-port={s.relay_ports[1]}"]
    if s.external_ip:
        lines.append(f"external-ip={s.external_ip}")
    if s.tls_cert is not None and s.tls_key is not None:
        lines += [f"cert={s.tls_cert}", f"pkey={s.tls_key}"]
    else:
        lines += ["no-tls", "no-dtls"]
    lines += ["no-tlsv1", "no-tlsv1_1"]
    lines += ["no-tcp-relay", "no-multicast-peers", "no-cli", "no-software-attribute"]
    # STUN stays on (clients may use it), without the amplification-prone extras.
    lines += ["no-rfc5780", "no-stun-backward-compatibility", "response-origin-only-with-rfc5780"]
    lines += ["", "# authentication: TURN REST credentials from one shared secret"]
    lines += [f"realm={s.realm}", "use-auth-secret", f"static-auth-secret={s.secret.decode('ascii')}"]
    lines += ["fingerprint", f"stale-nonce={s.stale_nonce}"]
    lines += [f"userdb={userdb}", "no-dynamic-ip-list", "no-dynamic-realms", "no-auth-pings"]
    lines += ["", "# limits"]
    lines += [f"user-quota={s.user_quota}", f"total-quota={s.total_quota}"]
    if s.max_bps is not None:
        lines.append(f"max-bps={s.max_bps}")
    lines += ["", "# process: log to stdout (read by the supervisor), no pid file"]
    lines += ["log-file=stdout", "simple-log", "pidfile="]
    lines += ["", "# peers the relay may never reach, then the appliance's own addresses"]
    lines += [f"denied-peer-ip={_peer_range(network)}" for network in DENIED_PEER_NETWORKS]
    lines += [f"allowed-peer-ip={ip}" for ip in s.allowed_peer_ips]
    return "\n".join(lines) + "\n"
