# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""app_processes: what a release runs beside its web server, brought to it from what runs."""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import sys

import pytest

from ansible_collections.pyfleet.deploy.plugins.modules import app_processes

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402


class FakeSystemd:
    """The units systemctl would report, and where each main process runs."""

    def __init__(self, root):
        self.root = root
        self.units_state = {}
        self.cwd = {}
        self.calls = []
        self.pids = itertools.count(5000)
        self.crashing = set()

    def state(self, unit):
        return self.units_state.setdefault(unit, {"active": "inactive", "pid": 0, "restarts": 0, "enabled": ""})

    def systemctl(self, *args):
        self.calls.append(args)
        verb, names = args[0], [name for name in args[1:] if not name.startswith("--")]
        for unit in names:
            state = self.state(unit)
            if verb == "enable":
                state["enabled"] = "enabled"
            if verb in ("stop", "disable") and (verb == "stop" or "--now" in args):
                state.update(active="inactive", pid=0)
            if verb == "disable":
                state["enabled"] = "disabled"
            if verb == "restart":
                if unit in self.crashing:
                    state.update(active="activating", pid=0, restarts=state["restarts"] + 1)
                else:
                    state.update(active="active", pid=next(self.pids))
                    self.cwd[state["pid"]] = os.path.realpath(os.path.join(self.root, "current"))
        return 0, "", ""

    def units(self, pattern):
        return {unit for unit, state in self.units_state.items()
                if fnmatch.fnmatch(unit, pattern) and (state["active"] != "inactive" or state["enabled"] == "enabled")}

    def show(self, unit):
        return dict(self.state(unit))

    def runs_from(self, pid):
        return self.cwd.get(pid, "")

    def journal(self, unit):
        return "Traceback ... ImportError: no module named tasks"


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = tmp_path / "srv" / "shop"
    (root / "releases").mkdir(parents=True)
    fake = FakeSystemd(str(root))
    monkeypatch.setattr(app_processes, "Systemd", lambda module: fake)
    return root, fake


def stage(root, release, processes, timers=()):
    pyfleet = root / "releases" / release / ".pyfleet"
    pyfleet.mkdir(parents=True)
    (pyfleet / "processes.json").write_text(json.dumps({"processes": processes, "timers": list(timers)}))


def go_live(root, release):
    if os.path.lexists(root / "current"):
        os.unlink(root / "current")
    (root / "current").symlink_to(root / "releases" / release)


def run(capsys, root, release, **extra):
    return run_main(app_processes.main, capsys, dict(root=str(root), app="shop", release=release, settle=0, **extra))


def test_a_first_release_enables_and_starts_every_instance_and_timer(host, capsys):
    root, fake = host
    stage(root, "r1", [{"name": "worker", "count": 2, "stop_timeout": 30}], ["nightly"])
    go_live(root, "r1")
    rc, out = run(capsys, root, "r1")
    assert rc == 0 and out["changed"], out
    assert out["restarted"] == ["shop-worker@1.service", "shop-worker@2.service"]
    assert isinstance(out["restart_seconds"], float) and out["restart_seconds"] >= 0
    assert [unit["release"] for unit in out["instances"]] == ["r1", "r1"]
    assert out["timers"] == ["shop-nightly.timer"] and out["stopped"] == []
    assert ("enable", "shop-worker@1.service", "shop-worker@2.service", "shop-nightly.timer") in fake.calls
    assert ("restart", "shop-nightly.timer") in fake.calls
    assert json.loads((root / ".pyfleet-processes.json").read_text()) == {
        "release": "r1", "processes": ["worker"], "timers": ["nightly"]}


def test_nothing_restarts_when_every_instance_already_runs_the_release(host, capsys):
    root, fake = host
    stage(root, "r1", [{"name": "worker", "count": 2}], ["nightly"])
    go_live(root, "r1")
    run(capsys, root, "r1")
    fake.calls.clear()
    rc, out = run(capsys, root, "r1")
    assert (rc, out["changed"], out["restarted"], out["stopped"]) == (0, False, [], [])
    assert "restart_seconds" not in out
    assert not [call for call in fake.calls if call[0] in ("restart", "stop", "enable", "disable")]


def test_a_new_release_restarts_what_it_keeps_and_stops_what_it_dropped(host, capsys):
    root, fake = host
    stage(root, "r1", [{"name": "worker", "count": 2}, {"name": "beat"}], ["nightly"])
    go_live(root, "r1")
    run(capsys, root, "r1")
    before = fake.state("shop-worker@1.service")["pid"]
    fake.state("shop-other.service").update(active="active", pid=99)  # not one of the app's processes
    stage(root, "r2", [{"name": "worker", "count": 1}])
    go_live(root, "r2")
    rc, out = run(capsys, root, "r2")
    assert rc == 0, out
    assert out["restarted"] == ["shop-worker@1.service"]
    assert out["stopped"] == ["shop-beat@1.service", "shop-nightly.timer", "shop-worker@2.service"]
    assert fake.state("shop-worker@1.service")["pid"] != before
    assert out["instances"] == [{"unit": "shop-worker@1.service", "pid": fake.state("shop-worker@1.service")["pid"],
                                 "release": "r2"}]
    assert fake.state("shop-other.service")["active"] == "active"
    assert fake.state("shop-worker@2.service")["active"] == "inactive"


def test_an_instance_that_does_not_come_up_fails_naming_it_with_its_journal(host, capsys):
    root, fake = host
    stage(root, "r1", [{"name": "worker", "count": 2}])
    go_live(root, "r1")
    fake.crashing.add("shop-worker@2.service")
    rc, out = run(capsys, root, "r1", timeout=0)
    assert rc == 1
    assert out["msg"].startswith("1 of 2 process instance(s) do not run release r1 after 0s: "
                                 "shop-worker@2.service is activating, runs no release; journal: Traceback")
    assert not (root / ".pyfleet-processes.json").exists()


def test_check_mode_reports_the_plan_and_changes_nothing(host, capsys):
    root, fake = host
    stage(root, "r1", [{"name": "worker", "count": 1}])
    go_live(root, "r1")
    rc, out = run(capsys, root, "r1", _ansible_check_mode=True)
    assert (rc, out["changed"], out["restarted"]) == (0, True, ["shop-worker@1.service"])
    assert not [call for call in fake.calls if call[0] != "show"]
    assert not (root / ".pyfleet-processes.json").exists()


def test_a_release_missing_from_the_host_is_refused(host, capsys):
    root, _fake = host
    rc, out = run(capsys, root, "nope")
    assert rc == 1 and "Release nope is not on this host" in out["msg"]
