# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""rollout_scorecard: releases per host, failures and rollbacks, and rollout seconds per period."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.history import rollout_scorecard


def report(rollout, finished, seconds, hosts, stopped=False, reason=""):
    return {"rollout": rollout, "finished": finished, "seconds": seconds, "release": hosts[0][2],
            "playbook": "rolling_reload", "stopped": stopped, "stop_reason": reason,
            "hosts": [{"host": name, "result": result, "to": to} for name, result, to in hosts]}


HISTORY = "\n".join(json.dumps(one) for one in [
    report("r1", "2026-11-29T10:00:00Z", 40.0, [("app1", "ok", "v1"), ("app2", "ok", "v1")]),
    report("r2", "2026-12-01T10:00:00Z", 50.0, [("app1", "rolled back", "v2"), ("app2", "not started", "v2")],
           stopped=True, reason="the soak after batch 1 (app1) failed"),
    report("r3", "2026-12-02T10:00:00Z", 30.0, [("app1", "ok", "v3"), ("app2", "ok", "v3")]),
    report("r4", "2026-12-02T11:00:00Z", 20.0, [("app1", "not started", "v4")], stopped=True, reason="migrate"),
]) + "\n"


def test_releases_per_host_over_time_and_the_failures():
    card = rollout_scorecard(HISTORY)
    assert [item["release"] for item in card["hosts"]["app1"]] == ["v1", "v3"]
    assert card["hosts"]["app2"][1] == {"release": "v3", "since": "2026-12-02T10:00:00Z", "playbook": "rolling_reload"}
    assert [(f["rollout"], f["outcome"]) for f in card["failures"]] == [("r2", "rolled back"), ("r4", "failed")]


def test_rollout_seconds_per_week_and_month():
    weeks = rollout_scorecard(HISTORY)["periods"]
    assert weeks == {"2026-W48": {"rollouts": 1, "failed": 0, "rolled_back": 0, "median_seconds": 40.0, "p90_seconds": 40.0},
                     "2026-W49": {"rollouts": 3, "failed": 1, "rolled_back": 1, "median_seconds": 30.0, "p90_seconds": 50.0}}
    months = rollout_scorecard(HISTORY, "month")
    assert sorted(months["periods"]) == ["2026-11", "2026-12"]
    assert months["lines"][-1] == "  2026-12: 3, 1, 1, 30.0, 50.0"


def test_a_broken_line_or_period_is_named():
    with pytest.raises(AnsibleFilterError, match="history line 2 is not JSON"):
        rollout_scorecard('{"finished": "2026-12-01T00:00:00Z"}\n{oops\n')
    with pytest.raises(AnsibleFilterError, match="period must be week or month"):
        rollout_scorecard(HISTORY, "day")
