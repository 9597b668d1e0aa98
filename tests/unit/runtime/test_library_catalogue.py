"""The library catalogue on a real folder with the real watcher: hashed once settled, cached by
version (across restarts and renames), updated live on changes, deletes and renames, and never
listing what it must not (hidden, temporary, symlinks, names the protocol cannot carry)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from daemon.facade import ApplianceError
from daemon.runtime.devices import DeviceBook
from daemon.runtime.library import LibraryService
from daemon.state import StateDB
from daemon.state.library import LibraryStore

SETTLE = 0.1


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def state(tmp_path: Path):
    db = StateDB(tmp_path / "state.db")
    store = LibraryStore(tmp_path / "state.db")
    devices = DeviceBook(db)
    device = devices.pin(os.urandom(32), "peer", signal_url="ws://127.0.0.1:1/")
    yield store, devices, device.device_id
    store.close()
    db.close()


@asynccontextmanager
async def _service(store: LibraryStore, devices: DeviceBook) -> AsyncIterator[LibraryService]:
    service = LibraryService(store=store, devices=devices, credentials=lambda: None, link=lambda: None,  # type: ignore[arg-type,return-value]
                             settle=SETTLE, rescan_every=30.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        yield service
        nursery.cancel_scope.cancel()


async def _until(store: LibraryStore, name: str, expected: dict[str, str], timeout: float = 10.0) -> None:
    with trio.move_on_after(timeout):
        while {e.path: e.sha256 for e in store.entries(name)} != expected:
            await trio.sleep(0.05)
    assert {e.path: e.sha256 for e in store.entries(name)} == expected


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return _sha(data)


async def test_catalogue_follows_the_folder_live(state, tmp_path: Path) -> None:
    store, devices, device_id = state
    folder = tmp_path / "lib"
    expected = {"a.txt": _write(folder / "a.txt", b"alpha"), "sub/b.bin": _write(folder / "sub" / "b.bin", os.urandom(70000)),
                "empty": _write(folder / "empty", b"")}
    async with _service(store, devices) as service:
        described = await service.publish("lib", str(folder), [device_id])
        assert described["devices"] == [device_id]
        await _until(store, "lib", expected)
        assert service.hashed == 3
        entry = store.entry("lib", "sub/b.bin")
        assert entry is not None and entry.size == 70000

        expected["a.txt"] = _write(folder / "a.txt", b"alpha, longer")  # changed in place
        expected["new/deep/c.txt"] = _write(folder / "new" / "deep" / "c.txt", b"c")  # a new folder
        await _until(store, "lib", expected)

        os.rename(folder / "sub" / "b.bin", folder / "moved.bin")  # renamed: same bytes, not read again
        expected["moved.bin"] = expected.pop("sub/b.bin")
        hashed = service.hashed
        (folder / "empty").unlink()
        del expected["empty"]
        await _until(store, "lib", expected)
        assert service.hashed == hashed, "a rename reuses the cached hash"

        import shutil
        shutil.rmtree(folder / "new")  # a whole folder goes
        del expected["new/deep/c.txt"]
        await _until(store, "lib", expected)
        assert service.library("lib")["files"] == len(expected)

        await service.unpublish("lib")
        assert store.entries("lib") == [] and service.libraries() == []


async def test_unchanged_files_are_not_hashed_again_after_a_restart(state, tmp_path: Path) -> None:
    store, devices, device_id = state
    folder = tmp_path / "lib"
    expected = {f"f{i}": _write(folder / f"f{i}", os.urandom(1000 + i)) for i in range(5)}
    async with _service(store, devices) as service:
        await service.publish("lib", str(folder), [device_id])
        await _until(store, "lib", expected)
        assert service.hashed == 5
    (folder / "f0").unlink()  # while the daemon is down
    del expected["f0"]
    expected["f1"] = _write(folder / "f1", b"rewritten")
    async with _service(store, devices) as service:
        assert "f0" not in {e.path for e in store.entries("lib")}, "reconciled at start"
        await _until(store, "lib", expected)
        await trio.sleep(SETTLE * 5)
        assert service.hashed == 1, "only the file that changed is read again"


async def test_hostile_names_are_never_listed(state, tmp_path: Path) -> None:
    store, devices, device_id = state
    folder = tmp_path / "lib"
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    expected = {"ok.txt": _write(folder / "ok.txt", b"ok")}
    _write(folder / "line\nbreak.txt", b"x")
    _write(folder / "back\\slash.txt", b"x")
    _write(folder / "ctrl\x1b.txt", b"x")
    _write(folder / ".hidden", b"x")
    _write(folder / ".git" / "config", b"x")
    _write(folder / "download.part", b"x")
    os.symlink(outside, folder / "link.txt")
    os.symlink(tmp_path, folder / "linkdir")
    os.mkfifo(folder / "fifo")
    async with _service(store, devices) as service:
        await service.publish("lib", str(folder), [device_id])
        await _until(store, "lib", expected)
        await trio.sleep(SETTLE * 5)
        assert {e.path for e in store.entries("lib")} == {"ok.txt"}


async def test_publish_validates(state, tmp_path: Path) -> None:
    store, devices, device_id = state
    (tmp_path / "lib").mkdir()
    async with _service(store, devices) as service:
        for name, path, devs, code in [
            ("../x", str(tmp_path / "lib"), [device_id], "bad_library"),
            ("ok", "relative/path", [device_id], "bad_library"),
            ("ok", str(tmp_path / "missing"), [device_id], "not_found"),
            ("ok", str(tmp_path / "lib"), [], "bad_library"),
            ("ok", str(tmp_path / "lib"), ["nobody"], "unknown_device"),
        ]:
            with pytest.raises(ApplianceError) as caught:
                await service.publish(name, path, devs)
            assert caught.value.code == code, (name, path, devs)
        assert service.libraries() == []
