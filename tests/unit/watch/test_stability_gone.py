"""``Stability(track_gone=True)``: tracked files that vanish are reported once by ``take_gone``."""

from __future__ import annotations

from daemon.storage import Fingerprint
from daemon.watch import Stability

FP = Fingerprint(size=1, mtime_ns=1, inode=1)


def test_vanished_files_are_reported_once() -> None:
    stability = Stability(settle=1.0, track_gone=True)
    stability.sync("", {"a": FP, "d/b": FP, "d/c": FP}, 0.0)
    stability.sync("d", {"d/c": FP}, 1.0)  # d/b went
    stability.observe("a", None, 1.0)  # a went
    assert stability.take_gone() == ["a", "d/b"]
    assert stability.take_gone() == []
    stability.sync("", {}, 2.0)
    assert stability.take_gone() == ["d/c"]


def test_a_file_back_before_it_was_taken_is_not_gone_and_ignored_paths_never_are() -> None:
    stability = Stability(settle=1.0, track_gone=True)
    stability.sync("", {"a": FP, "x.part": FP}, 0.0)
    stability.observe("a", None, 0.5)
    stability.observe("a", FP, 0.6)
    stability.sync("", {}, 0.7)
    stability.sync("", {"a": FP}, 0.8)
    assert stability.take_gone() == []
    stability.forget("a")  # the owner took it: not "gone"
    assert stability.take_gone() == []


def test_without_tracking_nothing_is_kept() -> None:
    stability = Stability(settle=1.0)
    stability.sync("", {"a": FP}, 0.0)
    stability.sync("", {}, 1.0)
    assert stability.take_gone() == []
