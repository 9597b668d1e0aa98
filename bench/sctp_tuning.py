"""What each part of doorstep's SCTP tuning (daemon/peer/sctp_tuning.py) is worth, in one run.

Usage: python bench/sctp_tuning.py [MiB] [runs]   (default 128 MiB, 3 runs)

The program of bench/stock_aiortc.py (two processes, one data channel on loopback, uvloop, no disk,
no protocol) with the tuning features installed cumulatively in both processes, configurations
rotating within each run; plus all features with 256 KiB messages instead of 64 KiB. Counts the
kernel's UDP receive-buffer drops (``RcvbufErrors`` in /proc/net/snmp) during each measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MiB, machine_note, median, rate, rotate  # noqa: E402
from bench.stock_aiortc import measure  # noqa: E402

CONFIGS: dict[str, tuple[tuple[str, ...] | None, int]] = {
    "stock (asyncio)": (None, 65536),
    "stock (uvloop)": ((), 65536),
    "+sack": (("sack",), 65536),
    "+sack+burst": (("sack", "burst"), 65536),
    "+reassembly": (("sack", "burst", "reassembly"), 65536),
    "+received": (("sack", "burst", "reassembly", "received"), 65536),
    "+buffers (all)": (("sack", "burst", "reassembly", "received", "buffers"), 65536),
    "all, 256 KiB messages": (("sack", "burst", "reassembly", "received", "buffers"), 262144),
}


def _rcvbuf_errors() -> int:
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", nargs="?", type=int, default=128)
    parser.add_argument("runs", nargs="?", type=int, default=3)
    args = parser.parse_args()
    size = args.mib * MiB
    rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
    drops: dict[str, list[int]] = {name: [] for name in CONFIGS}
    print(f"start: {machine_note()}", flush=True)
    for run in range(args.runs):
        for name in rotate(list(CONFIGS), run):
            tuning, message = CONFIGS[name]
            before = _rcvbuf_errors()
            result = measure(size, use_uvloop=name != "stock (asyncio)", tuning=tuning, message=message)
            drops[name].append(_rcvbuf_errors() - before)
            rates[name].append(rate(result["bytes"], result["seconds"]))
            print(f"  run {run + 1}: {name} {rates[name][-1]:.1f} MB/s ({drops[name][-1]} datagrams dropped)",
                  flush=True)
    base = rates["stock (asyncio)"]
    print(f"\n{args.mib} MiB, medians of {args.runs} runs:")
    for name, values in rates.items():
        per_run = median([v / b for v, b in zip(values, base, strict=True)])
        print(f"  {name:24s} {median(values):6.1f} MB/s   x{per_run:.2f} of stock asyncio (median per run)   "
              f"drops {median(drops[name]):.0f}   runs: " + ", ".join(f"{v:.1f}" for v in values))
    print(f"end: {machine_note()}")


if __name__ == "__main__":
    main()
