"""Baseline: stock aiortc on plain asyncio, two processes, one data channel, loopback.

Only ICE is adjusted (gather 127.0.0.1, no public STUN); everything else is aiortc as shipped.
Prints one JSON line: {"bytes": N, "seconds": S}.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import sys
import time

MESSAGE = 65536  # what a stock application can count on (the default remote max message size)


def _loopback_only() -> None:
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def _sender(conn, size: int) -> dict:
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
    payload = b"\0" * MESSAGE
    start = time.perf_counter()
    sent = 0
    while sent < size:
        if channel.bufferedAmount > 4 << 20:
            low.clear()
            await low.wait()
        channel.send(payload)
        sent += MESSAGE
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
    await asyncio.sleep(0.5)
    await pc.close()


def _run(role: str, conn, size: int, results, use_uvloop: bool) -> None:
    _loopback_only()
    if use_uvloop:
        import uvloop

        run = uvloop.run
    else:
        run = asyncio.run
    if role == "sender":
        results.put(run(_sender(conn, size)))
    else:
        run(_receiver(conn, size))


def measure(size: int, *, use_uvloop: bool = False) -> dict:
    """Run sender and receiver processes; return the sender's {"bytes", "seconds"}."""
    ctx = mp.get_context("spawn")
    sender_end, receiver_end = ctx.Pipe()
    results = ctx.Queue()
    procs = [ctx.Process(target=_run, args=("sender", sender_end, size, results, use_uvloop)),
             ctx.Process(target=_run, args=("receiver", receiver_end, size, results, use_uvloop))]
    for p in procs:
        p.start()
    result = results.get(timeout=600)
    for p in procs:
        p.join(30)
    return result


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64 << 20
    print(json.dumps(measure(size, use_uvloop="--uvloop" in sys.argv)))
