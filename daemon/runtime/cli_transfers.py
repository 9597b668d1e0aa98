"""``doorstep transfers [--watch] [cancel|pause|resume|retry ID]`` and ``doorstep status``."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from .cli_client import ApiClient, ApiError, UsageError, quote_id
from .cli_inbox import inbox_entries
from .cli_output import Output, format_table, human_size, human_time
from .cli_progress import FINISHED, open_view, transfer_label, transfer_updates

__all__ = ["register"]

STATES = ("connecting", "active", "retrying", "done", "failed", "cancelled", "held", "paused")
ACTIONS = {"cancel": "stop a transfer for good", "pause": "stop moving bytes, keep everything to resume",
           "resume": "continue a paused transfer from where it stopped",
           "retry": "start a failed or cancelled transfer again from its durable offsets"}
DIRECTIONS = ("send", "receive")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    transfers = sub.add_parser("transfers", parents=[common], allow_abbrev=False,
                               help="list the local daemon's transfers, or watch them live")
    transfers.add_argument("--watch", action="store_true",
                           help="a live table of active transfers with progress bars, until Ctrl-C")
    transfers.add_argument("--state", type=_states, metavar="STATE[,STATE...]",
                           help=f"only transfers in these states: {', '.join(STATES)}")
    transfers.add_argument("--direction", choices=DIRECTIONS, help="only sends or only receives")
    transfers.add_argument("--limit", type=_positive, metavar="N", help="at most N transfers")
    transfers.set_defaults(handler=run_transfers)
    actions = transfers.add_subparsers(dest="transfers_action", metavar="ACTION")
    for name, text in ACTIONS.items():
        action = actions.add_parser(name, parents=[common], allow_abbrev=False, help=text)
        action.add_argument("transfer_id", metavar="ID")

    status = sub.add_parser("status", parents=[common], allow_abbrev=False,
                            help="show the local daemon's health and what it holds")
    status.set_defaults(handler=run_status)


def _states(text: str) -> frozenset[str]:
    states = frozenset(s.strip() for s in text.split(","))
    unknown = sorted(states - set(STATES))
    if unknown:
        raise argparse.ArgumentTypeError(f"invalid state {', '.join(unknown)} (choose from {', '.join(STATES)})")
    return states


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run_transfers(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    if args.transfers_action in ACTIONS:
        record = client.post(f"/transfers/{quote_id(args.transfer_id)}/{args.transfers_action}")
        state = record.get("state", "?") if isinstance(record, dict) else "?"
        out.result(record, f"transfer {args.transfer_id}: {state}")
        return 0
    if args.watch:
        if out.json:
            raise UsageError("--watch draws a live table; it does not mix with --json")
        return _watch(args, client, out)
    records = _list(args, client)
    out.result(records, transfer_lines(records) or ["no transfers"])
    return 0


def _matches(record: dict[str, Any], args: argparse.Namespace) -> bool:
    return ((args.state is None or record.get("state") in args.state)
            and (args.direction is None or record.get("direction") == args.direction))


def _list(args: argparse.Namespace, client: ApiClient) -> list[dict[str, Any]]:
    params = {"state": ",".join(sorted(args.state)) if args.state else None, "direction": args.direction,
              "limit": args.limit}
    # Filtered here too: the same answer from a daemon that ignores the filters (oldest first, so
    # the newest N are the last N).
    records = [r for r in client.get("/transfers", params) if _matches(r, args)]
    return records[-args.limit:] if args.limit else records


def _watch(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    """Show transfers that are under way (or in ``--state``) as they change; keep a row once shown."""
    view = open_view(out, describe=lambda r: f"{str(r.get('id'))[:8]}  {r.get('direction', '?'):7}  "
                                             f"{transfer_label(r)}")
    shown: set[str] = set()
    out.say("watching transfers; Ctrl-C to stop")
    try:
        for batch in transfer_updates(client, lambda: _list(args, client), poll_interval=1.0):
            for record in batch:
                key = str(record.get("id"))
                if key not in shown:
                    if not _matches(record, args):
                        continue
                    if args.state is None and (record.get("state") in FINISHED or record.get("state") == "held"):
                        continue
                    shown.add(key)
                view.update(record)
    except KeyboardInterrupt:
        pass
    finally:
        view.close()
    return 0


def transfer_lines(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    rows = []
    for t in records:
        total = t.get("bytes_total") or 0
        pct = f"{100 * (t.get('bytes_done') or 0) / total:.0f}%" if total else "-"
        detail = transfer_label(t) + (f"  ({t['error']})" if t.get("error") else "")
        rows.append((str(t["id"]), str(t.get("direction", "?")), str(t.get("state", "?")), pct,
                     human_size(total), human_time(t.get("updated_at")), detail))
    return format_table(("ID", "DIRECTION", "STATE", "DONE", "SIZE", "UPDATED", "FILES"), rows)


def run_status(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    health = client.get("/health")
    transfers = client.get("/transfers")
    shares = client.get("/shares")
    devices = client.get("/devices")
    try:
        inbox = inbox_entries(client.get("/inbox"))
    except ApiError as exc:
        if exc.status not in (404, 405):
            raise
        inbox = None  # a daemon without the inbox routes
    counts = {
        "transfers": dict(Counter(t.get("state") for t in transfers)),
        "shares": len(shares),
        "devices": dict(Counter(d.get("status") for d in devices)),
        "inbox": None if inbox is None else {"files": len(inbox), "bytes": sum(e.get("size") or 0 for e in inbox)},
    }
    lines = [f"doorstep {health.get('version')}: {health.get('status')}  ({client.base_url}, "
             f"signaling {health.get('signal', '?')})",
             f"transfers: {_counted(counts['transfers'])}",
             f"shares:    {len(shares) or 'none'}",
             f"devices:   {_counted(counts['devices'])}"]
    if inbox is not None:
        lines.append(f"inbox:     {len(inbox)} file(s), {human_size(counts['inbox']['bytes'])}")
    under_way = [t for t in transfers if t.get("state") not in FINISHED]
    if under_way:
        lines += ["", *transfer_lines(under_way)]
    out.result({"health": health, "counts": counts, "transfers": transfers}, lines)
    return 0


def _counted(counter: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counter.items(), key=lambda kv: -kv[1])) or "none"
