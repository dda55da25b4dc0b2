# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import os
import shutil
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyfleet.deploy.plugins.modules import gunicorn_reload

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from module_runner import run_main  # noqa: E402
from procfs import stat_line  # noqa: E402

MASTER = 4100
SYSTEMCTL = "/usr/bin/systemctl"


class Host:
    """A fake host: a /proc tree plus the systemd state that systemctl reports."""

    def __init__(self, tmp_path):
        base = tmp_path.resolve()
        self.proc = base / "proc"
        self.proc.mkdir()
        self.old = base / "srv" / "demo" / "releases" / "old111"
        self.new = base / "srv" / "demo" / "releases" / "new222"
        self.old.mkdir(parents=True)
        self.new.mkdir()
        self.current = base / "srv" / "demo" / "current"
        self.current.symlink_to(self.new)
        self.main_pid = 0
        self.active = "inactive"
        self.load = "loaded"
        self.calls = []
        self.on_action = {}  # verb -> callable
        self.fail_action = None  # (rc, stderr)
        self.on_sleep = []
        self.now = 500.0
        self.sleeps = []
        self._start = 70000

    def add(self, pid, ppid, cwd, comm="gunicorn: worker [demo]"):
        self._start += 10
        piddir = self.proc / str(pid)
        piddir.mkdir()
        (piddir / "stat").write_text(stat_line(pid, comm, "S", ppid, self._start))
        os.symlink(str(cwd), str(piddir / "cwd"))

    def remove(self, *pids):
        for pid in pids:
            shutil.rmtree(self.proc / str(pid))

    def start(self, master, workers, cwd):
        self.add(master, 1, cwd, comm="gunicorn: master [demo]")
        for pid in workers:
            self.add(pid, master, cwd)
        self.main_pid = master
        self.active = "active"

    # AnsibleModule.run_command replacement
    def run_command(self, module, args, **kwargs):
        assert isinstance(args, list) and args[0] == SYSTEMCTL
        self.calls.append(args[1:])
        if args[1] == "show":
            assert args[2] == "--property" and args[4] == "--value" and args[5] == "demo.service"
            value = {"MainPID": self.main_pid, "ActiveState": self.active, "LoadState": self.load}[args[3]]
            return 0, "%s\n" % value, ""
        if args[1] in ("reload", "restart"):
            assert args[2] == "demo.service"
            if self.fail_action:
                return self.fail_action[0], "", self.fail_action[1]
            if args[1] in self.on_action:
                self.on_action[args[1]]()
            return 0, "", ""
        raise AssertionError("unexpected command %r" % (args,))

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()

    def actions(self):
        return [call for call in self.calls if call[0] != "show"]


@pytest.fixture
def host(tmp_path, monkeypatch):
    fake = Host(tmp_path)
    monkeypatch.setattr(gunicorn_reload, "PROC_ROOT", str(fake.proc))
    monkeypatch.setattr(gunicorn_reload, "_clock", fake.clock)
    monkeypatch.setattr(gunicorn_reload, "_sleep", fake.sleep)

    def run_command(module, args, **kwargs):
        return fake.run_command(module, args, **kwargs)

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: SYSTEMCTL)
    return fake


def run(args, capsys):
    return run_main(gunicorn_reload.main, capsys, args)


def test_hup_waits_for_the_new_generation(host, capsys):
    host.start(MASTER, [4101, 4102, 4103], host.old)

    def hup():  # the master forks new workers from the new release at once
        for pid in (4201, 4202, 4203):
            host.add(pid, MASTER, host.new)

    host.on_action["reload"] = hup
    host.on_sleep = [
        lambda: host.remove(4101, 4102),  # the old ones drain ...
        lambda: host.remove(4103),  # ... and exit
    ]
    rc, out = run({"service": "demo", "workers": 3, "release_path": str(host.current),
                   "interval": 0.5}, capsys)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["method"] == "hup"
    assert out["master_pid_before"] == MASTER
    assert out["master_pid_after"] == MASTER
    assert out["old_workers"] == [4101, 4102, 4103]
    assert out["new_workers"] == [4201, 4202, 4203]
    assert out["release_path"] == str(host.new)
    assert out["seconds"] == 1.0
    assert host.sleeps == [0.5, 0.5]
    assert host.actions() == [["reload", "demo.service"]]


def test_check_mode_sends_no_signal(host, capsys):
    host.start(MASTER, [4101, 4102], host.old)
    rc, out = run({"service": "demo.service", "workers": 2, "release_path": str(host.current),
                   "_ansible_check_mode": True}, capsys)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["master_pid_before"] == MASTER
    assert out["old_workers"] == [4101, 4102]
    assert out["new_workers"] == []
    assert out["master_pid_after"] is None
    assert host.actions() == []
    assert host.sleeps == []


def test_check_mode_unit_not_installed_yet_only_warns(host, capsys, monkeypatch):
    # Record warnings at the source: how AnsibleModule reports them depends on
    # process-wide state that other tests' imports change.
    warned = []
    monkeypatch.setattr(AnsibleModule, "warn", lambda self, message: warned.append(message))
    host.load = "not-found"
    rc, out = run({"service": "demo", "workers": 2, "_ansible_check_mode": True}, capsys)
    assert rc == 0, out
    assert out["changed"] is True
    # ansible-core 2.19 returns structured warnings; older versions plain strings
    assert any("demo.service does not exist (yet)" in message for message in warned), warned
    assert host.actions() == []


def test_hup_of_a_stopped_service_fails(host, capsys):
    rc, out = run({"service": "demo", "workers": 2}, capsys)
    assert rc == 1
    assert out["failed"] is True
    assert out["changed"] is False
    assert out["msg"] == "demo.service is not running; a HUP needs a running master \u2014 use method=restart"
    assert host.actions() == []


def test_hup_timeout_reports_reason_and_pids(host, capsys):
    host.start(MASTER, [4101, 4102], host.old)

    def hup():  # the new master config still points at the old release
        host.add(4201, MASTER, host.new)
        host.add(4202, MASTER, host.old)
        host.remove(4101, 4102)

    host.on_action["reload"] = hup
    rc, out = run({"service": "demo", "workers": 2, "release_path": str(host.new),
                   "timeout": 1, "interval": 0.25}, capsys)
    assert rc == 1
    assert out["failed"] is True and out["changed"] is True
    assert out["reason"] == "worker 4202 runs from %s, expected %s" % (host.old, host.new)
    assert out["msg"].startswith("demo.service: ")
    assert "hup" in out["msg"] and "waited 1.0s" in out["msg"] and out["reason"] in out["msg"]
    assert out["old_workers"] == [4101, 4102]
    assert out["new_workers"] == [4201, 4202]
    assert out["lingering_workers"] == []
    assert out["master_pid_after"] == MASTER
    assert out["seconds"] == 1.0


def test_hup_master_gone(host, capsys):
    host.start(MASTER, [4101], host.old)

    def crash():  # a new worker fails to import the app: the arbiter halts
        host.remove(MASTER, 4101)
        host.main_pid = 0

    host.on_action["reload"] = crash
    rc, out = run({"service": "demo", "workers": 1}, capsys)
    assert rc == 1
    assert "master %d is gone after HUP (MainPID now 0)" % MASTER in out["msg"]
    assert "journalctl -u demo.service" in out["msg"]
    assert host.sleeps == []


def test_reload_failure_is_reported(host, capsys):
    host.start(MASTER, [4101], host.old)
    host.fail_action = (1, "Job for demo.service failed.\n")
    rc, out = run({"service": "demo", "workers": 1}, capsys)
    assert rc == 1
    assert out["msg"] == "systemctl reload demo.service failed: Job for demo.service failed."
    assert out["stderr"] == "Job for demo.service failed.\n"


def test_restart_of_a_stopped_service(host, capsys):
    def restart():
        host.start(6000, [6001, 6002], host.new)

    host.on_action["restart"] = restart
    rc, out = run({"service": "demo", "method": "restart", "workers": 2,
                   "release_path": str(host.current)}, capsys)
    assert rc == 0, out
    assert out["master_pid_before"] == 0
    assert out["master_pid_after"] == 6000
    assert out["old_workers"] == []
    assert out["new_workers"] == [6001, 6002]
    assert host.actions() == [["restart", "demo.service"]]


@pytest.mark.parametrize("args, msg", [
    ({"service": "demo.socket", "workers": 2}, "demo.socket is not a service unit"),
    ({"service": "demo", "workers": 0}, "workers must be at least 1"),
    ({"service": "demo", "workers": 1, "timeout": 0}, "timeout must be positive"),
    ({"service": "demo", "workers": 1, "release_path": "/nonexistent/release"}, "is not a directory"),
])
def test_bad_arguments(host, capsys, args, msg):
    rc, out = run(args, capsys)
    assert rc == 1
    assert msg in out["msg"]
    assert host.calls == []
