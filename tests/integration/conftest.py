"""Integration fixtures: real daemons on loopback, each stopped (and checked) at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Daemon


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """``start_daemon(name, **env)`` starts a daemon with its state in ``tmp_path/name``.

    At teardown every daemon still running gets SIGTERM and must exit 0 within 5 s.
    """
    started: list[Daemon] = []

    def start(name: str, **env: str) -> Daemon:
        daemon = Daemon(tmp_path / name, **env).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in reversed(started):
        if daemon.proc is not None and daemon.proc.poll() is None:
            assert daemon.stop() == 0, daemon.log_tail()


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon]) -> Daemon:
    """One running daemon."""
    return start_daemon("a")
