"""Journey J5, the NAT matrix: real daemon and CLI processes in namespaces behind iptables NATs.

The appliance (signaling + embedded STUN, + coturn when TURN is on) sits on the lab's internet at
45.1.0.1, or on a home LAN behind port forwards. Each scenario moves one random file, checks its SHA-256, and checks the ICE route both CLI
peers logged (``connected via <route> (<local>/<remote>)``, from ``daemon.peer``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.harness import random_file

from .harness import (
    RELAY_PORTS, SIGNAL_PORT, STUN_PORT, TURN_PORT, Appliance, CliRun, connected_routes, record_result, verify,
)
from .lab import Lab, Nat, Node

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

MiB = 1024 * 1024
SIZE = 16 * MiB
TRANSFER_TIMEOUT = 60.0
FAIL_WITHIN = 45.0  # the connect timeout is 30 s; one attempt, then a clear error


def _appliance(lab: Lab, tmp_path: Path, *, turn: bool) -> Appliance:
    if turn:
        require_binary("turnserver")
    return Appliance(lab, tmp_path / "appliance", turn=turn).start()


def _send_and_receive(lab: Lab, appliance: Appliance, sender: Node, receiver: Node, tmp_path: Path,
                      scenario: str, expected_route: str) -> None:
    """``doorstep send`` on ``sender``, ``doorstep receive`` on ``receiver``; both must log
    ``expected_route``, the file must arrive verified. Records the measurements."""
    source = tmp_path / "payload.bin"
    digest = random_file(source, SIZE)
    send = CliRun(lab, sender, tmp_path / "cli", "send", ["send", str(source), "--signal", appliance.signal_url])
    code = send.wait_for_code()
    out = tmp_path / "received"
    receive = CliRun(lab, receiver, tmp_path / "cli", "receive",
                     ["receive", code, "--out", str(out), "--signal", appliance.signal_url])
    assert receive.wait(TRANSFER_TIMEOUT) == 0, receive.stderr[-4000:] + "\n--- sender:\n" + send.stderr[-3000:]
    assert send.wait(15) == 0, send.stderr[-4000:]
    assert verify(out / source.name, digest)
    assert sorted(p.name for p in out.iterdir()) == [source.name], "nothing else left in the output folder"
    routes = {"send": send.routes(), "receive": receive.routes()}
    assert all(len(r) == 1 for r in routes.values()), f"one connection each: {routes}"
    seen = {side: r[0].route for side, r in routes.items()}
    assert seen == {"send": expected_route, "receive": expected_route}, routes
    assert receive.ended is not None
    record_result(scenario, route=routes["receive"][0], started=receive.started, ended=receive.ended, size=SIZE,
                  digest_ok=True, extra={"sender_detail": routes["send"][0].detail})


def test_two_hosts_on_one_lan_connect_host_to_host(lab: Lab, tmp_path: Path) -> None:
    """Same LAN behind one NAT: the private host candidates pair directly."""
    router = lab.router(Nat.CONE, lan="192.168.1.0/24")
    sender, receiver = lab.host(router), lab.host(router)
    appliance = _appliance(lab, tmp_path, turn=False)
    _send_and_receive(lab, appliance, sender, receiver, tmp_path, "lan", "host")


def test_both_behind_cone_nats_connect_server_reflexive(lab: Lab, tmp_path: Path) -> None:
    """Two cone NATs: each peer's STUN-learned public mapping works for the other peer too."""
    sender = lab.host(lab.router(Nat.CONE))
    receiver = lab.host(lab.router(Nat.CONE))
    appliance = _appliance(lab, tmp_path, turn=False)
    _send_and_receive(lab, appliance, sender, receiver, tmp_path, "cone-cone", "srflx")


def test_symmetric_nat_is_relayed_by_the_appliance_turn(lab: Lab, tmp_path: Path) -> None:
    """A symmetric NAT facing a port-restricted cone: no direct pair can work, the appliance's coturn
    relays."""
    sender = lab.host(lab.router(Nat.SYMMETRIC))
    receiver = lab.host(lab.router(Nat.CONE))
    appliance = _appliance(lab, tmp_path, turn=True)
    _send_and_receive(lab, appliance, sender, receiver, tmp_path, "symmetric-cone+turn", "relay")
    assert appliance.stop() == 0, appliance.log_tail()


def test_symmetric_nat_without_turn_fails_clearly(lab: Lab, tmp_path: Path) -> None:
    """Same NATs, TURN off: the receiver gives up within a bounded time, says why, and leaves no file."""
    sender = lab.host(lab.router(Nat.SYMMETRIC))
    receiver = lab.host(lab.router(Nat.CONE))
    appliance = _appliance(lab, tmp_path, turn=False)
    source = tmp_path / "payload.bin"
    random_file(source, 1 * MiB)
    send = CliRun(lab, sender, tmp_path / "cli", "send", ["send", str(source), "--signal", appliance.signal_url])
    code = send.wait_for_code()
    out = tmp_path / "received"
    receive = CliRun(lab, receiver, tmp_path / "cli", "receive",
                     ["receive", code, "--out", str(out), "--signal", appliance.signal_url])
    started = time.monotonic()
    returncode = receive.wait(FAIL_WITHIN)  # an AssertionError if it still runs then
    elapsed = time.monotonic() - started
    assert returncode == 1, receive.stderr[-4000:]
    last = receive.stderr.strip().splitlines()[-1]
    assert last.startswith("doorstep: ") and re.search(r"no ICE candidate pair|could not (connect|reach)", last), last
    assert not receive.routes() and not send.routes()
    assert not out.exists() or not any(p for p in out.rglob("*") if p.is_file()), "no file, not even a partial"
    print("netns-result", {"scenario": "symmetric-cone, no turn", "failed_after_s": round(elapsed, 1),
                           "message": last})


def test_appliance_share_reaches_a_receiver_behind_a_symmetric_nat(lab: Lab, tmp_path: Path) -> None:
    """J2 across the internet: the appliance has a public address, so even a symmetric NAT reaches it
    directly; the appliance learns the receiver's mapping as a peer-reflexive candidate."""
    receiver = lab.host(lab.router(Nat.SYMMETRIC))
    appliance = _appliance(lab, tmp_path, turn=False)
    source = tmp_path / "report.bin"
    digest = random_file(source, SIZE)
    share = appliance.share(source)
    out = tmp_path / "received"
    receive = CliRun(lab, receiver, tmp_path / "cli", "receive",
                     ["receive", share["code"], "--out", str(out), "--signal", appliance.signal_url])
    assert receive.wait(TRANSFER_TIMEOUT) == 0, receive.stderr[-4000:] + "\n--- appliance:\n" + appliance.log_tail()
    assert verify(out / source.name, digest)
    (cli_route,) = receive.routes()
    assert cli_route.detail == "host/host", "the appliance's public host candidate is reachable as is"
    daemon_routes = [r for r in connected_routes(appliance.log()) if r.at >= receive.started - 1]
    assert [r.detail for r in daemon_routes] == ["host/prflx"], daemon_routes
    assert receive.ended is not None
    record_result("appliance-symmetric", route=daemon_routes[0], started=receive.started, ended=receive.ended,
                  size=SIZE, digest_ok=True, extra={"cli_detail": cli_route.detail})
    assert appliance.stop() == 0, appliance.log_tail()


def test_appliance_behind_a_home_nat_with_the_documented_forwards(lab: Lab, tmp_path: Path) -> None:
    """docs/connectivity.md's router setup: the appliance on a home LAN behind a cone NAT that
    forwards only signaling, STUN, TURN and the relay range to it (and does not hairpin);
    ``ice.public_host`` and ``turn.external_ip`` name the router's public address. A symmetric-NAT
    sender still reaches a cone-NAT receiver through the appliance's TURN."""
    require_binary("turnserver")
    home = lab.router(Nat.CONE, lan="192.168.50.0/24")
    box = lab.host(home)
    for proto, ports in (("tcp", str(SIGNAL_PORT)), ("udp", str(STUN_PORT)), ("udp", str(TURN_PORT)),
                         ("udp", RELAY_PORTS.replace("-", ":"))):
        lab.forward(home, proto, ports, box)
    appliance = Appliance(lab, tmp_path / "appliance", turn=True, node=box, public=home.wan_address).start()
    sender = lab.host(lab.router(Nat.SYMMETRIC))
    receiver = lab.host(lab.router(Nat.CONE))
    _send_and_receive(lab, appliance, sender, receiver, tmp_path, "home-appliance, symmetric-cone", "relay")
    assert appliance.stop() == 0, appliance.log_tail()
