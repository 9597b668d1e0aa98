"""``GET /api/v1/events`` on real daemons: live transfer progress and an arrival with the right
SHA-256, share and device events, replay after ``Last-Event-ID``, and a clean stop with listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import SLOW_PATH, Daemon, random_file
from tests.integration.sse_client import EventListener

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def test_progress_and_arrival_events_of_a_receive(start_daemon, tmp_path: Path) -> None:
    # The data channel: over the direct path 32 MiB arrive before two progress events can.
    a, b = start_daemon("a", **SLOW_PATH), start_daemon("b", **SLOW_PATH)
    size = 32 * MiB
    source = tmp_path / "video.bin"
    digest = random_file(source, size)
    with EventListener(b) as events:
        assert events.status == 200 and events.headers["content-type"].startswith("text/event-stream")
        with source.open("rb") as body:
            share = a.api("PUT", "/api/v1/shares/video.bin", content=body).json()
        transfer_id = b.api("POST", "/api/v1/receive", json={"code": share["code"], "signal": a.signal_url}).json()["id"]

        arrival = events.wait_for(lambda m: m.event == "arrival", timeout=120, what="arrival")
        assert arrival.data == {"transfer": transfer_id, "path": "video.bin", "size": size, "sha256": digest}
        done = events.wait_for(lambda m: m.event == "transfer" and m.data["state"] == "done", what="done")
        assert done.data["id"] == transfer_id and done.data["bytes_done"] == size
        assert done.data["files"][0]["final_path"] == "video.bin"

    ours = [m for m in events.events if m.event == "transfer" and m.data["id"] == transfer_id]
    states = [m.data["state"] for m in ours]
    assert states[0] == "connecting" and "active" in states and states[-1] == "done"
    progress = [m for m in ours if m.data["state"] == "active" and 0 < m.data["bytes_done"] < size]
    assert len(progress) >= 2, "progress while the bytes move"
    assert any(m.data["speed"] > 0 and m.data["eta"] is not None for m in progress)
    assert all(m.data["bytes_total"] == size for m in progress)
    span = progress[-1].received_at - progress[0].received_at
    assert len(progress) <= span / 0.5 + 3, f"{len(progress)} progress events in {span:.1f} s: not throttled"
    ids = [m.id for m in events.events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)

    # Reconnecting with Last-Event-ID replays what came after it (still in the ring buffer).
    with EventListener(b, last_event_id=arrival.id - 1) as replay:
        again = replay.wait_for(lambda m: True, timeout=10)
        assert (again.id, again.event, again.data) == (arrival.id, "arrival", arrival.data)


def test_share_and_device_events_and_a_stop_with_listeners(start_daemon) -> None:
    a, b = start_daemon("a"), start_daemon("b")
    with EventListener(a) as on_a, EventListener(b) as on_b:
        share = a.api("POST", "/api/v1/shares/text", json={"text": "hi"}).json()
        created = on_a.wait_for(lambda m: m.event == "share", what="share created")
        assert created.data["change"] == "created" and created.data["share_id"] == share["share_id"]
        assert created.data["code"] == share["code"]
        assert a.api("DELETE", f"/api/v1/shares/{share['share_id']}").status_code == 204
        retired = on_a.wait_for(lambda m: m.event == "share" and m.data["change"] == "retired", what="retired")
        assert retired.data["share_id"] == share["share_id"] and retired.data["code"] is None
        cancelled = on_a.wait_for(lambda m: m.event == "transfer" and m.data["state"] == "cancelled", what="cancel")
        assert cancelled.data["share_id"] == share["share_id"]

        offer = a.api("POST", "/api/v1/pair", json={}).json()
        paired = b.api("POST", "/api/v1/pair", json={"code": offer["code"], "signal": a.signal_url})
        assert paired.status_code == 200, paired.text
        device = on_b.wait_for(lambda m: m.event == "device", what="device on b")
        assert device.data["id"] == paired.json()["id"] and device.data["status"] == "approved"
        pinned = on_a.wait_for(lambda m: m.event == "device", what="device on a")  # a pinned b
        assert pinned.data["id"] == a.api("GET", "/api/v1/devices").json()[0]["id"] != offer["device_id"]
        b.api("PATCH", f"/api/v1/devices/{device.data['id']}", json={"status": "revoked"}).raise_for_status()
        revoked = on_b.wait_for(lambda m: m.event == "device" and m.data["status"] == "revoked", what="revoked")
        assert revoked.data["id"] == device.data["id"]
        assert b.api("DELETE", f"/api/v1/devices/{device.data['id']}").status_code == 204
        gone = on_b.wait_for(lambda m: m.event == "device" and m.data["status"] == "forgotten", what="forgotten")
        assert gone.data == {"id": device.data["id"], "status": "forgotten"}

        # SIGTERM with listeners connected: the daemons still stop within 5 s, exit 0.
        assert a.stop() == 0 and b.stop() == 0
        assert on_a.closed.wait(5) and on_b.closed.wait(5)


def test_the_event_stream_needs_the_token(daemon: Daemon) -> None:
    import httpx

    assert httpx.get(daemon.base + "/api/v1/events", timeout=10).status_code == 401
    bad = httpx.get(daemon.base + "/api/v1/events", headers={"Authorization": f"Bearer {daemon.token}",
                                                                "Last-Event-ID": "x"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
