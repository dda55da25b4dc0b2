# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""app_processes and app_timers on pyfleet-default and trixie-app: the example's worker (2 instances) and a
job every 5 s. uvicorn-app sets neither and runs neither.

How they follow a rollout, and stay out of a failed one, is in test_playbooks.py.
"""

from __future__ import annotations

import json
import re
import time

import pytest

HOSTS = ["pyfleet-default", "trixie-app"]
DATA = "/srv/demo/shared/data"


def _current(host):
    return host.check_output("readlink -f /srv/demo/current")


@pytest.mark.parametrize("name", HOSTS)
def test_each_worker_instance_is_enabled_and_runs_the_live_release_as_the_app_user(hosts, name):
    host = hosts(name)
    for instance in ("1", "2"):
        unit = host.service("demo-worker@%s" % instance)
        assert unit.is_running and unit.is_enabled
        pid = host.check_output("systemctl show -P MainPID demo-worker@%s" % instance)
        assert host.check_output("readlink -f /proc/%s/cwd" % pid) == _current(host)
        assert host.check_output("ps -o user= -p %s" % pid) == "demo"
        beat = json.loads(host.file("%s/worker-%s.json" % (DATA, instance)).content_string)
        assert (beat["release"], beat["pid"], beat["user"]) == (_current(host).rsplit("/", 1)[1], int(pid), "demo")
    assert not host.service("demo-worker@3").is_running


@pytest.mark.parametrize("name", HOSTS)
def test_the_timer_is_active_persistent_and_its_job_runs_the_live_release(hosts, name):
    host = hosts(name)
    timer = host.service("demo-tick.timer")
    assert timer.is_running and timer.is_enabled
    assert host.check_output("systemctl show -P Persistent demo-tick.timer") == "yes"
    release = _current(host).rsplit("/", 1)[1]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log = host.file(DATA + "/tick.log")
        if log.exists and "%s demo" % release in log.content_string.splitlines():
            break
        time.sleep(1)
    assert "%s demo" % release in host.file(DATA + "/tick.log").content_string.splitlines()
    # Its output goes to the journal.
    assert "tick %s" % release in host.check_output("journalctl -u demo-tick.service --no-pager -o cat").splitlines()


@pytest.mark.parametrize("name", HOSTS)
@pytest.mark.parametrize("unit", ["demo-worker@1.service", "demo-tick.service"])
def test_processes_and_jobs_run_in_the_services_sandbox(hosts, name, unit):
    out = hosts(name).check_output("systemd-analyze security --no-pager %s" % unit)
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 2.0, [line for line in out.splitlines() if line.startswith("✗")]


def test_a_host_without_processes_or_timers_runs_none(hosts):
    host = hosts("uvicorn-app")
    assert host.check_output("systemctl list-units --all --plain --no-legend 'demo-*'") == ""
    assert json.loads(host.file("/srv/demo/current/.pyfleet/processes.json").content_string) == {
        "processes": [], "timers": []}
