"""Daemon to daemon over each path, beside its baselines, all in one run (issue 10's targets).

Usage: python bench/paths.py [MiB] [runs] [--skip SUBJECT ...]   (default 1024 MiB, 3 runs)

Subjects, measured in every run in rotating order (so drift on this shared machine hits all):

- ``webrtc``: two daemons with ``DOORSTEP_TRANSFER_DIRECT=false``: the data channel only (aiortc with
  doorstep's SCTP tuning, trio on uvloop), fetch by code as in bench/transfer.py;
- ``direct``: two daemons with the default configuration: the direct TCP path when it connects;
- ``webrtc-untuned``: as ``webrtc`` with ``DOORSTEP_SCTP_TUNING=off`` (aiortc's SCTP as shipped);
- ``stock``: stock aiortc on plain asyncio, one data channel between two processes, 64 KiB
  messages, no disk or hashing (bench/stock_aiortc.py): the WebRTC target's baseline;
- ``stock-uvloop``: the same on uvloop;
- ``wormhole``: magic-wormhole from PyPI with its own mailbox and transit relay on 127.0.0.1
  (bench/wormhole.py): the best path's baseline;
- ``tcp``: raw TCP between two Python processes (no crypto, nothing written): the limit.

Every daemon transfer reports the route its transfer record showed (``direct``, or the data
channel's ICE route such as ``host``), so a run says which path it actually took. Prints each
run, then medians, medians of per-run ratios, and the targets (WebRTC >= 2.5x stock aiortc, best
path >= 2x magic-wormhole).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import wormhole  # noqa: E402
from bench.common import MiB, PATH_ENV, fetch_by_code, machine_note, median, payload, rate, raw_tcp, rotate, workdir  # noqa: E402
from bench.stock_aiortc import measure as stock_aiortc  # noqa: E402

SUBJECTS = ("webrtc", "direct", "webrtc-untuned", "stock", "stock-uvloop", "wormhole", "tcp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", nargs="?", type=int, default=1024)
    parser.add_argument("runs", nargs="?", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=SUBJECTS)
    args = parser.parse_args()
    size = args.mib * MiB
    subjects = [s for s in SUBJECTS if s not in args.skip]
    rates: dict[str, list[float]] = {s: [] for s in subjects}
    routes: dict[str, list[str]] = {s: [] for s in subjects}
    print(f"start: {machine_note()}", flush=True)
    with workdir() as tmp:
        scratch = Path(tmp)
        source, digest = payload(scratch, size)
        with wormhole.servers(scratch / "wormhole-servers") if "wormhole" in subjects else _none() as hole:
            for run in range(args.runs):
                line = []
                for subject in rotate(subjects, run):
                    seconds, route = _measure(subject, scratch, source, digest, size, run, hole)
                    rates[subject].append(rate(size, seconds))
                    routes[subject].append(route)
                    line.append(f"{subject} {rates[subject][-1]:.1f} MB/s" + (f" ({route})" if route else ""))
                    print(f"  run {run + 1}: {line[-1]}", flush=True)
                print(f"run {run + 1}: " + ", ".join(line) + f"  [{machine_note()}]", flush=True)
    _report(args.mib, args.runs, rates, routes)


def _measure(subject: str, scratch: Path, source: Path, digest: str, size: int, run: int,
             hole: tuple[str, str] | None) -> tuple[float, str]:
    if subject in ("webrtc", "direct", "webrtc-untuned"):
        env = dict(PATH_ENV["webrtc" if subject == "webrtc-untuned" else subject])
        if subject == "webrtc-untuned":
            env["DOORSTEP_SCTP_TUNING"] = "off"
        fetched = fetch_by_code(scratch, source, digest, f"{subject}{run}", **env)
        return fetched.seconds, fetched.route
    if subject in ("stock", "stock-uvloop"):
        result = stock_aiortc(size, use_uvloop=subject == "stock-uvloop")
        return result["seconds"], ""
    if subject == "wormhole":
        assert hole is not None
        return wormhole.measure(source, digest, scratch, *hole), ""
    if subject == "tcp":
        return raw_tcp(source, size), ""
    raise ValueError(subject)


def _report(mib: int, runs: int, rates: dict[str, list[float]], routes: dict[str, list[str]]) -> None:
    print(f"\n{mib} MiB, medians of {runs} runs (MB/s):")
    for subject, values in rates.items():
        seen = sorted(set(routes[subject]) - {""})
        print(f"  {subject:15s} {median(values):8.1f}   runs: " + ", ".join(f"{v:.1f}" for v in values)
              + (f"   route: {', '.join(seen)}" if seen else ""))

    def ratio(a: str, b: str) -> str:
        if not rates.get(a) or not rates.get(b):
            return "n/a"
        per_run = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
        return (f"{median(rates[a]) / median(rates[b]):.2f}x of medians, per run "
                + ", ".join(f"{r:.2f}" for r in per_run) + f" (median {median(per_run):.2f}x)")

    print("ratios:")
    print(f"  webrtc / stock aiortc (asyncio)     {ratio('webrtc', 'stock')}   target >= 2.5x")
    print(f"  webrtc / stock aiortc (uvloop)      {ratio('webrtc', 'stock-uvloop')}")
    print(f"  webrtc / webrtc untuned             {ratio('webrtc', 'webrtc-untuned')}")
    best = max((s for s in ("webrtc", "direct") if rates.get(s)), key=lambda s: median(rates[s]), default=None)
    if best:
        print(f"  best path ({best}) / magic-wormhole  {ratio(best, 'wormhole')}   target >= 2x")
        print(f"  best path ({best}) / raw TCP         {ratio(best, 'tcp')}")
    print(f"  magic-wormhole / raw TCP            {ratio('wormhole', 'tcp')}")
    print(f"end: {machine_note()}")


class _none:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
