"""Two real daemons pair with a code, survive restarts, and then move files with no code at all;
a revoked device is refused before any byte lands."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, free_port, random_file, run_cli, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _share(daemon: Daemon, path: Path) -> dict:
    response = daemon.api("PUT", f"/api/v1/shares/{path.name}", content=path.read_bytes())
    assert response.status_code in (200, 201), response.text
    return response.json()


def _wait(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _inbox_files(daemon: Daemon) -> dict[str, str]:
    return {str(p.relative_to(daemon.inbox)): sha256_of(p) for p in daemon.inbox.rglob("*")
            if p.is_file() and ".doorstep" not in p.parts}


def test_pair_restart_push_without_code_then_revoke(start_daemon, tmp_path: Path) -> None:
    # A keeps a stable signaling port, as an installed appliance does: B pinned its address.
    a = start_daemon("a", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}")
    b = start_daemon("b")
    for daemon in (a, b):
        assert (daemon.state_dir / "identity.key").stat().st_mode & 0o777 == 0o600

    offer = a.api("POST", "/api/v1/pair", json={})
    assert offer.status_code == 200, offer.text
    code = offer.json()["code"]
    joined = b.api("POST", "/api/v1/pair", json={"code": code, "signal": a.signal_url})
    assert joined.status_code == 200, joined.text + b.log_tail()
    a_seen_by_b = joined.json()
    assert a_seen_by_b["id"] == offer.json()["device_id"] and a_seen_by_b["status"] == "approved"

    again = b.api("POST", "/api/v1/pair", json={"code": code, "signal": a.signal_url})
    assert again.status_code == 404, "a pairing code works once"

    [b_seen_by_a] = a.api("GET", "/api/v1/devices").json()
    assert b_seen_by_a["status"] == "approved"
    assert b_seen_by_a["safety_words"] == a_seen_by_b["safety_words"] and len(a_seen_by_b["safety_words"]) == 5

    assert b_seen_by_a["signal_url"] == b.signal_url, "the joiner told the offerer where to reach it"
    for seer, seen_id in ((a, b_seen_by_a["id"]), (b, a_seen_by_b["id"])):
        _wait(lambda: seer.api("GET", f"/api/v1/devices/{seen_id}").json()["presence"]["online"] is True,
              "presence of the paired device")

    for daemon in (a, b):
        assert daemon.stop() == 0, daemon.log_tail()
        daemon.start()

    source = tmp_path / "holiday.bin"
    digest = random_file(source, 3 * MiB + 5)
    share = _share(b, source)
    pushed = b.api("POST", f"/api/v1/shares/{share['share_id']}/push", json={"device": a_seen_by_b["id"]})
    assert pushed.status_code == 202, pushed.text
    sent = b.wait_transfer(pushed.json()["id"], lambda t: t["state"] == "done")
    assert sent["bytes_done"] == 3 * MiB + 5
    assert _inbox_files(a) == {"holiday.bin": digest}, "delivered straight into the inbox, no code"

    revoked = a.api("PATCH", f"/api/v1/devices/{b_seen_by_a['id']}", json={"status": "revoked"})
    assert revoked.status_code == 200, revoked.text
    second = tmp_path / "second.bin"
    random_file(second, 1 * MiB)
    share = _share(b, second)
    pushed = b.api("POST", f"/api/v1/shares/{share['share_id']}/push", json={"device": a_seen_by_b["id"]})
    failed = b.wait_transfer(pushed.json()["id"], lambda t: t["state"] == "failed", timeout=60, allow_failure=True)
    assert "could not authenticate the peer" in failed["error"]
    assert failed["bytes_done"] == 0
    assert _inbox_files(a) == {"holiday.bin": digest}, "nothing from a revoked device lands"
    refused = [t for t in a.api("GET", "/api/v1/transfers").json() if t["direction"] == "receive"]
    assert [t["state"] for t in refused] == ["done", "failed"]


def test_wrong_pairing_code_and_bad_requests(start_daemon) -> None:
    a = start_daemon("a")
    response = a.api("POST", "/api/v1/pair", json={"code": "12345"})
    assert response.status_code == 400
    response = a.api("POST", "/api/v1/pair", json={"code": "123456", "signal": a.signal_url, "extra": 1})
    assert response.status_code == 400
    response = a.api("POST", "/api/v1/pair", json={"code": "000000", "signal": a.signal_url})
    assert response.status_code == 404 and response.json()["error"] == "join_failed"
    response = a.api("POST", "/api/v1/shares/nope-nope-nope-nope/push", json={"device": "x"})
    assert response.status_code == 404


def _cli(daemon: Daemon, *args: str):
    return run_cli(*args, timeout=90, DOORSTEP_STATE_DIR=str(daemon.state_dir),
                   DOORSTEP_HTTP_LISTEN=f"127.0.0.1:{daemon.runtime['http_port']}")


def test_cli_pair_offer_and_join_show_matching_safety_words(start_daemon) -> None:
    a, b = start_daemon("a"), start_daemon("b")
    offered = _cli(a, "pair", "--json")
    assert offered.returncode == 0, offered.stderr
    offer = json.loads(offered.stdout)
    missing = _cli(b, "pair", offer["code"])
    assert missing.returncode == 1 and "--signal" in missing.stderr
    joined = _cli(b, "pair", offer["code"], "--signal", offer["signal"])
    assert joined.returncode == 0, joined.stderr + a.log_tail()
    words = joined.stdout.split("safety words (must match the other device): ")[1].split()
    assert len(words) == 5
    listed = json.loads(_cli(a, "peers", "--json").stdout)
    assert [d["safety_words"] for d in listed] == [words]
    assert _cli(b, "pair", offer["code"], "--signal", offer["signal"]).returncode == 1, "single use"


def _pair(a: Daemon, b: Daemon) -> tuple[str, str]:
    """Pair b with a (b joins a's offer); returns (a's id as b knows it, b's id as a knows it)."""
    code = a.api("POST", "/api/v1/pair", json={}).json()["code"]
    joined = b.api("POST", "/api/v1/pair", json={"code": code, "signal": a.signal_url})
    assert joined.status_code == 200, joined.text
    [b_seen_by_a] = a.api("GET", "/api/v1/devices").json()
    return joined.json()["id"], b_seen_by_a["id"]


def _push(b: Daemon, a_id: str, path: Path) -> dict:
    share = _share(b, path)
    pushed = b.api("POST", f"/api/v1/shares/{share['share_id']}/push", json={"device": a_id})
    assert pushed.status_code == 202, pushed.text
    return b.wait_transfer(pushed.json()["id"], lambda t: t["state"] in ("done", "failed"), allow_failure=True)


def test_push_from_an_unpaired_device_waits_for_approval(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a", DOORSTEP_INBOX_PER_DEVICE="true")
    b = start_daemon("b")
    a_id, b_id = _pair(a, b)
    assert a.api("DELETE", f"/api/v1/devices/{b_id}").status_code == 204  # a forgets b

    source = tmp_path / "unasked.bin"
    digest = random_file(source, 2 * MiB + 1)
    assert _push(b, a_id, source)["state"] == "done", "received and verified by a, but held"
    held = [t for t in a.api("GET", "/api/v1/transfers").json() if t["direction"] == "receive"]
    assert [t["state"] for t in held] == ["held"]
    assert _inbox_files(a) == {}, "nothing in the inbox before approval"
    [pending] = a.api("GET", "/api/v1/devices").json()
    assert pending["id"] == b_id and pending["status"] == "pending"

    assert a.api("PATCH", f"/api/v1/devices/{b_id}", json={"status": "approved", "name": "bee"}).status_code == 200
    a.wait_transfer(held[0]["id"], lambda t: t["state"] == "done", timeout=30)
    assert _inbox_files(a) == {"bee/unasked.bin": digest}, "placed after approval, in the device's folder"

    second = tmp_path / "second.bin"
    digest2 = random_file(second, 1000)
    assert _push(b, a_id, second)["state"] == "done"
    assert _inbox_files(a) == {"bee/unasked.bin": digest, "bee/second.bin": digest2}, "now straight in"


def test_refused_and_discarded_when_the_owner_says_no(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a")
    b = start_daemon("b")
    a_id, b_id = _pair(a, b)
    a.api("DELETE", f"/api/v1/devices/{b_id}")
    source = tmp_path / "spam.bin"
    random_file(source, 1 * MiB)
    _push(b, a_id, source)
    [held] = [t for t in a.api("GET", "/api/v1/transfers").json() if t["direction"] == "receive"]
    assert held["state"] == "held"
    assert a.api("PATCH", f"/api/v1/devices/{b_id}", json={"status": "revoked"}).status_code == 200
    a.wait_transfer(held["id"], lambda t: t["state"] == "failed", timeout=30, allow_failure=True)
    assert _inbox_files(a) == {}
    assert not list((a.inbox / ".doorstep" / "partial").iterdir()), "the held bytes are gone"
    again = _push(b, a_id, source)
    assert again["state"] == "failed" and "could not authenticate the peer" in again["error"]


def test_unpaired_refuse_policy(start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a", DOORSTEP_INBOX_UNPAIRED="refuse")
    b = start_daemon("b")
    a_id, b_id = _pair(a, b)
    a.api("DELETE", f"/api/v1/devices/{b_id}")
    source = tmp_path / "nope.bin"
    random_file(source, 1000)
    refused = _push(b, a_id, source)
    assert refused["state"] == "failed" and refused["bytes_done"] == 0
    assert _inbox_files(a) == {}
    [listed] = a.api("GET", "/api/v1/devices").json()
    assert listed["status"] == "pending", "listed so that the owner can approve it"
