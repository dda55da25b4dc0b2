# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""WebSockets and server-sent events through an app server's nginx, to Gunicorn's Uvicorn worker
(trixie-app) and to standalone Uvicorn (uvicorn-app), with no nginx_stream_locations: "/" passes
the upgrade, and nginx honours the app's X-Accel-Buffering: no."""

from __future__ import annotations

import json

import pytest

SITES = {"trixie-app": (9446, "trixie.test"), "uvicorn-app": (9447, "uvicorn.test")}


@pytest.mark.parametrize("name", list(SITES))
def test_a_websocket_echoes_through_nginx_from_the_live_release(streams, hosts, https, name):
    port, site = SITES[name]
    live = json.loads(https(hosts(name), "/health", site).body)["release"]
    answer = streams.websocket(port, site, "/ws", ["ping", "pong"])
    assert answer["hello"]["release"] == live
    assert (answer["echoes"], answer["close_code"]) == (["ping", "pong"], 1000)


@pytest.mark.parametrize("name", list(SITES))
def test_an_event_stream_is_passed_on_event_by_event(streams, name):
    port, site = SITES[name]
    answer = streams.events(port, site, "/events?count=3&every=1")
    assert answer["status"] == 200 and answer["headers"]["Cache-Control"] == "no-cache"
    assert [event["n"] for _at, event in answer["events"]] == [0, 1, 2]
    # Sent a second apart (2 s from the first to the last): streamed, they arrive so; buffered, together.
    span, shortest_gap = streams.spread(answer)
    assert span >= 1.5 and shortest_gap >= 0.3, answer["events"]
