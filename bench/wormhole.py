"""magic-wormhole (from PyPI) on loopback, with its own mailbox server and transit relay.

Usage: python bench/wormhole.py [MiB] [runs]   (default 1024 MiB, 3 runs)

The first use creates ``.cache/bench-venv`` (git-ignored) and pip-installs ``magic-wormhole``,
``magic-wormhole-mailbox-server`` and ``magic-wormhole-transit-relay`` into it from PyPI; the project
venv is not touched. :func:`servers` starts the mailbox (``twist wormhole-mailbox``) and the transit
relay (``twist transitrelay``) on 127.0.0.1 and stops them after. One measurement: ``wormhole send
--code N-bench-...`` is started, then ``wormhole receive --accept-file -o OUT CODE``; the clock runs
from starting the receiver to the received file verified (SHA-256), so it includes both clients'
start-up, the PAKE, the transit connection (direct hints on loopback; the relay is offered) and the
transfer.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MiB, median, payload, rate, sha256_of, workdir  # noqa: E402

__all__ = ["VENV", "ensure_venv", "servers", "measure"]

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "bench-venv"
PACKAGES = ["magic-wormhole", "magic-wormhole-mailbox-server", "magic-wormhole-transit-relay"]


def ensure_venv() -> Path:
    """The bench venv's bin directory, created and filled on first use."""
    bin_dir = VENV / "bin"
    if not (bin_dir / "wormhole").exists() or not (bin_dir / "twist").exists():
        VENV.parent.mkdir(parents=True, exist_ok=True)
        venv.create(VENV, with_pip=True)
        subprocess.run([str(bin_dir / "pip"), "install", "-q", *PACKAGES], check=True)
    return bin_dir


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@contextmanager
def servers(state: Path) -> Iterator[tuple[str, str]]:
    """Start a mailbox server and a transit relay on 127.0.0.1; yield ``(relay_url, transit_helper)``."""
    bin_dir = ensure_venv()
    state.mkdir(parents=True, exist_ok=True)
    mailbox_port, transit_port = _free_port(), _free_port()
    log = (state / "servers.log").open("ab")
    procs = [
        subprocess.Popen([str(bin_dir / "twist"), "wormhole-mailbox", f"--port=tcp:{mailbox_port}:interface=127.0.0.1",
                          f"--channel-db={state / 'relay.sqlite'}"], cwd=state, stdout=log, stderr=log),
        subprocess.Popen([str(bin_dir / "twist"), "transitrelay", f"--port=tcp:{transit_port}:interface=127.0.0.1"],
                         cwd=state, stdout=log, stderr=log),
    ]
    try:
        _wait_port(mailbox_port, procs[0])
        _wait_port(transit_port, procs[1])
        yield f"ws://127.0.0.1:{mailbox_port}/v1", f"tcp:127.0.0.1:{transit_port}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def measure(source: Path, digest: str, scratch: Path, relay_url: str, transit_helper: str) -> float:
    """Seconds from starting ``wormhole receive`` to the received copy of ``source`` verified."""
    bin_dir = ensure_venv()
    out = scratch / f"wormhole-out-{secrets.token_hex(4)}"
    out.mkdir(parents=True)
    code = f"{secrets.randbelow(900) + 100}-bench-{secrets.token_hex(4)}"
    common = [str(bin_dir / "wormhole"), "--relay-url", relay_url, "--transit-helper", transit_helper]
    env = {**os.environ, "WORMHOLE_QR": "0"}
    sender = subprocess.Popen(common + ["send", "--hide-progress", "--no-qr", "--code", code, str(source)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        start = time.perf_counter()
        received = subprocess.run(common + ["receive", "--hide-progress", "--accept-file", "-o",
                                            str(out / source.name), code],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=1800)
        if received.returncode != 0:
            raise RuntimeError(f"wormhole receive failed: {received.stderr.decode()[-2000:]}")
        if sha256_of(out / source.name) != digest:
            raise RuntimeError("wormhole delivered other bytes")
        elapsed = time.perf_counter() - start
        sender.wait(60)
        return elapsed
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        for path in out.iterdir():
            path.unlink()
        out.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", nargs="?", type=int, default=1024)
    parser.add_argument("runs", nargs="?", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * MiB
    with workdir() as tmp:
        scratch = Path(tmp)
        source, digest = payload(scratch, size)
        rates = []
        with servers(scratch / "wormhole-servers") as (relay_url, transit_helper):
            for run in range(args.runs):
                rates.append(rate(size, measure(source, digest, scratch, relay_url, transit_helper)))
                print(f"run {run + 1}: magic-wormhole {rates[-1]:.1f} MB/s", flush=True)
    print(f"{args.mib} MiB, median of {args.runs}: magic-wormhole {median(rates):.1f} MB/s")


if __name__ == "__main__":
    main()
