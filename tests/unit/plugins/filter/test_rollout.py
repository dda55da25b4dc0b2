# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout summary: results in inventory order and the printed table."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.rollout import (
    migrations_since,
    rollout_clock,
    rollout_outcome,
    rollout_results,
    rollout_table,
    rollout_warnings,
)

OK = {"host": "app1", "from": "aaa", "to": "bbb", "method": "hup", "why": "code or config only",
      "swap_seconds": 0.412, "draining": 212, "processes_seconds": 2.406, "socket_ms": 3.1, "nginx_ms": 4.25, "result": "ok", "reason": ""}
BACK = {"host": "app1", "from": "aaa", "to": "ccc", "method": "hup", "why": "code or config only",
        "swap_seconds": None, "socket_ms": None, "nginx_ms": None, "result": "rolled back",
        "reason": "Check health through the Gunicorn socket: status 503 not in [200]"}


def test_hosts_without_a_result_are_not_started_and_order_is_kept():
    hostvars = {"app1": {"rollout_result": OK}, "app2": {}, "app3": {"rollout_result": dict(OK, host="app3")}}
    results = rollout_results(["app3", "app1", "app2"], hostvars)
    assert [r["host"] for r in results] == ["app3", "app1", "app2"]
    assert [r["result"] for r in results] == ["ok", "ok", "not started"]


def test_a_host_missing_from_hostvars_is_not_started():
    assert rollout_results(["gone"], {})[0]["result"] == "not started"


def test_table_has_one_aligned_row_per_host_and_the_reasons():
    report = {"rollout": "r1", "release": "ccc", "stopped": True, "stop_reason": "app1: rolled back",
              "hosts": [BACK, {"host": "app2", "result": "not started"}]}
    lines = rollout_table(report).splitlines()
    assert lines[0] == "rollout r1  release ccc"
    header, rule, first, second = lines[1:5]
    assert header.split() == ["host", "release", "method", "swap", "s", "draining", "procs", "s", "socket", "ms",
                              "nginx", "ms", "result"]
    assert first.startswith("app1  ") and "aaa -> ccc" in first and first.endswith("rolled back")
    assert second.split()[:2] == ["app2", "-"] and second.endswith("not started")
    # Columns line up: every row starts its result column where the header does.
    assert first.index("rolled back") == header.index("result") == second.index("not started")
    assert lines[5] == "app1: Check health through the Gunicorn socket: status 503 not in [200]"
    assert lines[-1] == "stopped: app1: rolled back"


def test_numbers_are_rounded_for_reading():
    table = rollout_table({"rollout": "r", "release": "bbb", "hosts": [OK]})
    assert "0.41" in table and "4.25" in table and "3.10" in table and " 212 " in table and " 2.41 " in table


def test_a_report_without_hosts_is_rejected():
    with pytest.raises(AnsibleFilterError, match="hosts"):
        rollout_table({"rollout": "r"})


def test_the_release_phases_are_listed_with_their_host_result_and_error():
    report = {"rollout": "r", "release": "ccc", "stopped": True, "stop_reason": "app_migrate failed",
              "hosts": [{"host": "app1", "result": "not started"}],
              "phases": {"app_post": {"host": "app1", "result": "ok", "seconds": 1.234},
                         "app_migrate": {"host": "app1", "result": "failed", "seconds": 2.0,
                                         "error": "app_migrate[0] failed with exit 1"}}}
    lines = rollout_table(report).splitlines()
    assert lines[-3:] == ["app_migrate on app1: failed in 2.00 s: app_migrate[0] failed with exit 1",
                          "app_post on app1: ok in 1.23 s",
                          "stopped: app_migrate failed"]


RECORDS = [
    {"release": "aaa-1", "at": 10.0, "applied": ["0001_a"]},
    {"release": "bbb-1", "at": 20.0, "applied": ["0001_a"]},
    {"release": "ccc-1", "at": 30.0, "applied": ["0001_a", "0002_b"]},
    {"release": "ddd-1", "at": 40.0, "applied": ["0001_a", "0002_b", "0003_c"]},
]


def test_a_rollback_names_the_migrations_its_target_did_not_have_and_who_applied_them():
    warning = migrations_since(RECORDS, "aaa-1")
    assert warning.startswith("the database keeps 2 migrations that release aaa-1 did not have: 0002_b, 0003_c "
                              "(applied by ccc-1, ddd-1). rollback does not undo migrations: aaa-1 must run")


def test_no_warning_when_nothing_was_applied_since_or_the_target_is_the_newest():
    assert migrations_since(RECORDS[:2], "aaa-1") == ""
    assert migrations_since(RECORDS, "ddd-1") == ""
    assert migrations_since([], "aaa-1") == ""


def test_a_target_without_a_record_is_told_what_the_database_has():
    warning = migrations_since(RECORDS, "zzz-1")
    assert warning.startswith("release zzz-1 recorded no migrations; the database has what release ddd-1 recorded "
                              "after its app_migrate: 0001_a, 0002_b, 0003_c.")


def test_a_migration_that_a_rollback_did_not_undo_is_a_warning_once():
    hosts = [dict(OK, host="a", warning="w1"), dict(OK, host="b", warning="w1"),
             dict(OK, host="c", result="rolled back", warning="")]
    phases = {"app_migrate": {"host": "a", "release": "bbb-1", "result": "ok", "applied": ["0001_a", "0002_b"]}}
    assert rollout_warnings(hosts, phases) == [
        "w1", "app_migrate ran for release bbb-1 on a and stays applied (the database has 0001_a, 0002_b): "
              "rolling c back did not undo it, so the release before runs against it."]
    assert rollout_warnings(hosts[:2], phases) == ["w1"]
    assert rollout_warnings(hosts, {"app_migrate": dict(phases["app_migrate"], result="failed")}) == ["w1"]


def test_the_table_ends_with_the_warnings():
    table = rollout_table({"rollout": "r", "release": "bbb", "hosts": [OK], "warnings": ["keep calm"]})
    assert table.splitlines()[-1] == "warning: keep calm"


@pytest.mark.parametrize("results, stopped, outcome", [
    (["ok", "unchanged"], False, "ok"),
    (["rolled back", "not started"], True, "rolled back"),
    (["rolled back", "rollback failed"], True, "failed"),
    (["ok", "failed before the switch"], True, "failed"),
    ([], True, "failed"),
])
def test_rollout_outcome_names_a_host_left_broken_before_a_rollback(results, stopped, outcome):
    report = {"hosts": [{"host": "app%d" % number, "result": result} for number, result in enumerate(results)],
              "stopped": stopped}
    assert rollout_outcome(report) == outcome


def test_rollout_clock_reads_the_start_from_the_id_and_counts_the_seconds_since():
    now = datetime(2026, 12, 4, 7, 0, 30, 500000, tzinfo=timezone.utc)
    assert rollout_clock("20261204T065900Z-123456", now=now) == {"started": "2026-12-04T06:59:00Z", "seconds": 90.5}
    assert rollout_clock("", now=now) == rollout_clock(None) == {"started": None, "seconds": None}
