"""Per-frame zstd compression (COMPRESSED_DATA frames) on and off, in one run.

Usage: python bench/compression.py [MiB] [runs] [--webrtc-mib N] [--levels]
       (default 128 MiB per transfer in memory, 3 runs, N = 64 MiB over WebRTC; medians printed)

Two kinds of file: **text** (log lines and JSON events with varying timestamps, addresses, ids and
numbers; ~4x with zstd) and **random** (incompressible: what JPEG, video and archives look like to a
compressor). Each goes through ``run_sender`` and ``run_receiver`` (real files, inbox, fsync every
4 MiB, SHA-256 verification, final rename) with ``compression=None`` and with
``compression=ZstdCompression()`` on both sides, alternating which goes first, over two transports:
an in-memory message pair (the drivers' own cost: the price of compressing when the link is free)
and a real aiortc data channel on 127.0.0.1 with both peers in this one process (DTLS and SCTP in
Python: the WebRTC path the issue asks about). 256 KiB messages throughout, as between two daemons.

Printed: MB/s of file bytes (file size / seconds), the bytes the sender put on the transport (every
message: frames and control), and their ratio to the file size. ``--levels`` first prints zstd's
ratio and speed per level on 256 KiB chunks (how ``DEFAULT_LEVEL`` was chosen).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Private helpers of bench/transfer.py (owned elsewhere; imported, not copied).
from bench.transfer import WEBRTC_MESSAGE, _memory_pair, over_webrtc_pair  # noqa: E402
from tests.integration.harness import random_file, sha256_of  # noqa: E402

MiB = 1024 * 1024
CHUNK = WEBRTC_MESSAGE - 17  # data_payload_limit(256 KiB): one DATA frame per message


# -- data ---------------------------------------------------------------------------------------


def text_block(size: int, seed: int) -> bytes:
    """``size`` bytes of log and JSON lines; nothing repeats within a 256 KiB chunk."""
    rng = random.Random(seed)
    paths = ["/api/v1/shares", "/api/v1/transfers", "/metrics", "/static/app.js", "/api/v1/receive", "/healthz"]
    levels = ["INFO", "INFO", "INFO", "DEBUG", "WARNING", "ERROR"]
    events = ["transfer.progress", "transfer.done", "peer.connected", "ice.candidate"]
    out, t = [], 1_700_000_000.0
    length = 0
    while length < size:
        t += rng.expovariate(20)
        if rng.random() < 0.5:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
            address = ".".join(str(rng.randint(1, 254)) for _ in range(4))
            line = (f"{stamp}.{int(t * 1000) % 1000:03d}Z {rng.choice(levels)} doorstep.http {address} "
                    f"\"GET {rng.choice(paths)}?page={rng.randint(1, 50)}\" {rng.choice([200, 200, 304, 404, 500])} "
                    f"{rng.randint(100, 90000)}B {rng.random() * 250:.1f}ms\n")
        else:
            line = json.dumps({"ts": round(t, 3), "event": rng.choice(events), "transfer": f"{rng.getrandbits(64):016x}",
                               "bytes": rng.randint(0, 1 << 30), "rate_mbps": round(rng.uniform(0, 120), 2),
                               "route": rng.choice(["relay", "direct", "host"])}) + "\n"
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:size]


def text_file(path: Path, size: int) -> str:
    """Write ``size`` bytes of text to ``path`` (a 16 MiB block of distinct lines, repeated: frames are
    compressed independently, so a repeat 16 MiB later gains nothing); return the SHA-256."""
    import hashlib

    block = text_block(min(size, 16 * MiB), seed=1)
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            piece = block[:left]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


# -- codec micro ----------------------------------------------------------------------------------


def levels_micro(total: int = 32 * MiB) -> None:
    import zstandard

    text, noise = text_block(total, seed=2), os.urandom(total)
    print(f"zstd levels on {CHUNK}-byte chunks, {total // MiB} MiB (ratio = compressed / raw):")
    for name, data in (("text", text), ("random", noise)):
        chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]
        for level in (-1, 1, 2, 3, 6):
            compressor, decompressor = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
            t0 = time.perf_counter()
            packed = [compressor.compress(c) for c in chunks]
            t1 = time.perf_counter()
            for p, c in zip(packed, chunks, strict=True):
                decompressor.decompress(p, max_output_size=len(c))
            t2 = time.perf_counter()
            ratio = sum(map(len, packed)) / len(data)
            print(f"  {name:6} level {level:2}: ratio {ratio:.3f}, compress {len(data) / (t1 - t0) / 1e6:5.0f} MB/s, "
                  f"decompress {len(data) / (t2 - t1) / 1e6:5.0f} MB/s", flush=True)


# -- transfers ------------------------------------------------------------------------------------


class Counting:
    """A ``MessageTransport`` wrapper counting the bytes sent through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.max_message_size = inner.max_message_size
        self.sent = 0

    async def send(self, data: bytes) -> None:
        self.sent += len(data)
        await self.inner.send(data)

    async def receive(self) -> bytes:
        return await self.inner.receive()


async def drive(sender_end: Any, receiver_end: Any, source: Path, digest: str, inbox_root: Path,
                compress: bool) -> tuple[float, int]:
    """(seconds, bytes the sender sent) for ``run_receiver`` to get ``source`` verified and in place."""
    import shutil

    import trio

    from daemon.protocol import FileEntry
    from daemon.state import Direction, StateDB
    from daemon.storage import Inbox, SourceFile
    from daemon.transfer import run_receiver, run_sender
    from daemon.transfer.zstd_codec import ZstdCompression

    entries = [FileEntry(path=source.name, size=source.stat().st_size, sha256=digest)]
    journal = StateDB(":memory:")
    journal.add_transfer("bench", Direction.RECEIVE)
    inbox = Inbox(inbox_root)
    counted = Counting(sender_end)

    def open_source(index: int) -> SourceFile:
        return SourceFile(os.open(source, os.O_RDONLY), source.name)

    async def send() -> None:
        await run_sender(counted, "bench-share", entries, open_source, lambda *_: None,
                         compression=ZstdCompression() if compress else None)

    try:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await run_receiver(receiver_end, inbox=inbox, journal=journal, transfer_id="bench", expect_share=None,
                               report=lambda *_: None, compression=ZstdCompression() if compress else None)
        elapsed = time.perf_counter() - start
        assert sha256_of(inbox_root / source.name) == digest
        return elapsed, counted.sent
    finally:
        inbox.close()
        journal.close()
        shutil.rmtree(inbox_root)


def over_memory(source: Path, digest: str, workdir: Path, compress: bool) -> tuple[float, int]:
    import trio

    async def main() -> tuple[float, int]:
        sender_end, receiver_end = _memory_pair()
        try:
            return await drive(sender_end, receiver_end, source, digest, workdir / "inbox-memory", compress)
        finally:
            sender_end.close()
            receiver_end.close()

    return trio.run(main)


def over_webrtc(source: Path, digest: str, workdir: Path, compress: bool) -> tuple[float, int]:
    """Both drivers in this process, joined by a real aiortc data channel on 127.0.0.1 (DTLS, SCTP);
    the same set-up as bench/transfer.py's ``driver_over_webrtc``."""
    return over_webrtc_pair(lambda sender, receiver: drive(sender, receiver, source, digest,
                                                           workdir / "inbox-webrtc", compress))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", nargs="?", type=int, default=128, help="MiB per transfer in memory (default 128)")
    parser.add_argument("runs", nargs="?", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--webrtc-mib", type=int, default=64, help="MiB per transfer over WebRTC (0 skips it)")
    parser.add_argument("--levels", action="store_true", help="first print zstd's ratio and speed per level")
    args = parser.parse_args()
    if args.levels:
        levels_micro()
    measure(args.mib * MiB, args.runs, args.webrtc_mib * MiB)


def measure(size: int, runs: int, webrtc_size: int) -> None:
    rows: dict[tuple[str, str], dict[str, list[tuple[float, int]]]] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="doorstep-bench-") as tmp:
        workdir = Path(tmp)
        for label, transfer, nbytes in (("memory", over_memory, size), ("webrtc", over_webrtc, webrtc_size)):
            if nbytes <= 0:
                continue
            sizes[label] = nbytes
            for kind, make in (("text", text_file), ("random", random_file)):
                source = workdir / f"{kind}-{label}.bin"
                digest = make(source, nbytes)
                results = rows.setdefault((label, kind), {"off": [], "on": []})
                for run in range(runs):
                    for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):  # drift hits both
                        seconds, wire = transfer(source, digest, workdir, mode == "on")
                        results[mode].append((nbytes / seconds / 1e6, wire))
                    off, on = results["off"][-1], results["on"][-1]
                    print(f"{label} {kind} run {run + 1} ({nbytes // MiB} MiB): off {off[0]:.1f} MB/s, "
                          f"on {on[0]:.1f} MB/s; wire on/off {on[1] / off[1]:.3f}", flush=True)
                source.unlink()
    print("\n| path | data | MiB | off MB/s | on MB/s | on/off | median per-run on/off | wire off | wire on | "
          "wire on / file |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (label, kind), results in rows.items():
        off = statistics.median(r[0] for r in results["off"])
        on = statistics.median(r[0] for r in results["on"])
        paired = statistics.median(b[0] / a[0] for a, b in zip(results["off"], results["on"], strict=True))
        wire_off, wire_on = results["off"][0][1], results["on"][0][1]
        path = "drivers, in-memory pair" if label == "memory" else "drivers, aiortc data channel (one process)"
        print(f"| {path} | {kind} | {sizes[label] // MiB} | {off:.1f} | {on:.1f} | {on / off:.2f}x | {paired:.2f}x | "
              f"{wire_off:,} | {wire_on:,} | {wire_on / sizes[label]:.3f} |")


if __name__ == "__main__":
    main()
