"""The transfers API on real daemons: filters, errors, cancel and retry (a cancelled fetch resumes
from its durable offsets)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.harness import SLOW_PATH, Daemon, api_error, random_file, sha256_of

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
TRANSFER_KEYS = {"id", "direction", "state", "share_id", "device", "bytes_done", "bytes_total", "bytes_moved", "speed",
                 "eta", "error", "created_at", "updated_at", "files", "route"}


def test_list_filters_get_and_errors(daemon: Daemon) -> None:
    api = daemon.api
    first = api("POST", "/api/v1/shares/text", json={"text": "one"}).json()
    second = api("POST", "/api/v1/shares/text", json={"text": "two"}).json()
    api_error(api("POST", "/api/v1/receive", json={"code": "000000"}), 404, "join_failed")  # a failed receive

    everything = api("GET", "/api/v1/transfers").json()
    assert [(t["direction"], t["state"]) for t in everything] == [("send", "connecting"), ("send", "connecting"),
                                                                  ("receive", "failed")]
    assert all(set(t) == TRANSFER_KEYS for t in everything)
    assert [t["share_id"] for t in everything[:2]] == [first["share_id"], second["share_id"]]
    assert everything[0]["speed"] == 0 and everything[0]["eta"] is None and everything[0]["device"] is None

    def ids(query: str) -> list[str]:
        response = api("GET", "/api/v1/transfers" + query)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()]

    assert ids("?state=connecting") == [t["id"] for t in everything[:2]]
    assert ids("?state=failed,connecting&direction=receive") == [everything[2]["id"]]
    assert ids("?direction=send&limit=1") == [everything[1]["id"]]
    assert ids("?limit=2") == [t["id"] for t in everything[1:]]
    assert ids("?state=done") == []
    for query in ("?state=bogus", "?state=active,", "?state=ACTIVE", "?direction=sideways", "?limit=0",
                  "?limit=lots", "?limit=100001"):
        api_error(api("GET", "/api/v1/transfers" + query), 400, "bad_request")

    one = api("GET", f"/api/v1/transfers/{everything[0]['id']}")
    assert one.status_code == 200 and one.json()["id"] == everything[0]["id"]
    assert "nope" in api_error(api("GET", "/api/v1/transfers/nope"), 404, "unknown_transfer")
    api_error(api("POST", "/api/v1/transfers/nope/cancel"), 404, "unknown_transfer")
    api_error(api("POST", "/api/v1/transfers/nope/retry"), 404, "unknown_transfer")

    # Cancelling a share's send: it is no longer hosted, its code is dead; a second cancel is 409.
    cancelled = api("POST", f"/api/v1/transfers/{everything[0]['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["error"] == "cancelled by the owner"
    assert [s["share_id"] for s in api("GET", "/api/v1/shares").json()] == [second["share_id"]]
    assert "already cancelled" in api_error(api("POST", f"/api/v1/transfers/{everything[0]['id']}/cancel"), 409,
                                         "finished")
    # Neither a code share's send nor a receive that never reached its share can be retried.
    api_error(api("POST", f"/api/v1/transfers/{everything[0]['id']}/retry"), 409, "not_retryable")
    api_error(api("POST", f"/api/v1/transfers/{everything[2]['id']}/retry"), 409, "not_retryable")
    api_error(api("POST", f"/api/v1/transfers/{everything[1]['id']}/retry"), 409, "not_retryable")  # not failed


def test_a_cancelled_fetch_stops_and_a_retry_resumes_it(start_daemon, tmp_path: Path) -> None:
    a, b = start_daemon("a", **SLOW_PATH), start_daemon("b", **SLOW_PATH)
    size = 48 * MiB
    source = tmp_path / "big.bin"
    digest = random_file(source, size)
    with source.open("rb") as body:
        share = a.api("PUT", "/api/v1/shares/big.bin", content=body).json()
    started = b.api("POST", "/api/v1/receive", json={"code": share["code"], "signal": a.signal_url})
    assert started.status_code == 202, started.text
    transfer_id = started.json()["id"]
    moving = b.wait_transfer(transfer_id, lambda t: t["bytes_done"] >= size // 4, timeout=120)
    assert moving["state"] == "active" and moving["speed"] > 0 and moving["eta"] is not None

    cancelled = b.api("POST", f"/api/v1/transfers/{transfer_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled", cancelled.text
    time.sleep(1.5)
    stopped = b.api("GET", f"/api/v1/transfers/{transfer_id}").json()
    assert stopped["state"] == "cancelled" and stopped["speed"] == 0 and stopped["eta"] is None
    time.sleep(1.0)
    assert b.api("GET", f"/api/v1/transfers/{transfer_id}").json()["bytes_done"] == stopped["bytes_done"]
    assert stopped["bytes_done"] < size and not (b.inbox / "big.bin").exists()

    retried = b.api("POST", f"/api/v1/transfers/{transfer_id}/retry")
    assert retried.status_code == 202 and retried.json()["state"] in ("connecting", "active"), retried.text
    done = b.wait_transfer(transfer_id, lambda t: t["state"] == "done", timeout=180)
    assert sha256_of(b.inbox / "big.bin") == digest
    assert done["files"][0]["final_path"] == "big.bin"
    assert done["bytes_moved"] < 1.6 * size, f"resumed, not restarted: {done['bytes_moved']} bytes moved"
    assert [t["state"] for t in b.api("GET", "/api/v1/transfers").json()] == ["done"], "one record, resumed"
    api_error(b.api("POST", f"/api/v1/transfers/{transfer_id}/cancel"), 409, "finished")
