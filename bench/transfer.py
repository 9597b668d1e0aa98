"""Daemon-to-daemon transfer on loopback beside stock aiortc, measured in the same run; or the cost of
app-layer encryption (sealed DATA frames), on and off in the same run.

Usage: python bench/transfer.py [MiB] [runs]   (default 256 MiB, 3 runs; medians printed)
       python bench/transfer.py --sealing [MiB] [runs] [--webrtc-mib N] [--daemon-mib D]
           (default 256 MiB in memory, 3 runs, N = 64 MiB over WebRTC in one process, D = 128 MiB
           daemon to daemon)

Daemon A shares a random file (upload not timed); daemon B is told to fetch it; the clock runs from
``POST /api/v1/receive`` to B reporting the transfer done (join, WebRTC handshake, transfer, fsyncs,
SHA-256 verification and the final rename included). Stock aiortc moves the same number of bytes over
one data channel between two processes, on plain asyncio (the baseline) and on uvloop (what the
same event loop as ours gives a bare sender with no protocol, disk or hashing).

``--sealing`` measures, in one run: seal and open MB/s for 256 KiB chunks (SHA-256 beside it for
scale); then ``run_sender`` and ``run_receiver`` (real files, inbox, fsync every 4 MiB, SHA-256
verification, final rename) with encryption off and on, alternating, over two transports: an
in-memory message pair (the drivers' own cost: the upper bound of what sealing can cost) and a
real aiortc data channel on loopback with both peers in this one process (what it costs beside
DTLS and SCTP); and two daemons as above, both started with ``DOORSTEP_TRANSFER_ENCRYPT`` false or
true (the whole product path). 256 KiB messages throughout, as between two daemons.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stock_aiortc import measure as stock_aiortc  # noqa: E402
from tests.integration.harness import Daemon, random_file, sha256_of  # noqa: E402

MiB = 1024 * 1024


def daemon_to_daemon(workdir: Path, size: int, run: int | str, **env: str) -> float:
    """Seconds for B to fetch a ``size``-byte share from A, verified (``env``: for both daemons)."""
    a = Daemon(workdir / f"a{run}", **env).start()
    b = Daemon(workdir / f"b{run}", **env).start()
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", nargs="?", type=int, default=256, help="MiB per transfer (default 256)")
    parser.add_argument("runs", nargs="?", type=int, default=3, help="runs (default 3)")
    parser.add_argument("--sealing", action="store_true", help="encryption on vs off instead of vs stock aiortc")
    parser.add_argument("--webrtc-mib", type=int, default=64, help="--sealing: MiB over WebRTC (0 skips it)")
    parser.add_argument("--daemon-mib", type=int, default=128, help="--sealing: MiB daemon to daemon (0 skips it)")
    args = parser.parse_args()
    if args.sealing:
        sealing_main(args.mib * MiB, args.runs, args.webrtc_mib * MiB, args.daemon_mib * MiB)
    else:
        daemon_main(args.mib * MiB, args.runs)


def daemon_main(size: int, runs: int) -> None:
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


# -- app-layer encryption on and off (``--sealing``) ---------------------------------------------

KiB = 1024
SEAL_CHUNK = 256 * KiB
WEBRTC_MESSAGE = 262144  # the message size both daemons use on their data channel


def seal_open_micro(total: int, chunk: int = SEAL_CHUNK) -> dict[str, float]:
    """MB/s of sealing, opening, both, and (for scale) SHA-256, over ``chunk``-byte chunks of one stream."""
    from daemon.crypto.sealing import FrameOpener, FrameSealer

    key, payload = os.urandom(32), os.urandom(chunk)
    count = max(1, total // chunk)
    sealer = FrameSealer(key, transfer_id="bench", file_index=0, offset=0)
    opener = FrameOpener(key, sealer.header, transfer_id="bench", file_index=0, offset=0)
    seal_time = open_time = 0.0
    for i in range(count):
        final = i == count - 1
        t0 = time.perf_counter()
        sealed = sealer.seal(payload, offset=i * chunk, final=final)
        t1 = time.perf_counter()
        opener.open(sealed, offset=i * chunk, final=final)
        t2 = time.perf_counter()
        seal_time += t1 - t0
        open_time += t2 - t1
    digest = hashlib.sha256()
    t0 = time.perf_counter()
    for _ in range(count):
        digest.update(payload)
    hash_time = time.perf_counter() - t0
    moved = count * chunk / 1e6
    return {"seal": moved / seal_time, "open": moved / open_time, "seal+open": moved / (seal_time + open_time),
            "sha256": moved / hash_time}


class _MemoryEnd:
    """One end of an in-memory ``MessageTransport`` pair (bounded queue: the sender feels backpressure)."""

    def __init__(self, send: Any, receive: Any, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self._send, self._receive = send, receive

    async def send(self, data: bytes) -> None:
        await self._send.send(data)

    async def receive(self) -> bytes:
        import trio

        try:
            return await self._receive.receive()
        except trio.ClosedResourceError:
            raise trio.EndOfChannel from None

    def close(self) -> None:
        self._send.close()


def _memory_pair() -> tuple[_MemoryEnd, _MemoryEnd]:
    import trio

    a_send, b_receive = trio.open_memory_channel[bytes](64)
    b_send, a_receive = trio.open_memory_channel[bytes](64)
    return _MemoryEnd(a_send, a_receive, WEBRTC_MESSAGE), _MemoryEnd(b_send, b_receive, WEBRTC_MESSAGE)


class _Pipe:
    """In-memory signaling for two peers in one process."""

    def __init__(self, send: Any, receive: Any) -> None:
        self._send, self._receive = send, receive

    async def send(self, data: dict) -> None:
        await self._send.send(data)

    async def receive(self) -> dict:
        return await self._receive.receive()


async def _drive(sender_end: Any, receiver_end: Any, source: Path, digest: str, inbox_root: Path,
                 seal_key: bytes | None) -> float:
    """Seconds for ``run_receiver`` to get ``source`` verified and in place, both drivers running here."""
    import trio

    from daemon.protocol import FileEntry
    from daemon.state import Direction, StateDB
    from daemon.storage import Inbox, SourceFile
    from daemon.transfer import run_receiver, run_sender

    entries = [FileEntry(path=source.name, size=source.stat().st_size, sha256=digest)]
    journal = StateDB(":memory:")
    journal.add_transfer("bench", Direction.RECEIVE)
    inbox = Inbox(inbox_root)

    def open_source(index: int) -> SourceFile:
        return SourceFile(os.open(source, os.O_RDONLY), source.name)

    async def send() -> None:
        await run_sender(sender_end, "bench-share", entries, open_source, lambda *_: None, seal_key=seal_key)

    try:
        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            await run_receiver(receiver_end, inbox=inbox, journal=journal, transfer_id="bench", expect_share=None,
                               report=lambda *_: None, seal_key=seal_key)
        elapsed = time.perf_counter() - start
        assert sha256_of(inbox_root / source.name) == digest
        return elapsed
    finally:
        inbox.close()
        journal.close()
        shutil.rmtree(inbox_root)


def driver_over_memory(source: Path, digest: str, workdir: Path, seal_key: bytes | None) -> float:
    import trio

    async def main() -> float:
        sender_end, receiver_end = _memory_pair()
        try:
            return await _drive(sender_end, receiver_end, source, digest, workdir / "inbox-memory", seal_key)
        finally:
            sender_end.close()
            receiver_end.close()

    return trio.run(main)


def over_webrtc_pair(drive: Any) -> Any:
    """``await drive(sender_channel, receiver_channel)`` with both ends of a real aiortc data channel
    on 127.0.0.1 (DTLS, SCTP) in this process, as two daemons open it; returns what it returns."""
    import trio

    from daemon.ice import IceConfig
    from daemon.peer import Role, open_data_channel
    from daemon.runtime import bridge
    from daemon.runtime.sessions import CONTROL_RECEIVE_LIMIT
    from daemon.transfer.receiving import receive_limit

    loopback = IceConfig(addresses=("127.0.0.1",))

    async def main() -> Any:
        a_send, b_receive = trio.open_memory_channel[dict](10)
        b_send, a_receive = trio.open_memory_channel[dict](10)
        result: dict[str, Any] = {}
        async with trio.open_nursery() as nursery:
            channels: dict[str, Any] = {}
            ready = trio.Event()
            finished = trio.Event()

            async def peer(name: str, pipe: _Pipe, role: Any, limit: int) -> None:
                async with open_data_channel(pipe, role, loopback, receive_limit=limit) as channel:
                    channels[name] = channel
                    if len(channels) == 2:
                        ready.set()
                    await finished.wait()
                    await channel.wait_flushed()

            nursery.start_soon(peer, "sender", _Pipe(a_send, a_receive), Role.OFFERER, CONTROL_RECEIVE_LIMIT)
            nursery.start_soon(peer, "receiver", _Pipe(b_send, b_receive), Role.ANSWERER,
                               receive_limit(WEBRTC_MESSAGE))
            await ready.wait()
            result["value"] = await drive(channels["sender"], channels["receiver"])
            finished.set()
        return result["value"]

    return bridge.run(main)


def driver_over_webrtc(source: Path, digest: str, workdir: Path, seal_key: bytes | None) -> float:
    """Both drivers in this process, joined by a real aiortc data channel on 127.0.0.1 (DTLS, SCTP)."""
    return over_webrtc_pair(lambda sender, receiver: _drive(sender, receiver, source, digest,
                                                            workdir / "inbox-webrtc", seal_key))


def daemons_with_sealing(source: Path, digest: str, workdir: Path, seal_key: bytes | None) -> float:
    """Two daemons (A shares ``source``, B fetches it by code), encryption set by configuration."""
    payload = workdir / "payload.bin"
    if payload.exists():
        payload.unlink()
    payload.hardlink_to(source)  # daemon_to_daemon shares workdir/payload.bin
    mode = "on" if seal_key is not None else "off"
    run = f"-{mode}-{time.monotonic_ns()}"
    try:
        encrypt = "true" if seal_key is not None else "false"
        return daemon_to_daemon(workdir, source.stat().st_size, run, DOORSTEP_TRANSFER_ENCRYPT=encrypt)
    finally:
        payload.unlink()
        for side in "ab":
            shutil.rmtree(workdir / f"{side}{run}", ignore_errors=True)


def sealing_main(size: int, runs: int, webrtc_size: int, daemon_size: int = 0) -> None:
    key = os.urandom(32)
    print(f"seal/open micro ({SEAL_CHUNK // KiB} KiB chunks, {size // MiB} MiB, best of 3):", flush=True)
    micro = [seal_open_micro(size) for _ in range(3)]
    best = {name: max(m[name] for m in micro) for name in micro[0]}
    print("  " + ", ".join(f"{name} {rate:.0f} MB/s" for name, rate in best.items()), flush=True)
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="doorstep-bench-") as tmp:
        workdir = Path(tmp)
        transports = (("memory", driver_over_memory, size), ("webrtc", driver_over_webrtc, webrtc_size),
                      ("daemons", daemons_with_sealing, daemon_size))
        for label, measure, nbytes in transports:
            if nbytes <= 0:
                continue
            source = workdir / f"payload-{label}.bin"
            digest = random_file(source, nbytes)
            rates = rows.setdefault(label, {"off": [], "on": []})
            for run in range(runs):
                order = ("off", "on") if run % 2 == 0 else ("on", "off")  # alternate, so drift hits both
                for mode in order:
                    seconds = measure(source, digest, workdir, key if mode == "on" else None)
                    rates[mode].append(nbytes / seconds / 1e6)
                print(f"{label} run {run + 1} ({nbytes // MiB} MiB): encryption off {rates['off'][-1]:.1f} MB/s, "
                      f"on {rates['on'][-1]:.1f} MB/s", flush=True)
            source.unlink()
    print()
    for label, rates in rows.items():
        off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
        paired = statistics.median(b / a for a, b in zip(rates["off"], rates["on"], strict=True))
        what = "daemon to daemon" if label == "daemons" else f"drivers over {label}"
        print(f"{what}, median of {runs}: encryption off {off:.1f} MB/s, on {on:.1f} MB/s (on/off {on / off:.2f}x; "
              f"median of the per-run ratios {paired:.2f}x)")
    print(f"seal+open {best['seal+open']:.0f} MB/s of one core per 256 KiB chunk "
          f"(seal {best['seal']:.0f}, open {best['open']:.0f}; SHA-256 {best['sha256']:.0f} MB/s)")


if __name__ == "__main__":
    main()
