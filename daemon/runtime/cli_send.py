"""``doorstep send`` through the local daemon: ``--to DEVICE`` pushes to a paired device and follows
the transfer live; ``--via-daemon`` makes a share and prints its code, link and QR.

Files are uploaded as one multipart request, each part named by its path relative to what was
given (``holiday/img/a.jpg`` for a folder ``holiday``), and streamed from disk: one file is open
at a time and no file is ever read whole into memory.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import segno

from .cli_client import ApiClient, CliError, UsageError, quote_id
from .cli_output import Output, human_size, human_time
from .cli_progress import FINISHED, TransferView, open_view, transfer_label, transfer_updates

__all__ = ["LocalFile", "SourceChanged", "collect_files", "register", "resolve_device", "send_via_daemon",
           "upload_share"]

UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=5.0)  # the daemon spools and hashes before it answers


class SourceChanged(OSError):
    """A file changed size while it was being uploaded."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    name: str  # relative, slash-separated: what the receiver will see
    path: Path
    size: int


def collect_files(paths: list[Path]) -> list[LocalFile]:
    """Each file, and each folder's regular files (symlinks skipped) under the folder's own name."""
    found: list[LocalFile] = []
    for path in paths:
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
                found.append(LocalFile(f"{path.resolve().name}/{sub.relative_to(path).as_posix()}", sub,
                                       sub.stat().st_size))
        elif path.is_file():
            found.append(LocalFile(path.name, path, path.stat().st_size))
        else:
            raise CliError(f"{path}: not a file or folder")
    for f in found:
        if not os.access(f.path, os.R_OK):
            raise CliError(f"{f.path}: not readable")
    return found


class _LazyFile(io.RawIOBase):
    """What httpx's multipart encoder reads: opened at the first read, closed at the end, so a folder
    of thousands of files holds one descriptor at a time. Its length is the size seen when it was
    collected; a file that grows or shrinks meanwhile raises :class:`SourceChanged`."""

    def __init__(self, source: LocalFile, on_read: Callable[[int], None]) -> None:
        super().__init__()
        self._source = source
        self._on_read = on_read
        self._file: io.BufferedReader | None = None
        self._left = source.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._source.size - self._left

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END and offset == 0:
            return self._source.size  # only asked to learn the length
        if whence != os.SEEK_SET or offset != 0:
            raise io.UnsupportedOperation("only rewinding is supported")
        self._release()
        self._left = self._source.size
        return 0

    def read(self, size: int = -1) -> bytes:
        if self._left == 0:
            self._release()
            return b""
        if self._file is None:
            self._file = self._source.path.open("rb")
        want = self._left if size is None or size < 0 else min(size, self._left)
        chunk = self._file.read(want)
        if not chunk:
            self._release()
            raise SourceChanged(f"{self._source.path} shrank while it was being uploaded")
        self._left -= len(chunk)
        if self._left == 0:
            grew = self._file.read(1)
            self._release()
            if grew:
                raise SourceChanged(f"{self._source.path} grew while it was being uploaded")
        self._on_read(len(chunk))
        return chunk

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        self._release()
        super().close()


def share_name(paths: list[Path]) -> str:
    first = paths[0].resolve().name or str(paths[0])
    return first if len(paths) == 1 else f"{first} and {len(paths) - 1} more"


def upload_share(client: ApiClient, files: list[LocalFile], *, name: str,
                 on_progress: Callable[[int], None] = lambda _done: None) -> dict[str, Any]:
    """Upload ``files`` as one share (``POST /api/v1/shares``, multipart); returns the share."""
    done = 0

    def count(n: int) -> None:
        nonlocal done
        done += n
        on_progress(done)

    parts = [("file", (f.name, _LazyFile(f, count), "application/octet-stream")) for f in files]
    try:
        return client.post("/shares", data={"name": name}, files=parts, timeout=UPLOAD_TIMEOUT)
    except OSError as exc:  # a source vanished, became unreadable or changed
        raise CliError(f"upload aborted: {exc}") from None
    finally:
        for _, (_, part, _) in parts:
            part.close()


def resolve_device(devices: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """A device by id, by exact name, or by a unique prefix of its name or id (case-insensitive)."""
    key = wanted.strip().casefold()
    if not key:
        raise UsageError("--to needs a device id or name")
    for test in (lambda d: d["id"] == wanted.strip(), lambda d: d["name"].casefold() == key,
                 lambda d: d["name"].casefold().startswith(key) or d["id"].casefold().startswith(key)):
        matches = [d for d in devices if test(d)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(f"{d['name']} ({d['id']})" for d in matches)
            raise CliError(f"{wanted!r} matches several devices: {listed}; give more of the name, or the id")
    raise CliError(f"no paired device matches {wanted!r}; `doorstep peers` lists them")


def send_via_daemon(args: argparse.Namespace, client: ApiClient, out: Output) -> int:
    """``send --to DEVICE`` (exit 0 once the receiver verified everything, 1 if the push failed) or
    ``send --via-daemon`` (exit 0 once the share exists)."""
    if args.signal:
        raise UsageError("--signal is for standalone send; with --to/--via-daemon the daemon's own signaling is used")
    device = resolve_device(client.get("/devices"), args.to) if args.to else None
    files = collect_files(args.paths)
    if not files:
        raise CliError("nothing to send")
    total = sum(f.size for f in files)
    what = files[0].name if len(files) == 1 else f"{len(files)} files"
    target = device["name"] if device else "daemon"
    view = open_view(out, describe=lambda r: r.get("label") or f"{transfer_label(r)} → {target}")
    share = final = None
    try:
        share = _upload(client, files, args.paths, view, what, total)
        if device is not None:
            final = _push_and_follow(client, share, device, view)
    except KeyboardInterrupt:
        view.close()
        out.say("stopped watching; the daemon carries on (`doorstep transfers --watch` follows it)" if share
                else "upload interrupted; nothing was shared")
        return 130
    finally:
        view.close()
    if device is None:
        return _print_share(share, out)
    assert final is not None
    ok = final["state"] == "done"
    out.result({"share": share, "device": device, "transfer": final},
               [f"sent {len(files)} file(s), {human_size(total)} to {device['name']} ({device['id']}), "
                "verified by the receiver"] if ok else [])
    if not ok:
        raise CliError(f"sending to {device['name']} {final['state']}: {final.get('error') or 'no reason given'}")
    return 0


def _upload(client: ApiClient, files: list[LocalFile], paths: list[Path], view: TransferView, what: str,
            total: int) -> dict[str, Any]:
    upload = {"id": "upload", "label": f"{what} → daemon", "state": "uploading", "bytes_done": 0,
              "bytes_total": total}
    view.update(upload)
    share = upload_share(client, files, name=share_name(paths),
                         on_progress=lambda done: view.update({**upload, "bytes_done": done}))
    view.update({**upload, "state": "uploaded", "bytes_done": total})
    return share


def _push_and_follow(client: ApiClient, share: dict[str, Any], device: dict[str, Any],
                     view: TransferView) -> dict[str, Any]:
    pushed = client.post(f"/shares/{quote_id(share['share_id'])}/push", {"device": device["id"]})
    transfer_id = str(pushed["id"])
    path = f"/transfers/{quote_id(transfer_id)}"
    for batch in transfer_updates(client, lambda: [client.get(path)]):
        for record in batch:
            if record.get("id") != transfer_id:
                continue
            view.update(record)
            if record.get("state") in FINISHED:
                return record
    raise AssertionError("unreachable: transfer_updates never ends")


def _print_share(share: dict[str, Any], out: Output) -> int:
    lines = []
    if share.get("code"):
        until = human_time(share.get("expires_at"), short=True)
        lines.append(f"code: {share['code']}  (valid until {until})")
    if share.get("url"):
        lines.append(f"link: {share['url']}")
    lines.append(f"share: {share['share_id']}  {share.get('name', '')}  {human_size(share.get('size'))}")
    out.result(share, lines)
    if not out.json and share.get("url") and sys.stdout.isatty():
        segno.make(share["url"], error="m").terminal(out=sys.stdout, compact=True)
    return 0


def register(send: argparse.ArgumentParser) -> None:
    """Add the daemon options to the ``send`` parser (which also serves standalone send)."""
    send.add_argument("--to", metavar="DEVICE",
                      help="push to this paired device through the local daemon (its id, or a unique name prefix)")
    send.add_argument("--via-daemon", action="store_true",
                      help="share through the local daemon: print a code, link and QR, and return at once")
