"""The debounce stage: a file is ready once its fingerprint held still for ``settle`` seconds after
the last change; temporary names never come out; each version comes out once."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.storage import Fingerprint
from daemon.watch import Ready, Stability, is_ignored

SETTLE = 2.0


def fp(size: int, mtime: int = 1, inode: int = 7) -> Fingerprint:
    return Fingerprint(size=size, mtime_ns=mtime, inode=inode)


def poll(stab: Stability, now: float, disk: dict[str, Fingerprint]) -> list[Ready]:
    """What the backend does at a deadline: stat what is due, then collect the batch."""
    for path in stab.due(now):
        stab.observe(path, disk.get(path), now)
    return stab.take_ready()


# -- names ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "peer/a.part", "peer/a.PART", "peer/movie.mkv.crdownload", "peer/x.tmp", "peer/~$report.docx", "peer/.hidden",
    "peer/.git/config", ".peer/a.txt", "peer/sub/.cache/x", "peer/notes.txt~", "peer/a.swp", "peer//a", "peer/../a",
    "peer/./a", "", "peer/bad-\udcff.txt",
])
def test_temporary_hidden_and_unusable_names_are_ignored(path: str) -> None:
    assert is_ignored(path)


@pytest.mark.parametrize("path", ["peer/a.txt", "peer/sub/report.pdf", "peer/partial report.doc", "peer/tmp/a",
                                  "peer/a.part.txt", "peer/déjà vu.mp3", "peer/~tilde-first"])
def test_ordinary_names_are_not(path: str) -> None:
    assert not is_ignored(path)


# -- examples ------------------------------------------------------------------------------------

def test_ready_only_after_settle_with_unchanged_stat() -> None:
    stab = Stability(settle=SETTLE)
    disk = {"p/a": fp(10)}
    stab.observe("p/a", disk["p/a"], 0.0, changed=True)
    assert stab.next_deadline() == SETTLE
    assert poll(stab, 1.9, disk) == []
    assert poll(stab, 2.0, disk) == [Ready("p/a", fp(10))]
    assert poll(stab, 10.0, disk) == []  # once per version
    assert stab.next_deadline() == math.inf


def test_a_change_seen_at_the_deadline_restarts_the_wait() -> None:
    stab = Stability(settle=SETTLE)
    stab.observe("p/a", fp(10), 0.0)
    assert poll(stab, 2.0, {"p/a": fp(20)}) == []  # grew meanwhile, no event seen
    assert stab.next_deadline() == 4.0
    assert poll(stab, 4.0, {"p/a": fp(20)}) == [Ready("p/a", fp(20))]


def test_a_new_version_after_ready_is_reported_again() -> None:
    stab = Stability(settle=SETTLE)
    stab.observe("p/a", fp(10), 0.0)
    assert poll(stab, 2.0, {"p/a": fp(10)}) == [Ready("p/a", fp(10))]
    stab.observe("p/a", fp(10, mtime=2), 3.0, changed=True)
    assert poll(stab, 5.0, {"p/a": fp(10, mtime=2)}) == [Ready("p/a", fp(10, mtime=2))]


def test_a_file_that_vanishes_is_forgotten_even_when_ready() -> None:
    stab = Stability(settle=SETTLE)
    stab.observe("p/a", fp(1), 0.0)
    stab.observe("p/a", fp(1), 2.0)  # ready, not yet taken
    stab.observe("p/a", None, 2.5)
    assert stab.take_ready() == []
    assert stab.statistics()["tracked"] == 0


def test_sync_forgets_what_is_gone_below_the_prefix_only() -> None:
    stab = Stability(settle=SETTLE)
    stab.sync("", {"p/a": fp(1), "p/d/b": fp(2), "q/c": fp(3)}, 0.0)
    stab.sync("p/d", {}, 1.0, changed=True)  # the folder p/d went away
    assert poll(stab, 5.0, {"p/a": fp(1), "q/c": fp(3)}) == [Ready("p/a", fp(1)), Ready("q/c", fp(3))]


def test_custom_ignore_is_applied_to_everything() -> None:
    stab = Stability(settle=0.0, ignore=lambda path: path.startswith("x/"))
    stab.sync("", {"x/a": fp(1), "y/a": fp(1)}, 0.0)
    assert poll(stab, 0.0, {"x/a": fp(1), "y/a": fp(1)}) == [Ready("y/a", fp(1))]


def test_negative_settle_is_refused() -> None:
    with pytest.raises(ValueError):
        Stability(settle=-1)


# -- properties ----------------------------------------------------------------------------------

gaps_below_settle = st.floats(min_value=0.001, max_value=SETTLE * 0.999, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(gaps_below_settle, min_size=1, max_size=60),
       polls=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60),
       with_events=st.booleans())
def test_a_file_that_keeps_changing_is_never_ready(gaps: list[float], polls: list[float], with_events: bool) -> None:
    """It changes again before ``settle`` has passed each time; stats between changes (at any
    moment) see the current size."""
    stab = Stability(settle=SETTLE)
    now, size = 0.0, 0
    stab.observe("p/growing", fp(size), now, changed=with_events)
    for i, gap in enumerate(gaps):
        # poll somewhere inside the gap (the file is unchanged there)
        at = now + gap * polls[i % len(polls)]
        assert poll(stab, at, {"p/growing": fp(size)}) == []
        now += gap
        size += 1
        stab.observe("p/growing", fp(size), now, changed=with_events)
        assert stab.take_ready() == []


@settings(max_examples=200, deadline=None)
@given(writes=st.lists(gaps_below_settle, min_size=0, max_size=20),
       rename_delay=st.floats(min_value=0.0, max_value=5.0),
       early=st.floats(min_value=0.0, max_value=SETTLE * 0.999),
       late=st.floats(min_value=0.0, max_value=10.0),
       temp_name=st.sampled_from(["p/movie.mkv.part", "p/movie.mkv.crdownload", "p/.movie.mkv", "p/~$movie.mkv",
                                  "p/movie.mkv.tmp"]))
def test_a_file_renamed_into_place_is_ready_after_settle(
        writes: list[float], rename_delay: float, early: float, late: float, temp_name: str) -> None:
    """Written under a temporary name (never tracked), then renamed: ready exactly when ``settle``
    has passed since the rename, with the fingerprint it has under its final name."""
    stab = Stability(settle=SETTLE)
    now, size = 0.0, 0
    for gap in writes:
        stab.observe(temp_name, fp(size, inode=3), now, changed=True)
        assert poll(stab, now, {temp_name: fp(size, inode=3)}) == []
        now += gap
        size += 1
    now += rename_delay
    final = fp(size, inode=3)
    stab.observe(temp_name, None, now, changed=True)
    stab.observe("p/movie.mkv", final, now, changed=True)
    disk = {"p/movie.mkv": final}
    assert poll(stab, now + early, disk) == []
    assert stab.next_deadline() == pytest.approx(now + SETTLE)
    assert poll(stab, now + SETTLE + late, disk) == [Ready("p/movie.mkv", final)]


path_parts = st.sampled_from(["a", "b.txt", ".hidden", "x.part", "~$lock", "y.TMP", "z.crdownload", ".dir", "sub",
                              "c~", "d.swp", "e.pdf"])
paths = st.lists(path_parts, min_size=1, max_size=4).map("/".join)
operations = st.lists(st.tuples(
    st.sampled_from(["observe", "event", "gone", "sync", "poll"]),
    paths,
    st.integers(min_value=0, max_value=3),
    st.floats(min_value=0.0, max_value=3.0),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops=operations)
def test_ignored_names_never_come_out(ops: list[tuple[str, str, int, float]]) -> None:
    stab = Stability(settle=1.0)
    disk: dict[str, Fingerprint] = {}
    now = 0.0
    out: list[Ready] = []
    for op, path, size, dt in ops:
        now += dt
        if op == "observe":
            disk[path] = fp(size)
            stab.observe(path, disk[path], now)
        elif op == "event":
            disk[path] = fp(size)
            stab.observe(path, disk[path], now, changed=True)
        elif op == "gone":
            disk.pop(path, None)
            stab.observe(path, None, now, changed=True)
        elif op == "sync":
            stab.sync("", dict(disk), now)
        batch = poll(stab, now, disk)
        assert all(disk.get(ready.path) == ready.fingerprint for ready in batch)  # the version on disk
        out += batch
    out += poll(stab, now + 10.0, disk)
    assert all(not is_ignored(ready.path) for ready in out)
