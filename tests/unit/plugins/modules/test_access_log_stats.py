# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""access_log_stats: the app's real requests of the last seconds, from nginx's JSON access log."""

from __future__ import annotations

import json
import os
import sys
import time

from ansible_collections.pyfleet.deploy.plugins.modules import access_log_stats

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402


def line(at, uri="/", status=200, upstream="unix:/run/shop/gunicorn.sock", upstream_time="0.004",
         content_type="application/json"):
    return json.dumps({"ts": "2026-12-04T00:00:00+00:00", "msec": "%.3f" % at, "uri": uri, "status": status,
                       "upstream": upstream, "upstream_time": upstream_time, "type": content_type})


def write(tmp_path, lines):
    log = tmp_path / "shop.access.log"
    log.write_text("\n".join(lines) + "\n")
    return str(log)


def test_counts_the_apps_requests_of_the_window_without_health_static_or_streams(tmp_path):
    now = time.time()
    log = write(tmp_path, [
        line(now - 100, status=500),                       # before the window
        line(now - 5, status=200, upstream_time="0.010"),
        line(now - 4, status=502, upstream_time="0.001, 0.002"),  # retried: the sum
        line(now - 3, uri="/health?probe=1"),              # the health path
        line(now - 3, uri="/static/app.css", upstream="", upstream_time="-"),  # served from disk
        line(now - 2, uri="/ws", status=101, upstream_time="30.0"),  # a WebSocket's life
        line(now - 2, uri="/events?topic=a", upstream_time="43.0",  # an event stream's life
             content_type="text/event-stream; charset=utf-8"),
        line(now - 1, status=503, upstream_time="0.1204"),
    ])
    figures = access_log_stats.read(log, 10, ["/health"], now=now)
    assert (figures["requests"], figures["errors"], figures["covered"]) == (3, 2, True)
    assert figures["statuses"] == {"200": 1, "502": 1, "503": 1}
    assert figures["latency_histogram"] == {"10.0": 1, "3.0": 1, "120.0": 1}
    assert (figures["p50_ms"], figures["p99_ms"]) == (10.0, 120.0)


def test_a_log_that_starts_inside_the_window_is_read_whole_and_says_so(tmp_path):
    now = time.time()
    figures = access_log_stats.read(write(tmp_path, [line(now - 1)]), 60, [], now=now)
    assert (figures["requests"], figures["covered"]) == (1, False)


def test_reads_backwards_across_chunks_and_skips_broken_lines(tmp_path, monkeypatch):
    now = time.time()
    monkeypatch.setattr(access_log_stats, "CHUNK", 64)
    lines = [line(now - 50 + index * 0.01) for index in range(300)]
    lines.insert(150, "{cut by a write")
    log = write(tmp_path, lines)
    with open(log, "rb") as handle:
        assert len(list(access_log_stats.lines_backwards(handle, 64))) == 301
    assert access_log_stats.read(log, 60, [], now=now)["requests"] == 300


def test_lines_without_msec_are_dated_by_ts(tmp_path):
    old = json.dumps({"ts": "2000-01-01T00:00:00+00:00", "uri": "/", "status": 200, "upstream": "u",
                      "upstream_time": "0.001"})
    figures = access_log_stats.read(write(tmp_path, [old]), 60, [])
    assert (figures["requests"], figures["covered"], figures["p99_ms"]) == (0, True, None)


def test_the_module_returns_the_figures_and_changes_nothing(tmp_path, capsys):
    log = write(tmp_path, [line(time.time() - 1, status=500)])
    rc, out = run_main(access_log_stats.main, capsys, {"path": log, "window": 30, "exclude_paths": ["/health"]})
    assert rc == 0 and not out["changed"]
    assert (out["requests"], out["errors"], out["statuses"]) == (1, 1, {"500": 1})


def test_a_missing_log_or_a_bad_window_fails_clearly(tmp_path, capsys):
    rc, out = run_main(access_log_stats.main, capsys, {"path": str(tmp_path / "none.log"), "window": 30})
    assert rc == 1 and "does not exist" in out["msg"]
    rc, out = run_main(access_log_stats.main, capsys, {"path": write(tmp_path, []), "window": 0})
    assert rc == 1 and out["msg"].startswith("window must be a positive number")
