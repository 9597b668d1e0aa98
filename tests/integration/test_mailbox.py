"""The mailbox: X sends to Y through the appliance A while Y is offline. A keeps only the sealed
bundle (never the plaintext), keeps it across its own restart, and hands it to Y when Y is back;
Y opens and verifies it, and only then does A forget it. Quotas refuse before bytes move."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from tests.integration.harness import Daemon, api_error, free_port, sha256_of

pytestmark = pytest.mark.integration

KiB = 1024


def _pair(a: Daemon, b: Daemon) -> tuple[str, str]:
    """b joins a's pairing offer; returns (a's device id, b's device id)."""
    code = a.api("POST", "/api/v1/pair", json={}).json()["code"]
    joined = b.api("POST", "/api/v1/pair", json={"code": code, "signal": a.signal_url})
    assert joined.status_code == 200, joined.text
    return joined.json()["id"], b.api("GET", "/api/v1/identity").json()["device_id"]


def _wait(predicate, what: str, daemons: tuple[Daemon, ...], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(d.log_tail(30) for d in daemons))
        time.sleep(0.2)


def _inbox(daemon: Daemon) -> dict[str, str]:
    return {str(p.relative_to(daemon.inbox)): sha256_of(p) for p in daemon.inbox.rglob("*")
            if p.is_file() and ".doorstep" not in p.parts}


def _mailbox(daemon: Daemon) -> list[dict]:
    response = daemon.api("GET", "/api/v1/mailbox")
    assert response.status_code == 200, response.text
    return response.json()


def _stored_bytes(daemon: Daemon) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((daemon.state_dir / "mailbox").rglob("*")) if p.is_file())


def _send(x: Daemon, files: dict[str, bytes], *, to: str, via: str, key: str | None = None):
    data = {"to": to, "via": via, **({"key": key} if key else {})}
    return x.api("POST", "/api/v1/mailbox", data=data,
                 files=[("file", (name, content, "application/octet-stream")) for name, content in files.items()])


def test_offline_device_gets_the_sealed_bundle_after_an_appliance_restart(start_daemon) -> None:
    a = start_daemon("a", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}", DOORSTEP_MAILBOX_RETRY="2")
    y = start_daemon("y", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}")
    x = start_daemon("x", DOORSTEP_MAILBOX_RETRY="2")
    a_id, x_id = _pair(a, x)
    _, y_id = _pair(a, y)
    _pair(y, x)  # x pins y's key itself: it need not take the appliance's word for it
    assert y.stop() == 0, y.log_tail()

    secret_text = b"Minutes of the board meeting: the merger is off. " * 3000
    random_part = os.urandom(1024 * KiB + 17)
    files = {"minutes.txt": secret_text, "scan.bin": random_part, "empty.txt": b""}
    sent = _send(x, files, to=y_id, via=a_id)
    assert sent.status_code == 202, sent.text
    assert sent.json()["to"] == y_id and sent.json()["files"] == 3

    _wait(lambda: _mailbox(x) == [], "x to leave the bundle with a", (x, a))
    [held] = _mailbox(a)
    assert (held["kind"], held["from"], held["to"], held["files"]) == ("held", x_id, y_id, 3)
    assert held["size"] > len(secret_text) + len(random_part)
    assert "minutes" not in str(held) and "scan" not in str(held), "the appliance lists no names"

    stored = _stored_bytes(a)
    assert len(stored) >= held["size"]
    for plain in (secret_text[:64], random_part[:64], random_part[-64:], b"minutes.txt", b"scan.bin"):
        assert plain not in stored, "the appliance's copy is not the plaintext"
    for digest in (hashlib.sha256(secret_text).hexdigest(), hashlib.sha256(random_part).hexdigest()):
        assert digest.encode() not in stored
    assert _inbox(a) == {}, "nothing in the appliance's inbox"

    assert a.stop() == 0, a.log_tail()
    a.start()
    assert [b["id"] for b in _mailbox(a)] == [held["id"]], "kept across the appliance's restart"

    y.start()
    want = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    _wait(lambda: _inbox(y) == want, "y's inbox to hold the opened files", (a, y), timeout=90)
    _wait(lambda: _mailbox(a) == [], "a to forget the delivered bundle", (a, y))
    assert not [p for p in (a.state_dir / "mailbox").rglob("*") if p.is_file()], "a's copy is deleted"
    assert not [p for p in (y.state_dir / "mailbox").rglob("*") if p.is_file()], "y's sealed copy is gone"
    received = [t for t in y.api("GET", "/api/v1/transfers").json() if t["direction"] == "receive"]
    assert [t["state"] for t in received] == ["done"]


def test_quota_refusal_and_the_appliances_word_for_a_key(start_daemon) -> None:
    a = start_daemon("a", DOORSTEP_MAILBOX_PER_SENDER="100KiB", DOORSTEP_MAILBOX_RETRY="2")
    y = start_daemon("y")
    x = start_daemon("x", DOORSTEP_MAILBOX_RETRY="2")
    a_id, _ = _pair(a, x)
    _, y_id = _pair(a, y)

    unknown = _send(x, {"a.txt": b"hello"}, to=y_id, via=a_id)
    assert "pair with it, or give its public key" in api_error(unknown, 409, "unknown_recipient")

    y_key = a.api("GET", f"/api/v1/devices/{y_id}").json()["public_key"]  # the appliance's word
    big = _send(x, {"big.bin": os.urandom(300 * KiB)}, to=y_id, via=a_id, key=y_key)
    assert big.status_code == 202, big.text
    _wait(lambda: (_mailbox(x)[0]["error"] or "").find("quota") >= 0, "a to refuse over its quota", (x, a))
    assert _mailbox(a) == [], "nothing kept"
    assert not [p for p in (a.state_dir / "mailbox").rglob("*") if p.is_file()], "no byte of it stored"
    assert x.api("DELETE", f"/api/v1/mailbox/{big.json()['id']}").status_code == 204
    assert _mailbox(x) == []
    assert x.api("DELETE", f"/api/v1/mailbox/{big.json()['id']}").status_code == 404

    small = os.urandom(10 * KiB)
    assert _send(x, {"small.bin": small}, to=y_id, via=a_id, key=y_key).status_code == 202
    _wait(lambda: _inbox(y) == {"small.bin": hashlib.sha256(small).hexdigest()}, "delivery through a", (x, a, y))
    _wait(lambda: _mailbox(a) == [] and _mailbox(x) == [], "both mailboxes to empty", (x, a, y))
