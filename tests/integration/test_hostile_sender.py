"""A hostile sender offers dangerous names to a real daemon over real WebRTC.

The sender is our own protocol machine driven over a real data channel, so every frame is valid:
only the names are hostile. Each lands sanitized inside the inbox, or the offer is refused with a
clear error; nothing outside the inbox is touched.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import pytest
import trio

from daemon.ice import IceConfig
from daemon.protocol.auth import AuthMode
from daemon.runtime import bridge
from daemon.runtime.authentication import Credentials
from daemon.runtime.sessions import send_over_session
from daemon.signaling import open_signaling
from daemon.state import FileRecord
from daemon.storage import LocalSources
from daemon.transfer.errors import TransferFailed
from tests.integration.harness import Daemon, sha256_of, tree_listing

pytestmark = pytest.mark.integration

HOSTILE = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "nul\x00byte",
    "CON",
    "con.txt",
    "n" * 300 + ".txt",
    "\uff0e\uff0e/fullwidth-dots",  # NFKC turns '．．' into '..'
    "a\u2215..\u2215slashlike",  # U+2215 DIVISION SLASH looks like '/'
    "ctl\x1b[31mred\x07",
    ".doorstep/partial/evil",
]


def _offer(signal_url: str, daemon: Daemon, named: dict[str, Path]) -> tuple[str, Exception | None]:
    """Host ``named`` (offered name -> real file) and make ``daemon`` fetch it. Returns (transfer id, error)."""
    files = tuple(FileRecord(index=i, path=name, size=path.stat().st_size, sha256=sha256_of(path))
                  for i, (name, path) in enumerate(named.items()))

    async def main() -> tuple[str, Exception | None]:
        async with open_signaling(signal_url) as client:
            share_id = secrets.token_urlsafe(16)
            hosted = await client.host(share_id, secrets.token_urlsafe(24), code=True)

            def start_fetch() -> str:
                response = daemon.api("POST", "/api/v1/receive", json={"code": hosted.code})
                assert response.status_code == 202, response.text
                return response.json()["id"]

            async with trio.open_nursery() as nursery:
                transfer: list[str] = []

                async def fetch() -> None:
                    transfer.append(await trio.to_thread.run_sync(start_fetch))

                nursery.start_soon(fetch)
                async for session in client.incoming():
                    try:
                        await send_over_session(
                            session, IceConfig(addresses=("127.0.0.1",)),
                            credentials=Credentials(passwords={AuthMode.CODE: hosted.code.encode()}),
                            on_authenticated=lambda _auth: None, share_id=share_id,
                            files=files, share_dir=LocalSources(named), report=lambda *_: None,
                        )
                    except TransferFailed as exc:
                        return transfer[0] if transfer else "", exc
                    break
            return transfer[0], None

    return bridge.run(main)


@pytest.fixture
def receiver(start_daemon) -> Daemon:
    return start_daemon("b")


def test_hostile_names_land_sanitized_inside_the_inbox(receiver: Daemon, tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    named = {}
    for i, name in enumerate(HOSTILE):
        path = sources / f"{i}.bin"
        path.write_bytes(f"payload {i} ".encode() * 100)
        named[name] = path
    outside_before = tree_listing(tmp_path, skip=(receiver.state_dir, receiver.log_path))
    passwd_before = Path("/etc/passwd").stat()

    transfer_id, error = _offer(receiver.signal_url, receiver, named)
    assert error is None
    record = receiver.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=60)

    inbox = receiver.inbox.resolve()
    landed = {}
    for entry in record["files"]:
        final = (inbox / entry["final_path"]).resolve()
        assert inbox in final.parents, f"{entry['path']!r} escaped to {final}"
        assert final.is_file() and not final.is_symlink()
        landed[entry["path"]] = final
        name_bytes = [len(part.encode()) for part in Path(entry["final_path"]).parts]
        assert max(name_bytes) <= 255
        assert "\x00" not in entry["final_path"] and "\x1b" not in entry["final_path"]
    for name, path in named.items():
        assert hashlib.sha256(landed[name].read_bytes()).hexdigest() == sha256_of(path), name
    assert len(set(landed.values())) == len(HOSTILE), "every file kept, none overwritten"
    assert landed["../x"] == inbox / "x"
    assert landed["/etc/passwd"] == inbox / "etc" / "passwd"
    assert landed["a/../../b"] == inbox / "a" / "b"
    assert ".." not in {p for f in landed.values() for p in f.relative_to(inbox).parts}
    assert not (inbox / ".doorstep" / "partial" / "evil").exists()
    assert tree_listing(tmp_path, skip=(receiver.state_dir, receiver.log_path)) == outside_before
    assert Path("/etc/passwd").stat().st_mtime_ns == passwd_before.st_mtime_ns


@pytest.mark.parametrize("name", ["..", "/", "./../.", "\\..\\"])
def test_names_with_nothing_usable_are_refused_clearly(receiver: Daemon, tmp_path: Path, name: str) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(b"nothing to see")
    transfer_id, error = _offer(receiver.signal_url, receiver, {"fine.txt": source, name: source})
    assert isinstance(error, TransferFailed) and "refused the transfer" in str(error)
    assert "unacceptable file name" in str(error)
    record = receiver.wait_transfer(transfer_id, lambda t: t["state"] == "failed", timeout=30, allow_failure=True)
    assert "unacceptable file name" in record["error"]
    assert [p for p in receiver.inbox.rglob("*") if p.is_file()] == []

