"""Baseline: stock aiortc on plain asyncio, two processes, one data channel, loopback.

Only ICE is adjusted (gather 127.0.0.1, no public STUN); everything else is aiortc as shipped.
Prints one JSON line: {"bytes": N, "seconds": S}.

``--tuning [FEATURES]`` (or ``measure(..., tuning=...)``) runs the same program with doorstep's SCTP
tuning (``daemon/peer/sctp_tuning.py``) installed in both processes: all features, or the
comma-separated ones named; ``--message N`` changes the message size (default 64 KiB).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

MESSAGE = 65536  # what a stock application can count on (the default remote max message size)


def _loopback_only() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def _sender(conn, size: int, message: int = MESSAGE) -> dict:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("bench", ordered=True)
    done = asyncio.Event()
    channel.on("message", lambda m: done.set())
    await pc.setLocalDescription(await pc.createOffer())
    conn.send(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(conn.recv(), "answer"))
    opened = asyncio.Event()
    channel.on("open", opened.set)
    if channel.readyState != "open":
        await opened.wait()
    low = asyncio.Event()
    channel.bufferedAmountLowThreshold = 1 << 20
    channel.on("bufferedamountlow", low.set)
    payload = b"\0" * message
    start = time.perf_counter()
    sent = 0
    while sent < size:
        if channel.bufferedAmount > 4 << 20:
            low.clear()
            await low.wait()
        channel.send(payload)
        sent += message
    await done.wait()
    elapsed = time.perf_counter() - start
    await pc.close()
    return {"bytes": sent, "seconds": elapsed}


async def _receiver(conn, size: int) -> None:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    finished = asyncio.Event()

    @pc.on("datachannel")
    def on_channel(channel) -> None:
        got = 0

        @channel.on("message")
        def on_message(message: bytes) -> None:
            nonlocal got
            got += len(message)
            if got >= size:
                channel.send(b"done")
                finished.set()

    await pc.setRemoteDescription(RTCSessionDescription(conn.recv(), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    conn.send(pc.localDescription.sdp)
    await finished.wait()
    await asyncio.sleep(2)  # time for "done" to be retransmitted if it was lost (not timed)
    await pc.close()


def _run(role: str, conn, size: int, results, use_uvloop: bool, tuning: tuple[str, ...] | None = None,
         message: int = MESSAGE) -> None:
    _loopback_only()
    if tuning is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from daemon.peer import sctp_tuning

        sctp_tuning.install(tuning)
    if use_uvloop:
        import uvloop

        run = uvloop.run
    else:
        run = asyncio.run
    if role == "sender":
        results.put(run(_sender(conn, size, message)))
    else:
        run(_receiver(conn, size))


def measure(size: int, *, use_uvloop: bool = False, tuning: tuple[str, ...] | None = None,
            message: int = MESSAGE) -> dict:
    """Run sender and receiver processes; return the sender's {"bytes", "seconds"}.

    ``tuning``: None for aiortc as shipped, else the ``sctp_tuning`` features to install in both.
    """
    ctx = mp.get_context("spawn")
    sender_end, receiver_end = ctx.Pipe()
    results = ctx.Queue()
    procs = [ctx.Process(target=_run, args=("sender", sender_end, size, results, use_uvloop, tuning, message)),
             ctx.Process(target=_run, args=("receiver", receiver_end, size, results, use_uvloop, tuning, message))]
    for p in procs:
        p.start()
    result = results.get(timeout=600)
    for p in procs:
        p.join(30)
    return result


def _features(text: str) -> tuple[str, ...]:
    if text == "all":
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from daemon.peer.sctp_tuning import FEATURES

        return tuple(sorted(FEATURES))
    return tuple(f for f in text.split(",") if f and f != "none")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", nargs="?", type=int, default=64 << 20, help="bytes (default 64 MiB)")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--tuning", nargs="?", const="all", default=None, help="features (default all)")
    parser.add_argument("--message", type=int, default=MESSAGE)
    args = parser.parse_args()
    tuning = None if args.tuning is None else _features(args.tuning)
    print(json.dumps(measure(args.size, use_uvloop=args.uvloop, tuning=tuning, message=args.message)))
