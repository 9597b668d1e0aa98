"""Daemon-to-daemon transfer on loopback beside stock aiortc, measured in the same run.

Usage: python bench/transfer.py [MiB] [runs]   (default 256 MiB, 3 runs; medians printed)

Daemon A shares a random file (upload not timed); daemon B is told to fetch it; the clock runs from
``POST /api/v1/receive`` to B reporting the transfer done (join, WebRTC handshake, transfer, fsyncs,
SHA-256 verification and the final rename included). Stock aiortc moves the same number of bytes over
one data channel between two processes, on plain asyncio (the baseline) and on uvloop (what the
same event loop as ours gives a bare sender with no protocol, disk or hashing).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stock_aiortc import measure as stock_aiortc  # noqa: E402
from tests.integration.harness import Daemon, random_file, sha256_of  # noqa: E402

MiB = 1024 * 1024


def daemon_to_daemon(workdir: Path, size: int, run: int) -> float:
    """Seconds for B to fetch a ``size``-byte share from A, verified."""
    a = Daemon(workdir / f"a{run}").start()
    b = Daemon(workdir / f"b{run}").start()
    try:
        source = workdir / "payload.bin"
        if not source.exists():
            random_file(source, size)
        with source.open("rb") as body:
            share = a.api("PUT", "/api/v1/shares/payload.bin", content=body).json()
        start = time.perf_counter()
        transfer = b.api("POST", "/api/v1/receive", json={"code": share["code"], "signal": a.signal_url}).json()
        b.wait_transfer(transfer["id"], lambda t: t["state"] == "done", timeout=900)
        elapsed = time.perf_counter() - start
        assert sha256_of(b.inbox / "payload.bin") == sha256_of(source)
        return elapsed
    finally:
        b.stop()
        a.stop()


def main() -> None:
    size = int(sys.argv[1]) * MiB if len(sys.argv) > 1 else 256 * MiB
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    ours, stock, stock_uv = [], [], []
    with tempfile.TemporaryDirectory(prefix="doorstep-bench-") as tmp:
        for run in range(runs):
            ours.append(size / daemon_to_daemon(Path(tmp), size, run) / 1e6)
            stock.append(_rate(stock_aiortc(size)))
            stock_uv.append(_rate(stock_aiortc(size, use_uvloop=True)))
            print(f"run {run + 1}: doorstep {ours[-1]:.1f} MB/s, stock aiortc {stock[-1]:.1f} MB/s, "
                  f"stock aiortc on uvloop {stock_uv[-1]:.1f} MB/s", flush=True)
    o, s, u = (statistics.median(x) for x in (ours, stock, stock_uv))
    print(f"\n{size // MiB} MiB, median of {runs}: doorstep daemon-to-daemon {o:.1f} MB/s; "
          f"stock aiortc {s:.1f} MB/s (ratio {o / s:.2f}x); stock aiortc on uvloop {u:.1f} MB/s (ratio {o / u:.2f}x)")


def _rate(result: dict) -> float:
    return result["bytes"] / result["seconds"] / 1e6


if __name__ == "__main__":
    main()
