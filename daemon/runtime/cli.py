"""The ``doorstep`` command line.

``daemon`` runs the appliance. ``send`` and ``receive`` work standalone, with no local daemon: they
speak signaling and WebRTC themselves. ``status``, ``transfers`` and ``peers`` are thin clients of a
running daemon's control API (token from ``DOORSTEP_TOKEN`` or the state dir, never from argv).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

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

    pair = sub.add_parser("pair", help="pair the local daemon with another appliance (offer a code, or join one)")
    pair.add_argument("code", nargs="?", help="the other appliance's pairing code (omit to offer one)")
    pair.add_argument("--signal", help="the other appliance's signaling URL (needed with a code)")
    pair.add_argument("--json", action="store_true", help="machine-readable output")

    peers = sub.add_parser("peers", help="list and manage paired devices (approve, rename, revoke, forget)")
    peers.add_argument("--json", action="store_true", help="machine-readable output")
    actions = peers.add_subparsers(dest="peers_action", metavar="ACTION")
    for name, text in (("list", "list paired devices (the default)"),
                       ("show", "show one device, with the safety words to compare"),
                       ("approve", "trust a pending (or revoked) device"),
                       ("revoke", "stop trusting a device; it stays listed as revoked"),
                       ("forget", "remove a device and its key; it must pair again"),
                       ("rename", "give a device a new name")):
        action = actions.add_parser(name, help=text)
        # SUPPRESS: a subcommand's default must not overwrite `peers --json ACTION`.
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
        if name != "list":
            action.add_argument("device_id", metavar="ID", help="the device id (first column of `doorstep peers`)")
        if name == "rename":
            action.add_argument("name", metavar="NAME", help="the new name (1 to 64 characters)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        for noisy in ("aioice", "aiortc", "httpx", "hypercorn", "trio-websocket"):
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


def _api_endpoint(config) -> tuple[str, dict[str, str]] | None:
    """The control API's base URL and auth headers; None (after saying why) without a token."""
    from .tokens import read_api_token

    try:
        token = os.environ.get("DOORSTEP_TOKEN") or read_api_token(config.state_dir)
    except (OSError, ValueError) as exc:
        print(f"doorstep: no API token ({exc}); set DOORSTEP_TOKEN or --config the daemon's state_dir",
              file=sys.stderr)
        return None
    base = f"http://{config.http_listen.connect_host}:{config.http_listen.port}/api/v1"
    return base, {"Authorization": f"Bearer {token}"}


def _api_command(args: argparse.Namespace, config) -> int:
    if args.command == "peers":
        return _peers_command(args, config)
    if args.command == "pair":
        return _pair_command(args, config)
    endpoint = _api_endpoint(config)
    if endpoint is None:
        return 2
    base, headers = endpoint
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


def _peers_command(args: argparse.Namespace, config) -> int:
    endpoint = _api_endpoint(config)
    if endpoint is None:
        return 2
    base, headers = endpoint
    action = args.peers_action or "list"
    if action != "list" and not args.device_id:
        print("doorstep: the device id must not be empty", file=sys.stderr)
        return 1
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            if action == "list":
                response = client.get("/devices")
            elif action == "show":
                response = client.get(f"/devices/{_quote(args.device_id)}")
            elif action == "forget":
                response = client.delete(f"/devices/{_quote(args.device_id)}")
            else:
                change = ({"name": args.name} if action == "rename"
                          else {"status": "approved" if action == "approve" else "revoked"})
                response = client.patch(f"/devices/{_quote(args.device_id)}", json=change)
    except httpx.HTTPError as exc:
        print(f"doorstep: the daemon at {base} did not answer: {exc}", file=sys.stderr)
        return 1
    if response.is_error:
        print(f"doorstep: {_api_error(response)}", file=sys.stderr)
        return 1
    if action == "forget":
        if args.json:
            print(json.dumps({"id": args.device_id, "forgotten": True}))
        else:
            print(f"forgot device {args.device_id}; it must pair again to connect")
        return 0
    body = response.json()
    if args.json:
        print(json.dumps(body))
    elif action == "list":
        _print_devices(body)
    elif action == "show":
        _print_device(body)
    elif action == "rename":
        print(f"renamed {body['id']} to \"{body['name']}\"")
    else:
        print(f"{body['name']} ({body['id']}) is now {body['status']}")
        if action == "approve" and body.get("safety_words"):
            print(f"safety words (must match the other device): {' '.join(body['safety_words'])}")
    return 0


def _pair_command(args: argparse.Namespace, config) -> int:
    """Offer a pairing code (no code given) or join the other appliance's offer."""
    endpoint = _api_endpoint(config)
    if endpoint is None:
        return 2
    base, headers = endpoint
    if args.code and not args.signal:
        print("doorstep: joining a pairing code needs --signal (the other appliance's signaling URL, "
              "shown where the code was offered)", file=sys.stderr)
        return 1
    body = {"code": args.code, "signal": args.signal} if args.code else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            response = client.post("/pair", json=body)
    except httpx.HTTPError as exc:
        print(f"doorstep: the daemon at {base} did not answer: {exc}", file=sys.stderr)
        return 1
    if response.is_error:
        print(f"doorstep: {_api_error(response)}", file=sys.stderr)
        return 1
    result = response.json()
    if args.json:
        print(json.dumps(result))
    elif args.code:
        print(f"paired with {result['name']} ({result['id']})")
        if result.get("safety_words"):
            print(f"safety words (must match the other device): {' '.join(result['safety_words'])}")
    else:
        print(f"pairing code: {result['code']}  (valid until {_when(result['expires_at'])[-5:]})")
        print(f"on the other appliance: doorstep pair {result['code']} --signal {result['signal']}")
    return 0


def _quote(device_id: str) -> str:
    return urllib.parse.quote(device_id, safe="")


def _api_error(response: httpx.Response) -> str:
    """The JSON error's message (``{"error", "message"}`` or litestar's ``{"detail"}``), else the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message") or body.get("detail"), str):
        text = body.get("message") or body.get("detail")
    else:
        text = response.text[:200]
    return f"{text} (HTTP {response.status_code})"


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp is not None else "never"


def _print_devices(devices: list[dict[str, Any]]) -> None:
    if not devices:
        print("no paired devices")
        return
    rows = [("NAME", "ID", "STATUS", "FINGERPRINT", "LAST SEEN")]
    rows += [(d["name"], d["id"], d["status"], "-".join(d["fingerprint"]), _when(d["last_seen"])) for d in devices]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]))


def _print_device(device: dict[str, Any]) -> None:
    lines = [("name", device["name"]), ("id", device["id"]), ("status", device["status"]),
             ("fingerprint", " ".join(device["fingerprint"]))]
    if device.get("safety_words"):
        lines.append(("safety words", " ".join(device["safety_words"])))
    lines += [("public key", device["public_key"]), ("paired", _when(device["paired_at"])),
              ("last seen", _when(device["last_seen"])), ("signal", device["signal_url"] or "-")]
    for label, value in lines:
        print(f"{label + ':':14} {value}")


if __name__ == "__main__":
    sys.exit(main())
