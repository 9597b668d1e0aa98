"""The outbox service on real files in tmp_path, with a fake appliance behind its callables: what
settles is sent once, changed files are re-sent rather than spliced, policies, retries, restarts."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from daemon.runtime.outbox import AfterSend, OutboxService, PushOutcome, PushResult, device_folders
from daemon.state import DeviceRecord, DeviceStatus, Disposition, OutboxQueue, OutboxState
from daemon.storage import ShareSpool, SourceFile, spool_source

SETTLE = 0.2


@dataclass
class Delivery:
    share_id: str
    device_id: str
    name: str
    data: bytes


@dataclass
class FakeAppliance:
    """Shares in a real spool; pushes that deliver (or not) what the share holds."""

    spool: ShareSpool
    online: bool = True
    shares: dict[str, str] = field(default_factory=dict)  # share id -> name
    attempts: list[str] = field(default_factory=list)  # share ids, one per push
    delivered: list[Delivery] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)
    during_push: Callable[[], Awaitable[None]] | None = None
    changed: trio.Event = field(default_factory=trio.Event)
    made: int = 0

    async def create_share(self, source: SourceFile, name: str) -> str:
        self.made += 1
        share_id = f"share{self.made}"
        share_dir = self.spool.create(share_id)
        await trio.to_thread.run_sync(spool_source, share_dir, name, source)
        self.shares[share_id] = name
        return share_id

    async def push(self, share_id: str, device_id: str) -> PushOutcome:
        self.attempts.append(share_id)
        self._changed()
        if share_id not in self.shares:
            return PushOutcome(PushResult.SHARE_GONE, "no such share")
        if self.during_push is not None:
            hook, self.during_push = self.during_push, None
            await hook()
        if not self.online:
            return PushOutcome(PushResult.RETRY, "peer offline")
        name = self.shares.pop(share_id)
        data = (self.spool.root / share_id / name).read_bytes()
        self.spool.remove(share_id)  # the appliance retires a delivered share
        self.delivered.append(Delivery(share_id, device_id, name, data))
        self._changed()
        return PushOutcome(PushResult.DELIVERED)

    async def discard_share(self, share_id: str) -> None:
        self.discarded.append(share_id)
        self.shares.pop(share_id, None)
        self.spool.remove(share_id)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def wait(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        with trio.fail_after(timeout):
            while not condition():
                with trio.move_on_after(0.05):
                    await self.changed.wait()


@dataclass
class Setup:
    root: Path
    db: Path
    fake: FakeAppliance
    folders: dict[str, str] = field(default_factory=lambda: {"laptop": "dev1"})
    policy: AfterSend = AfterSend.MOVE
    settle: float = SETTLE

    def service(self, queue: OutboxQueue) -> OutboxService:
        return OutboxService(root=self.root, queue=queue, folders=lambda: self.folders,
                             create_share=self.fake.create_share, push=self.fake.push,
                             discard_share=self.fake.discard_share, policy=lambda _folder: self.policy,
                             settle=self.settle, rescan_every=0.3, backoff=lambda attempt: 0.1)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[tuple[OutboxService, OutboxQueue]]:
        queue = OutboxQueue(self.db)
        service = self.service(queue)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                yield service, queue
                nursery.cancel_scope.cancel()
        finally:
            queue.close()


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    spool = ShareSpool(tmp_path / "spool")
    yield Setup(root=tmp_path / "outbox", db=tmp_path / "state.db", fake=FakeAppliance(spool))
    spool.close()


def names(fake: FakeAppliance) -> list[str]:
    return [d.name for d in fake.delivered]


async def test_a_dropped_file_is_sent_once_then_moved_to_sent(setup: Setup) -> None:
    async with setup.running() as (_service, queue):
        assert (setup.root / "laptop").is_dir()  # created for the paired device
        (setup.root / "laptop" / "sub").mkdir()
        (setup.root / "laptop" / "sub" / "report.pdf").write_bytes(b"%PDF report")
        await setup.fake.wait(lambda: (setup.root / "laptop/sent/sub/report.pdf").exists())
        await trio.sleep(3 * SETTLE)
        [item] = queue.items()
    assert [(d.device_id, d.name, d.data) for d in setup.fake.delivered] == [("dev1", "sub/report.pdf", b"%PDF report")]
    assert not (setup.root / "laptop/sub/report.pdf").exists()
    assert (item.state, item.disposition) == (OutboxState.SENT, Disposition.MOVED)


@pytest.mark.parametrize("policy", [AfterSend.DELETE, AfterSend.KEEP])
async def test_delete_and_keep_policies(setup: Setup, policy: AfterSend) -> None:
    setup.policy = policy
    (setup.root / "laptop").mkdir(parents=True)
    path = setup.root / "laptop" / "a.txt"
    path.write_bytes(b"hello")
    async with setup.running() as (_service, queue):
        await setup.fake.wait(lambda: queue.items() != [] and queue.items()[0].disposition is not None)
        assert queue.items()[0].disposition is (Disposition.KEPT if policy is AfterSend.KEEP else Disposition.DELETED)
    assert path.exists() == (policy is AfterSend.KEEP)
    # a kept file is never sent again, not after a restart either
    async with setup.running():
        await trio.sleep(4 * SETTLE)
    assert names(setup.fake) == ["a.txt"]


async def test_slow_writer_is_sent_only_once_complete(setup: Setup) -> None:
    """Written at 1 KiB/s for 2.5 s: one push, of the whole file. (Settle 0.5 s: four times the
    pause between writes.)"""
    setup.policy = AfterSend.KEEP
    setup.settle = 0.5
    async with setup.running():
        with (setup.root / "laptop" / "slow.log").open("wb") as f:
            for i in range(20):
                f.write(bytes([65 + i]) * 128)
                f.flush()
                await trio.sleep(0.125)
        expected = (setup.root / "laptop" / "slow.log").read_bytes()
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 1)
        await trio.sleep(3 * SETTLE)
    assert [d.data for d in setup.fake.delivered] == [expected]
    assert len(expected) == 20 * 128 and setup.fake.attempts == ["share1"]


async def test_renamed_into_place_is_sent_and_temporary_names_are_not(setup: Setup) -> None:
    async with setup.running():
        folder = setup.root / "laptop"
        for temp in ("movie.mkv.part", "x.crdownload", "~$doc.docx", ".hidden", "y.tmp"):
            (folder / temp).write_bytes(b"partial" * 100)
        await trio.sleep(3 * SETTLE)
        assert setup.fake.attempts == []
        os.rename(folder / "movie.mkv.part", folder / "movie.mkv")
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 1)
        await trio.sleep(3 * SETTLE)
    assert names(setup.fake) == ["movie.mkv"]


async def test_a_file_changed_during_the_send_is_sent_again_not_moved(setup: Setup) -> None:
    path = setup.root / "laptop" / "notes.txt"

    async def edit() -> None:  # the owner saves a new version while the first one travels
        path.write_bytes(b"version 2, longer")

    setup.fake.during_push = edit
    async with setup.running() as (_service, queue):
        path.write_bytes(b"version 1")
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 2)
        await setup.fake.wait(lambda: not path.exists())
        items = queue.items()
    assert [d.data for d in setup.fake.delivered] == [b"version 1", b"version 2, longer"]
    assert [(i.size, i.disposition) for i in items] == [(9, Disposition.CHANGED), (17, Disposition.MOVED)]
    assert (setup.root / "laptop/sent/notes.txt").read_bytes() == b"version 2, longer"


async def test_offline_peer_is_retried_with_the_same_share_and_a_file_changed_meanwhile_replaces_it(
        setup: Setup) -> None:
    setup.fake.online = False
    path = setup.root / "laptop" / "draft.txt"
    async with setup.running() as (_service, queue):
        path.write_bytes(b"draft 1")
        await setup.fake.wait(lambda: len(setup.fake.attempts) >= 3)
        assert set(setup.fake.attempts) == {"share1"}  # one share, pushed again and again: resumable
        assert queue.items()[0].attempts >= 2 and queue.items()[0].error == "peer offline"
        path.write_bytes(b"draft 2")  # still offline: the stale version must never go
        await setup.fake.wait(lambda: "share1" in setup.fake.discarded)
        setup.fake.online = True
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 1)
        await trio.sleep(3 * SETTLE)
    assert [d.data for d in setup.fake.delivered] == [b"draft 2"]


async def test_a_push_cut_short_resumes_after_a_restart_and_is_delivered_once(setup: Setup) -> None:
    stuck = trio.Event()

    async def hang() -> None:
        stuck.set()
        await trio.sleep_forever()  # killed mid-push

    setup.fake.during_push = hang
    (setup.root / "laptop").mkdir(parents=True)
    (setup.root / "laptop" / "big.iso").write_bytes(b"iso" * 1000)
    async with setup.running() as (_service, queue):
        with trio.fail_after(5):
            await stuck.wait()
        assert queue.items()[0].state is OutboxState.SENDING
    async with setup.running() as (_service, queue):
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 1)
        await setup.fake.wait(lambda: queue.items()[0].disposition is not None)
        await trio.sleep(3 * SETTLE)
    assert setup.fake.attempts == ["share1", "share1"]  # the same share: the receiver resumes
    assert [d.data for d in setup.fake.delivered] == [b"iso" * 1000]


async def test_an_expired_share_is_made_again(setup: Setup) -> None:
    setup.fake.online = False
    async with setup.running():
        (setup.root / "laptop" / "a.txt").write_bytes(b"a")
        await setup.fake.wait(lambda: len(setup.fake.attempts) >= 1)
        setup.fake.shares.clear()  # the appliance expired it
        setup.fake.online = True
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 1)
    assert setup.fake.delivered[0].share_id == "share2"


async def test_folders_that_name_no_device_wait_until_one_is_paired(setup: Setup) -> None:
    (setup.root / "phone").mkdir(parents=True)
    (setup.root / "phone" / "pic.jpg").write_bytes(b"jpg")
    (setup.root / "stray.txt").write_bytes(b"not in a folder")
    async with setup.running() as (service, _queue):
        await trio.sleep(3 * SETTLE)
        assert setup.fake.attempts == []
        setup.folders["phone"] = "dev2"
        setup.folders["tablet"] = "dev3"
        service.wake()
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 1)
        await setup.fake.wait(lambda: (setup.root / "tablet").is_dir(), timeout=1.0)  # made for the new device
    assert [(d.device_id, d.name) for d in setup.fake.delivered] == [("dev2", "pic.jpg")]


async def test_an_unreadable_share_source_is_retried_without_blocking_the_others(setup: Setup) -> None:
    fails = {"bad.txt"}
    real_create = setup.fake.create_share

    async def create_share(source: SourceFile, name: str) -> str:
        if name in fails:
            raise PermissionError(13, "Permission denied")
        return await real_create(source, name)

    setup.fake.create_share = create_share  # type: ignore[method-assign]
    async with setup.running() as (_service, queue):
        (setup.root / "laptop" / "bad.txt").write_bytes(b"b")
        (setup.root / "laptop" / "good.txt").write_bytes(b"g")
        await setup.fake.wait(lambda: names(setup.fake) == ["good.txt"])
        bad = next(i for i in queue.items() if i.path == "bad.txt")
        assert bad.state is OutboxState.QUEUED and "Permission denied" in (bad.error or "")
        fails.clear()
        await setup.fake.wait(lambda: len(setup.fake.delivered) == 2)


async def test_cancelling_the_service_stops_everything_promptly(setup: Setup) -> None:
    setup.fake.online = False
    queue = OutboxQueue(setup.db)
    (setup.root / "laptop").mkdir(parents=True)
    (setup.root / "laptop" / "a.txt").write_bytes(b"a")
    async with trio.open_nursery() as nursery:
        await nursery.start(setup.service(queue).run)
        await setup.fake.wait(lambda: len(setup.fake.attempts) >= 1)
        started = trio.current_time()
        nursery.cancel_scope.cancel()
    assert trio.current_time() - started < 0.5
    queue.close()


def device(device_id: str, name: str, status: DeviceStatus = DeviceStatus.APPROVED) -> DeviceRecord:
    return DeviceRecord(device_id=device_id, public_key=device_id.encode().ljust(32, b"\0"), name=name, status=status,
                        paired_at=0.0, last_seen=None, signal_url=None)


def test_device_folders_by_usable_unique_name_and_always_by_id() -> None:
    folders = device_folders([
        device("id1", "laptop"), device("id2", "doorstep"), device("id3", "doorstep"),
        device("id4", ".hidden"), device("id5", "a/b"), device("id6", "old", DeviceStatus.REVOKED),
        device("id7", "id1"), device("id8", "nas.tmp"), device("id9", " padded"),
    ])
    assert folders == {"laptop": "id1", **{f"id{i}": f"id{i}" for i in (1, 2, 3, 4, 5, 7, 8, 9)}}
    assert list(folders)[0] == "laptop"


async def test_a_refused_device_fails_the_file_and_drops_its_share(setup: Setup) -> None:
    async def refuse(share_id: str, device_id: str) -> PushOutcome:
        setup.fake.attempts.append(share_id)
        return PushOutcome(PushResult.REFUSED, "the device is no longer paired")

    setup.fake.push = refuse  # type: ignore[method-assign]
    async with setup.running() as (_service, queue):
        (setup.root / "laptop" / "a.txt").write_bytes(b"a")
        await setup.fake.wait(lambda: setup.fake.discarded == ["share1"])
        [item] = queue.items()
        assert (item.state, item.error) == (OutboxState.FAILED, "the device is no longer paired")
        await trio.sleep(3 * SETTLE)
    assert setup.fake.attempts == ["share1"] and (setup.root / "laptop" / "a.txt").exists()
