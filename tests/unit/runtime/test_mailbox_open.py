"""Opening a bundle for this device: every file verified before any is placed; a tampered or
foreign bundle places nothing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.crypto import DeviceIdentity
from daemon.crypto.mailbox_seal import BundleError, BundleSealer
from daemon.runtime.mailbox import MailboxService, bundle_paths
from daemon.state.mailbox import StoredFile
from daemon.storage import Inbox

ME = DeviceIdentity.generate()
SENDER = DeviceIdentity.generate()


def _service(tmp_path: Path) -> MailboxService:
    service = MailboxService.__new__(MailboxService)  # only what opening uses
    service._area = Inbox(tmp_path / "held", file_mode=0o600)
    service._inbox = Inbox(tmp_path / "inbox")
    service._identity = lambda: ME
    service._folder_for = lambda _key: ""
    return service


def _store(service: MailboxService, contents: dict[str, bytes], *, to=ME, tamper: int | None = None):
    sealer = BundleSealer(to.public_key, sender_seed=SENDER.seed)
    sealed = []
    for data in contents.values():
        f = sealer.file()
        sealed.append(f.push(data) + f.finish())
    blobs = [sealer.manifest(list(contents)), *sealed]
    if tamper is not None:
        blob = bytearray(blobs[tamper])
        blob[-5] ^= 1
        blobs[tamper] = bytes(blob)
    stored = []
    for path, blob in zip(bundle_paths(ME.device_id, sealer.bundle_id, len(contents)), blobs):
        target = service._area.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        stored.append(StoredFile(path, len(blob), hashlib.sha256(blob).hexdigest(), path))
    return tuple(stored)


def _placed(service: MailboxService) -> list[str]:
    return sorted(e.relpath for e in service._inbox.files())


def test_a_good_bundle_is_placed_never_overwriting(tmp_path: Path) -> None:
    service = _service(tmp_path)
    (tmp_path / "inbox" / "a.txt").write_bytes(b"already here")
    contents = {"a.txt": b"hello", "sub/b.bin": os.urandom(200_000), "../evil": b"x"}
    placed = service._open_sync("t1", _store(service, contents))
    assert [final for _entry, final in placed] == ["a (1).txt", "sub/b.bin", "evil"]
    assert (tmp_path / "inbox" / "sub" / "b.bin").read_bytes() == contents["sub/b.bin"]
    assert (tmp_path / "inbox" / "a.txt").read_bytes() == b"already here"


@pytest.mark.parametrize("tamper", [0, 1, 2])
def test_a_tampered_bundle_places_nothing(tmp_path: Path, tamper: int) -> None:
    service = _service(tmp_path)
    with pytest.raises(BundleError):
        service._open_sync("t1", _store(service, {"a.txt": b"hello" * 1000, "b.txt": b"world" * 1000},
                                        tamper=tamper))
    assert _placed(service) == []
    assert service._inbox.partial_transfers() == []


def test_a_bundle_for_another_key_places_nothing(tmp_path: Path) -> None:
    service = _service(tmp_path)
    with pytest.raises(BundleError, match="another device's key"):
        service._open_sync("t1", _store(service, {"a.txt": b"hello"}, to=DeviceIdentity.generate()))
    assert _placed(service) == []
