"""``doorstep pair [CODE --signal URL]``, ``doorstep peers [list|show|approve|revoke|forget|rename]`` and
``doorstep identity [show|rotate]``."""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from .cli_client import ApiClient, CliError, quote_id
from .cli_output import Output, format_table, human_time

__all__ = ["register"]

PAIR_TIMEOUT = httpx.Timeout(60.0, connect=5.0)  # the daemon waits for the other side's PAKE


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    pair = sub.add_parser("pair", parents=[common], allow_abbrev=False,
                          help="pair the local daemon with another appliance (offer a code, or join one)")
    pair.add_argument("code", nargs="?", help="the other appliance's pairing code (omit to offer one)")
    pair.add_argument("--signal", help="the other appliance's signaling URL (needed with a code)")
    pair.set_defaults(handler=run_pair)

    identity = sub.add_parser("identity", parents=[common], allow_abbrev=False,
                              help="show this appliance's device key, or rotate it")
    identity.add_argument("identity_action", nargs="?", choices=("show", "rotate"), default="show",
                          help="show (the default), or rotate: a fresh key signed by the old one; "
                               "paired devices follow it without pairing again")
    identity.set_defaults(handler=run_identity)

    peers = sub.add_parser("peers", parents=[common], allow_abbrev=False,
                           help="list and manage paired devices (approve, rename, revoke, forget)")
    peers.set_defaults(handler=run_peers)
    actions = peers.add_subparsers(dest="peers_action", metavar="ACTION")
    for name, text in (("list", "list paired devices (the default)"),
                       ("show", "show one device, with the safety words to compare"),
                       ("approve", "trust a pending (or revoked) device"),
                       ("revoke", "stop trusting a device; it stays listed as revoked"),
                       ("forget", "remove a device and its key; it must pair again"),
                       ("rename", "give a device a new name")):
        action = actions.add_parser(name, parents=[common], allow_abbrev=False, help=text)
        if name != "list":
            action.add_argument("device_id", metavar="ID", help="the device id (first column of `doorstep peers`)")
        if name == "rename":
            action.add_argument("name", metavar="NAME", help="the new name (1 to 64 characters)")


def run_pair(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    """Offer a pairing code (no code given) or join the other appliance's offer."""
    if args.code and not args.signal:
        raise CliError("joining a pairing code needs --signal (the other appliance's signaling URL, "
                       "shown where the code was offered)")
    body = {"code": args.code, "signal": args.signal} if args.code else {}
    result = client.post("/pair", body, timeout=PAIR_TIMEOUT)
    if args.code:
        lines = [f"paired with {result['name']} ({result['id']})"]
        if result.get("safety_words"):
            lines.append(f"safety words (must match the other device): {' '.join(result['safety_words'])}")
    else:
        lines = [f"pairing code: {result['code']}  (valid until {human_time(result['expires_at'])[-5:]})",
                 f"on the other appliance: doorstep pair {result['code']} --signal {result['signal']}"]
    out.result(result, lines)
    return 0


def run_identity(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    """Show the device key, or rotate it."""
    rotating = args.identity_action == "rotate"
    info = client.post("/identity/rotate", {}) if rotating else client.get("/identity")
    lines = [f"device {info['device_id']} ({info['name']})",
             f"key fingerprint: {' '.join(info['fingerprint'])}",
             f"rotations: {info['rotations']}"]
    if rotating:
        lines.insert(0, "rotated: paired devices follow the new key the next time they connect")
    out.result(info, lines)
    return 0


def run_peers(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    action = args.peers_action or "list"
    if action == "list":
        devices = client.get("/devices")
        out.result(devices, _device_table(devices))
        return 0
    if not args.device_id:
        raise CliError("the device id must not be empty")
    path = f"/devices/{quote_id(args.device_id)}"
    if action == "forget":
        client.delete(path)
        out.result({"id": args.device_id, "forgotten": True},
                   f"forgot device {args.device_id}; it must pair again to connect")
        return 0
    if action == "show":
        device = client.get(path)
        out.result(device, _device_lines(device))
        return 0
    change = ({"name": args.name} if action == "rename"
              else {"status": "approved" if action == "approve" else "revoked"})
    device = client.request("PATCH", path, json=change).json()
    if action == "rename":
        lines = [f"renamed {device['id']} to \"{device['name']}\""]
    else:
        lines = [f"{device['name']} ({device['id']}) is now {device['status']}"]
        if action == "approve" and device.get("safety_words"):
            lines.append(f"safety words (must match the other device): {' '.join(device['safety_words'])}")
    out.result(device, lines)
    return 0


def _device_table(devices: list[dict[str, Any]]) -> list[str]:
    if not devices:
        return ["no paired devices"]
    rows = [(d["name"], d["id"], d["status"], "-".join(d["fingerprint"]), human_time(d["last_seen"]))
            for d in devices]
    return format_table(("NAME", "ID", "STATUS", "FINGERPRINT", "LAST SEEN"), rows)


def _device_lines(device: dict[str, Any]) -> list[str]:
    lines = [("name", device["name"]), ("id", device["id"]), ("status", device["status"]),
             ("fingerprint", " ".join(device["fingerprint"]))]
    if device.get("safety_words"):
        lines.append(("safety words", " ".join(device["safety_words"])))
    lines += [("public key", device["public_key"]), ("paired", human_time(device["paired_at"])),
              ("last seen", human_time(device["last_seen"])), ("signal", device["signal_url"] or "-")]
    return [f"{label + ':':14} {value}" for label, value in lines]
