"""The lab itself: NATs behave as named, and nothing in it can reach beyond it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from .harness import ROOT
from .lab import APPLIANCE_IP, PROBE_IP, Lab, Nat, list_namespaces

pytestmark = pytest.mark.netns

FIRST = f"{PROBE_IP}:40000"  # its third socket, the unsolicited sender, is PROBE_IP:40001
SECOND = f"{APPLIANCE_IP}:40002"


def _probe(lab: Lab, nat: Nat) -> tuple[str, dict]:
    router = lab.router(nat)
    host = lab.host(router)
    done = lab.sh(host.ns, sys.executable, "-m", "tests.netns.udp_probe", "client", FIRST, SECOND, timeout=20)
    return router.wan_address, json.loads(done.stdout)


@pytest.fixture
def probe_server(lab: Lab):
    server = lab.popen(lab.internet.ns, [sys.executable, "-m", "tests.netns.udp_probe", "server", FIRST, SECOND],
                       env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, cwd=ROOT)
    assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    return server


def test_cone_nat_keeps_one_mapping_for_every_destination(lab: Lab, probe_server) -> None:
    wan, seen = _probe(lab, Nat.CONE)
    assert seen["mapped"][0] == seen["mapped"][1] == f"{wan}:{seen['local_port']}", seen
    assert not seen["unsolicited_received"], "port-restricted: a stranger's datagram must not get in"


def test_symmetric_nat_maps_each_destination_to_a_new_port(lab: Lab, probe_server) -> None:
    wan, seen = _probe(lab, Nat.SYMMETRIC)
    first, second = seen["mapped"]
    assert first and second and first.startswith(wan + ":") and second.startswith(wan + ":"), seen
    assert first != second, f"symmetric NAT reused one mapping for two destinations: {seen}"
    assert not seen["unsolicited_received"]


_CONNECT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.connect((sys.argv[1], 53))
    s.send(b"x")
except OSError as exc:
    print(exc.errno)
else:
    print("sent")
"""


@pytest.mark.parametrize("target", ["8.8.8.8", "10.0.0.1", "192.168.1.1", "169.254.169.254"])
def test_nothing_in_the_lab_has_a_route_out(lab: Lab, target: str) -> None:
    """Security model: a packet aimed beyond the lab dies with "network unreachable" (ENETUNREACH)."""
    import errno

    router = lab.router(Nat.CONE)
    host = lab.host(router)
    for ns in (lab.internet.ns, router.ns):
        done = lab.sh(ns, sys.executable, "-c", _CONNECT, target)
        assert done.stdout.strip() == str(errno.ENETUNREACH), (ns, target, done.stdout, done.stderr)
    # A host's default route goes to its router, which has none: the router answers unreachable.
    routes = lab.ip(host.ns, "route", "get", target)
    assert f"via {router.lan.network_address + 1}" in routes
    assert "default" not in lab.ip(router.ns, "route", "show")
    assert "default" not in lab.ip(lab.internet.ns, "route", "show")


def test_close_deletes_every_namespace(lab_tools: None) -> None:
    lab = Lab()
    try:
        lab.host(lab.router(Nat.SYMMETRIC))
        sleeper = lab.popen(lab.internet.ns, ["sleep", "60"], env={}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
        names = list(lab.namespaces)
        assert len(names) == 3 and all(n in list_namespaces() for n in names)
    finally:
        started = time.monotonic()
        lab.close()
    assert sleeper.poll() is not None and time.monotonic() - started < 10
    assert not set(names) & set(list_namespaces())
