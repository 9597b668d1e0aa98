"""``doorstep receive`` and ``doorstep send`` without a local daemon.

Both run a trio program on the asyncio bridge, speak signaling and WebRTC themselves, and keep
their journal in memory: an interrupted connection is retried within the process.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import time
from pathlib import Path

import httpx
import segno
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn, TimeRemainingColumn

from daemon.ice import IceConfig
from daemon.protocol.auth import AuthMode
from daemon.signaling import JoinFailed, open_signaling
from daemon.state import Direction, FileRecord, StateDB, new_share_id
from daemon.storage import Inbox, LocalSources, sha256_file

from . import bridge
from .config import Config
from daemon.transfer.errors import TransferFailed

from .authentication import Authenticated, AuthenticationFailed, Credentials
from .fetching import RETRYABLE, Fetch, fetch
from .sessions import send_over_session

__all__ = ["receive", "send"]

LINK_RE = re.compile(r"(https?://[^/]+)/r/([0-9]{6})/?")


def _fail(message: str) -> int:
    print(f"doorstep: {message}", file=sys.stderr)
    return 1


def _resolve_signal(explicit: str | None, code_or_link: str, config: Config) -> tuple[str, str]:
    """Return (signal URL, code). A share link names its appliance, which tells its signaling URL."""
    link = LINK_RE.fullmatch(code_or_link.strip())
    if link is None:
        return explicit or os.environ.get("DOORSTEP_SIGNAL_URL") or config.signal_url, code_or_link.strip()
    if explicit:
        return explicit, link.group(2)
    health = httpx.get(f"{link.group(1)}/api/v1/health", timeout=10).raise_for_status().json()
    return str(health["signal"]), link.group(2)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=None, transient=False, disable=not sys.stderr.isatty(),
    )


def receive(args: argparse.Namespace, config: Config) -> int:
    """Fetch one share into ``args.out``; exit 0 only when every file is verified and in place."""
    if not re.fullmatch(r"[0-9]{6}", args.code.strip()) and not LINK_RE.fullmatch(args.code.strip()):
        return _fail("expected a 6-digit code or a share link like http://host:8080/r/123456")
    try:
        signal_url, code = _resolve_signal(args.signal, args.code, config)
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        return _fail(f"could not ask the appliance for its signaling address: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    return bridge.run(_receive, signal_url, code, args.out, IceConfig(addresses=config.ice_addresses, direct=config.transfer_direct),
                      config.transfer_encrypt, config.transfer_compress)


async def _receive(signal_url: str, code: str, out: Path, ice: IceConfig, encrypt: bool, compress: bool) -> int:
    journal = StateDB(":memory:")
    transfer_id = secrets.token_hex(8)
    journal.add_transfer(transfer_id, Direction.RECEIVE, signal_url=signal_url)
    job = Fetch(transfer_id=transfer_id, signal_url=signal_url, code=code, encrypt=encrypt, compress=compress, max_no_route=1)
    with Inbox(out) as inbox, _progress() as progress:
        task = progress.add_task("receiving", total=None)

        def report(done: int, _moved: int) -> None:
            total = journal.get_transfer(transfer_id).bytes_total  # type: ignore[union-attr]
            progress.update(task, completed=done, total=total)

        try:
            outcome = await fetch(job, inbox=inbox, journal=journal, ice=ice, report=report)
        except JoinFailed:
            return _fail("no such code (or it expired, or it was used)")
        except RETRYABLE as exc:
            return _fail(f"could not reach the sharer: {exc}")
        if outcome is None:
            return _fail(f"transfer failed: {journal.get_transfer(transfer_id).error}")  # type: ignore[union-attr]
        inbox.remove_private_dir_if_empty()
    for f in outcome.files:
        print(f"{out / (f.final_path or '?')}  {f.size} bytes  sha256 {f.sha256} verified")
    return 0


def _collect(paths: list[Path]) -> list[tuple[str, Path]]:
    """(relative name, real path) for each file; a folder contributes its tree under its own name."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
                found.append((f"{path.name}/{sub.relative_to(path).as_posix()}", sub))
        elif path.is_file():
            found.append((path.name, path))
        else:
            raise FileNotFoundError(f"{path}: not a file or folder")
    return found


def send(args: argparse.Namespace, config: Config) -> int:
    """Share files: print a code (and a QR in a terminal), serve one receiver, exit 0 when verified."""
    try:
        named = _collect(args.paths)
    except OSError as exc:
        return _fail(str(exc))
    if not named:
        return _fail("nothing to send")
    signal_url = args.signal or os.environ.get("DOORSTEP_SIGNAL_URL") or config.signal_url
    sources = LocalSources({name: path for name, path in named})
    files = tuple(
        FileRecord(index=i, path=name, size=path.stat().st_size, sha256=sha256_file(path))
        for i, (name, path) in enumerate(named)
    )
    return bridge.run(_send, signal_url, files, sources, IceConfig(addresses=config.ice_addresses, direct=config.transfer_direct),
                      config.transfer_encrypt, config.transfer_compress)


async def _send(signal_url: str, files: tuple[FileRecord, ...], sources: LocalSources, ice: IceConfig,
                encrypt: bool, compress: bool) -> int:
    share_id = new_share_id()
    total = sum(f.size for f in files)
    try:
        async with open_signaling(signal_url, resume=True) as client:
            hosted = await client.host(share_id, secrets.token_urlsafe(24), code=True)
            print(f"code: {hosted.code}  (valid until {time.strftime('%H:%M:%S', time.localtime(hosted.expires_at))})")
            if sys.stdout.isatty():
                segno.make(hosted.code).terminal(compact=True)
            sys.stdout.flush()
            passwords = {AuthMode.CODE: hosted.code.encode()}

            def authenticated(auth: Authenticated) -> None:
                if auth.mode is AuthMode.CODE:
                    passwords[AuthMode.RESUME] = auth.key.resume_secret(share_id)

            with _progress() as progress:
                task = progress.add_task("sending", total=total)
                async for session in client.incoming():
                    try:
                        await send_over_session(
                            session, ice, credentials=Credentials(passwords=dict(passwords)),
                            on_authenticated=authenticated, encrypt=encrypt, compress=compress, share_id=share_id,
                            files=files,
                            share_dir=sources,
                            report=lambda acked, _moved: progress.update(task, completed=acked),
                        )
                    except AuthenticationFailed as exc:
                        if exc.secret_tested and AuthMode.RESUME not in passwords:
                            return _fail(f"{exc}; the code is burned, send again for a new one")
                        if exc.secret_tested:
                            passwords.pop(AuthMode.CODE, None)
                        print(f"doorstep: {exc}", file=sys.stderr)
                        continue
                    except RETRYABLE as exc:
                        print(f"doorstep: connection lost ({exc}); waiting for the receiver to resume",
                              file=sys.stderr)
                        continue
                    break
    except TransferFailed as exc:
        return _fail(str(exc))
    except RETRYABLE as exc:
        return _fail(f"signaling server {signal_url}: {exc}")
    print(f"sent {len(files)} file(s), {total} bytes, verified by the receiver")
    return 0

