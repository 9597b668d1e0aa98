"""This install's device key on disk: created 0600 once, rotated with its chain, and a rotation cut
short by a crash loses nothing (the old key stays in force)."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import nacl.signing
import pytest

from daemon.crypto import BadKeyFile, DeviceIdentity, sign_rotation
from daemon.runtime.pairing import IDENTITY_FILE, ROTATIONS_FILE, ensure_identity, rotate_identity


def test_the_key_is_created_once_0600_and_loaded_back(tmp_path: Path) -> None:
    first = ensure_identity(tmp_path)
    assert stat.S_IMODE((tmp_path / IDENTITY_FILE).stat().st_mode) == 0o600
    assert ensure_identity(tmp_path).public_key == first.public_key


def test_a_rotation_keeps_the_device_id_and_survives_a_restart(tmp_path: Path) -> None:
    first = ensure_identity(tmp_path)
    second = rotate_identity(tmp_path, first)
    third = rotate_identity(tmp_path, second)
    loaded = ensure_identity(tmp_path)
    assert loaded.public_key == third.public_key != first.public_key
    assert loaded.device_id == first.device_id
    assert [r.old for r in loaded.rotations] == [first.public_key, second.public_key]
    assert stat.S_IMODE((tmp_path / ROTATIONS_FILE).stat().st_mode) == 0o600


def test_a_rotation_cut_between_chain_and_key_leaves_the_old_key_in_force(tmp_path: Path) -> None:
    first = ensure_identity(tmp_path)
    # The chain was written with a link to a new key, then the daemon died before storing that key.
    link = sign_rotation(nacl.signing.SigningKey(first.seed), DeviceIdentity.generate().public_key)
    encoded = {name: base64.b64encode(getattr(link, name)).decode() for name in ("old", "new", "signature")}
    (tmp_path / ROTATIONS_FILE).write_text(json.dumps([encoded]))
    loaded = ensure_identity(tmp_path)
    assert loaded.public_key == first.public_key and loaded.rotations == ()


def test_a_corrupt_chain_is_refused_not_replaced(tmp_path: Path) -> None:
    ensure_identity(tmp_path)
    (tmp_path / ROTATIONS_FILE).write_text("[{\"old\": 1}]")
    with pytest.raises(BadKeyFile):
        ensure_identity(tmp_path)
