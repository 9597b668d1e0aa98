"""The device book through a real daemon: the /api/v1/devices routes and ``doorstep peers``.

No pairing flow creates devices here: the test stops the daemon, pins two keys in its state
database directly, and starts it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.crypto import DeviceIdentity, fingerprint_words
from daemon.runtime.devices import DeviceBook
from daemon.state import StateDB
from tests.integration.harness import Daemon, api_error, run_cli

pytestmark = pytest.mark.integration


@dataclass
class Book:
    daemon: Daemon
    laptop: str  # approved
    phone: str  # pending
    laptop_key: bytes

    def cli(self, *args: str, **env: str):
        return run_cli("peers", *args, timeout=60, DOORSTEP_STATE_DIR=str(self.daemon.state_dir),
                       DOORSTEP_HTTP_LISTEN=f"127.0.0.1:{self.daemon.runtime['http_port']}", **env)


@pytest.fixture
def book(start_daemon: Callable[..., Daemon]) -> Book:
    daemon = start_daemon("a")
    assert daemon.stop() == 0, daemon.log_tail()
    db = StateDB(daemon.state_dir / "state.db")
    try:
        devices = DeviceBook(db)
        laptop_key = DeviceIdentity.generate().public_key
        laptop = devices.pin(laptop_key, "laptop", signal_url="ws://127.0.0.1:9/signal/v1").device_id
        phone = devices.pin(DeviceIdentity.generate().public_key, "phone", signal_url=None, approved=False).device_id
    finally:
        db.close()
    daemon.start()
    return Book(daemon=daemon, laptop=laptop, phone=phone, laptop_key=laptop_key)


def test_list_show_rename_approve_revoke_forget(book: Book) -> None:
    api = book.daemon.api
    listed = api("GET", "/api/v1/devices")
    assert listed.status_code == 200
    assert [(d["id"], d["name"], d["status"]) for d in listed.json()] == [
        (book.laptop, "laptop", "approved"), (book.phone, "phone", "pending")]
    laptop = api("GET", f"/api/v1/devices/{book.laptop}").json()
    assert laptop["fingerprint"] == list(fingerprint_words(book.laptop_key))
    assert laptop["signal_url"] == "ws://127.0.0.1:9/signal/v1" and laptop["last_seen"] is None
    assert len(laptop["public_key"]) == 43  # 32 bytes, base64url without padding

    renamed = api("PATCH", f"/api/v1/devices/{book.laptop}", json={"name": "  work laptop "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "work laptop"
    approved = api("PATCH", f"/api/v1/devices/{book.phone}", json={"status": "approved"})
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    both = api("PATCH", f"/api/v1/devices/{book.laptop}", json={"name": "old laptop", "status": "revoked"})
    assert (both.json()["name"], both.json()["status"]) == ("old laptop", "revoked")
    # Revoked devices stay listed, so a refused connection can be explained.
    assert [d["status"] for d in api("GET", "/api/v1/devices").json()] == ["revoked", "approved"]

    forgotten = api("DELETE", f"/api/v1/devices/{book.laptop}")
    assert forgotten.status_code == 204 and forgotten.content == b""
    api_error(api("GET", f"/api/v1/devices/{book.laptop}"), 404, "unknown_device")
    assert [d["id"] for d in api("GET", "/api/v1/devices").json()] == [book.phone]


def test_the_device_routes_need_the_token(book: Book) -> None:
    for method, path in (("GET", "/api/v1/devices"), ("GET", f"/api/v1/devices/{book.laptop}"),
                         ("PATCH", f"/api/v1/devices/{book.laptop}"), ("DELETE", f"/api/v1/devices/{book.laptop}")):
        denied = book.daemon.api(method, path, headers={"Authorization": "Bearer wrong"}, json={"status": "revoked"})
        assert denied.status_code == 401, (method, path)
    assert book.daemon.api("GET", f"/api/v1/devices/{book.laptop}").json()["status"] == "approved"


@pytest.mark.parametrize(("body", "needle"), [
    ({"name": "x", "colour": "red"}, "colour"),
    ({}, "nothing to change"),
    ({"name": ""}, "empty"),
    ({"name": "   "}, "empty"),
    ({"name": "x" * 65}, "at most 64"),
    ({"name": "bad\x1bname"}, "control"),
    ({"name": "new\nline"}, "control"),
    ({"name": 7}, "str"),
    ({"status": "pending"}, "status"),
    ({"status": "trusted"}, "status"),
    ([], "object"),
])
def test_bad_changes_are_400_and_change_nothing(book: Book, body: object, needle: str) -> None:
    response = book.daemon.api("PATCH", f"/api/v1/devices/{book.laptop}", json=body)
    message = api_error(response, 400, "bad_name" if needle in ("empty", "at most 64", "control") else "bad_request")
    assert needle in message, message
    assert book.daemon.api("GET", f"/api/v1/devices/{book.laptop}").json()["name"] == "laptop"


def test_a_body_that_is_not_json_is_400(book: Book) -> None:
    response = book.daemon.api("PATCH", f"/api/v1/devices/{book.laptop}", content=b"{name:",
                               headers={"Content-Type": "application/json"})
    api_error(response, 400, "bad_request")


def test_unknown_ids_are_404(book: Book) -> None:
    api = book.daemon.api
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"name": "x"}}), ("DELETE", {})):
        message = api_error(api(method, "/api/v1/devices/nosuchdevice", **kwargs), 404, "unknown_device")
        assert "nosuchdevice" in message


def test_peers_cli(book: Book) -> None:
    listing = book.cli()
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "STATUS", "FINGERPRINT", "LAST", "SEEN"]
    laptop_line = next(line for line in lines if book.laptop in line)
    assert laptop_line.split() == ["laptop", book.laptop, "approved",
                                   "-".join(fingerprint_words(book.laptop_key)), "never"]
    as_json = book.cli("--json")
    assert as_json.returncode == 0 and [d["id"] for d in json.loads(as_json.stdout)] == [book.laptop, book.phone]

    renamed = book.cli("rename", book.laptop, "my laptop")
    assert renamed.returncode == 0 and f'renamed {book.laptop} to "my laptop"' in renamed.stdout, renamed.stderr
    approved = book.cli("approve", book.phone)
    assert approved.returncode == 0 and f"phone ({book.phone}) is now approved" in approved.stdout, approved.stderr
    revoked = book.cli("revoke", book.laptop, "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["status"] == "revoked", revoked.stderr
    shown = book.cli("show", book.laptop)
    assert shown.returncode == 0 and "revoked" in shown.stdout and " ".join(fingerprint_words(book.laptop_key)) \
        in shown.stdout
    forgot = book.cli("forget", book.laptop)
    assert forgot.returncode == 0 and book.laptop in forgot.stdout, forgot.stderr
    assert [d["id"] for d in json.loads(book.cli("list", "--json").stdout)] == [book.phone]


def test_peers_cli_errors_are_clear_and_exit_1(book: Book) -> None:
    unknown = book.cli("approve", "nosuchdevice")
    assert unknown.returncode == 1 and "no paired device 'nosuchdevice'" in unknown.stderr and "404" in unknown.stderr
    too_long = book.cli("rename", book.phone, "x" * 65)
    assert too_long.returncode == 1 and "at most 64 characters" in too_long.stderr and "400" in too_long.stderr
    assert "Traceback" not in unknown.stderr + too_long.stderr
    denied = book.cli("list", DOORSTEP_TOKEN="wrong")
    assert denied.returncode == 1 and "401" in denied.stderr


def test_device_book_survives_a_restart(book: Book) -> None:
    book.daemon.api("PATCH", f"/api/v1/devices/{book.laptop}", json={"status": "revoked"}).raise_for_status()
    assert book.daemon.stop() == 0
    book.daemon.start()
    assert book.daemon.api("GET", f"/api/v1/devices/{book.laptop}").json()["status"] == "revoked"


def test_the_openapi_schema_still_renders(book: Book) -> None:
    schema = book.daemon.api("GET", "/api/v1/schema/openapi.json")
    assert schema.status_code == 200 and "/api/v1/devices/{device_id}" in schema.json()["paths"]


def test_empty_book(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.api("GET", "/api/v1/devices").json() == []
    listing = run_cli("peers", DOORSTEP_STATE_DIR=str(daemon.state_dir),
                      DOORSTEP_HTTP_LISTEN=f"127.0.0.1:{daemon.runtime['http_port']}")
    assert listing.returncode == 0 and "no paired devices" in listing.stdout
