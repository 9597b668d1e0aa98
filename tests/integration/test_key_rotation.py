"""Key rotation and revocation between real daemons: a device rotates its key and its paired
devices follow it with no pairing again, while whoever kept the old key is refused; a device the
appliance revoked is refused by the appliance's other devices too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, free_port, random_file, run_cli, sha256_of
from tests.integration.test_pairing import _inbox_files, _push

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _key_of(daemon: Daemon) -> str:
    return daemon.api("GET", "/api/v1/identity").json()["public_key"]


def _pair(a: Daemon, b: Daemon) -> tuple[str, str]:
    """Pair b with a (b joins a's offer); returns (a's device id, b's device id)."""
    code = a.api("POST", "/api/v1/pair", json={}).json()["code"]
    joined = b.api("POST", "/api/v1/pair", json={"code": code, "signal": a.signal_url})
    assert joined.status_code == 200, joined.text
    return joined.json()["id"], b.api("GET", "/api/v1/identity").json()["device_id"]


def test_a_rotated_key_is_followed_without_pairing_again_and_the_old_key_is_refused(
        start_daemon, tmp_path: Path) -> None:
    a = start_daemon("a", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}")
    b = start_daemon("b")
    a_id, b_id = _pair(a, b)
    before = b.api("GET", "/api/v1/identity").json()
    assert before["device_id"] == b_id and before["rotations"] == 0

    # Someone copies b's state before the rotation (a stolen backup, with the old key).
    assert b.stop() == 0, b.log_tail()
    shutil.copytree(b.state_dir, tmp_path / "thief")
    b.start()
    thief = start_daemon("thief")

    rotated = b.api("POST", "/api/v1/identity/rotate")
    assert rotated.status_code == 200, rotated.text
    after = rotated.json()
    assert after["device_id"] == b_id and after["rotations"] == 1 and after["public_key"] != before["public_key"]
    assert (b.state_dir / "identity.rotations").stat().st_mode & 0o777 == 0o600

    first = tmp_path / "after rotation.bin"
    digest = random_file(first, 2 * MiB + 3)
    sent = _push(b, a_id, first)
    assert sent["state"] == "done", sent
    assert _inbox_files(a) == {"after rotation.bin": digest}, "the new key was followed: no pairing again"
    seen = a.api("GET", f"/api/v1/devices/{b_id}").json()
    assert seen["status"] == "approved" and seen["public_key"] == after["public_key"]

    second = tmp_path / "from the thief.bin"
    random_file(second, 1 * MiB)
    refused = _push(thief, a_id, second)
    assert refused["state"] == "failed" and "could not authenticate the peer" in refused["error"], refused
    assert _inbox_files(a) == {"after rotation.bin": digest}, "nothing signed by the old key lands"
    assert a.api("GET", f"/api/v1/devices/{b_id}").json()["public_key"] == after["public_key"]

    # The rotation survives a restart of the rotated device, and the CLI shows it.
    assert b.stop() == 0, b.log_tail()
    b.start()
    assert _key_of(b) == after["public_key"]
    shown = run_cli("identity", "--json", timeout=30, DOORSTEP_STATE_DIR=str(b.state_dir),
                    DOORSTEP_HTTP_LISTEN=f"127.0.0.1:{b.runtime['http_port']}")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["rotations"] == 1


def test_a_device_revoked_on_the_appliance_is_refused_by_its_other_devices(start_daemon, tmp_path: Path) -> None:
    appliance = start_daemon("appliance", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}")
    laptop = start_daemon("laptop", DOORSTEP_SIGNAL_LISTEN=f"127.0.0.1:{free_port()}")
    phone = start_daemon("phone")
    _, laptop_id = _pair(appliance, laptop)
    _, phone_id = _pair(appliance, phone)
    assert _pair(laptop, phone) == (laptop_id, phone_id), "a device id names the device everywhere"

    revoked = appliance.api("PATCH", f"/api/v1/devices/{phone_id}", json={"status": "revoked"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert laptop.api("GET", f"/api/v1/devices/{phone_id}").json()["status"] == "approved"

    note = tmp_path / "note.txt"
    note.write_bytes(b"the phone is lost")
    assert _push(appliance, laptop_id, note)["state"] == "done"
    phone_seen = laptop.api("GET", f"/api/v1/devices/{phone_id}").json()
    assert phone_seen["status"] == "revoked", "the appliance's revocation reached the laptop"
    assert phone_seen["public_key"] == _key_of(phone)

    stolen = tmp_path / "from the lost phone.bin"
    random_file(stolen, 1 * MiB)
    refused = _push(phone, laptop_id, stolen)
    assert refused["state"] == "failed" and "could not authenticate the peer" in refused["error"], refused
    assert _inbox_files(laptop) == {"note.txt": sha256_of(note)}, "nothing from the revoked phone lands"
