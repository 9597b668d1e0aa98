"""The watcher on real files in tmp_path: inotify events plus rescans, through the stability stage."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from daemon.watch import Ready, is_ignored, watch_outbox

SETTLE = 0.2


@dataclass
class Seen:
    batches: list[tuple[float, list[Ready]]] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    async def on_ready(self, batch: Sequence[Ready]) -> None:
        self.batches.append((trio.current_time(), list(batch)))
        self.changed.set()
        self.changed = trio.Event()

    def paths(self) -> list[str]:
        return [r.path for _, batch in self.batches for r in batch]

    def when(self, path: str) -> float:
        return next(t for t, batch in self.batches for r in batch if r.path == path)

    async def wait_for(self, path: str, timeout: float = 5.0) -> Ready:
        with trio.fail_after(timeout):
            while True:
                for _, batch in self.batches:
                    for ready in batch:
                        if ready.path == path:
                            return ready
                await self.changed.wait()


@asynccontextmanager
async def watching(root: Path, *, rescan_every: float = 30.0, settle: float = SETTLE,
                   ignore: Callable[[str], bool] = is_ignored) -> AsyncIterator[Seen]:
    seen = Seen()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_outbox, root, on_ready=seen.on_ready, settle=settle,
                                    rescan_every=rescan_every, ignore=ignore))
        yield seen
        nursery.cancel_scope.cancel()


async def test_files_present_at_start_and_dropped_later_are_reported(tmp_path: Path) -> None:
    (tmp_path / "peer").mkdir()
    (tmp_path / "peer" / "old.txt").write_bytes(b"old")
    async with watching(tmp_path) as seen:
        await seen.wait_for("peer/old.txt")
        (tmp_path / "peer" / "new.txt").write_bytes(b"new!")
        ready = await seen.wait_for("peer/new.txt")
    st = (tmp_path / "peer" / "new.txt").stat()
    assert (ready.fingerprint.size, ready.fingerprint.inode, ready.fingerprint.mtime_ns) == (4, st.st_ino, st.st_mtime_ns)


async def test_slow_writer_is_ready_only_after_it_finished(tmp_path: Path) -> None:
    """1 KiB/s for 2.5 s (128 bytes every 1/8 s): never reported while growing. (Settle 0.5 s:
    four times the pause between writes, so a busy test machine cannot fake a pause.)"""
    path = tmp_path / "slow.bin"
    async with watching(tmp_path, settle=0.5) as seen:
        with path.open("wb") as f:
            for _ in range(20):
                f.write(b"x" * 128)
                f.flush()
                await trio.sleep(0.125)
        finished = trio.current_time()
        ready = await seen.wait_for("slow.bin")
    assert seen.paths() == ["slow.bin"]
    assert ready.fingerprint.size == 20 * 128
    assert seen.when("slow.bin") >= finished


async def test_renamed_into_place_is_reported_under_its_final_name_only(tmp_path: Path) -> None:
    async with watching(tmp_path) as seen:
        for temp in ("a.iso.part", "b.crdownload", "~$c.docx", ".d.tmp", "e.tmp"):
            (tmp_path / temp).write_bytes(b"x" * 1000)
        (tmp_path / ".hidden").mkdir()
        (tmp_path / ".hidden" / "f.txt").write_bytes(b"f")
        await trio.sleep(2 * SETTLE)
        os.rename(tmp_path / "a.iso.part", tmp_path / "a.iso")
        renamed_at = trio.current_time()
        ready = await seen.wait_for("a.iso")
        await trio.sleep(2 * SETTLE)
    assert seen.paths() == ["a.iso"]
    assert ready.fingerprint.size == 1000
    assert seen.when("a.iso") >= renamed_at + SETTLE


async def test_a_folder_moved_in_brings_its_files(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (elsewhere / "album" / "cd1").mkdir(parents=True)
    (elsewhere / "album" / "cd1" / "01.flac").write_bytes(b"1")
    (elsewhere / "album" / "cover.jpg").write_bytes(b"2")
    async with watching(root) as seen:
        os.rename(elsewhere / "album", root / "album")
        await seen.wait_for("album/cd1/01.flac")
        await seen.wait_for("album/cover.jpg")


async def test_a_version_is_reported_once_and_a_new_one_again(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    async with watching(tmp_path, rescan_every=0.1) as seen:  # rescans must not repeat it
        path.write_bytes(b"v1")
        first = await seen.wait_for("doc.txt")
        await trio.sleep(3 * SETTLE)
        assert seen.paths() == ["doc.txt"]
        path.write_bytes(b"version 2")
        with trio.fail_after(5):
            while len(seen.paths()) < 2:
                await seen.changed.wait()
    second = seen.batches[-1][1][0]
    assert (first.fingerprint.size, second.fingerprint.size) == (2, 9)


async def test_rescan_picks_up_what_events_did_not_bring(tmp_path: Path) -> None:
    """A path refused by ``ignore`` at first (a folder that names no device yet) is looked at again
    at the next rescan; no event is needed."""
    accept = False
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "a.txt").write_bytes(b"a")
    async with watching(tmp_path, rescan_every=0.3, ignore=lambda p: not accept or is_ignored(p)) as seen:
        await trio.sleep(2 * SETTLE)
        assert seen.paths() == []
        accept = True
        await seen.wait_for("later/a.txt", timeout=3)


async def test_cancel_stops_promptly(tmp_path: Path) -> None:
    seen = Seen()
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(watch_outbox, tmp_path, on_ready=seen.on_ready, settle=SETTLE))
        await trio.sleep(0.1)
        started = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - started < 0.5


async def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    root, secret = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    secret.mkdir()
    (secret / "shadow").write_bytes(b"s")
    async with watching(root) as seen:
        (root / "link-to-file").symlink_to(secret / "shadow")
        (root / "link-to-dir").symlink_to(secret)
        (root / "plain").write_bytes(b"p")
        await seen.wait_for("plain")
        await trio.sleep(2 * SETTLE)
    assert seen.paths() == ["plain"]
