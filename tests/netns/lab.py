"""A network lab made of Linux network namespaces: an "internet", NAT routers and hosts behind them.

Topology (every namespace is the lab's own; none is connected to the root namespace, so nothing
in the lab has a route to the machine's real networks)::

    internet ns: bridge "br0" 45.1.0.1/24 (the appliance) [+ 45.1.0.254, a probe address]
        |-- veth --> router ns "wan" 45.1.0.(10+i)/24, iptables NAT (cone or symmetric)
        |               bridge "lan" 10.i.0.1/24 (or the given LAN)
        |                  |-- veth --> host ns "eth0" 10.i.0.(2+j)/24, default route via the router

Only hosts have a default route (to their router); routers and the internet know just their own
connected networks, so a packet to anywhere else dies with "network unreachable". The internet's
addresses are outside every range coturn is told to deny (private, CGNAT, loopback, link-local,
TEST-NETs, benchmarking, multicast, reserved), as a real public network would be.

NAT kinds (both filter like a port-restricted cone: only replies from an endpoint a host has sent to
get in, and unsolicited packets to the router are dropped before conntrack confirms them, so they
never steal a mapping):

- ``cone``: ``MASQUERADE``. Linux keeps the source port when it is free, so one socket keeps one
  public port whatever the destination: endpoint-independent mapping.
- ``symmetric``: ``MASQUERADE --random-fully``: every new destination gets a fresh random public port,
  endpoint-dependent mapping. A peer's server-reflexive candidate (learned from STUN) is then useless
  to anyone but the STUN server.

``Lab.close`` kills every process the lab started and deletes every namespace, also after a failure.
Namespace names carry the pytest pid, so :func:`remove_stale_namespaces` can delete what a killed run
left behind.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Lab", "Nat", "Node", "Router", "remove_stale_namespaces", "INTERNET", "APPLIANCE_IP", "PROBE_IP"]

NS_PREFIX = "dst-"
INTERNET = ipaddress.ip_network("45.1.0.0/24")
APPLIANCE_IP = "45.1.0.1"
PROBE_IP = "45.1.0.254"
STOP_TIMEOUT = 5.0


class Nat(enum.Enum):
    CONE = "cone"
    SYMMETRIC = "symmetric"


@dataclass(frozen=True, slots=True)
class Node:
    """A namespace and its one address on its one network."""

    ns: str
    address: str


@dataclass(slots=True)
class Router:
    ns: str
    wan_address: str
    lan: ipaddress.IPv4Network
    nat: Nat
    hosts: list[Node] = field(default_factory=list)


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces whose creating process is gone (a run killed before its teardown)."""
    removed = []
    for name in list_namespaces():
        match = re.fullmatch(rf"{NS_PREFIX}(\d+)-.*", name)
        if match and not _pid_alive(int(match.group(1))):
            _kill_namespace_processes(name)
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


def _kill_namespace_processes(name: str) -> None:
    """SIGKILL the processes still inside namespace ``name`` (by pid, as ``ip netns pids`` lists them)."""
    for pid in _run(["ip", "netns", "pids", name], check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Lab:
    """Namespaces, links and NAT for one test; use as a context manager (or call ``close``)."""

    def __init__(self) -> None:
        for tool in ("ip", "iptables"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed")
        self.tag = f"{NS_PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[Any]] = []
        self.routers: list[Router] = []
        try:
            self.internet = self._make_internet()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ----------------------------------------------------------------------------------

    def _namespace(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.ip(name, "link", "set", "lo", "up")
        return name

    def ip(self, ns: str, *args: str) -> str:
        return _run(["ip", "-n", ns, *args]).stdout

    def sh(self, ns: str, *argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``ns`` and wait for it."""
        return _run(["ip", "netns", "exec", ns, *argv], check=check, timeout=timeout)

    def _veth(self, ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
        """A veth pair created directly inside both namespaces (never in the root namespace)."""
        self.ip(ns_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
        self.ip(ns_a, "link", "set", name_a, "up")
        self.ip(ns_b, "link", "set", name_b, "up")

    def _bridge(self, ns: str, name: str, cidr: str) -> None:
        self.ip(ns, "link", "add", name, "type", "bridge")
        self.ip(ns, "link", "set", name, "up")
        self.ip(ns, "addr", "add", cidr, "dev", name)
        # With br_netfilter loaded (Docker does), frames switched between two ports of a bridge would
        # traverse iptables FORWARD too: a LAN is a switch, keep the router's rules off it.
        if Path("/proc/sys/net/bridge").is_dir():
            self.sh(ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0", check=False)

    def _make_internet(self) -> Node:
        ns = self._namespace("inet")
        self._bridge(ns, "br0", f"{APPLIANCE_IP}/{INTERNET.prefixlen}")
        self.ip(ns, "addr", "add", f"{PROBE_IP}/{INTERNET.prefixlen}", "dev", "br0")
        return Node(ns, APPLIANCE_IP)

    def router(self, nat: Nat, lan: str | None = None) -> Router:
        """A NAT router on the internet with an empty LAN (``10.<n>.0.0/24`` unless given)."""
        index = len(self.routers) + 1
        lan_net = ipaddress.ip_network(lan or f"10.{index}.0.0/24")
        ns = self._namespace(f"r{index}")
        wan_address = str(INTERNET.network_address + 10 + index)
        self._veth(ns, "wan", self.internet.ns, f"r{index}")
        self.ip(self.internet.ns, "link", "set", f"r{index}", "master", "br0")
        self.ip(ns, "addr", "add", f"{wan_address}/{INTERNET.prefixlen}", "dev", "wan")
        self._bridge(ns, "lan", f"{lan_net.network_address + 1}/{lan_net.prefixlen}")
        self.sh(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._nat_rules(ns, nat)
        router = Router(ns, wan_address, lan_net, nat)
        self.routers.append(router)
        return router

    def _nat_rules(self, ns: str, nat: Nat) -> None:
        ipt = ("iptables", "-w")
        masquerade = ["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
        if nat is Nat.SYMMETRIC:
            masquerade.append("--random-fully")
        for rule in (
            masquerade,
            # Port-restricted filtering: in from the WAN only what belongs to a flow a host began.
            ["-P", "FORWARD", "DROP"],
            ["-A", "FORWARD", "-i", "lan", "-o", "wan", "-j", "ACCEPT"],
            ["-A", "FORWARD", "-i", "lan", "-o", "lan", "-j", "ACCEPT"],  # LAN to LAN (br_netfilter)
            ["-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
             "-j", "ACCEPT"],
            # Unsolicited packets to the router itself are dropped in INPUT, before conntrack confirms
            # their entry: otherwise a peer's early check would occupy the tuple the host's own
            # mapping needs, and Linux would move that mapping to another port (cone turns symmetric).
            ["-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
            ["-A", "INPUT", "-i", "wan", "-j", "DROP"],
        ):
            self.sh(ns, *ipt, *rule)

    def host(self, router: Router) -> Node:
        """A host on ``router``'s LAN, its default route through the router."""
        index = len(router.hosts) + 1
        router_index = self.routers.index(router) + 1
        ns = self._namespace(f"r{router_index}h{index}")
        address = str(router.lan.network_address + 1 + index)
        port = f"h{index}"
        self._veth(ns, "eth0", router.ns, port)
        self.ip(router.ns, "link", "set", port, "master", "lan")
        self.ip(ns, "addr", "add", f"{address}/{router.lan.prefixlen}", "dev", "eth0")
        self.ip(ns, "route", "add", "default", "via", str(router.lan.network_address + 1))
        node = Node(ns, address)
        router.hosts.append(node)
        return node

    def forward(self, router: Router, proto: str, ports: str, to: Node) -> None:
        """Port forwarding on ``router``: ``proto`` (tcp/udp) ``ports`` (``N`` or ``LOW:HIGH``) arriving
        on its WAN address go to the same ports on LAN host ``to``."""
        ipt = ("iptables", "-w")
        self.sh(router.ns, *ipt, "-t", "nat", "-A", "PREROUTING", "-i", "wan", "-d", router.wan_address, "-p", proto,
                "--dport", ports, "-j", "DNAT", "--to-destination", to.address)
        self.sh(router.ns, *ipt, "-A", "FORWARD", "-i", "wan", "-o", "lan", "-d", to.address, "-p", proto,
                "--dport", ports, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT")

    def nat_rules(self, router: Router) -> str:
        """``iptables-save`` of the router, for reports."""
        return self.sh(router.ns, "iptables-save").stdout

    # -- processes ---------------------------------------------------------------------------------

    def popen(self, ns: str, argv: Sequence[str], *, env: Mapping[str, str], stdout: IO[Any] | int,
              stderr: IO[Any] | int, cwd: Path | None = None) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``ns``; ``close`` stops it if it still runs. ``ip netns exec`` execs
        the command, so the Popen's pid is the command's own."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=dict(env), stdout=stdout, stderr=stderr,
                                stdin=subprocess.DEVNULL, cwd=cwd)
        self.processes.append(proc)
        return proc

    # -- teardown ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process the lab started (SIGTERM, then SIGKILL), then delete every namespace."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        errors = []
        for ns in reversed(self.namespaces):
            _kill_namespace_processes(ns)  # children the lab did not start itself (coturn)
            done = _run(["ip", "netns", "del", ns], check=False)
            if done.returncode != 0:
                errors.append(f"{ns}: {done.stderr.strip()}")
        self.namespaces.clear()
        if errors:
            raise RuntimeError("could not delete namespaces: " + "; ".join(errors))
