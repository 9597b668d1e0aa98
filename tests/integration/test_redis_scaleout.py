"""Two daemons behind "one address": signaling state shared through a real redis-server.

The sharer is hosted on daemon A's signaling server; the receiver joins through daemon B's. The
code, the session and every relayed SDP/ICE frame cross instances through Redis, then the bytes
go peer to peer and must equal the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Daemon, random_file, run_cli, sha256_of
from tests.unit.signaling.test_redis_store import redis_server

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_receiver_joins_through_another_instance(
    redis_url: str, start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    a = start_daemon("a", DOORSTEP_SIGNAL_STORE=redis_url)
    b = start_daemon("b", DOORSTEP_SIGNAL_STORE=redis_url)
    assert a.signal_url != b.signal_url

    source = tmp_path / "report.bin"
    digest = random_file(source, 4 * MiB + 123)
    response = a.api("PUT", "/api/v1/shares/report.bin", content=source.read_bytes())
    assert response.status_code == 201, response.text
    code = response.json()["code"]

    out = tmp_path / "out"
    done = run_cli("receive", code, "--out", str(out), "--signal", b.signal_url, timeout=60)
    assert done.returncode == 0, done.stderr + a.log_tail() + b.log_tail()
    assert sha256_of(out / "report.bin") == digest

    # the code was consumed in the shared store: neither instance accepts it again
    for daemon in (a, b):
        again_out = str(tmp_path / "again")
        again = run_cli("receive", code, "--out", again_out, "--signal", daemon.signal_url)
        assert again.returncode == 1 and "no such code" in again.stderr
