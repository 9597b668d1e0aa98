"""What the transfer benchmarks share: two daemons fetching a share by code (with the route the
transfer took), RSS sampling from /proc, raw TCP between two processes, medians and ratios."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.harness import Daemon, random_file, sha256_of  # noqa: E402

__all__ = ["MiB", "GiB", "Daemon", "random_file", "sha256_of", "Fetch", "fetch_by_code", "RssSampler", "raw_tcp",
           "median", "rate", "rotate", "machine_note", "payload"]

MiB = 1024 * 1024
GiB = 1024 * MiB

PATH_ENV = {"webrtc": {"DOORSTEP_TRANSFER_DIRECT": "false"}, "direct": {}}
"""Daemon environment per path: the WebRTC data channel only, or the default (direct TCP when it
connects, else the data channel)."""


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def rate(nbytes: int, seconds: float) -> float:
    """MB/s (10^6 bytes per second)."""
    return nbytes / seconds / 1e6


def rotate(items: Sequence[str], run: int) -> list[str]:
    """``items`` rotated by ``run``: each subject goes first in turn, so drift hits all of them."""
    k = run % len(items)
    return list(items[k:]) + list(items[:k])


def payload(workdir: Path, size: int) -> tuple[Path, str]:
    """A random ``size``-byte file in ``workdir`` (made once) and its SHA-256."""
    path = workdir / f"payload-{size}.bin"
    digest_file = path.with_suffix(".sha256")
    if not path.exists() or path.stat().st_size != size or not digest_file.exists():
        digest_file.write_text(random_file(path, size))
    return path, digest_file.read_text()


def machine_note() -> str:
    """When, load average, and the busiest other processes (the machine is shared)."""
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    busy = os.popen("ps -eo pcpu,comm --sort=-pcpu --no-headers | head -5").read().split("\n")
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load {load}, top: "
            + "; ".join(" ".join(line.split()) for line in busy if line.strip()))


class RssSampler:
    """Samples VmRSS (MB) of some processes every ``interval`` s in a thread, from /proc/<pid>/status."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            now = time.monotonic() - self._start
            for name, pid in self.pids.items():
                rss = _vmrss_mb(pid)
                if rss is not None:
                    self.samples[name].append((now, rss))
            if self._stop.wait(self.interval):
                return

    def summary(self, name: str) -> dict[str, float]:
        """max, and the curve at its start (first sample once the transfer runs), middle and end."""
        values = [v for _, v in self.samples[name]]
        if not values:
            return {}
        return {"max": max(values), "start": values[min(2, len(values) - 1)], "middle": values[len(values) // 2],
                "end": values[-1], "samples": len(values)}

    def curve(self, name: str, points: int = 9) -> list[float]:
        values = [v for _, v in self.samples[name]]
        if len(values) <= points:
            return values
        return [values[round(i * (len(values) - 1) / (points - 1))] for i in range(points)]


def _vmrss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024 * 1.048576  # kB (KiB) -> MB
    except OSError:
        return None
    return None


@dataclass
class Fetch:
    seconds: float
    route: str
    routes_seen: set[str] = field(default_factory=set)
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)


def fetch_by_code(workdir: Path, source: Path, digest: str, label: str, *, sample_rss: bool = False,
                  timeout: float = 3600, **env: str) -> Fetch:
    """Daemon A shares ``source`` (upload not timed); daemon B fetches it by code. The clock runs from
    ``POST /api/v1/receive`` on B to B reporting the transfer done (join, handshake, transfer,
    fsyncs, SHA-256 verification, rename). The route is what B's transfer record said while it ran
    (``direct``, or the ICE route of the data channel: ``host``, ``relay``...). ``env`` goes to both."""
    a = Daemon(workdir / f"{label}-a", **env).start()
    b = Daemon(workdir / f"{label}-b", **env).start()
    try:
        with source.open("rb") as body:
            share = a.api("PUT", f"/api/v1/shares/{source.name}", content=body).json()
        sampler = RssSampler({"sender": a.proc.pid, "receiver": b.proc.pid}) if sample_rss else None
        routes: set[str] = set()
        with sampler if sampler is not None else _nothing():
            start = time.perf_counter()
            transfer = b.api("POST", "/api/v1/receive", json={"code": share["code"], "signal": a.signal_url}).json()
            deadline = time.monotonic() + timeout
            while True:
                record = b.api("GET", f"/api/v1/transfers/{transfer['id']}").json()
                if record.get("route"):
                    routes.add(record["route"])
                if record["state"] == "done":
                    break
                if record["state"] == "failed" or time.monotonic() > deadline:
                    raise RuntimeError(f"transfer {record['state']}: {record}\n{b.log_tail()}")
                time.sleep(0.1)
            elapsed = time.perf_counter() - start
        landed = b.inbox / source.name
        if sha256_of(landed) != digest:
            raise RuntimeError("the received file differs from the source")
        landed.unlink()
        route = record.get("route") or ",".join(sorted(routes)) or _route_from_log(b)
        result = Fetch(elapsed, route, routes)
        if sampler is not None:
            result.rss = {name: sampler.summary(name) for name in sampler.pids}
            result.curves = {name: sampler.curve(name) for name in sampler.pids}
        return result
    finally:
        b.stop()
        a.stop()
        for side in "ab":
            _rmtree(workdir / f"{label}-{side}")


def _route_from_log(daemon: Daemon) -> str:
    """The route B's log names, when the transfer record has no ``route`` field: the session's
    ``transfer route: X`` line, else the data channel's ``connected via X`` (as ``webrtc/X``)."""
    import re

    text = daemon.log_tail(2000)
    found = re.findall(r"transfer route: (\S+)", text)
    if found:
        return found[-1]
    found = re.findall(r"connected via (\S+)", text)
    return f"webrtc/{found[-1]}" if found else "unknown"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- raw TCP: the limit ----------------------------------------------------------------------------

def _tcp_receiver(port_queue, size: int, done_queue) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port_queue.put(server.getsockname()[1])
        conn, _ = server.accept()
        with conn:
            buffer = bytearray(1 << 20)
            view = memoryview(buffer)
            got = 0
            while got < size:
                n = conn.recv_into(view)
                if not n:
                    break
                got += n
            conn.sendall(b"k")
    done_queue.put(got)


def _tcp_sender(port: int, source: str, size: int, result_queue) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn, open(source, "rb") as f:
        start = time.perf_counter()
        sent = 0
        while sent < size:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            conn.sendall(chunk)
            sent += len(chunk)
        conn.recv(1)
        result_queue.put(time.perf_counter() - start)


def raw_tcp(source: Path, size: int) -> float:
    """Seconds to move ``size`` bytes of ``source`` from one Python process to another over a
    loopback TCP socket (1 MiB reads and sends, no crypto, nothing written), until the receiver
    has them all."""
    ctx = mp.get_context("spawn")
    port_q, done_q, result_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
    receiver = ctx.Process(target=_tcp_receiver, args=(port_q, size, done_q))
    receiver.start()
    port = port_q.get(timeout=30)
    sender = ctx.Process(target=_tcp_sender, args=(port, str(source), size, result_q))
    sender.start()
    seconds = result_q.get(timeout=600)
    got = done_q.get(timeout=30)
    sender.join(10)
    receiver.join(10)
    if got != size:
        raise RuntimeError(f"raw TCP receiver got {got} of {size} bytes")
    return seconds


def workdir(prefix: str = "doorstep-bench-") -> tempfile.TemporaryDirectory:
    """A scratch directory on the same disk as /tmp."""
    return tempfile.TemporaryDirectory(prefix=prefix)
