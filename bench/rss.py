"""Both daemons' RSS through one large transfer on each path (target: under 150 MB and flat).

Usage: python bench/rss.py [MiB] [--paths webrtc direct]   (default 4096 MiB, both paths)

Daemon A shares a random file; daemon B fetches it by code (bench/common.py ``fetch_by_code``), on
the WebRTC data channel (``DOORSTEP_TRANSFER_DIRECT=false``) and on the default configuration
(direct TCP when it connects). ``VmRSS`` of both daemon processes is read from /proc/<pid>/status
every 0.5 s from ``POST /api/v1/receive`` to the transfer done. Prints, per path and daemon, the
maximum and the curve at its start (third sample), middle and end, and nine evenly spaced samples.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import MiB, PATH_ENV, fetch_by_code, machine_note, payload, rate, workdir  # noqa: E402

TARGET_MB = 150


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mib", nargs="?", type=int, default=4096)
    parser.add_argument("--paths", nargs="*", default=["webrtc", "direct"], choices=sorted(PATH_ENV))
    args = parser.parse_args()
    size = args.mib * MiB
    print(f"start: {machine_note()}", flush=True)
    with workdir() as tmp:
        scratch = Path(tmp)
        source, digest = payload(scratch, size)
        for path in args.paths:
            fetched = fetch_by_code(scratch, source, digest, f"rss-{path}", sample_rss=True, **PATH_ENV[path])
            print(f"\n{path}: {args.mib} MiB in {fetched.seconds:.1f} s ({rate(size, fetched.seconds):.1f} MB/s), "
                  f"route {fetched.route}  [{machine_note()}]")
            for side, stats in fetched.rss.items():
                verdict = "under" if stats["max"] < TARGET_MB else "OVER"
                growth = stats["end"] - stats["start"]
                print(f"  {side:8s} VmRSS max {stats['max']:.1f} MB ({verdict} {TARGET_MB}); start {stats['start']:.1f}, "
                      f"middle {stats['middle']:.1f}, end {stats['end']:.1f} MB (end - start {growth:+.1f} MB); "
                      f"{stats['samples']:.0f} samples")
                print("           curve: " + " ".join(f"{v:.0f}" for v in fetched.curves[side]))


if __name__ == "__main__":
    main()
