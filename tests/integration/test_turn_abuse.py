"""TURN abuse probes against the real coturn, configured by doorstep, inside a network namespace.

The namespace (see tests/integration/netns.py) has no default route: if a deny rule were missing,
a relayed packet could at worst reach a listener inside the namespace, never leave the machine.
The targets that are not loopback (10.0.0.1, 192.168.1.1, 169.254.169.254) are addresses of the
namespace itself, with UDP sinks listening on every address, so a relay that let one through would
deliver it: each probe observes the refusal three ways, the 403 to CreatePermission and to
ChannelBind, no datagram at any sink, and a zero packet counter (iptables, inside the namespace) on
everything leaving the relay port range. A positive control (the appliance's own address, which
``allowed-peer-ip`` lets through) shows the same path delivers when it may, so silence means
refusal rather than a broken setup.

Credentials are TURN REST ones minted by daemon.ice.turn_credentials; expired and forged ones get
401 to the authenticated Allocate (after the usual 401 challenge, which the client answers).
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import partial

import pytest
import trio

from daemon.ice.coturn_config import CoturnSettings
from daemon.ice.turn_credentials import mint
from daemon.runtime.coturn import run_coturn
from tests.conftest import IN_CI, require_binary
from tests.integration.netns import Namespace, isolated_namespace
from tests.integration.turn_client import ERROR, SUCCESS, TurnClient, rest_credentials

pytestmark = pytest.mark.integration

SERVER_V4 = "10.99.0.1"
SERVER_V6 = "fd99::1"
OWN_ADDRESS = "10.99.0.7"  # the appliance's own address: allowed-peer-ip
PUBLIC_V4, PUBLIC_V6 = "45.9.0.77", "2600:9::77"  # stand-ins for the internet, inside the namespace
TARGETS_ON_VETH = ["10.0.0.1/32", "192.168.1.1/32", "169.254.169.254/32"]
TURN_PORT = 3478
RELAY_PORTS = (49160, 49199)
SINK_PORT = 9999
FORBIDDEN_PEERS = ["127.0.0.1", "0.0.0.0", "10.0.0.1", "192.168.1.1", "169.254.169.254", "::1", "::ffff:127.0.0.1",
                   "::", "100.64.0.1", "172.16.0.1", "fd00::1", "fe80::1", "64:ff9b::a00:1"]


@pytest.fixture(scope="module")
def turn_namespace() -> Iterator[Namespace]:
    if os.geteuid() != 0:
        (pytest.fail if IN_CI else pytest.skip)("TURN abuse tests need root (ip netns, iptables)")
    for tool in ("ip", "iptables", "ip6tables", "turnserver"):
        require_binary(tool)
    addresses = [f"{SERVER_V4}/24", f"{OWN_ADDRESS}/32", f"{SERVER_V6}/64", f"{PUBLIC_V4}/32", f"{PUBLIC_V6}/128",
                 *TARGETS_ON_VETH]
    with isolated_namespace(addresses) as ns:
        assert ns.run("ip", "route", "show", "default") == "" and ns.run("ip", "-6", "route", "show", "default") == ""
        for family, outside in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
            with ns.socket(family) as probe, pytest.raises(OSError) as caught:
                probe.sendto(b"x", (outside, 9))
            assert caught.value.errno == errno.ENETUNREACH
        # Ephemeral ports (the test's clients and sinks) stay out of the relay range: none can take
        # a relay port, and the counter below counts the relay's packets only.
        ns.run("sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=20000 29999")
        low, high = RELAY_PORTS
        for tables in ("iptables", "ip6tables"):  # count every packet the relay sends
            ns.run(tables, "-w", "-A", "OUTPUT", "-p", "udp", "--sport", f"{low}:{high}", "-j", "ACCEPT")
        yield ns


@dataclass
class Turn:
    ns: Namespace
    secret: bytes

    def client(self, username: str, password: str) -> TurnClient:
        sock = trio.socket.from_stdlib_socket(self.ns.socket(socket.AF_INET))
        return TurnClient(sock, (SERVER_V4, TURN_PORT), username, password)

    def valid_client(self) -> TurnClient:
        username, password = mint(self.secret, ttl=600, now=time.time(), session="probe")
        return self.client(username, password)

    def relayed_packets(self) -> int:
        total = 0
        for tables in ("iptables", "ip6tables"):
            rule = self.ns.run(tables, "-w", "-n", "-v", "-x", "-L", "OUTPUT").splitlines()[2]
            total += int(rule.split()[0])
        return total

    def reset_counters(self) -> None:
        for tables in ("iptables", "ip6tables"):
            self.ns.run(tables, "-w", "-Z", "OUTPUT")


@pytest.fixture
async def turn(turn_namespace: Namespace, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Turn]:
    """doorstep's coturn (its rendered config, its supervisor) inside the namespace."""
    secret = secrets.token_hex(32).encode()
    settings = CoturnSettings(
        listen_ip=SERVER_V4, listen_port=TURN_PORT, relay_ips=(SERVER_V4, SERVER_V6), relay_ports=RELAY_PORTS,
        realm="doorstep", secret=secret, allowed_peer_ips=(OWN_ADDRESS,),
    )
    state = tmp_path_factory.mktemp("turn")  # short: the notify socket's path must fit AF_UNIX
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(run_coturn, settings, state, wrapper=turn_namespace.exec_prefix))
        turn = Turn(turn_namespace, secret)
        turn.reset_counters()
        yield turn
        nursery.cancel_scope.cancel()


@pytest.fixture
async def sinks(turn_namespace: Namespace) -> AsyncIterator[list[trio.socket.SocketType]]:
    """UDP listeners on SINK_PORT of every address in the namespace (IPv4 and IPv6)."""
    v4 = turn_namespace.socket(socket.AF_INET)
    v6 = turn_namespace.socket(socket.AF_INET6)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v4.bind(("0.0.0.0", SINK_PORT))
    v6.bind(("::", SINK_PORT))
    socks = [trio.socket.from_stdlib_socket(s) for s in (v4, v6)]
    yield socks
    for s in socks:
        s.close()


async def received(sinks: list[trio.socket.SocketType], wait: float = 0.5) -> list[tuple[bytes, object]]:
    got: list[tuple[bytes, object]] = []

    async def listen(sock: trio.socket.SocketType) -> None:
        while True:
            got.append(await sock.recvfrom(65536))

    with trio.move_on_after(wait):
        async with trio.open_nursery() as nursery:
            for sock in sinks:
                nursery.start_soon(listen, sock)
    return got


@pytest.mark.parametrize("peer", [OWN_ADDRESS, PUBLIC_V4, PUBLIC_V6])
async def test_the_relay_reaches_public_addresses_and_the_appliance_own(
    turn: Turn, sinks: list[trio.socket.SocketType], peer: str
) -> None:
    """The positive controls: valid credentials, a peer the relay may reach, the datagram arrives.

    Without them an over-broad deny rule (coturn reads some as "every address") would pass every
    other test here while the relay served nobody.
    """
    client = turn.valid_client()
    answer, authenticated = await client.allocate(ipv6=":" in peer)
    assert answer.cls == SUCCESS and authenticated, answer
    assert client.relayed is not None and client.relayed[0] == (SERVER_V6 if ":" in peer else SERVER_V4)
    assert RELAY_PORTS[0] <= client.relayed[1] <= RELAY_PORTS[1]
    assert (await client.create_permission((peer, SINK_PORT))).cls == SUCCESS
    assert (await client.channel_bind((peer, SINK_PORT))).cls == SUCCESS
    await client.send((peer, SINK_PORT), b"allowed")
    got = await received(sinks)
    assert [(data, addr[:2]) for data, addr in got] == [(b"allowed", client.relayed)]
    assert turn.relayed_packets() == 1


@pytest.mark.parametrize("peer", FORBIDDEN_PEERS)
async def test_permissions_towards_private_and_loopback_addresses_are_forbidden(
    turn: Turn, sinks: list[trio.socket.SocketType], peer: str
) -> None:
    client = turn.valid_client()
    answer, _ = await client.allocate(ipv6=":" in peer)
    assert answer.cls == SUCCESS, answer
    target = (peer, SINK_PORT)
    permission = await client.create_permission(target)
    assert (permission.cls, permission.error_code) == (ERROR, 403), permission
    assert permission.reason == "Forbidden IP"
    channel = await client.channel_bind(target)
    assert (channel.cls, channel.error_code) == (ERROR, 403), channel
    await client.send(target, b"must not arrive")
    assert await received(sinks) == []
    assert turn.relayed_packets() == 0


@pytest.mark.parametrize("peer", ["::1", "::ffff:127.0.0.1"])
async def test_ipv6_targets_are_forbidden_on_an_ipv4_allocation_too(turn: Turn, peer: str) -> None:
    client = turn.valid_client()
    answer, _ = await client.allocate()
    assert answer.cls == SUCCESS, answer
    permission = await client.create_permission((peer, SINK_PORT))
    assert permission.cls == ERROR and permission.error_code in (403, 443), permission  # 443: family mismatch


async def test_expired_credentials_get_401(turn: Turn) -> None:
    username, password = mint(turn.secret, ttl=60, now=time.time() - 120, session="late")
    answer, authenticated = await turn.client(username, password).allocate()
    assert authenticated and (answer.cls, answer.error_code) == (ERROR, 401), answer


async def test_forged_credentials_get_401(turn: Turn) -> None:
    username = f"{int(time.time()) + 600}:forger"
    for password in (rest_credentials(b"not the secret", username), "", rest_credentials(turn.secret, "other")):
        answer, authenticated = await turn.client(username, password).allocate()
        assert authenticated and (answer.cls, answer.error_code) == (ERROR, 401), answer


async def test_a_username_without_expiry_gets_401(turn: Turn) -> None:
    """A static-looking username is no way around the REST scheme's expiry."""
    answer, authenticated = await turn.client("admin", rest_credentials(turn.secret, "admin")).allocate()
    assert authenticated and (answer.cls, answer.error_code) == (ERROR, 401), answer
