"""The library tables: libraries, the catalogue (prefix pages, versions, folder removal), the
browsing side's index of what it holds."""

from __future__ import annotations

from pathlib import Path

from daemon.state.library import CatalogueEntry, HaveRecord, LibraryStore

SHA = "0" * 64


def _entry(path: str, inode: int = 1) -> CatalogueEntry:
    return CatalogueEntry(path=path, size=len(path), mtime_ns=5, inode=inode, sha256=SHA)


def test_catalogue_queries(tmp_path: Path) -> None:
    store = LibraryStore(tmp_path / "state.db")
    store.put_library("lib", "/srv/lib", ["d1", "d2", "d1"])
    assert store.get_library("lib").devices == ("d1", "d2")
    for path in ["a", "a/b", "a/b/c", "a.txt", "a0", "ab/x", "b"]:
        store.put_entry("lib", _entry(path))
    assert [e.path for e in store.entries("lib", prefix="a")] == ["a", "a/b", "a/b/c"]
    assert [e.path for e in store.entries("lib", prefix="a/b")] == ["a/b", "a/b/c"]
    assert [e.path for e in store.entries("lib", after="a.txt", limit=2)] == ["a/b", "a/b/c"]
    assert store.totals("lib") == (7, sum(len(p) for p in ["a", "a/b", "a/b/c", "a.txt", "a0", "ab/x", "b"]))
    assert store.remove_entries("lib", ["a"]) == 3
    assert [e.path for e in store.entries("lib")] == ["a.txt", "a0", "ab/x", "b"]
    store.put_entry("lib", _entry("big", inode=(1 << 64) - 1))
    assert store.entry("lib", "big").inode == (1 << 64) - 1
    assert store.find_version("lib", 3, 5, (1 << 64) - 1) == SHA
    assert store.versions("lib")["big"] == (3, 5, (1 << 64) - 1)
    store.put_library("lib", "/srv/other", ["d1"])  # another folder: the catalogue starts over
    assert store.entries("lib") == []
    assert store.remove_library("lib") and not store.remove_library("lib")
    store.close()


def test_have_index(tmp_path: Path) -> None:
    store = LibraryStore(tmp_path / "state.db")
    record = HaveRecord(inbox_path="lib/a", size=1, mtime_ns=2, inode=3, sha256=SHA)
    store.put_have(record)
    assert store.have("lib/a") == record
    store.forget_have("lib/a")
    assert store.have("lib/a") is None
    store.close()
