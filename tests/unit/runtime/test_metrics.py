"""Prometheus exposition of nested statistics."""

from __future__ import annotations

from daemon.metrics import render_prometheus


def test_counters_gauges_and_labelled_series() -> None:
    text = render_prometheus({
        "signaling": {"connections": 3, "joins_failed_total": 7, "note": "skipped"},
        "transfers": {"count": {"state": {"done": 2, 'we"ird\n': 1}}, "bytes_moved_total": 10.5},
    })
    assert text == (
        "# TYPE doorstep_signaling_connections gauge\n"
        "doorstep_signaling_connections 3\n"
        "# TYPE doorstep_signaling_joins_failed_total counter\n"
        "doorstep_signaling_joins_failed_total 7\n"
        "# TYPE doorstep_transfers_count gauge\n"
        'doorstep_transfers_count{state="done"} 2\n'
        'doorstep_transfers_count{state="we\\"ird\\n"} 1\n'
        "# TYPE doorstep_transfers_bytes_moved_total counter\n"
        "doorstep_transfers_bytes_moved_total 10.5\n"
    )
