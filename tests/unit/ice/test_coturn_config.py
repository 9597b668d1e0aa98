"""coturn's turnserver.conf as rendered from CoturnSettings: every guarantee is a line (or its absence)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from daemon.ice.coturn_config import DENIED_PEER_NETWORKS, CoturnSettings, _peer_range, render_turnserver_conf

SECRET = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
USERDB = Path("/var/lib/doorstep/coturn/turndb")


def settings(**changes: object) -> CoturnSettings:
    base = CoturnSettings(
        listen_ip="192.168.1.10", listen_port=3479, relay_ips=("192.168.1.10",), relay_ports=(49160, 49359),
        realm="doorstep", secret=SECRET, allowed_peer_ips=("192.168.1.10",),
    )
    return replace(base, **changes)


def lines(s: CoturnSettings) -> list[str]:
    return [line for line in render_turnserver_conf(s, userdb=USERDB).splitlines()
            if line and not line.startswith("#")]


def values(s: CoturnSettings, key: str) -> list[str]:
    return [line.partition("=")[2] for line in lines(s) if line.partition("=")[0] == key]


def test_listeners_relay_ports_and_realm() -> None:
    rendered = lines(settings(external_ip="203.0.113.7/192.168.1.10"))
    for expected in ("listening-ip=192.168.1.10", "listening-port=3479", "relay-ip=192.168.1.10",
                     "min-port=49160", "max-port=49359", "external-ip=203.0.113.7/192.168.1.10",
                     "realm=doorstep"):
        assert expected in rendered


def test_wildcard_listen_and_no_external_ip_leave_those_lines_out() -> None:
    rendered = lines(settings(listen_ip="", relay_ips=()))
    assert not [line for line in rendered if line.startswith(("listening-ip", "relay-ip", "external-ip"))]
    assert "listening-port=3479" in rendered


def test_hardening_flags_are_all_present() -> None:
    rendered = lines(settings())
    for flag in ("use-auth-secret", "fingerprint", "no-cli", "no-tcp-relay", "no-multicast-peers",
                 "no-tls", "no-dtls", "no-tlsv1", "no-tlsv1_1", "no-software-attribute", "no-rfc5780",
                 "no-stun-backward-compatibility", "response-origin-only-with-rfc5780",
                 "no-dynamic-ip-list", "no-dynamic-realms", "no-auth-pings", "simple-log", "stale-nonce=600"):
        assert flag in rendered, flag
    assert f"userdb={USERDB}" in rendered
    assert "log-file=stdout" in rendered
    assert "pidfile=" in rendered  # empty: no pid file


def test_nothing_that_widens_access_or_leaks_is_ever_rendered() -> None:
    keys = {line.partition("=")[0] for line in lines(settings(max_bps=10**6))}
    for forbidden in ("cli-password", "allow-loopback-peers", "verbose", "Verbose", "no-auth", "lt-cred-mech",
                      "user", "web-admin", "prometheus", "server-relay", "no-stun", "stun-only", "syslog",
                      "secure-stun", "mobility"):
        assert forbidden not in keys, forbidden


def test_the_secret_appears_only_on_the_static_auth_secret_line() -> None:
    text = render_turnserver_conf(settings(), userdb=USERDB)
    holding = [line for line in text.splitlines() if SECRET.decode() in line]
    assert holding == [f"static-auth-secret={SECRET.decode()}"]
    assert SECRET.decode() not in repr(settings())


def test_every_denied_range_is_present_in_coturn_range_syntax() -> None:
    denied = values(settings(), "denied-peer-ip")
    expected = {
        "0.0.0.0-0.255.255.255", "10.0.0.0-10.255.255.255", "100.64.0.0-100.127.255.255",
        "127.0.0.0-127.255.255.255", "169.254.0.0-169.254.255.255", "172.16.0.0-172.31.255.255",
        "192.0.0.0-192.0.0.255", "192.0.2.0-192.0.2.255", "192.88.99.0-192.88.99.255",
        "192.168.0.0-192.168.255.255", "198.18.0.0-198.19.255.255", "198.51.100.0-198.51.100.255",
        "203.0.113.0-203.0.113.255", "224.0.0.0-239.255.255.255", "240.0.0.0-255.255.255.255",
        "255.255.255.255",
        "::1", "::ffff:0:0-::ffff:ffff:ffff", "64:ff9b::-64:ff9b::ffff:ffff",
        "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "ff00::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    }
    assert expected <= set(denied)
    assert len(denied) == len(DENIED_PEER_NETWORKS)


@pytest.mark.parametrize("address", ["127.0.0.1", "0.0.0.0", "10.0.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "172.16.5.4", "224.0.0.251", "::1", "::ffff:127.0.0.1",
                                     "::ffff:10.0.0.1", "64:ff9b::a00:1", "fd00::1", "fe80::1", "ff02::1"])
def test_the_abuse_targets_fall_in_a_denied_range(address: str) -> None:
    ip = ipaddress.ip_address(address)
    ranges = []
    for text in values(settings(), "denied-peer-ip"):
        first, _, last = text.partition("-")
        ranges.append((ipaddress.ip_address(first), ipaddress.ip_address(last or first)))
    assert any(first.version == ip.version and first <= ip <= last for first, last in ranges)


@pytest.mark.parametrize("address", ["8.8.8.8", "45.1.0.1", "2a00:1450::1"])
def test_public_addresses_are_not_denied(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not any(ip in network for network in DENIED_PEER_NETWORKS)


def test_no_entry_is_one_coturn_reads_as_every_address() -> None:
    """coturn 4.6 matches everything against a single 0.0.0.0 or ::, and every IPv4 address
    against a range that starts at :: (see _peer_range)."""
    for key in ("denied-peer-ip", "allowed-peer-ip"):
        for entry in values(settings(allowed_peer_ips=("192.168.1.10", "fd00::10")), key):
            first, sep, _ = entry.partition("-")
            assert ipaddress.ip_address(first).is_unspecified is False or (sep and "." in first), entry


@pytest.mark.parametrize("network", ["::/128", "::/96", "0.0.0.0/32"])
def test_ranges_coturn_would_read_as_every_address_are_refused(network: str) -> None:
    with pytest.raises(ValueError, match="every address"):
        _peer_range(ipaddress.ip_network(network))


def test_allowed_peer_ips_come_after_the_deny_list() -> None:
    rendered = lines(settings(allowed_peer_ips=("192.168.1.10", "fd00::10")))
    allowed = [i for i, line in enumerate(rendered) if line.startswith("allowed-peer-ip=")]
    denied = [i for i, line in enumerate(rendered) if line.startswith("denied-peer-ip=")]
    assert [rendered[i] for i in allowed] == ["allowed-peer-ip=192.168.1.10", "allowed-peer-ip=fd00::10"]
    assert min(allowed) > max(denied)


def test_quotas_and_optional_bandwidth_cap() -> None:
    assert values(settings(), "user-quota") == ["10"] and values(settings(), "total-quota") == ["100"]
    assert values(settings(), "max-bps") == []
    assert values(settings(max_bps=125_000), "max-bps") == ["125000"]


def test_tls_listeners_only_with_a_certificate_and_key() -> None:
    rendered = lines(settings(tls_cert=Path("/etc/ssl/turn.pem"), tls_key=Path("/etc/ssl/turn.key")))
    assert "cert=/etc/ssl/turn.pem" in rendered and "pkey=/etc/ssl/turn.key" in rendered
    assert "no-tls" not in rendered and "no-dtls" not in rendered
    assert "no-tlsv1" in rendered and "no-tlsv1_1" in rendered


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"allowed_peer_ips": ("127.0.0.1",)}, "never be a relay peer"),
        ({"allowed_peer_ips": ("::",)}, "never be a relay peer"),
        ({"allowed_peer_ips": ("239.1.1.1",)}, "never be a relay peer"),
        ({"secret": b"short"}, "TURN secret"),
        ({"secret": b"0123456789abcdef\nverbose"}, "TURN secret"),
        ({"secret": b"0123456789abcdef #comment"}, "TURN secret"),
        ({"realm": "doorstep\nallow-loopback-peers"}, "realm"),
        ({"relay_ports": (80, 90)}, "relay_ports"),
        ({"relay_ports": (50000, 49999)}, "relay_ports"),
        ({"external_ip": "1.2.3.4/5.6.7.8/9.9.9.9"}, "external_ip"),
        ({"user_quota": 0}, "quotas"),
        ({"tls_cert": Path("/c.pem")}, "TLS"),
    ],
)
def test_invalid_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**changes)


@pytest.mark.parametrize("changes", [{"listen_ip": "not-an-ip"}, {"relay_ips": ("1.2.3",)},
                                     {"external_ip": "1.2.3.4/nope"}])
def test_malformed_addresses_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        settings(**changes)
