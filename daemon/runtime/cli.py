"""The ``doorstep`` command line.

``daemon`` runs the appliance. ``send`` and ``receive`` work standalone, with no local daemon: they
speak signaling and WebRTC themselves. ``status`` and ``transfers`` are thin clients of a running
daemon's control API (token from ``DOORSTEP_TOKEN`` or the state dir, never from argv).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import httpx

from .config import ConfigError, load_config

__all__ = ["main"]

FLAG_KEYS = {
    "state_dir": "state_dir",
    "http_listen": "http.listen",
    "signal_listen": "signal.listen",
    "signal_public_url": "signal.public_url",
    "inbox_dir": "inbox.dir",
    "outbox_dir": "outbox.dir",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="doorstep", description="Peer-to-peer file transfer appliance.")
    parser.add_argument("--config", type=Path, default=os.environ.get("DOORSTEP_CONFIG"),
                        help="TOML config file (default: $DOORSTEP_CONFIG, else embedded defaults)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    daemon = sub.add_parser("daemon", help="run the appliance in the foreground")
    for flag in FLAG_KEYS:
        daemon.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None)

    receive = sub.add_parser("receive", help="fetch a share by its code or link, P2P, SHA-256 verified")
    receive.add_argument("code", help="the 6-digit code, or the share link (http://host/r/123456)")
    receive.add_argument("--out", type=Path, default=Path("."), help="folder to receive into (default: .)")
    receive.add_argument("--signal", help="signaling URL (default: from the link, $DOORSTEP_SIGNAL_URL, or config)")

    send = sub.add_parser("send", help="share files or folders: prints a code and waits for the receiver")
    send.add_argument("paths", nargs="+", type=Path)
    send.add_argument("--signal", help="signaling URL (default: $DOORSTEP_SIGNAL_URL or config)")

    for name, text in (("status", "show the local daemon's health and transfers"),
                       ("transfers", "list the local daemon's transfers")):
        command = sub.add_parser(name, help=text)
        command.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        for noisy in ("aioice", "aiortc", "hypercorn", "trio-websocket"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        overrides = {key: getattr(args, flag, None) for flag, key in FLAG_KEYS.items()}
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"doorstep: {exc}", file=sys.stderr)
        return 2
    if args.command == "daemon":
        from daemon.runtime import bridge
        from .daemon import run_daemon

        failure: BaseExceptionGroup | None = None
        try:
            bridge.run(run_daemon, config)
        except* OSError as group:  # a port in use, an unreachable Redis, an unwritable state dir
            failure = group
        if failure is not None:
            for exc in _leaves(failure):
                print(f"doorstep: cannot start: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command in ("receive", "send"):
        from . import standalone

        runner = standalone.receive if args.command == "receive" else standalone.send
        return runner(args, config)
    return _api_command(args, config)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [leaf for exc in group.exceptions
            for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])]


def _api_command(args: argparse.Namespace, config) -> int:
    from .tokens import read_api_token

    try:
        token = os.environ.get("DOORSTEP_TOKEN") or read_api_token(config.state_dir)
    except (OSError, ValueError) as exc:
        print(f"doorstep: no API token ({exc}); set DOORSTEP_TOKEN or --config the daemon's state_dir",
              file=sys.stderr)
        return 2
    base = f"http://{config.http_listen.connect_host}:{config.http_listen.port}/api/v1"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            health = client.get("/health").json()
            transfers = client.get("/transfers").raise_for_status().json()
    except httpx.HTTPStatusError as exc:
        print(f"doorstep: the daemon at {base} refused the request ({exc.response.status_code}): "
              f"{exc.response.text[:200]}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"doorstep: the daemon at {base} did not answer: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"health": health, "transfers": transfers} if args.command == "status" else transfers))
        return 0
    if args.command == "status":
        print(f"doorstep {health.get('version')}: {health.get('status')}")
    for t in transfers:
        pct = 100 * t["bytes_done"] / t["bytes_total"] if t["bytes_total"] else 0
        print(f"{t['id']}  {t['direction']:7}  {t['state']:10}  {pct:5.1f}%  {t['bytes_total']:>14,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
