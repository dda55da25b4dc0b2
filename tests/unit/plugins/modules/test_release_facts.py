# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import grp
import json
import os
import pwd
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyfleet.deploy.plugins.module_utils import service_state
from ansible_collections.pyfleet.deploy.plugins.modules import release_facts

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402
from procfs import stat_line  # noqa: E402

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(capsys, **args):
    return run_main(release_facts.main, capsys, args)


@pytest.fixture
def root(tmp_path):
    app = tmp_path / "srv"
    (app / "releases").mkdir(parents=True)
    (app / "venvs").mkdir()
    return app


def test_a_new_host_has_nothing_staged_and_names_each_missing_directory(root, capsys):
    rc, out = run(capsys, root=str(root), release="r1", venv=str(root / "venvs" / "h1"),
                  layout=[{"path": str(root / "shared")}])
    assert rc == 0 and out["changed"] is False
    assert (out["current"], out["release_staged"], out["release_venv"]) == ("", False, None)
    assert (out["venv_complete"], out["venv_sbom"]) == (False, False)
    assert out["layout_problems"] == ["%s is missing" % (root / "shared")]


def test_a_staged_release_its_complete_venv_and_current_are_read(root, capsys):
    venv = root / "venvs" / "h1"
    venv.mkdir()
    (venv / ".pyfleet-complete").write_text("h1\n")
    release = root / "releases" / "r1"
    release.mkdir()
    (release / ".venv").symlink_to(venv)
    (release / ".release.json").write_text("{}\n")
    (root / "current").symlink_to("releases/r1")
    rc, out = run(capsys, root=str(root), release="r1", venv=str(venv))
    assert (out["current"], out["release_staged"], out["release_venv"]) == ("r1", True, str(venv))
    assert (out["venv_complete"], out["venv_sbom"]) == (True, False)


def test_a_release_without_its_metadata_is_not_staged(root, capsys):
    (root / "releases" / "r1").mkdir()
    rc, out = run(capsys, root=str(root), release="r1")
    assert out["release_staged"] is False


def test_the_layout_is_compared_by_owner_group_and_mode(root, capsys):
    good, bad = root / "good", root / "bad"
    good.mkdir()
    bad.mkdir()
    os.chmod(good, 0o750)
    os.chmod(bad, 0o777)
    entry = {"owner": ME, "group": MY_GROUP, "mode": "0750"}
    rc, out = run(capsys, root=str(root), layout=[dict(entry, path=str(good)), dict(entry, path=str(bad))])
    assert out["layout_problems"] == ["%s is %s:%s 0777, not %s:%s 0750" % (bad, ME, MY_GROUP, ME, MY_GROUP)]


def test_a_missing_user_or_group_is_a_layout_problem(root, capsys):
    rc, out = run(capsys, root=str(root), user="pyfleet-nobody-here", group=MY_GROUP)
    assert out["layout_problems"] == ["the user pyfleet-nobody-here does not exist"]


def test_the_interpreter_version_and_its_venv_support_are_read(root, capsys):
    rc, out = run(capsys, root=str(root), python=sys.executable)
    assert out["python_version"] == "%d.%d.%d" % sys.version_info[:3]
    assert out["python_venv"] is True


def test_an_interpreter_that_cannot_run_is_named(root, capsys):
    rc, out = run(capsys, root=str(root), python=str(root / "no-python"))
    assert rc == 1 and str(root / "no-python") in out["msg"]


def test_the_service_reports_the_releases_its_workers_serve(root, tmp_path, capsys, monkeypatch):
    proc = tmp_path / "proc"
    release = root / "releases" / "r1"
    release.mkdir()
    (root / "venvs" / "lockA").mkdir()
    (release / ".venv").symlink_to(root / "venvs" / "lockA")
    processes = {100: (1, "/"), 101: (100, str(release)), 102: (100, str(release)), 103: (100, "/tmp")}
    for pid, (ppid, cwd) in processes.items():
        piddir = proc / str(pid)
        piddir.mkdir(parents=True)
        (piddir / "stat").write_text(stat_line(pid, "gunicorn", "S", ppid, 1000 + pid))
        (piddir / "cmdline").write_bytes(b"gunicorn\0")
        (piddir / "cwd").symlink_to(cwd)
    (proc / "100" / "exe").symlink_to(sys.executable)
    monkeypatch.setattr(release_facts, "PROC_ROOT", str(proc))
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/bin/systemctl")
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, cmd, **kwargs: (
        (0, "enabled\n", "") if "--property=UnitFileState" in cmd else (0, "MainPID=100\nActiveState=active\n", "")))
    rc, out = run(capsys, root=str(root), service="demo.service")
    assert rc == 0, out
    assert out["service"] == {"active_state": "active", "main_pid": 100,
                              "exe": os.path.realpath(sys.executable), "serving": ["r1"],
                              "venvs": [str(root / "venvs" / "lockA")], "enabled": True,
                              "need_daemon_reload": False, "differs": []}


def test_a_stopped_service_serves_nothing(root, capsys, monkeypatch):
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/bin/systemctl")
    asked = []

    def run_command(self, cmd, **kwargs):
        asked.append(cmd[-1])
        return (0, "disabled\n", "") if "--property=UnitFileState" in cmd else (0, "MainPID=0\nActiveState=inactive\n", "")

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    rc, out = run(capsys, root=str(root), service="demo.service")
    assert out["service"] == {"active_state": "inactive", "main_pid": 0, "exe": "", "serving": [], "venvs": [],
                              "enabled": False, "need_daemon_reload": False, "differs": []}
    assert asked == ["demo.service", "demo.service", "demo.socket"]


def _pyfleet(release, files):
    for name, content in files.items():
        path = release / ".pyfleet" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_the_pyfleet_files_that_differ_from_the_serving_release_are_named(root):
    releases = root / "releases"
    _pyfleet(releases / "old", {"env": "A=1\n", "gunicorn.conf.py": "timeout = 30\n", "pyfleet_logging.py": "x\n",
                                "systemd/demo.service": "[Service]\n", "gone.py": ""})
    _pyfleet(releases / "new", {"env": "A=2\n", "gunicorn.conf.py": "timeout = 30\n", "pyfleet_logging.py": "x\n",
                                "systemd/demo.service": "[Service]\nX=1\n", "added.py": ""})
    (releases / "new" / ".pyfleet" / "__pycache__").mkdir()
    (releases / "new" / ".pyfleet" / "__pycache__" / "pyfleet_logging.cpython-311.pyc").write_bytes(b"\0")
    assert service_state.pyfleet_differences(str(releases), "new", ["old"]) == [
        "added.py", "env", "gone.py", "systemd/demo.service"]
    assert service_state.pyfleet_differences(str(releases), "new", ["new"]) == []


def test_a_release_from_before_pyfleet_files_differs_in_every_file(root):
    releases = root / "releases"
    (releases / "legacy").mkdir()
    _pyfleet(releases / "new", {"env": "", "systemd/demo.service": ""})
    assert service_state.pyfleet_differences(str(releases), "new", ["legacy"]) == ["env", "systemd/demo.service"]


def test_the_release_config_digest_is_read_from_its_metadata(root, capsys):
    release = root / "releases" / "r1-9c1f0a7e"
    release.mkdir()
    (release / ".release.json").write_text('{"id": "r1-9c1f0a7e", "config": "9c1f0a7e"}')
    rc, out = run(capsys, root=str(root), release="r1-9c1f0a7e")
    assert (rc, out["release_staged"], out["release_config"]) == (0, True, "9c1f0a7e")


def test_the_service_names_the_target_pyfleet_files_that_differ(root, tmp_path, capsys, monkeypatch):
    proc = tmp_path / "proc"
    releases = root / "releases"
    _pyfleet(releases / "r1", {"env": "A=1\n", "systemd/demo.service": "[Service]\n"})
    _pyfleet(releases / "r2", {"env": "A=2\n", "systemd/demo.service": "[Service]\n"})
    (root / "venvs" / "lockA").mkdir()
    for name in ("r1", "r2"):
        (releases / name / ".venv").symlink_to(root / "venvs" / "lockA")
    for pid, (ppid, cwd) in {100: (1, "/"), 101: (100, str(releases / "r1"))}.items():
        piddir = proc / str(pid)
        piddir.mkdir(parents=True)
        (piddir / "stat").write_text(stat_line(pid, "gunicorn", "S", ppid, 1000 + pid))
        (piddir / "cmdline").write_bytes(b"gunicorn\0")
        (piddir / "cwd").symlink_to(cwd)
    monkeypatch.setattr(release_facts, "PROC_ROOT", str(proc))
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: "/bin/systemctl")
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, cmd, **kwargs: (
        (0, "enabled\n", "") if "--property=UnitFileState" in cmd
        else (0, "MainPID=100\nActiveState=active\nNeedDaemonReload=yes\n", "")))
    rc, out = run(capsys, root=str(root), service="demo.service", release="r2")
    assert rc == 0, out
    assert (out["service"]["serving"], out["service"]["differs"], out["service"]["need_daemon_reload"]) == (
        ["r1"], ["env"], True)


def _release(releases, name, meta):
    (releases / name).mkdir()
    (releases / name / ".release.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))


def test_the_records_come_oldest_first_and_releases_without_one_are_left_out(tmp_path):
    _release(tmp_path, "new-1", {"id": "new-1", "migrations": {"at": 20, "applied": ["0001_a", "0002_b"]}})
    _release(tmp_path, "old-1", {"id": "old-1", "migrations": {"at": 10.5, "applied": ["0001_a"]}})
    _release(tmp_path, "none-1", {"id": "none-1"})
    _release(tmp_path, "broken-1", "{not json")
    (tmp_path / "new-1.partial").mkdir()
    assert release_facts.migration_records(str(tmp_path)) == [
        {"release": "old-1", "at": 10.5, "applied": ["0001_a"]},
        {"release": "new-1", "at": 20.0, "applied": ["0001_a", "0002_b"]},
    ]


def test_no_releases_directory_is_no_records(tmp_path):
    assert release_facts.migration_records(str(tmp_path / "missing")) == []
