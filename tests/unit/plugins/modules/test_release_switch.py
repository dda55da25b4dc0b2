# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import os
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyfleet.deploy.plugins.modules import release_switch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402


def run(capsys, **args):
    return run_main(release_switch.main, capsys, args)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "releases").mkdir()
    (tmp_path / "venvs").mkdir()
    return tmp_path


def stage(root, release, venv, age):
    """A complete release linked to venvs/<venv>, with an mtime `age` seconds in the past."""
    venv_dir = root / "venvs" / venv
    (venv_dir / "bin").mkdir(parents=True, exist_ok=True)
    release_dir = root / "releases" / release
    release_dir.mkdir()
    (release_dir / ".venv").symlink_to(venv_dir)
    stamp = 1_800_000_000 - age
    os.utime(release_dir, (stamp, stamp))
    return release_dir


def link(root, name):
    return os.readlink(root / name)


def test_a_first_deploy_points_current_at_the_release_and_needs_a_new_venv(root, capsys):
    stage(root, "r1", "lockA", 10)
    rc, out = run(capsys, root=str(root), release="r1")
    assert rc == 0, out
    assert link(root, "current") == "releases/r1"
    assert not os.path.lexists(root / "previous")
    assert (out["changed"], out["switched"], out["previous"], out["venv_changed"]) == (True, True, "", True)
    assert out["active_venv"] == str(root / "venvs" / "lockA")


def test_a_code_only_release_keeps_the_venv_and_moves_previous(root, capsys):
    stage(root, "r1", "lockA", 20)
    stage(root, "r2", "lockA", 10)
    run(capsys, root=str(root), release="r1")
    rc, out = run(capsys, root=str(root), release="r2")
    assert rc == 0, out
    assert (link(root, "current"), link(root, "previous")) == ("releases/r2", "releases/r1")
    assert (out["previous"], out["switched"], out["venv_changed"]) == ("r1", True, False)
    assert not os.path.lexists(root / ".current.tmp") and not os.path.lexists(root / ".previous.tmp")


def test_a_new_lockfile_is_reported_as_a_venv_change(root, capsys):
    stage(root, "r1", "lockA", 20)
    stage(root, "r2", "lockB", 10)
    run(capsys, root=str(root), release="r1")
    rc, out = run(capsys, root=str(root), release="r2")
    assert out["venv_changed"] is True and out["active_venv"] == str(root / "venvs" / "lockB")


def test_switching_to_the_current_release_changes_nothing(root, capsys):
    stage(root, "r1", "lockA", 10)
    run(capsys, root=str(root), release="r1")
    rc, out = run(capsys, root=str(root), release="r1")
    assert rc == 0 and out["changed"] is False and out["switched"] is False and out["previous"] == "r1"


def test_a_release_without_its_venv_link_is_refused_and_current_stays(root, capsys):
    stage(root, "r1", "lockA", 20)
    run(capsys, root=str(root), release="r1")
    (root / "releases" / "broken").mkdir()
    rc, out = run(capsys, root=str(root), release="broken")
    assert rc == 1 and "Release broken is not staged" in out["msg"] and "current was not moved" in out["msg"]
    assert link(root, "current") == "releases/r1"


def test_prune_keeps_the_newest_and_never_current_or_previous_and_drops_unused_venvs(root, capsys):
    stage(root, "old", "lockOld", 50)  # oldest, but it will be previous
    for age, name in ((40, "a"), (30, "b"), (20, "c")):
        stage(root, name, "lockX", age)
    stage(root, "dead", "lockDead", 45)
    run(capsys, root=str(root), release="old")
    (root / "venvs" / "orphan").mkdir()
    stage(root, "new", "lockNew", 5)
    rc, out = run(capsys, root=str(root), release="new", keep=2)
    assert rc == 0, out
    assert sorted(os.listdir(root / "releases")) == ["c", "new", "old"]
    assert sorted(out["pruned_releases"]) == ["a", "b", "dead"]
    assert sorted(os.listdir(root / "venvs")) == ["lockNew", "lockOld", "lockX"]
    assert sorted(os.path.basename(p) for p in out["pruned_venvs"]) == ["lockDead", "orphan"]


def test_a_partial_release_left_by_a_failed_staging_is_removed_and_counts_as_no_release(root, capsys):
    stage(root, "r1", "lockA", 30)
    stage(root, "r2", "lockA", 20)
    run(capsys, root=str(root), release="r1")
    (root / "releases" / "r3.partial" / ".pyfleet").mkdir(parents=True)
    rc, out = run(capsys, root=str(root), release="r2", keep=2)
    assert rc == 0, out
    assert sorted(os.listdir(root / "releases")) == ["r1", "r2"]
    assert out["pruned_releases"] == ["r3.partial"]


def test_check_mode_reports_the_switch_and_the_prune_but_changes_nothing(root, capsys):
    stage(root, "r1", "lockA", 20)
    run(capsys, root=str(root), release="r1")
    stage(root, "r2", "lockB", 10)
    rc, out = run(capsys, root=str(root), release="r2", keep=1, _ansible_check_mode=True)
    assert rc == 0 and out["changed"] and out["switched"]
    assert link(root, "current") == "releases/r1"
    assert sorted(os.listdir(root / "releases")) == ["r1", "r2"]


@pytest.mark.parametrize("args, message", [
    ({"release": "r1", "keep": 0}, "keep must be at least 1 (got 0)"),
    ({"release": "../etc"}, "release must be a directory name"),
])
def test_bad_arguments_are_refused_by_name(root, capsys, args, message):
    stage(root, "r1", "lockA", 10)
    rc, out = run(capsys, root=str(root), **args)
    assert rc == 1 and message in out["msg"]
    assert not os.path.lexists(root / "current")


def _units(release_dir, **units):
    (release_dir / ".pyfleet" / "systemd").mkdir(parents=True)
    for name, content in units.items():
        (release_dir / ".pyfleet" / "systemd" / name.replace("_", ".")).write_text(content)


def test_the_units_of_the_release_are_installed_and_restored_on_a_switch_back(root, tmp_path, capsys):
    units_dir = tmp_path / "systemd"
    units_dir.mkdir()
    _units(stage(root, "r1", "lockA", 20), demo_service="[Service]\nTimeoutStopSec=40\n", demo_socket="[Socket]\n")
    _units(stage(root, "r2", "lockA", 10), demo_service="[Service]\nTimeoutStopSec=70\n", demo_socket="[Socket]\n")
    args = dict(root=str(root), units=["demo.service", "demo.socket"], units_dir=str(units_dir))
    rc, out = run(capsys, release="r1", **args)
    assert (rc, out["units_changed"]) == (0, ["demo.service", "demo.socket"]), out
    rc, out = run(capsys, release="r2", **args)
    assert out["units_changed"] == ["demo.service"]
    assert (units_dir / "demo.service").read_text() == "[Service]\nTimeoutStopSec=70\n"
    assert oct((units_dir / "demo.service").stat().st_mode & 0o777) == "0o644"
    rc, out = run(capsys, release="r1", **args)
    assert out["units_changed"] == ["demo.service"]
    assert (units_dir / "demo.service").read_text() == "[Service]\nTimeoutStopSec=40\n"
    rc, out = run(capsys, release="r1", **args)
    assert (out["changed"], out["units_changed"]) == (False, [])
    assert sorted(os.listdir(units_dir)) == ["demo.service", "demo.socket"]


def test_a_release_without_its_units_is_refused_and_nothing_moves(root, tmp_path, capsys):
    units_dir = tmp_path / "systemd"
    units_dir.mkdir()
    _units(stage(root, "r1", "lockA", 20), demo_service="[Service]\n")
    stage(root, "r0", "lockA", 30)
    run(capsys, release="r1", root=str(root), units=["demo.service"], units_dir=str(units_dir))
    rc, out = run(capsys, release="r0", root=str(root), units=["demo.service"], units_dir=str(units_dir))
    assert rc == 1 and "Release r0 does not carry its units (demo.service missing" in out["msg"]
    assert link(root, "current") == "releases/r1"
    assert (units_dir / "demo.service").read_text() == "[Service]\n"


def test_with_a_manifest_every_carried_unit_is_installed_and_dropped_ones_go_with_their_wants_links(root, tmp_path, capsys):
    units_dir = tmp_path / "systemd"
    (units_dir / "multi-user.target.wants").mkdir(parents=True)
    (units_dir / "timers.target.wants").mkdir()
    manifest = root / ".pyfleet-units.json"
    r1 = stage(root, "r1", "lockA", 20)
    _units(r1, demo_service="[Service]\n")
    for name, text in (("demo-worker@.service", "[Service]\nExecStart=/bin/worker\n"), ("demo-beat@.service", "[Service]\n"),
                       ("demo-nightly.service", "[Service]\n"), ("demo-nightly.timer", "[Timer]\n")):
        (r1 / ".pyfleet" / "systemd" / name).write_text(text)
    r2 = stage(root, "r2", "lockA", 10)
    _units(r2, demo_service="[Service]\n")
    (r2 / ".pyfleet" / "systemd" / "demo-worker@.service").write_text("[Service]\nExecStart=/bin/worker2\n")
    args = dict(root=str(root), units=["demo.service"], units_dir=str(units_dir), unit_manifest=str(manifest))

    rc, out = run(capsys, release="r1", **args)
    assert rc == 0 and out["units_changed"] == ["demo.service", "demo-beat@.service", "demo-nightly.service",
                                                "demo-nightly.timer", "demo-worker@.service"]
    assert out["units_removed"] == []
    # systemctl enable's links, and one of another app that must stay.
    for wants, name in (("multi-user.target.wants", "demo-worker@1.service"), ("multi-user.target.wants", "demo-beat@1.service"),
                        ("multi-user.target.wants", "demo-beat@2.service"), ("timers.target.wants", "demo-nightly.timer"),
                        ("multi-user.target.wants", "demo-api.service")):
        (units_dir / wants / name).symlink_to(units_dir / name.split("@", maxsplit=1)[0])

    rc, out = run(capsys, release="r2", **args)
    assert out["units_changed"] == ["demo-worker@.service"]
    assert out["units_removed"] == ["demo-beat@.service", "demo-nightly.service", "demo-nightly.timer"]
    assert sorted(os.listdir(units_dir)) == ["demo-worker@.service", "demo.service", "multi-user.target.wants",
                                             "timers.target.wants"]
    assert sorted(os.listdir(units_dir / "multi-user.target.wants")) == ["demo-api.service", "demo-worker@1.service"]
    assert os.listdir(units_dir / "timers.target.wants") == []
    assert manifest.read_text() == '["demo-worker@.service", "demo.service"]\n'

    # Back to r1: its units come back; nothing else changes on a second run.
    rc, out = run(capsys, release="r1", **args)
    assert out["units_changed"] == ["demo-beat@.service", "demo-nightly.service", "demo-nightly.timer", "demo-worker@.service"]
    rc, out = run(capsys, release="r1", **args)
    assert (out["changed"], out["units_changed"], out["units_removed"]) == (False, [], [])


def _systemd(monkeypatch, tmp_path, need_reload=("no",)):
    """Fake systemctl (an idle service) and /proc; return the commands the module ran, in order."""
    ran = []
    answers = list(need_reload)

    def run_command(self, cmd, **kwargs):
        ran.append(" ".join(cmd[1:]))
        if "--property=UnitFileState" in cmd:
            return 0, "enabled\n", ""
        if cmd[1] == "show":
            return 0, "MainPID=0\nActiveState=inactive\nNeedDaemonReload=%s\n" % answers.pop(0), ""
        return 0, "", ""

    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/bin/systemctl")
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    (tmp_path / "proc").mkdir()
    monkeypatch.setattr(release_switch, "PROC_ROOT", str(tmp_path / "proc"))
    return ran


def test_with_the_service_systemd_reloads_after_new_units_and_the_service_is_read_after_the_switch(
        root, tmp_path, capsys, monkeypatch):
    units_dir = tmp_path / "systemd"
    units_dir.mkdir()
    _units(stage(root, "r1", "lockA", 20), demo_service="[Service]\n", demo_socket="[Socket]\n")
    ran = _systemd(monkeypatch, tmp_path, need_reload=("no", "no"))
    args = dict(root=str(root), units=["demo.service", "demo.socket"], units_dir=str(units_dir), service="demo.service")
    rc, out = run(capsys, release="r1", **args)
    assert rc == 0, out
    assert ran[0] == "daemon-reload" and ran[1].startswith("show --property=ActiveState")
    assert out["daemon_reloaded"] and out["service"]["active_state"] == "inactive" and out["service"]["serving"] == []
    del ran[:]
    rc, out = run(capsys, release="r1", **args)
    assert (out["changed"], out["daemon_reloaded"], "daemon-reload" in ran) == (False, False, False)


def test_a_unit_edited_on_disk_since_systemd_loaded_it_is_reloaded_even_when_the_units_are_unchanged(
        root, tmp_path, capsys, monkeypatch):
    stage(root, "r1", "lockA", 20)
    ran = _systemd(monkeypatch, tmp_path, need_reload=("yes",))
    rc, out = run(capsys, release="r1", root=str(root), service="demo.service")
    assert (rc, ran[-1], out["daemon_reloaded"], out["service"]["need_daemon_reload"]) == (0, "daemon-reload", True, False)


def test_without_the_service_nothing_is_read_and_systemd_is_not_reloaded(root, tmp_path, capsys, monkeypatch):
    units_dir = tmp_path / "systemd"
    units_dir.mkdir()
    _units(stage(root, "r1", "lockA", 20), demo_service="[Service]\n")
    ran = _systemd(monkeypatch, tmp_path)
    rc, out = run(capsys, release="r1", root=str(root), units=["demo.service"], units_dir=str(units_dir))
    assert (rc, ran, out["daemon_reloaded"], "service" in out) == (0, [], False, False)
