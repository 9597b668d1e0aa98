"""The outbox on disk: fingerprints, scans, opening a known version, and tidying after a send,
never following a symlink and never touching another version than the one named."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.storage import Fingerprint, OutboxDir, ShareSpool, SourceChanged, UnsafePath, spool_source


def fingerprint(path: Path) -> Fingerprint:
    return Fingerprint.of(path.stat())


@pytest.fixture
def outbox(sandbox) -> OutboxDir:  # type: ignore[no-untyped-def]
    box = OutboxDir(sandbox.root)
    (sandbox.root / "peer" / "sub").mkdir(parents=True)
    (sandbox.root / "peer" / "a.txt").write_bytes(b"aaa")
    (sandbox.root / "peer" / "sub" / "b.txt").write_bytes(b"bb")
    os.mkfifo(sandbox.root / "peer" / "fifo")
    (sandbox.root / "peer" / "evil").symlink_to(sandbox.outside / "secret.txt")
    (sandbox.root / "peer" / "evil-dir").symlink_to(sandbox.outside)
    yield box
    box.close()


def test_scan_lists_regular_files_only(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    root = sandbox.root
    found = outbox.scan()
    assert found == {"peer/a.txt": fingerprint(root / "peer/a.txt"), "peer/sub/b.txt": fingerprint(root / "peer/sub/b.txt")}
    assert outbox.scan(skip_dir=lambda p: p == "peer/sub") == {"peer/a.txt": fingerprint(root / "peer/a.txt")}
    assert outbox.scan("peer/sub") == {"peer/sub/b.txt": fingerprint(root / "peer/sub/b.txt")}
    assert outbox.scan("peer/a.txt") == {"peer/a.txt": fingerprint(root / "peer/a.txt")}
    for nothing in ("peer/missing", "peer/evil", "peer/evil-dir", "peer/fifo", "peer/evil-dir/secret.txt"):
        assert outbox.scan(nothing) == {}


def test_fingerprint(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert outbox.fingerprint("peer/a.txt") == fingerprint(sandbox.root / "peer/a.txt")
    for nothing in ("peer/sub", "peer/evil", "peer/evil-dir/secret.txt", "peer/fifo", "peer/missing", "nope/x"):
        assert outbox.fingerprint(nothing) is None
    assert outbox.fingerprint("peer/../../outside/secret.txt") is None  # no way out of the root


def test_open_source_checks_the_version_on_the_open_file(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    path = sandbox.root / "peer/a.txt"
    expect = fingerprint(path)
    with outbox.open_source("peer/a.txt", expect) as source:
        assert source.read_at(0, 10) == b"aaa"
        assert source.relpath == "peer/a.txt"
    path.write_bytes(b"longer now")
    with pytest.raises(SourceChanged):
        outbox.open_source("peer/a.txt", expect)
    with pytest.raises(UnsafePath):
        outbox.open_source("peer/evil", expect)
    with pytest.raises(UnsafePath):
        outbox.open_source("peer/evil-dir/secret.txt", expect)
    with pytest.raises(UnsafePath):
        outbox.open_source("peer/fifo", expect)
    with pytest.raises(FileNotFoundError):
        outbox.open_source("peer/missing", expect)


def test_move_creates_folders_and_never_overwrites(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    root = sandbox.root
    (root / "peer/sent/sub").mkdir(parents=True)
    (root / "peer/sent/sub/b.txt").write_bytes(b"an older b")
    assert outbox.move("peer/sub/b.txt", "peer/sent/sub/b.txt", expect=fingerprint(root / "peer/sub/b.txt")) \
        == "peer/sent/sub/b (1).txt"
    assert (root / "peer/sent/sub/b.txt").read_bytes() == b"an older b"
    assert (root / "peer/sent/sub/b (1).txt").read_bytes() == b"bb"
    assert not (root / "peer/sub/b.txt").exists()
    assert outbox.move("peer/a.txt", "peer/sent/deep/er/a.txt", expect=fingerprint(root / "peer/a.txt")) \
        == "peer/sent/deep/er/a.txt"


def test_move_and_remove_touch_only_the_expected_version(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    path = sandbox.root / "peer/a.txt"
    old = fingerprint(path)
    path.write_bytes(b"new content")
    with pytest.raises(SourceChanged):
        outbox.move("peer/a.txt", "peer/sent/a.txt", expect=old)
    with pytest.raises(SourceChanged):
        outbox.remove("peer/a.txt", expect=old)
    assert path.read_bytes() == b"new content"
    with pytest.raises(FileNotFoundError):
        outbox.remove("peer/missing", expect=old)
    with pytest.raises(UnsafePath):
        outbox.remove("peer/evil", expect=old)
    outbox.remove("peer/a.txt", expect=fingerprint(path))
    assert not path.exists()


def test_folders(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    assert outbox.ensure_folder("laptop")
    assert not outbox.ensure_folder("laptop")
    assert outbox.folders() == ["laptop", "peer"]
    for bad in ("a/b", "..", ""):
        with pytest.raises(UnsafePath):
            outbox.ensure_folder(bad)


def test_spool_source_copies_and_hashes(outbox: OutboxDir, sandbox) -> None:  # type: ignore[no-untyped-def]
    data = os.urandom(3 * 1024 * 1024 + 5)
    (sandbox.root / "peer/big.bin").write_bytes(data)
    spool = ShareSpool(sandbox.root / "spool")
    share = spool.create("s1")
    with outbox.open_source("peer/big.bin", fingerprint(sandbox.root / "peer/big.bin")) as source:
        spooled = spool_source(share, "photos/big.bin", source)
    assert (spooled.relpath, spooled.size, spooled.sha256) == ("photos/big.bin", len(data), hashlib.sha256(data).hexdigest())
    assert share.files() == [("photos/big.bin", len(data))]
    spool.close()
