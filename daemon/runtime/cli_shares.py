"""``doorstep shares [list | revoke ID | qr ID]``: the local daemon's open shares."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import segno

from .cli_client import ApiClient, CliError, quote_id
from .cli_output import Output, format_table, human_size, human_time

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    shares = sub.add_parser("shares", parents=[common], allow_abbrev=False,
                            help="list the local daemon's shares, revoke one, or show its QR code")
    shares.set_defaults(handler=run)
    actions = shares.add_subparsers(dest="shares_action", metavar="ACTION")
    actions.add_parser("list", parents=[common], allow_abbrev=False, help="list open shares (the default)")
    revoke = actions.add_parser("revoke", parents=[common], allow_abbrev=False,
                                help="end a share: its code stops working and its files are dropped")
    revoke.add_argument("share_id", metavar="ID")
    qr = actions.add_parser("qr", parents=[common], allow_abbrev=False,
                            help="show a share's link as a QR code in the terminal")
    qr.add_argument("share_id", metavar="ID")
    qr.add_argument("--svg", type=Path, metavar="FILE", help="also save the daemon's SVG of the QR code to FILE")


def run(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    action = args.shares_action or "list"
    if action == "list":
        shares = client.get("/shares")
        out.result(shares, _table(shares))
    elif action == "revoke":
        client.delete(f"/shares/{quote_id(args.share_id)}")
        out.result({"share_id": args.share_id, "revoked": True}, f"revoked share {args.share_id}")
    else:
        share = _find(client, args.share_id)
        if not share.get("url"):
            raise CliError(f"share {args.share_id} has no live code (it was used or it expired)")
        if args.svg is not None:
            svg = client.request("GET", f"/shares/{quote_id(share['share_id'])}/qr.svg").content
            args.svg.write_bytes(svg)
        out.result(share, [f"code: {share['code']}  (valid until {human_time(share.get('expires_at'), short=True)})",
                           f"link: {share['url']}"])
        if not out.json:
            segno.make(share["url"], error="m").terminal(out=sys.stdout, compact=True)
    return 0


def _find(client: ApiClient, share_id: str) -> dict[str, Any]:
    for share in client.get("/shares"):
        if share.get("share_id") == share_id:
            return share
    raise CliError(f"no share {share_id!r}; `doorstep shares` lists them")


def _table(shares: list[dict[str, Any]]) -> list[str]:
    if not shares:
        return ["no shares"]
    rows = [(s["share_id"], s.get("name") or "-", str(len(s.get("files") or [])), human_size(s.get("size")),
             s.get("code") or "-", human_time(s.get("expires_at"), short=True) if s.get("code") else "-",
             s.get("url") or "-") for s in shares]
    return format_table(("ID", "NAME", "FILES", "SIZE", "CODE", "UNTIL", "LINK"), rows)
