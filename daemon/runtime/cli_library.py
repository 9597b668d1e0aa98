"""``doorstep library ...``: folders the local daemon publishes, and paired devices' libraries.

::

    doorstep library list                              what this daemon publishes
    doorstep library publish NAME FOLDER --to DEVICE   publish FOLDER as NAME to DEVICE (repeatable)
    doorstep library unpublish NAME
    doorstep library browse DEVICE [NAME [PREFIX]]     a device's libraries, or a catalogue (subtree)
    doorstep library pull DEVICE NAME [PREFIX]         pull a subtree into the inbox (dedup by SHA-256)
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .cli_client import ApiClient, quote_id
from .cli_output import Output, format_table, human_size, human_time

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    library = sub.add_parser("library", parents=[common], allow_abbrev=False,
                             help="publish folders to paired devices; browse and pull theirs")
    library.set_defaults(handler=run)
    actions = library.add_subparsers(dest="library_action", metavar="ACTION")
    actions.add_parser("list", parents=[common], allow_abbrev=False, help="libraries this daemon publishes (default)")
    publish = actions.add_parser("publish", parents=[common], allow_abbrev=False,
                                 help="publish a folder of this appliance to paired devices")
    publish.add_argument("name")
    publish.add_argument("folder")
    publish.add_argument("--to", dest="devices", action="append", required=True, metavar="DEVICE",
                         help="a paired device's id (repeat for several)")
    unpublish = actions.add_parser("unpublish", parents=[common], allow_abbrev=False, help="stop publishing")
    unpublish.add_argument("name")
    browse = actions.add_parser("browse", parents=[common], allow_abbrev=False,
                                help="list a device's libraries, or the files of one (below PREFIX)")
    browse.add_argument("device")
    browse.add_argument("name", nargs="?")
    browse.add_argument("prefix", nargs="?", default="")
    pull = actions.add_parser("pull", parents=[common], allow_abbrev=False,
                              help="pull a library's subtree into the inbox; files already here are skipped")
    pull.add_argument("device")
    pull.add_argument("name")
    pull.add_argument("prefix", nargs="?", default="")


def run(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    action = args.library_action or "list"
    if action == "list":
        found = client.get("/libraries")
        out.result(found, _own_table(found))
    elif action == "publish":
        folder = os.path.abspath(args.folder)
        made = client.post("/libraries", {"name": args.name, "path": folder, "devices": args.devices})
        out.result(made, f"published {made['name']} ({made['path']}) to {', '.join(made['devices'])}")
    elif action == "unpublish":
        client.delete(f"/libraries/{quote_id(args.name)}")
        out.result({"name": args.name, "unpublished": True}, f"unpublished {args.name}")
    elif action == "browse" and args.name is None:
        found = client.get(f"/devices/{quote_id(args.device)}/libraries")
        out.result(found, format_table(("NAME", "FILES", "SIZE"),
                                       [(d["name"], str(d["files"]), human_size(d["size"])) for d in found])
                   if found else ["no libraries published to this appliance"])
    elif action == "browse":
        catalogue = client.get(f"/devices/{quote_id(args.device)}/libraries/{quote_id(args.name)}",
                               params={"prefix": args.prefix} if args.prefix else None)
        out.result(catalogue, _catalogue_table(catalogue))
    else:
        started = client.post(f"/devices/{quote_id(args.device)}/libraries/{quote_id(args.name)}/pull",
                              {"prefix": args.prefix})
        lines = [started["message"]]
        if started.get("transfer_id"):
            lines.append(f"transfer {started['transfer_id']}: {started['requested']} file(s), "
                         f"{human_size(started['bytes'])} (follow it with `doorstep transfers`)")
        if started.get("remaining"):
            lines.append(f"{started['remaining']} more file(s) left: pull again once this one is done")
        out.result(started, lines)
    return 0


def _own_table(found: list[dict[str, Any]]) -> list[str]:
    if not found:
        return ["no libraries published"]
    rows = [(d["name"], d["path"], str(d["files"]) + (f" (+{d['pending']} hashing)" if d["pending"] else ""),
             human_size(d["size"]), ", ".join(d["devices"])) for d in found]
    return format_table(("NAME", "FOLDER", "FILES", "SIZE", "DEVICES"), rows)


def _catalogue_table(catalogue: dict[str, Any]) -> list[str]:
    entries = catalogue["entries"]
    if not entries:
        return ["no files"]
    rows = [(e["path"], human_size(e["size"]), human_time(e["mtime"], short=True), e["sha256"][:12]) for e in entries]
    lines = format_table(("PATH", "SIZE", "MODIFIED", "SHA-256"), rows)
    if catalogue.get("truncated"):
        lines.append("(truncated: browse a narrower prefix)")
    return lines
