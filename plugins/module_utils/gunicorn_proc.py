# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

"""Inspect a gunicorn master and its workers through /proc, and wait for a
worker generation swap after a reload or restart.

Pure standard library. The proc root, the clock, the sleep function and the
way the unit's MainPID is read are all injectable, so that the logic can be
tested against a fake /proc tree without systemd.
"""

from __future__ import annotations

import collections
import os
import re
import time

__all__ = [
    "DEAD_STATES",
    "MasterGone",
    "ProcFS",
    "ProcStat",
    "SwapError",
    "SwapTimeout",
    "check_generation",
    "draining_connections",
    "normalize_service",
    "parse_stat",
    "wait_for_swap",
]

# Process states that no longer run code: zombie (exited, not yet reaped by
# its parent) and dead ("x" on old kernels).
DEAD_STATES = frozenset(("Z", "X", "x"))

_OTHER_UNIT_SUFFIXES = (
    ".socket", ".target", ".timer", ".mount", ".automount", ".path",
    ".slice", ".scope", ".device", ".swap",
)

# In the command line of multiprocessing's resource tracker.
HELPER_MARK = b"multiprocessing.resource_tracker"
# What an old worker that holds only long-lived connections calls itself.
_DRAIN_NAME = re.compile(r"^drain:([0-9]+)$")

ProcStat = collections.namedtuple("ProcStat", ["pid", "comm", "state", "ppid", "starttime"])
ProcStat.__doc__ = "The fields of /proc/<pid>/stat this module needs."


def normalize_service(name):
    """Return the unit name with a ``.service`` suffix.

    ``demo`` and ``demo.service`` both give ``demo.service``. Other unit types
    (``demo.socket``) raise ``ValueError``: only a service has a MainPID.
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("service must not be empty")
    if name.endswith(".service"):
        if name == ".service":
            raise ValueError("service must not be empty")
        return name
    for suffix in _OTHER_UNIT_SUFFIXES:
        if name.endswith(suffix):
            raise ValueError(
                "%s is not a service unit; give the gunicorn service (for example %s.service)"
                % (name, name[: -len(suffix)])
            )
    return name + ".service"


def parse_stat(data):
    """Parse the content of ``/proc/<pid>/stat``.

    The second field (comm) is in parentheses and may itself contain spaces and
    parentheses, so the line is split at the *last* closing parenthesis.
    Raises ``ValueError`` on malformed content.
    """
    if isinstance(data, bytes):
        data = data.decode("utf-8", "surrogateescape")
    start = data.find("(")
    end = data.rfind(")")
    if start < 0 or end < start:
        raise ValueError("malformed stat line: %r" % data[:80])
    try:
        pid = int(data[:start].strip())
        rest = data[end + 1:].split()
        state = rest[0]
        ppid = int(rest[1])
        # Field 22 (starttime) is the 20th field after comm.
        starttime = int(rest[19]) if len(rest) > 19 else None
    except (IndexError, ValueError) as exc:
        raise ValueError("malformed stat line: %r (%s)" % (data[:80], exc))
    return ProcStat(pid, data[start + 1:end], state, ppid, starttime)


class ProcFS:
    """Read-only view of a proc filesystem rooted at ``root``."""

    def __init__(self, root="/proc"):
        self.root = root

    def _path(self, pid, name):
        return os.path.join(self.root, str(pid), name)

    def pids(self):
        """All process ids listed in the proc root (threads are not listed)."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return []
        return sorted(int(name) for name in names if name.isdigit())

    def stat(self, pid):
        """``ProcStat`` of ``pid``, or None if it does not exist (any more)."""
        try:
            with open(self._path(pid, "stat"), "rb") as handle:
                data = handle.read()
        except OSError:  # ENOENT, or ESRCH when the process exits while reading
            return None
        try:
            return parse_stat(data)
        except ValueError:
            return None

    def exists(self, pid):
        """True if ``/proc/<pid>`` exists and the process is not a zombie."""
        if not os.path.isdir(os.path.join(self.root, str(pid))):
            return False
        stat = self.stat(pid)
        return stat is not None and stat.state not in DEAD_STATES

    def is_child_of(self, pid, ppid, starttime=None):
        """True if ``pid`` is alive, its parent is ``ppid`` and (when given) it
        started at ``starttime`` -- robust to pid reuse."""
        stat = self.stat(pid)
        if stat is None or stat.state in DEAD_STATES or stat.ppid != ppid:
            return False
        if starttime is not None and stat.starttime is not None and stat.starttime != starttime:
            return False
        return True

    def children(self, ppid):
        """Live (non-zombie) direct children of ``ppid`` that are workers, sorted by pid.

        The resource tracker Python's multiprocessing starts beside Uvicorn's
        own workers (``gunicorn_server: uvicorn``) is a child too, but not a
        worker, and is left out.
        """
        found = []
        if not ppid:
            return found
        for pid in self.pids():
            stat = self.stat(pid)
            if stat is not None and stat.ppid == ppid and stat.state not in DEAD_STATES and not self.is_helper(pid):
                found.append(stat)
        return found

    def is_helper(self, pid):
        """True if ``pid`` runs multiprocessing's resource tracker."""
        try:
            with open(self._path(pid, "cmdline"), "rb") as handle:
                return HELPER_MARK in handle.read()
        except OSError:
            return False

    def workers(self, master):
        """Map of worker pid to its start time for the children of ``master``."""
        return dict((child.pid, child.starttime) for child in self.children(master))

    def cwd(self, pid):
        """Target of ``/proc/<pid>/cwd`` or None if it cannot be read."""
        try:
            return os.readlink(self._path(pid, "cwd"))
        except OSError:
            return None


def _as_identities(workers):
    """Normalize old workers to a ``{pid: starttime or None}`` dict."""
    if workers is None:
        return {}
    if isinstance(workers, dict):
        return dict((int(pid), start) for pid, start in workers.items())
    result = {}
    for item in workers:
        if isinstance(item, ProcStat):
            result[item.pid] = item.starttime
        else:
            result[int(item)] = None
    return result


def _is_old(child, old):
    if child.pid not in old:
        return False
    start = old[child.pid]
    return start is None or child.starttime is None or start == child.starttime


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def draining_connections(stat):
    """The long-lived connections an old worker still drains, or None if it does not say it drains.

    pyfleet's Uvicorn workers name themselves ``drain:<count>`` once they hold
    nothing but WebSockets and event streams, which they close cleanly when
    their stream drain ends (pyfleet_drain.py): such a worker no longer takes
    part in the swap.
    """
    match = _DRAIN_NAME.match(stat.comm or "")
    return int(match.group(1)) if match else None


def check_generation(proc, master, old_workers, workers, release_path=None):
    """Check whether ``master`` runs a complete new worker generation.

    Returns ``(ok, reasons, new_workers, lingering, draining)``: ``reasons``
    lists every unmet condition (empty when ok), ``new_workers`` the pids of
    children that are not old workers, ``lingering`` the old workers still
    running under the master other than ``draining``, a ``{pid: connections}``
    dict of the old workers that only drain long-lived connections (see
    ``draining_connections``). ``release_path`` must already be resolved
    (realpath).
    """
    old = _as_identities(old_workers)
    children = proc.children(master)
    draining = dict((child.pid, draining_connections(child)) for child in children
                    if _is_old(child, old) and draining_connections(child) is not None)
    lingering = [child.pid for child in children if _is_old(child, old) and child.pid not in draining]
    new = [child.pid for child in children if not _is_old(child, old)]
    reasons = []
    if lingering:
        reasons.append(
            "old %s %s still running under master %d"
            % ("worker" if len(lingering) == 1 else "workers", ", ".join(str(p) for p in lingering), master)
        )
    if len(new) != workers:
        reasons.append("%s under master %d, expected %d" % (_plural(len(new), "new worker"), master, workers))
    if release_path:
        for pid in new:
            cwd = proc.cwd(pid)
            if cwd is None:
                reasons.append("cannot read the working directory of worker %d" % pid)
            elif cwd != release_path:
                reasons.append("worker %d runs from %s, expected %s" % (pid, cwd, release_path))
    return (not reasons, reasons, new, lingering, draining)


class SwapError(Exception):
    """The worker generation did not swap. Carries what was seen last."""

    def __init__(self, msg, reason, master_pid_after=None, new_workers=None, lingering=None, seconds=None):
        super().__init__(msg)
        self.msg = msg
        self.reason = reason
        self.master_pid_after = master_pid_after
        self.new_workers = list(new_workers or [])
        self.lingering = list(lingering or [])
        self.seconds = seconds


class MasterGone(SwapError):
    """After a HUP the master pid changed or the service stopped."""


class SwapTimeout(SwapError):
    """The swap was not complete before the deadline."""


def wait_for_swap(proc, main_pid, method, old_master, old_workers, workers,
                  release_path=None, timeout=60.0, interval=0.2, active_state=None,
                  service="the service", clock=time.monotonic, sleep=time.sleep, start=None):
    """Poll until the worker generation has swapped after a reload or restart.

    ``proc`` is a ``ProcFS``. ``main_pid()`` returns the unit's current MainPID
    (0 when not running) and ``active_state()``, if given, its ActiveState;
    both are only called while polling. ``method`` is ``hup`` or ``restart``.
    ``old_workers`` is a ``{pid: starttime}`` dict (from ``ProcFS.workers``) or
    a list of pids. ``start`` is the clock value when the signal was sent
    (defaults to now); the deadline is ``start + timeout``.

    Returns a dict with ``master_pid_after``, ``new_workers``, ``seconds``,
    ``draining_workers`` (old workers that only drain long-lived connections,
    which do not hold the swap up) and ``draining_connections`` (their count).
    Raises ``MasterGone`` at once if after a HUP the MainPID changes, and
    ``SwapTimeout`` when the deadline passes; both carry the last reason.
    """
    if method not in ("hup", "restart"):
        raise ValueError("method must be hup or restart, not %r" % (method,))
    old = _as_identities(old_workers)
    if start is None:
        start = clock()
    deadline = start + timeout
    reason = "not checked yet"
    master = None
    new = []
    lingering = []
    draining = {}

    while True:
        master = main_pid()
        if method == "hup":
            if master != old_master:
                reason = "MainPID is now %s" % (master or "0 (not running)")
                raise MasterGone(
                    "master %d is gone after HUP (MainPID now %s): the new workers probably failed to "
                    "boot \u2014 see journalctl -u %s" % (old_master, master, service),
                    reason, master_pid_after=master, new_workers=new, lingering=lingering,
                    seconds=round(clock() - start, 3),
                )
            ok, reasons, new, lingering, draining = check_generation(proc, master, old, workers, release_path)
        else:
            ok, reasons, new, lingering, draining = False, [], [], [], {}
            if not master:
                reasons.append("MainPID is 0 (%s is not running yet)" % service)
            elif old_master and master == old_master:
                reasons.append("MainPID is still the old master %d" % master)
            else:
                state = active_state() if active_state is not None else "active"
                if state != "active":
                    reasons.append("ActiveState is %s, not active" % state)
                ok, more, new, lingering, draining = check_generation(proc, master, old, workers, release_path)
                reasons.extend(more)
                ok = ok and not reasons

        if ok:
            return {
                "master_pid_after": master,
                "new_workers": new,
                "seconds": round(max(clock() - start, 0.0), 3),
                "draining_workers": sorted(draining),
                "draining_connections": sum(draining.values()),
            }
        reason = "; ".join(reasons)
        now = clock()
        if now >= deadline:
            waited = round(now - start, 3)
            raise SwapTimeout(
                "%s: worker generation did not swap within %ss after %s (waited %ss): %s"
                % (service, timeout, method, waited, reason),
                reason, master_pid_after=master, new_workers=new, lingering=lingering, seconds=waited,
            )
        sleep(max(min(interval, deadline - now), 0.0))
