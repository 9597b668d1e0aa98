"""Load benchmark for the signaling server (``ws://127.0.0.1:PORT/signal/v1``).

Usage::

    python bench/signaling.py [--connections 10000] [--hold 35] [--rate 200] [--duration 20]
                              [--workers 2] [--profile stacks.txt | --tracemalloc | --bare]

Three kinds of process, all on 127.0.0.1:

* the **server**: ``serve_signaling(MemorySessionStore(), "127.0.0.1", 0)`` alone in its own
  process (default heartbeat and join timeout; the connection caps, total and per address, are
  lifted above the test's needs because all the load comes from 127.0.0.1), so its RSS
  (``VmRSS`` in ``/proc/PID/status``) and CPU time (``/proc/PID/stat``) are its own;
* ``--workers`` **load generators** (trio, speaking the JSON protocol over a minimal hand-written
  WebSocket client, :class:`RawWebSocket`; neither ``open_signaling`` nor trio-websocket is used
  on this side, so the clients cost less CPU than the server they load);
* this **orchestrator**, which starts the others, samples the server and prints the summary.

Phase 1 (idle connections): the workers open ``--connections`` sockets between them and keep them
open for ``--hold`` seconds (answering the server's heartbeat pings). Each socket sends one
``host`` (``code: false``) and waits for ``hosted`` -- the state of a sender waiting for its
receiver -- because a socket that never hosts or joins is closed by the server's join timeout
(60 s). Server RSS is read before the first socket and every second while
all are held (the maximum is reported); the difference divided by the sockets held is the cost of
one connection.

Phase 2 (session setups): the workers start setups at a fixed total rate (``--rate`` per second
for ``--duration`` seconds, open loop: a setup starts on schedule whether or not earlier ones have
finished). One setup: the host and the joiner each open a WebSocket; then (clock starts) the host
sends ``host`` with ``code: true`` and gets ``hosted``, the joiner sends ``join`` with that code and
gets ``joined``, the host gets ``peer``, the joiner relays an ``offer`` object (a ~1.5 KB fake SDP),
the host receives it and relays an ``answer`` object, and the joiner receives it (clock stops);
both sockets are then closed. The figure is that create-to-answer time; the time from the
scheduled start (two WebSocket handshakes included) is reported beside it. A setup that errs or
takes more than ``--setup-timeout`` counts as an error.

The server is left to go idle between the phases (it tears down phase 1's sockets), so phase 2
runs without the idle sockets. Every process raises ``RLIMIT_NOFILE`` to the hard limit.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import math
import os
import resource
import secrets
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trio  # noqa: E402

SIGNAL_PATH = "/signal/v1"
PY_SPY = "/tmp/probe-venv/bin/py-spy"
TARGET_RSS_MB = 300.0
TARGET_CONNECTIONS = 10_000
TARGET_P99_MS = 100.0
TARGET_RATE = 200.0
FAKE_SDP = "v=0\r\n" + "a=candidate:1 1 udp 2130706431 192.168.1.20 50000 typ host\r\n" * 24


# --- shared helpers ------------------------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return ``(old_soft, hard)``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (``VmRSS``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_times(pid: int) -> tuple[float, float]:
    """``(user, system)`` CPU seconds process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process ``pid`` has used so far."""
    return sum(cpu_times(pid))


def machine_busy_seconds() -> float:
    """CPU seconds all cores of the machine have spent busy since boot (``/proc/stat``)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    """The 1/5/15-minute load averages as printed by ``uptime``."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (``nan`` if empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


class Closed(Exception):
    """The server closed the WebSocket (``code`` is its close code) or the TCP stream."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed by the server ({code})")
        self.code = code


class Refused(Exception):
    """The server answered the upgrade request with something other than 101."""


class RawWebSocket:
    """A deliberately minimal WebSocket client for the benchmark (RFC 6455 subset).

    The load generator must stay cheaper than the server it loads, so this replaces
    trio-websocket (h11 + wsproto + a reader task per socket): a hand-written upgrade request,
    text frames written with an all-zero mask key (valid framing; the server does not judge the
    key), server frames parsed in place, pings answered inline while receiving, and a close
    handshake bounded to one second. Enough for the signaling protocol and nothing more.
    """

    def __init__(self, stream: trio.SocketStream, buffered: bytes) -> None:
        self._stream = stream
        self._buffer = bytearray(buffered)

    @classmethod
    async def connect(cls, port: int) -> RawWebSocket:
        """Open ``ws://127.0.0.1:PORT/signal/v1``; raise ``Refused`` unless upgraded."""
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        try:
            key = base64.b64encode(secrets.token_bytes(16)).decode()
            await stream.send_all(
                f"GET {SIGNAL_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            buffer = bytearray()
            while b"\r\n\r\n" not in buffer:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    raise Refused("connection closed during the upgrade")
                buffer += chunk
            head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0]
            if not status.startswith(b"HTTP/1.1 101"):
                raise Refused(status.decode("latin-1"))
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return cls(stream, rest)

    async def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` as one JSON text frame."""
        await self._send_frame(0x1, json.dumps(message).encode())

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        await self._stream.send_all(header + b"\0\0\0\0" + payload)  # zero mask: payload as is

    async def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise Closed(None)
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    async def receive(self) -> dict[str, Any]:
        """The next JSON message from the server (answering pings on the way)."""
        while True:
            b0, b1 = await self._read_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self._read_exact(2), "big")
            elif n == 127:
                n = int.from_bytes(await self._read_exact(8), "big")
            payload = await self._read_exact(n)  # server frames are never masked
            opcode = b0 & 0x0F
            if opcode == 0x1 and b0 & 0x80:
                return json.loads(payload)
            if opcode == 0x9:
                await self._send_frame(0xA, payload)
            elif opcode == 0x8:
                raise Closed(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None)
            elif opcode != 0xA:
                raise RuntimeError(f"unexpected frame opcode {opcode} (fin {b0 >> 7})")

    async def close(self) -> None:
        """Close handshake (code 1000), waiting at most one second for the server's reply."""
        with trio.move_on_after(1.0):
            try:
                await self._send_frame(0x8, (1000).to_bytes(2, "big"))
                while True:
                    await self.receive()
            except (Closed, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(self._stream)


async def request(ws: RawWebSocket, message: dict[str, Any], expect: str) -> dict[str, Any]:
    """Send ``message`` and return the next message, which must have type ``expect``."""
    await ws.send(message)
    return await receive(ws, expect)


async def receive(ws: RawWebSocket, expect: str) -> dict[str, Any]:
    """Receive the next message; raise ``RuntimeError`` unless its type is ``expect``."""
    reply = await ws.receive()
    if reply.get("type") != expect:
        raise RuntimeError(f"expected {expect!r}, got {reply!r}")
    return reply


def new_share() -> tuple[str, str]:
    """A fresh share id and host key."""
    return "bench_" + secrets.token_urlsafe(12), secrets.token_urlsafe(24)


# --- server process ------------------------------------------------------------------------------


def server_limits(connections: int) -> dict[str, Any]:
    """Keyword arguments for ``serve_signaling`` that lift the connection caps to fit the test.

    The load comes from one address (127.0.0.1), so a per-address cap, and a total cap below
    ``connections`` plus the setups in flight, would refuse the benchmark itself. Only the fields
    this checkout's ``Limits`` has are set; every other limit keeps its default.
    """
    import dataclasses
    import inspect

    from daemon.signaling.limits import Limits
    from daemon.signaling.server import serve_signaling

    if "limits" not in inspect.signature(serve_signaling).parameters:
        return {}
    names = {f.name for f in dataclasses.fields(Limits)}
    cap = connections + 20_000
    lifted = {name: cap for name in ("max_connections", "max_connections_per_ip") if name in names}
    return {"limits": Limits(**lifted)} if lifted else {}


def run_server(connections: int, trace_memory: bool, bare: bool) -> None:
    """Serve signaling on a free 127.0.0.1 port; print ``{"port": ...}`` once listening.

    With ``bare``, serve :func:`_bare_handler` with plain trio-websocket instead (a floor for
    what one connection costs before any signaling state).

    With ``trace_memory``, tracemalloc runs, and each ``snapshot`` line read from stdin takes a
    snapshot; from the second on, the growth since the first is printed as one JSON line.
    """
    from daemon.signaling import MemorySessionStore
    from daemon.signaling.server import serve_signaling
    from trio_websocket import serve_websocket

    raise_nofile()
    if trace_memory:
        import tracemalloc

        tracemalloc.start(1)
        threading.Thread(target=_snapshot_on_request, daemon=True).start()
    kwargs = server_limits(connections)
    store = MemorySessionStore(**kwargs)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            if bare:
                ws_server = await nursery.start(
                    serve_websocket, _bare_handler, "127.0.0.1", 0, None)
                port = ws_server.port
            else:
                port = await nursery.start(
                    partial(serve_signaling, store, "127.0.0.1", 0, **kwargs))
            print(json.dumps({"port": port, "limits": "bare" if bare
                              else repr(kwargs.get("limits"))}), flush=True)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass


async def _bare_handler(request: Any) -> None:
    """Accept, then answer every message with ``hosted`` (enough for phase 1 only)."""
    from trio_websocket import ConnectionClosed

    try:
        ws = await request.accept()
        while True:
            await ws.get_message()
            await ws.send_message('{"type":"hosted","share":"x","code":null,"expires_at":null}')
    except ConnectionClosed:
        pass


def _snapshot_on_request() -> None:
    """Answer ``snapshot`` lines on stdin with the allocation growth since the first one."""
    import tracemalloc

    first = None
    for _ in sys.stdin:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        if first is None:
            first = snapshot
            print(json.dumps({"snapshot": "baseline"}), flush=True)
            continue
        by_file = snapshot.compare_to(first, "filename")
        by_line = snapshot.compare_to(first, "lineno")
        print(json.dumps({
            "total": sum(d.size_diff for d in by_file),
            "by_file": [(str(d.traceback[0].filename), d.size_diff) for d in by_file[:12]],
            "by_line": [(f"{d.traceback[0].filename}:{d.traceback[0].lineno}", d.size_diff,
                         d.count_diff) for d in by_line[:15]],
        }), flush=True)


# --- worker process: idle connections ------------------------------------------------------------


def run_idle_worker(port: int, count: int, concurrency: int) -> None:
    """Open ``count`` hosting sockets, print a JSON report, hold them until stdin closes."""
    raise_nofile()

    async def main() -> None:
        opened = dropped = 0
        errors: collections.Counter[str] = collections.Counter()
        all_open = trio.Event()
        stop = trio.Event()
        handshakes = trio.Semaphore(concurrency)
        start = time.perf_counter()

        def settled() -> None:
            handshakes.release()
            if opened + sum(errors.values()) == count:
                all_open.set()

        async def hold_one() -> None:
            """Open one socket, host a share on it, keep it open until ``stop``."""
            nonlocal opened, dropped
            hosted = False
            ws = None
            try:
                ws = await RawWebSocket.connect(port)
                share, key = new_share()
                await request(ws, {"type": "host", "share": share, "host_key": key,
                                   "code": False}, "hosted")
                hosted = True
                opened += 1
                settled()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(drain, ws)  # answers the server's heartbeat pings
                    await stop.wait()
                    nursery.cancel_scope.cancel()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                if hosted:
                    dropped += 1  # closed by the server (or failed) while it should be held
                else:
                    errors[type(exc).__name__] += 1
                    settled()
            finally:
                if ws is not None:
                    with trio.CancelScope(shield=True):
                        await ws.close()

        async def drain(ws: RawWebSocket) -> None:
            """Read (and so answer pings) until cancelled; any message is unexpected."""
            message = await ws.receive()
            raise RuntimeError(f"unexpected message on an idle socket: {message!r}")

        async def wait_stdin() -> None:
            await trio.to_thread.run_sync(sys.stdin.read)
            stop.set()

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                await handshakes.acquire()  # released by hold_one once hosted (or failed)
                nursery.start_soon(hold_one)
            await all_open.wait()
            print(json.dumps({"opened": opened, "errors": dict(errors),
                              "seconds": time.perf_counter() - start}), flush=True)
            nursery.start_soon(wait_stdin)
        print(json.dumps({"dropped": dropped}), flush=True)

    trio.run(main)


# --- worker process: session setups --------------------------------------------------------------


async def one_setup(port: int) -> tuple[float, float]:
    """One host/joiner session setup; return ``(create_to_answer, handshakes)`` in seconds."""
    t_connect = time.perf_counter()
    host = joiner = None
    try:
        host = await RawWebSocket.connect(port)
        joiner = await RawWebSocket.connect(port)
        t_create = time.perf_counter()
        share, key = new_share()
        hosted = await request(host, {"type": "host", "share": share, "host_key": key,
                                      "code": True, "id": 1}, "hosted")
        joined = await request(joiner, {"type": "join", "code": hosted["code"], "id": 1}, "joined")
        session = joined["session"]
        peer = await receive(host, "peer")
        if peer["session"] != session:
            raise RuntimeError("peer for another session")
        await joiner.send(
            {"type": "relay", "session": session, "data": {"type": "offer", "sdp": FAKE_SDP}})
        offer = await receive(host, "relay")
        if offer["data"]["type"] != "offer":
            raise RuntimeError("expected the offer")
        await host.send(
            {"type": "relay", "session": session, "data": {"type": "answer", "sdp": FAKE_SDP}})
        answer = await receive(joiner, "relay")
        if answer["data"]["type"] != "answer":
            raise RuntimeError("expected the answer")
        t_answer = time.perf_counter()
    finally:
        with trio.CancelScope(shield=True):
            for ws in (joiner, host):
                if ws is not None:
                    await ws.close()
    return t_answer - t_create, t_create - t_connect


def run_setup_worker(port: int, rate: float, duration: float, timeout: float,
                     offset: float) -> None:
    """Start setups at ``rate``/s for ``duration`` s (open loop); print one JSON report."""
    raise_nofile()

    async def main() -> None:
        latencies: list[float] = []
        handshakes: list[float] = []
        scheduled_to_answer: list[float] = []
        errors: collections.Counter[str] = collections.Counter()
        total = int(rate * duration)
        start = trio.current_time() + offset / rate
        wall_start = time.perf_counter() + offset / rate
        last_done = wall_start

        async def timed(due_wall: float) -> None:
            nonlocal last_done
            try:
                with trio.fail_after(timeout):
                    create_to_answer, handshake = await one_setup(port)
            except (Exception, trio.TooSlowError) as exc:  # noqa: BLE001 - counted and reported
                name = type(exc).__name__
                if isinstance(exc, Closed):
                    name += f"({exc.code})"
                errors[name] += 1
                return
            now = time.perf_counter()
            latencies.append(create_to_answer)
            handshakes.append(handshake)
            scheduled_to_answer.append(now - due_wall)
            last_done = max(last_done, now)

        async with trio.open_nursery() as nursery:
            for i in range(total):
                await trio.sleep_until(start + i / rate)
                nursery.start_soon(timed, wall_start + i / rate)
        print(json.dumps({
            "started": total, "completed": len(latencies), "errors": dict(errors),
            "latencies": latencies, "handshakes": handshakes,
            "scheduled_to_answer": scheduled_to_answer,
            "wall_start": wall_start, "last_done": last_done, "cpu": time.process_time(),
        }), flush=True)

    trio.run(main)


# --- orchestrator --------------------------------------------------------------------------------


def spawn(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    """Start this script in a child process with a hidden sub-command."""
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE,
                            stdin=stdin, text=True)


def read_report(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    """The next JSON line a child prints (raises if it exits first)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{what} exited with {proc.wait()} before reporting")
    return json.loads(line)


def split(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal integers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def server_snapshot(server: subprocess.Popen[str]) -> dict[str, Any]:
    """Ask a ``--tracemalloc`` server for a snapshot (the first is the baseline)."""
    assert server.stdin is not None
    server.stdin.write("snapshot\n")
    server.stdin.flush()
    return read_report(server, "server")


def phase_idle(server: subprocess.Popen[str], port: int, args: argparse.Namespace
               ) -> dict[str, Any]:
    """Phase 1: hold ``args.connections`` sockets; return RSS (and tracemalloc) figures."""
    server_pid = server.pid
    time.sleep(1.0)
    if args.tracemalloc:
        server_snapshot(server)
    rss_before = rss_bytes(server_pid)
    workers = [spawn("_idle", str(port), str(n), str(args.concurrency), stdin=subprocess.PIPE)
               for n in split(args.connections, args.workers)]
    reports = [read_report(w, "idle worker") for w in workers]
    cpu_start, held_since = cpu_seconds(server_pid), time.perf_counter()
    samples = []
    while time.perf_counter() - held_since < args.hold:  # across one heartbeat round (30 s)
        time.sleep(1.0)
        samples.append(rss_bytes(server_pid))
    idle_cpu = (cpu_seconds(server_pid) - cpu_start) / (time.perf_counter() - held_since)
    rss_at_n = max(samples)
    memory = server_snapshot(server) if args.tracemalloc else None
    opened = sum(r["opened"] for r in reports)
    errors: collections.Counter[str] = collections.Counter()
    for r in reports:
        errors.update(r["errors"])
    for w in workers:
        assert w.stdin is not None
        w.stdin.close()
    dropped = sum(read_report(w, "idle worker")["dropped"] for w in workers)
    for w in workers:
        w.wait(timeout=120)
    wait_until_idle(server_pid)  # the server tears the sockets down after the clients leave
    return {
        "opened": opened, "errors": dict(errors), "dropped_while_held": dropped,
        "open_seconds": max(r["seconds"] for r in reports),
        "rss_before": rss_before, "rss_at_n": rss_at_n, "rss_first_held": samples[0],
        "idle_cpu": idle_cpu,
        "rss_after_close": rss_bytes(server_pid),
        "per_connection": (rss_at_n - rss_before) / opened if opened else float("nan"),
        "tracemalloc": memory,
    }


def wait_until_idle(pid: int, limit: float = 120.0) -> None:
    """Wait until process ``pid`` uses under 5% of a core over half a second (at most ``limit``)."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - before < 0.025:
            return


def phase_setups(server_pid: int, port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 2: session setups at ``args.rate``/s; return latency and throughput figures."""
    profiler = None
    if args.profile:
        profiler = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(server_pid), "--duration", str(int(args.duration)),
             "--rate", "100", "--format", "raw", "--output", args.profile],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[float] = []
    sampling = threading.Event()

    def sample_cpu() -> None:
        """Server CPU per 1-s interval, to see whether it saturates a core."""
        last = cpu_seconds(server_pid)
        while not sampling.wait(1.0):
            now = cpu_seconds(server_pid)
            samples.append(now - last)
            last = now

    sampler = threading.Thread(target=sample_cpu, daemon=True)
    sampler.start()
    (user_start, sys_start), wall_start = cpu_times(server_pid), time.perf_counter()
    machine_start = machine_busy_seconds()
    workers = [spawn("_setups", str(port), str(args.rate / args.workers), str(args.duration),
                     str(args.setup_timeout), str(i / args.workers))
               for i in range(args.workers)]
    reports = [read_report(w, "setup worker") for w in workers]
    for w in workers:
        w.wait()
    user_end, sys_end = cpu_times(server_pid)
    wall = time.perf_counter() - wall_start
    machine_busy = machine_busy_seconds() - machine_start
    cpu_used, cpu_system = user_end - user_start + sys_end - sys_start, sys_end - sys_start
    sampling.set()
    sampler.join()
    if profiler is not None:
        profiler.wait()
    latencies = sorted(x for r in reports for x in r["latencies"])
    scheduled = sorted(x for r in reports for x in r["scheduled_to_answer"])
    handshakes = sorted(x for r in reports for x in r["handshakes"])
    errors: collections.Counter[str] = collections.Counter()
    for r in reports:
        errors.update(r["errors"])
    span = max(r["last_done"] for r in reports) - min(r["wall_start"] for r in reports)
    return {
        "started": sum(r["started"] for r in reports), "completed": len(latencies),
        "errors": dict(errors), "achieved_rate": len(latencies) / span if span > 0 else 0.0,
        "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
        "sched_p50": percentile(scheduled, 0.50), "sched_p99": percentile(scheduled, 0.99),
        "handshake_p50": percentile(handshakes, 0.50),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
        "server_cpu": cpu_used / wall,
        "server_cpu_per_setup": cpu_used / max(1, sum(r["started"] for r in reports)),
        "server_system_share": cpu_system / cpu_used if cpu_used else float("nan"),
        "server_cpu_peak": max(samples, default=float("nan")),
        "server_cpu_seconds": [round(x, 2) for x in samples],
        "workers_cpu": sum(r["cpu"] for r in reports) / wall,
        "others_cpu": (machine_busy - cpu_used - sum(r["cpu"] for r in reports)) / wall,
    }


def summarise_profile(path: str, top: int = 15) -> tuple[list[tuple[str, float]],
                                                          list[tuple[str, float]]]:
    """Share of samples per function from a py-spy ``raw`` (collapsed stacks) file.

    Returns ``(self, inclusive)``: where the samples' innermost frame is, and which functions are
    on the stack at all. The benchmark's own frames and trio's run loop are left out of the
    inclusive list (they are under every sample).
    """
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        leaf[frames[-1]] += count
        for frame in set(frames):
            if not frame.endswith("(bench/signaling.py)") and not frame.startswith(_LOOP_FRAMES):
                inclusive[frame] += count
    if not total:
        return [], []
    return ([(f, c / total) for f, c in leaf.most_common(top)],
            [(f, c / total) for f, c in inclusive.most_common(top)])


_LOOP_FRAMES = ("run (trio/", "unrolled_run (trio/", "<module> (", "main (")


def _frame_name(frame: str) -> str:
    """``function (file)`` from py-spy's ``function (path/file.py:line)``."""
    function, _, location = frame.rpartition(" (")
    return f"{function} ({location.rpartition(':')[0] or location.rstrip(')')})"


def verdict(value: float, target: float, unit: str) -> str:
    """``met`` or ``MISSED by ...`` for a figure that must stay under ``target``."""
    if value <= target:
        return f"met ({target - value:.1f} {unit} to spare)"
    return f"MISSED by {value - target:.1f} {unit} ({value / target:.2f}x the target)"


def print_summary(args: argparse.Namespace, limits: tuple[int, int], idle: dict[str, Any] | None,
                  setups: dict[str, Any] | None, load_before: str, load_after: str) -> None:
    """Print the results table with the issue's targets beside the figures."""
    mb = 1e6
    print("\n## Signaling benchmark summary")
    print(f"command: python bench/signaling.py {' '.join(sys.argv[1:])}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; cores: {os.cpu_count()}; "
          f"load average before {load_before}, after {load_after}")
    if args.bare:
        print("BASELINE RUN (--bare): phase 1 against plain trio-websocket, not doorstep's server")
    if args.tracemalloc or args.profile:
        print("DIAGNOSTIC RUN: the server ran under "
              f"{'tracemalloc' if args.tracemalloc else 'py-spy'}, which slows it "
              f"{'and inflates its RSS' if args.tracemalloc else ''}; take the targets' figures "
              "from a run without --tracemalloc/--profile")
    print(f"RLIMIT_NOFILE: soft {limits[0]}, hard {limits[1]} (raised to {limits[1]} in every "
          "process)")
    print("\n| figure | measured | target | verdict |\n|---|---|---|---|")
    if idle is not None:
        rss_mb = idle["rss_at_n"] / mb
        scaled = (idle["rss_before"] + idle["per_connection"] * TARGET_CONNECTIONS) / mb
        print(f"| idle connections held | {idle['opened']} (errors: {idle['errors'] or 'none'}; "
              f"dropped while held: {idle['dropped_while_held']}; "
              f"opened in {idle['open_seconds']:.1f} s) | {TARGET_CONNECTIONS} | "
              f"{'met' if idle['opened'] >= TARGET_CONNECTIONS else 'not reached'} |")
        print(f"| server RSS before / at N | {idle['rss_before'] / mb:.1f} MB / {rss_mb:.1f} MB "
              f"(max over the hold; first second {idle['rss_first_held'] / mb:.1f} MB; "
              "after closing all: "
              f"{idle['rss_after_close'] / mb:.1f} MB) | < {TARGET_RSS_MB:.0f} "
              f"MB at 10,000 | {verdict(scaled, TARGET_RSS_MB, 'MB')}"
              f"{'' if idle['opened'] >= TARGET_CONNECTIONS else ' (extrapolated to 10,000)'} |")
        print(f"| server CPU while holding them ({args.hold:g} s) | "
              f"{idle['idle_cpu'] * 100:.1f}% of one core | | |")
        print(f"| server RSS per connection | {idle['per_connection'] / 1e3:.1f} kB | "
              f"< {(TARGET_RSS_MB * mb - idle['rss_before']) / TARGET_CONNECTIONS / 1e3:.1f} kB "
              "(what fits beside the baseline) | |")
    if setups is not None:
        s = setups
        print(f"| setups started / completed / errors | {s['started']} / {s['completed']} / "
              f"{sum(s['errors'].values())} {s['errors'] or ''} | 0 errors | "
              f"{'met' if not s['errors'] else 'MISSED'} |")
        rate_verdict = ("not tested (offered below the target)" if args.rate < TARGET_RATE
                        else "met" if s["achieved_rate"] >= 0.98 * TARGET_RATE else "MISSED")
        print(f"| setups/s achieved (offered {args.rate:g}/s) | {s['achieved_rate']:.1f} | "
              f"{TARGET_RATE:g} | {rate_verdict} |")
        print(f"| create-to-answer p50 / p99 / max | {s['p50'] * 1e3:.1f} / {s['p99'] * 1e3:.1f} / "
              f"{s['max'] * 1e3:.1f} ms | p99 < {TARGET_P99_MS:g} ms | "
              f"{verdict(s['p99'] * 1e3, TARGET_P99_MS, 'ms')} |")
        print(f"| scheduled-start-to-answer p50 / p99 (incl. 2 handshakes, median "
              f"{s['handshake_p50'] * 1e3:.1f} ms) | {s['sched_p50'] * 1e3:.1f} / "
              f"{s['sched_p99'] * 1e3:.1f} ms | (none) | |")
        print(f"| CPU during setups: server mean (busiest second) / load generators | "
              f"{s['server_cpu'] * 100:.0f}% ({s['server_cpu_peak'] * 100:.0f}%) / "
              f"{s['workers_cpu'] * 100:.0f}% of one core; kernel time "
              f"{s['server_system_share'] * 100:.0f}% of the server's | (2 cores in all) | |")
        print(f"| server CPU per setup started | {s['server_cpu_per_setup'] * 1e3:.2f} ms | "
              f"< {1e3 / TARGET_RATE:.1f} ms to keep up with {TARGET_RATE:g}/s on one core | |")
        print(f"| CPU used by everything else on the machine meanwhile | "
              f"{max(0.0, s['others_cpu']) * 100:.0f}% of one core | | |")


def main() -> None:
    """Parse flags (or a hidden sub-command for child processes) and run the benchmark."""
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        command, rest = sys.argv[1], sys.argv[2:]
        if command == "_server":
            run_server(int(rest[0]), rest[1] == "1", rest[2] == "1")
        elif command == "_idle":
            run_idle_worker(int(rest[0]), int(rest[1]), int(rest[2]))
        elif command == "_setups":
            run_setup_worker(int(rest[0]), float(rest[1]), float(rest[2]), float(rest[3]),
                             float(rest[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", "-n", type=int, default=10_000,
                        help="idle connections to hold in phase 1 (default 10000; 0 skips)")
    parser.add_argument("--rate", type=float, default=200.0,
                        help="session setups started per second in phase 2 (default 200)")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of setups in phase 2 (default 20; 0 skips)")
    parser.add_argument("--hold", type=float, default=35.0,
                        help="seconds to hold the idle sockets while sampling RSS (default 35, "
                             "past the server's first 30 s heartbeat round)")
    parser.add_argument("--workers", type=int, default=2,
                        help="load-generator processes (default 2, one per core)")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="handshakes in flight per worker while opening idle sockets")
    parser.add_argument("--setup-timeout", type=float, default=10.0,
                        help="seconds after which a setup counts as an error (default 10)")
    parser.add_argument("--bare", action="store_true",
                        help="phase 1 against a bare trio-websocket server (accept, answer "
                             "'hosted') instead of doorstep's: the per-connection floor of the "
                             "WebSocket stack; implies --duration 0")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="run the server under tracemalloc and print where phase 1's memory "
                             "went (slows the server and inflates its RSS: a diagnostic run)")
    parser.add_argument("--profile", metavar="PATH",
                        help=f"record the server with py-spy ({PY_SPY}) during phase 2 into PATH "
                             "(collapsed stacks) and print the functions with most samples")
    args = parser.parse_args()
    if args.bare:
        args.duration = 0

    limits = raise_nofile()
    load_before = load_average()
    server = spawn("_server", str(args.connections), "1" if args.tracemalloc else "0",
                   "1" if args.bare else "0", stdin=subprocess.PIPE)
    try:
        started = read_report(server, "server")
        port = started["port"]
        print(f"server pid {server.pid} on 127.0.0.1:{port}; limits {started['limits']}; "
              f"load average {load_before}", flush=True)
        idle = phase_idle(server, port, args) if args.connections > 0 else None
        if idle is not None:
            print(f"phase 1 done: {idle}", flush=True)
        setups = phase_setups(server.pid, port, args) if args.duration > 0 else None
        if setups is not None:
            print(f"phase 2 done: {setups}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print_summary(args, limits, idle, setups, load_before, load_average())
    if idle is not None and idle["tracemalloc"]:
        memory = idle["tracemalloc"]
        n = idle["opened"] or 1
        print(f"\nserver Python heap growth at N (tracemalloc): {memory['total'] / n:.0f} B per "
              "connection; by file, then by line (bytes per connection, blocks per connection):")
        for name, size in memory["by_file"]:
            print(f"  {size / n:8.0f}  {name}")
        print()
        for name, size, count in memory["by_line"]:
            print(f"  {size / n:8.0f} {count / n:6.2f}  {name}")
    if args.profile and setups is not None and Path(args.profile).exists():
        self_time, inclusive = summarise_profile(args.profile)
        print(f"\nserver profile during phase 2 (py-spy, {args.profile}); self, then inclusive:")
        for frame, share in self_time:
            print(f"  {share * 100:5.1f}%  {frame}")
        print()
        for frame, share in inclusive:
            print(f"  {share * 100:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
