"""When a dropped file is complete: the pure debounce stage of the outbox watcher (no I/O, no clock).

A file is *ready* once its fingerprint (size, mtime, inode) has stayed the same for ``settle``
seconds after the last change seen for it: a change event from the OS, or a stat that differed
from the previous one. The backend feeds observations in and stats what :meth:`Stability.due`
asks for; ready files come out in batches (:meth:`Stability.take_ready`), each one once per
version. Times are plain floats from whatever clock the caller uses.

Paths are relative to the watched root and '/'-joined. Temporary names (downloads and editors in
progress, dotfiles, anything under a dot-directory) are never tracked: :func:`is_ignored`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from daemon.storage import Fingerprint

__all__ = ["DEFAULT_SETTLE", "TEMPORARY_SUFFIXES", "Ready", "Stability", "is_ignored", "is_under"]

DEFAULT_SETTLE = 2.0
TEMPORARY_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".opdownload", ".tmp", ".temp", ".swp", "~")
"""Names ending like this are files still being written (browsers, download tools, editors)."""
TEMPORARY_PREFIXES = ("~$",)  # Office lock files
"""Names starting like this are lock or scratch files."""


def is_ignored(relpath: str) -> bool:
    """True for paths the outbox never sends: a dot-file or anything under a dot-directory, a
    temporary name (:data:`TEMPORARY_SUFFIXES`, :data:`TEMPORARY_PREFIXES`; suffixes in any
    case), a path with an empty, ``.`` or ``..`` component, and a name that is not valid UTF-8
    (it could neither be recorded nor offered to a peer)."""
    parts = relpath.split("/")
    if any(not part or part.startswith(".") for part in parts):
        return True
    name = parts[-1]
    if name.startswith(TEMPORARY_PREFIXES) or name.lower().endswith(TEMPORARY_SUFFIXES):
        return True
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates
        return True
    return False


def is_under(path: str, prefix: str) -> bool:
    """True if ``path`` is ``prefix`` or below it ('' is the root: everything is below it)."""
    return not prefix or path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True, slots=True)
class Ready:
    """A file that stopped changing: its path and the version (fingerprint) that settled."""

    path: str
    fingerprint: Fingerprint


@dataclass(slots=True)
class _Entry:
    fingerprint: Fingerprint
    since: float  # time of the last change seen (event, or a stat that differed)
    emitted: bool = False  # this version was reported ready


class Stability:
    """Tracks candidate files until they settle.

    Feed it with :meth:`observe` (one stat, possibly prompted by a change event) and
    :meth:`sync` (everything found at or below a path: a rescan, or the answer to an event on a
    directory). Ask :meth:`due` which paths to stat again and :meth:`next_deadline` when to ask.
    ``ignore`` decides which paths are never tracked (default :func:`is_ignored`); a path it
    ignores is dropped, even if it was tracked before. ``track_gone``: remember tracked files
    that vanish, for :meth:`take_gone` (a catalogue that must drop deleted files).
    """

    def __init__(self, *, settle: float = DEFAULT_SETTLE, ignore: Callable[[str], bool] = is_ignored,
                 track_gone: bool = False) -> None:
        if not settle >= 0:
            raise ValueError(f"settle must be >= 0 seconds, not {settle!r}")
        self.settle = settle
        self._ignore = ignore
        self._entries: dict[str, _Entry] = {}
        self._ready: dict[str, Ready] = {}
        self._track_gone = track_gone
        self._gone: set[str] = set()

    def observe(self, path: str, fingerprint: Fingerprint | None, now: float, *, changed: bool = False) -> None:
        """Record a stat of ``path`` at ``now``: its ``fingerprint``, or None if there is no
        regular file there any more. ``changed``: the OS reported a change, so the settle time
        restarts even if the fingerprint looks the same (a same-size rewrite within the mtime
        granularity)."""
        if fingerprint is None or self._ignore(path):
            self._vanished(path)
            return
        entry = self._entries.get(path)
        if entry is None:
            self._entries[path] = _Entry(fingerprint, now)
            self._gone.discard(path)
        elif changed or entry.fingerprint != fingerprint:
            entry.fingerprint, entry.since, entry.emitted = fingerprint, now, False
            self._ready.pop(path, None)
        elif not entry.emitted and entry.since + self.settle <= now:  # same test as due()
            entry.emitted = True
            self._ready[path] = Ready(path, fingerprint)

    def sync(self, under: str, found: Mapping[str, Fingerprint], now: float, *, changed: bool = False) -> None:
        """Record everything there is at or below ``under`` ('' for everything): ``found`` maps
        each regular file to its fingerprint; tracked paths under ``under`` that are missing from
        it are gone. ``changed`` as for :meth:`observe`."""
        for path in [p for p in self._entries if is_under(p, under) and p not in found]:
            self._vanished(path)
        for path, fingerprint in found.items():
            if is_under(path, under):
                self.observe(path, fingerprint, now, changed=changed)

    def forget(self, path: str) -> None:
        """Stop tracking ``path`` (it is gone, or its owner took it): a file that shows up there
        again is new."""
        self._entries.pop(path, None)
        self._ready.pop(path, None)

    def _vanished(self, path: str) -> None:
        """A tracked file is gone (or now ignored): forget it, and remember it for
        :meth:`take_gone` when tracking removals."""
        if self._track_gone and path in self._entries:
            self._gone.add(path)
        self.forget(path)

    def take_gone(self) -> list[str]:
        """With ``track_gone``: the tracked files that vanished (deleted, renamed away, or now
        ignored) since the last call and did not come back meanwhile, sorted. Else always []."""
        gone = sorted(self._gone)
        self._gone.clear()
        return gone

    def due(self, now: float) -> list[str]:
        """Paths whose settle time is over but not yet confirmed by a stat: stat each and call
        :meth:`observe`. Sorted."""
        return sorted(
            path for path, entry in self._entries.items() if not entry.emitted and entry.since + self.settle <= now
        )

    def next_deadline(self) -> float:
        """When the next path comes due (``math.inf`` if none is waiting)."""
        return min((e.since + self.settle for e in self._entries.values() if not e.emitted), default=math.inf)

    def take_ready(self) -> list[Ready]:
        """The files that became ready since the last call, sorted by path (each version once)."""
        batch = sorted(self._ready.values(), key=lambda ready: ready.path)
        self._ready.clear()
        return batch

    def statistics(self) -> dict[str, int]:
        """Counts for logs and metrics: tracked paths, those still settling, those reported."""
        waiting = sum(1 for e in self._entries.values() if not e.emitted)
        return {"tracked": len(self._entries), "settling": waiting, "reported": len(self._entries) - waiting}
