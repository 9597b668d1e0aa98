"""``doorstep inbox [list | get PATH [--out FILE] | rm PATH]``: what has arrived at the local daemon.

``get`` streams the download into a hidden temporary file next to the target and renames it into
place once complete, so an interrupted download never leaves a truncated file under the final name.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from .cli_client import ApiClient, ApiError, CliError, quote_path
from .cli_output import Output, format_table, human_size, human_time
from .cli_progress import PlainView, TransferView, open_view

__all__ = ["inbox_entries", "register"]

CHUNK = 1 << 20


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    inbox = sub.add_parser("inbox", parents=[common], allow_abbrev=False,
                           help="list, download or delete what arrived in the local daemon's inbox")
    inbox.set_defaults(handler=run)
    actions = inbox.add_subparsers(dest="inbox_action", metavar="ACTION")
    actions.add_parser("list", parents=[common], allow_abbrev=False, help="list the inbox (the default)")
    get = actions.add_parser("get", parents=[common], allow_abbrev=False, help="download a file from the inbox")
    get.add_argument("path", metavar="PATH", help="the file's path in the inbox (as `doorstep inbox` lists it)")
    get.add_argument("--out", metavar="FILE",
                     help="where to save it (default: its name, in the current folder; - for stdout)")
    get.add_argument("--force", action="store_true", help="replace FILE if it exists")
    rm = actions.add_parser("rm", parents=[common], allow_abbrev=False, help="delete a file from the inbox")
    rm.add_argument("path", metavar="PATH")


def inbox_entries(body: Any) -> list[dict[str, Any]]:
    """The listing's entries, whether the daemon answers a list or ``{"files": [...]}``."""
    if isinstance(body, dict):
        body = body.get("files") or body.get("entries") or []
    return [e for e in body if isinstance(e, dict)] if isinstance(body, list) else []


def run(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    action = args.inbox_action or "list"
    if action == "list":
        body = client.get("/inbox")
        out.result(body, _table(inbox_entries(body)))
    elif action == "rm":
        client.delete(f"/inbox/{quote_path(_inbox_path(args.path))}")
        out.result({"path": args.path, "deleted": True}, f"deleted {args.path}")
    else:
        return _get(args, client, out)
    return 0


def _inbox_path(path: str) -> str:
    path = path.strip().lstrip("/")
    if not path:
        raise CliError("the inbox path must not be empty")
    return path


def _table(entries: list[dict[str, Any]]) -> list[str]:
    if not entries:
        return ["the inbox is empty"]
    rows = [(str(e.get("path", "?")), human_size(e.get("size")),
             human_time(e.get("mtime") or e.get("modified") or e.get("modified_at")),
             str(e.get("sha256") or "-")[:16]) for e in entries]
    return format_table(("PATH", "SIZE", "MODIFIED", "SHA256"), rows)


def _get(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    path = _inbox_path(args.path)
    to_stdout = args.out == "-"
    target = None if to_stdout else Path(args.out) if args.out else Path(Path(path).name)
    if target is not None:
        if target.is_dir():
            target = target / Path(path).name
        if target.exists() and not args.force:
            raise CliError(f"{target} exists; --force replaces it")
    expected = _expected_sha256(client, path)
    # With the file on stdout, progress (and any result) must stay off it.
    view: TransferView = PlainView(sys.stderr) if to_stdout else open_view(out)
    digest = hashlib.sha256()
    size = 0
    record = {"id": "download", "label": path, "state": "downloading", "bytes_done": 0, "bytes_total": None}
    try:
        with client.stream("GET", f"/inbox/{quote_path(path)}") as response:
            length = response.headers.get("content-length")
            record["bytes_total"] = int(length) if length and length.isdigit() else None
            view.update(record)
            sink, temp = _open_sink(target)
            try:
                for chunk in response.iter_bytes(CHUNK):
                    sink.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    view.update({**record, "bytes_done": size})
                if record["bytes_total"] is not None and size != record["bytes_total"]:
                    raise CliError(f"the download of {path} stopped at {size} of {record['bytes_total']} bytes")
                if expected is not None and digest.hexdigest() != expected:
                    raise CliError(f"{path}: the download's SHA-256 is {digest.hexdigest()}, but the daemon "
                                   f"recorded {expected} when it arrived" + ("; nothing saved" if temp else ""))
                sink.flush()
                if temp is not None:
                    os.fsync(sink.fileno())
            except BaseException:
                if temp is not None:
                    sink.close()
                    temp.unlink(missing_ok=True)
                raise
            if temp is not None:
                sink.close()
                os.replace(temp, target)  # type: ignore[arg-type]
        view.update({**record, "state": "done", "bytes_done": size})
    except OSError as exc:
        raise CliError(f"cannot save {path}: {exc}") from None
    except httpx.HTTPError as exc:  # while the body streams
        raise CliError(f"the download of {path} broke off: {exc or type(exc).__name__}") from None
    finally:
        view.close()
    result = {"path": path, "out": "-" if target is None else str(target), "size": size,
              "sha256": digest.hexdigest(), "verified": expected is not None}
    if not to_stdout:
        checked = "verified" if expected is not None else "(the daemon had no SHA-256 to check it against)"
        out.result(result, f"saved {target}  {size} bytes  sha256 {digest.hexdigest()} {checked}")
    return 0


def _expected_sha256(client: ApiClient, path: str) -> str | None:
    """The SHA-256 the daemon recorded when the file arrived (None if it has none for it)."""
    try:
        entries = inbox_entries(client.get("/inbox", {"prefix": path}))
    except ApiError as exc:
        if exc.status in (404, 405):
            return None
        raise
    return next((e.get("sha256") for e in entries if e.get("path") == path), None)


def _open_sink(target: Path | None):
    """(writable binary file, its temporary path or None for stdout)."""
    if target is None:
        return sys.stdout.buffer, None
    directory = target.parent if str(target.parent) else Path(".")
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".part")
    umask = os.umask(0o022)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # what a plain open() would have made, not mkstemp's 0600
    return os.fdopen(fd, "wb"), Path(name)
