# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import os
import shutil
import sys

import pytest

from ansible_collections.pyfleet.deploy.plugins.module_utils.gunicorn_proc import (
    MasterGone,
    ProcFS,
    SwapTimeout,
    check_generation,
    normalize_service,
    parse_stat,
    wait_for_swap,
)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from procfs import stat_line  # noqa: E402

MASTER = 4100
SERVICE = "demo.service"


class FakeProc:
    """A fake /proc tree: <root>/<pid>/stat and <root>/<pid>/cwd (symlink)."""

    def __init__(self, root):
        self.root = root
        self.root.mkdir(exist_ok=True)
        self._start = 50000

    def add(self, pid, ppid, cwd=None, comm="gunicorn: worker [demo]", state="S", starttime=None, cmdline=None):
        if starttime is None:
            self._start += 10
            starttime = self._start
        piddir = self.root / str(pid)
        if piddir.exists():
            shutil.rmtree(piddir)
        piddir.mkdir()
        (piddir / "stat").write_text(stat_line(pid, comm, state, ppid, starttime))
        if cwd is not None:
            os.symlink(str(cwd), str(piddir / "cwd"))
        if cmdline is not None:
            (piddir / "cmdline").write_bytes(b"\0".join(part.encode() for part in cmdline) + b"\0")
        return pid

    def remove(self, *pids):
        for pid in pids:
            shutil.rmtree(self.root / str(pid))

    def zombie(self, pid):
        stat = (self.root / str(pid) / "stat").read_text()
        head, _paren, tail = stat.rpartition(")")
        fields = tail.split()
        fields[0] = "Z"
        (self.root / str(pid) / "stat").write_text(head + ") " + " ".join(fields) + "\n")


class FakeClock:
    """Monotonic clock whose sleep advances time and runs the next scripted step."""

    def __init__(self, steps=()):
        self.now = 1000.0
        self.steps = list(steps)
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
        if self.steps:
            self.steps.pop(0)()


@pytest.fixture
def releases(tmp_path):
    base = tmp_path.resolve() / "srv" / "demo" / "releases"
    old, new = base / "aaa111", base / "bbb222"
    old.mkdir(parents=True)
    new.mkdir()
    current = base.parent / "current"
    current.symlink_to(new)
    return {"old": str(old), "new": str(new), "current": str(current)}


@pytest.fixture
def proc(tmp_path, releases):
    """A running demo: systemd (1), the master and two workers in the old release,
    plus unrelated processes."""
    fake = FakeProc(tmp_path / "proc")
    fake.add(1, 0, comm="systemd", starttime=1)
    fake.add(MASTER, 1, cwd=releases["old"], comm="gunicorn: master [demo]", starttime=40000)
    fake.add(4101, MASTER, cwd=releases["old"])
    fake.add(4102, MASTER, cwd=releases["old"])
    fake.add(777, 1, comm="nginx: master ) (x")
    fake.add(778, 777, comm="nginx: worker")
    (fake.root / "self").symlink_to("1")  # non-numeric entries are ignored
    (fake.root / "meminfo").write_text("MemTotal: 1 kB\n")
    return fake


def test_parse_stat_splits_at_last_parenthesis():
    line = stat_line(4242, "evil) R 1 (x)", "S", MASTER, 123456)
    stat = parse_stat(line.encode())
    assert stat.pid == 4242
    assert stat.comm == "evil) R 1 (x)"
    assert stat.state == "S"
    assert stat.ppid == MASTER
    assert stat.starttime == 123456
    spaced = parse_stat(stat_line(5, "gunicorn: worker [my app]", "R", 4, 9))
    assert (spaced.comm, spaced.state, spaced.ppid, spaced.starttime) == ("gunicorn: worker [my app]", "R", 4, 9)


@pytest.mark.parametrize("bad", ["", "12 no-parens S 1", "12 (x) S", "x (y) S 1"])
def test_parse_stat_rejects_garbage(bad):
    with pytest.raises(ValueError):
        parse_stat(bad)


def test_children_of_master(proc):
    procfs = ProcFS(str(proc.root))
    proc.add(4103, MASTER, state="Z")  # exited, not reaped yet
    proc.add(4199, 4101, comm="sh -c (sleep)")  # a grandchild
    assert [c.pid for c in procfs.children(MASTER)] == [4101, 4102]
    assert sorted(procfs.workers(MASTER)) == [4101, 4102]
    assert [c.pid for c in procfs.children(777)] == [778]
    assert procfs.children(0) == []
    assert procfs.children(999999) == []


def test_multiprocessing_resource_tracker_is_not_a_worker(proc):
    """Standalone Uvicorn: the master's children are its workers and Python's resource tracker."""
    procfs = ProcFS(str(proc.root))
    python = "/srv/demo/current/.venv/bin/python"
    tracker = [python, "-c", "from multiprocessing.resource_tracker import main;main(6)"]
    worker = [python, "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=7)", "--multiprocessing-fork"]
    proc.add(4105, MASTER, comm="python", cmdline=tracker)
    proc.add(4106, MASTER, comm="python", cmdline=worker)
    assert [c.pid for c in procfs.children(MASTER)] == [4101, 4102, 4106]


def test_exists_and_is_child_of(proc):
    procfs = ProcFS(str(proc.root))
    start = procfs.stat(4101).starttime
    assert procfs.exists(4101)
    assert procfs.is_child_of(4101, MASTER)
    assert procfs.is_child_of(4101, MASTER, start)
    assert not procfs.is_child_of(4101, MASTER, start + 1)  # pid reused
    assert not procfs.is_child_of(4101, 1)
    assert not procfs.exists(31337)
    proc.zombie(4102)
    assert not procfs.exists(4102)
    assert not procfs.is_child_of(4102, MASTER)


def test_cwd(proc, releases):
    procfs = ProcFS(str(proc.root))
    assert procfs.cwd(4101) == releases["old"]
    assert procfs.cwd(1) is None  # no cwd link (unreadable)
    assert procfs.cwd(31337) is None


def test_missing_proc_root(tmp_path):
    procfs = ProcFS(str(tmp_path / "nope"))
    assert procfs.pids() == []
    assert procfs.children(1) == []


def test_check_generation_reports_every_unmet_condition(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    proc.add(4201, MASTER, cwd=releases["new"])
    proc.add(4202, MASTER, cwd=releases["old"])
    ok, reasons, new, lingering, _draining = check_generation(procfs, MASTER, old, 3, releases["new"])
    assert not ok
    assert new == [4201, 4202]
    assert lingering == [4101, 4102]
    assert reasons == [
        "old workers 4101, 4102 still running under master %d" % MASTER,
        "2 new workers under master %d, expected 3" % MASTER,
        "worker 4202 runs from %s, expected %s" % (releases["old"], releases["new"]),
    ]
    # Without a release path, the cwd is not checked.
    proc.remove(4101, 4102)
    ok, reasons, new, lingering, _draining = check_generation(procfs, MASTER, old, 2, None)
    assert ok and reasons == [] and lingering == []


def test_an_old_worker_that_only_drains_streams_does_not_hold_the_swap_up(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    proc.add(4101, MASTER, cwd=releases["old"], comm="drain:7", starttime=old[4101])
    proc.add(4102, MASTER, cwd=releases["old"], comm="drain:205", starttime=old[4102])
    proc.add(4201, MASTER, cwd=releases["new"])
    proc.add(4202, MASTER, cwd=releases["new"])
    ok, reasons, new, lingering, draining = check_generation(procfs, MASTER, old, 2, releases["new"])
    assert (ok, reasons, new, lingering, draining) == (True, [], [4201, 4202], [], {4101: 7, 4102: 205})
    clock = FakeClock()
    result = wait_for_swap(procfs, lambda: MASTER, "hup", MASTER, old, 2, release_path=releases["new"],
                           clock=clock, sleep=clock.sleep)
    assert (result["draining_workers"], result["draining_connections"]) == ([4101, 4102], 212)


@pytest.mark.parametrize("comm", ["drain:", "drain:x", "gunicorn: worker [drain:3]", "drain:3 "])
def test_only_the_exact_drain_name_counts_as_draining(proc, releases, comm):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    proc.add(4101, MASTER, cwd=releases["old"], comm=comm, starttime=old[4101])
    proc.remove(4102)
    proc.add(4201, MASTER, cwd=releases["new"])
    ok, reasons, _new, lingering, draining = check_generation(procfs, MASTER, old, 1, releases["new"])
    assert (ok, lingering, draining) == (False, [4101], {})
    assert reasons == ["old worker 4101 still running under master %d" % MASTER]


def test_check_generation_unreadable_cwd(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    proc.remove(4101, 4102)
    proc.add(4201, MASTER)  # no cwd link
    ok, reasons, _new, _lingering, _draining = check_generation(procfs, MASTER, old, 1, releases["new"])
    assert not ok
    assert reasons == ["cannot read the working directory of worker 4201"]


def test_hup_swap_succeeds_when_generation_changes_between_polls(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    clock = FakeClock(steps=[
        # poll 2: the new workers are forked, the old ones still drain
        lambda: (proc.add(4201, MASTER, cwd=releases["new"]), proc.add(4202, MASTER, cwd=releases["new"])),
        # poll 3: one old worker is gone, the other has exited but is not reaped yet (zombie)
        lambda: (proc.remove(4101), proc.zombie(4102)),
        # (poll 4 would see the zombie reaped; it is not needed)
        lambda: proc.remove(4102),
    ])
    main_pid_calls = []

    def main_pid():
        main_pid_calls.append(clock.now)
        return MASTER

    result = wait_for_swap(
        procfs, main_pid, "hup", MASTER, old, 2,
        release_path=os.path.realpath(releases["current"]), timeout=10, interval=0.25,
        service=SERVICE, clock=clock, sleep=clock.sleep,
    )
    # The zombie at poll 3 already counts as gone, so the swap completes there.
    assert result == {"master_pid_after": MASTER, "new_workers": [4201, 4202], "seconds": 0.5,
                      "draining_workers": [], "draining_connections": 0}
    assert clock.sleeps == [0.25, 0.25]
    assert len(main_pid_calls) == 3


def test_hup_swap_start_is_the_signal_time(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    proc.remove(4101, 4102)
    proc.add(4201, MASTER, cwd=releases["new"])
    clock = FakeClock()
    result = wait_for_swap(
        procfs, lambda: MASTER, "hup", MASTER, old, 1, release_path=releases["new"],
        clock=clock, sleep=clock.sleep, start=clock.now - 1.25,
    )
    assert result["seconds"] == 1.25
    assert clock.sleeps == []


def test_hup_times_out_when_an_old_worker_never_exits(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    clock = FakeClock(steps=[
        lambda: (proc.add(4201, MASTER, cwd=releases["new"]), proc.add(4202, MASTER, cwd=releases["new"]),
                 proc.remove(4101)),
    ])
    with pytest.raises(SwapTimeout) as info:
        wait_for_swap(
            procfs, lambda: MASTER, "hup", MASTER, old, 2, release_path=releases["new"],
            timeout=2, interval=0.5, service=SERVICE, clock=clock, sleep=clock.sleep,
        )
    exc = info.value
    assert exc.reason == "old worker 4102 still running under master %d" % MASTER
    assert exc.lingering == [4102]
    assert exc.new_workers == [4201, 4202]
    assert exc.master_pid_after == MASTER
    assert exc.seconds == 2.0
    assert sum(clock.sleeps) == pytest.approx(2.0)
    assert SERVICE in exc.msg and "hup" in exc.msg and "2.0s" in exc.msg and exc.reason in exc.msg


def test_hup_times_out_when_a_new_worker_runs_the_wrong_release(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    clock = FakeClock(steps=[
        lambda: (proc.remove(4101, 4102), proc.add(4201, MASTER, cwd=releases["new"]),
                 proc.add(4202, MASTER, cwd=releases["old"])),
    ])
    with pytest.raises(SwapTimeout) as info:
        wait_for_swap(
            procfs, lambda: MASTER, "hup", MASTER, old, 2, release_path=releases["new"],
            timeout=1, interval=0.2, service=SERVICE, clock=clock, sleep=clock.sleep,
        )
    assert info.value.reason == "worker 4202 runs from %s, expected %s" % (releases["old"], releases["new"])
    assert info.value.lingering == []


def test_hup_pid_reuse_is_not_an_old_worker(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    # 4101 exits and the kernel hands its pid to a new worker of the same master.
    proc.remove(4101, 4102)
    proc.add(4101, MASTER, cwd=releases["new"], starttime=99999)
    clock = FakeClock()
    result = wait_for_swap(procfs, lambda: MASTER, "hup", MASTER, old, 1, release_path=releases["new"],
                           clock=clock, sleep=clock.sleep)
    assert result["new_workers"] == [4101]
    # With only pids known, a reused pid looks old.
    with pytest.raises(SwapTimeout) as info:
        wait_for_swap(procfs, lambda: MASTER, "hup", MASTER, [4101, 4102], 1,
                      timeout=0.4, interval=0.2, clock=clock, sleep=clock.sleep)
    assert "old worker 4101 still running" in info.value.reason


@pytest.mark.parametrize("after", [0, 5555])
def test_hup_fails_at_once_when_the_master_is_gone(proc, releases, after):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    pids = iter([MASTER, after])
    clock = FakeClock(steps=[lambda: proc.add(4201, MASTER, cwd=releases["new"])])
    with pytest.raises(MasterGone) as info:
        wait_for_swap(procfs, lambda: next(pids), "hup", MASTER, old, 2, release_path=releases["new"],
                      timeout=60, interval=0.2, service=SERVICE, clock=clock, sleep=clock.sleep)
    exc = info.value
    assert exc.msg == (
        "master %d is gone after HUP (MainPID now %d): the new workers probably failed to boot "
        "\u2014 see journalctl -u demo.service" % (MASTER, after)
    )
    assert exc.master_pid_after == after
    assert clock.sleeps == [0.2]  # did not wait for the timeout
    assert exc.new_workers == []  # as seen at the last complete check (poll 1)


def test_restart_success(proc, releases):
    procfs = ProcFS(str(proc.root))
    old = procfs.workers(MASTER)
    state = {"pid": MASTER, "active": "active"}

    def stop_and_start():
        proc.remove(MASTER, 4101, 4102)
        state.update(pid=0, active="activating")

    def new_master():
        proc.add(6000, 1, cwd=releases["new"], comm="gunicorn: master [demo]")
        proc.add(6001, 6000, cwd=releases["new"])
        state.update(pid=6000)

    def second_worker():
        proc.add(6002, 6000, cwd=releases["new"])
        state.update(active="active")

    clock = FakeClock(steps=[stop_and_start, new_master, second_worker])
    result = wait_for_swap(
        procfs, lambda: state["pid"], "restart", MASTER, old, 2, release_path=releases["new"],
        timeout=5, interval=0.1, active_state=lambda: state["active"], service=SERVICE,
        clock=clock, sleep=clock.sleep,
    )
    assert result == {"master_pid_after": 6000, "new_workers": [6001, 6002], "seconds": 0.3,
                      "draining_workers": [], "draining_connections": 0}


def test_restart_from_stopped_and_timeout_reasons(proc, releases):
    procfs = ProcFS(str(proc.root))
    clock = FakeClock()
    # Service was not running: any non-zero MainPID is new.
    proc.add(6000, 1, cwd=releases["new"])
    proc.add(6001, 6000, cwd=releases["new"])
    result = wait_for_swap(procfs, lambda: 6000, "restart", 0, {}, 1, release_path=releases["new"],
                           active_state=lambda: "active", clock=clock, sleep=clock.sleep)
    assert result["master_pid_after"] == 6000 and result["new_workers"] == [6001]

    with pytest.raises(SwapTimeout) as info:
        wait_for_swap(procfs, lambda: MASTER, "restart", MASTER, {}, 2, timeout=0.5,
                      clock=clock, sleep=clock.sleep, service=SERVICE)
    assert info.value.reason == "MainPID is still the old master %d" % MASTER
    assert "restart" in info.value.msg

    with pytest.raises(SwapTimeout) as info:
        wait_for_swap(procfs, lambda: 0, "restart", MASTER, {}, 2, timeout=0.5,
                      clock=clock, sleep=clock.sleep, service=SERVICE)
    assert info.value.reason == "MainPID is 0 (demo.service is not running yet)"

    with pytest.raises(SwapTimeout) as info:
        wait_for_swap(procfs, lambda: 6000, "restart", MASTER, {}, 1, timeout=0.5,
                      active_state=lambda: "reloading", clock=clock, sleep=clock.sleep)
    assert info.value.reason == "ActiveState is reloading, not active"


def test_rejects_unknown_method(proc):
    with pytest.raises(ValueError):
        wait_for_swap(ProcFS(str(proc.root)), lambda: 1, "usr2", 1, {}, 1)


@pytest.mark.parametrize("name, unit", [
    ("demo", "demo.service"),
    ("demo.service", "demo.service"),
    (" app@blue ", "app@blue.service"),
    ("my.app", "my.app.service"),
])
def test_normalize_service(name, unit):
    assert normalize_service(name) == unit


@pytest.mark.parametrize("name", ["", ".service", "demo.socket", "multi-user.target"])
def test_normalize_service_rejects(name):
    with pytest.raises(ValueError):
        normalize_service(name)
