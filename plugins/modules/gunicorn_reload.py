#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: gunicorn_reload
short_description: Reload or restart a Gunicorn service and wait until its workers have swapped
version_added: 0.2.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Reloads (C(SIGHUP) through the unit's C(ExecReload)) or restarts a Gunicorn systemd service,
    then waits until the worker generation has really swapped.
  - Before signalling, the module records the master (the unit's C(MainPID)) and its workers
    (the master's direct children, found by scanning C(/proc/<pid>/stat)).
  - After a HUP the swap is complete when the master is still the same process, none of the old
    workers is still running under it, exactly O(workers) new workers run under it and, if
    O(release_path) is given, every new worker's working directory is that release.
  - An old worker that holds nothing but long-lived connections (WebSockets and event streams,
    which pyfleet's Uvicorn workers keep for C(gunicorn_stream_drain) seconds and then close
    cleanly) names itself C(drain:<count>) and does not hold the swap up; RV(draining_workers) and
    RV(draining_connections) report what the old generation still drains.
  - After a restart the swap is complete when the unit has a new non-zero C(MainPID), its
    C(ActiveState) is C(active), and exactly O(workers) workers (with the right working directory,
    if O(release_path) is given) run under the new master.
  - If the master disappears after a HUP (typically because a new worker failed to import the
    application and the arbiter halted), the module fails at once instead of waiting for the
    timeout.
  - The module always reports a change; it is meant to run once per rollout, for example from a
    handler or right after a new release was switched to.
options:
  service:
    description:
      - The systemd service running the Gunicorn master, for example C(demo.service).
      - The C(.service) suffix is optional; other unit types (such as the C(.socket) unit) are
        rejected.
    type: str
    required: true
  method:
    description:
      - V(hup) runs C(systemctl reload), which sends C(SIGHUP) to the master through the unit's
        C(ExecReload=kill -s HUP $MAINPID). The master re-reads its configuration, changes to the
        configured C(chdir), forks new workers and gracefully stops the old ones. Sockets stay
        open and no request is refused. The service must be running.
      - V(restart) runs C(systemctl restart). The master is replaced; requests arriving meanwhile
        wait in the socket's backlog (the socket unit holds the listening socket). Use it when
        the service may be stopped, or when the Gunicorn or Python version itself changed.
    type: str
    choices: [hup, restart]
    default: hup
  workers:
    description:
      - Number of workers the new generation must have. It must match Gunicorn's C(workers)
        setting, otherwise the module times out.
    type: int
    required: true
  release_path:
    description:
      - Directory every new worker must run from.
      - Both sides are compared resolved, so the C(current) symlink of the release layout can be
        given here; it is resolved with C(realpath) once, before the service is signalled.
      - Each worker's working directory is read from C(/proc/<pid>/cwd).
      - If not given, the working directory is not checked.
    type: path
  timeout:
    description:
      - Seconds to wait for the swap, counted from the moment the reload or restart is requested.
      - After a HUP the old workers drain in-flight requests for up to Gunicorn's
        C(graceful_timeout) before they exit, so this should be larger than C(graceful_timeout).
    type: float
    default: 60
  interval:
    description:
      - Seconds between two checks.
    type: float
    default: 0.2
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the service is not signalled. The module reads the current master and
        workers, reports them and predicts a change.
      - A O(method=hup) of a service that is not running fails in check mode too, as it would in a
        real run. A unit that does not exist yet (because an earlier task would have installed it)
        only gives a warning in check mode.
  diff_mode:
    support: none
notes:
  - Requires Linux with C(/proc) and systemd, and must run as root (C(become=true)) to read the
    working directory of workers running as the application user.
  - O(method=hup) uses the unit's C(ExecReload) (C(kill -s HUP $MAINPID)); the module never
    signals the master itself.
  - Gunicorn's C(USR2) binary upgrade is deliberately not used. Under systemd the re-executed
    master is a new process that systemd does not track as the unit's C(MainPID); when the old
    master quits, systemd considers the service stopped and kills its control group
    (see U(https://github.com/benoitc/gunicorn/issues/2856)). C(HUP) keeps the master and its
    sockets, which is enough to load a new release because the master changes to the (new)
    C(chdir) before forking the new workers.
  - Zombie processes (exited workers not yet reaped by the master) are not counted as workers.
    Old workers are identified by pid and process start time, so a reused pid is not mistaken
    for an old worker.
seealso:
  - module: pyfleet.deploy.deploy_lock
    description: Serialize rollouts on a host before reloading it.
  - module: pyfleet.deploy.http_check
    description: Check that the application answers after the reload.
  - name: Gunicorn signal handling
    description: What C(HUP), C(TERM) and C(USR2) do to the master and its workers.
    link: https://docs.gunicorn.org/en/stable/signals.html
"""

EXAMPLES = r"""
- name: Reload demo gracefully and wait for 3 workers running the new release
  pyfleet.deploy.gunicorn_reload:
    service: demo.service
    workers: 3
    release_path: /srv/demo/current
  become: true

- name: Reload with an explicit release directory and a longer drain time
  pyfleet.deploy.gunicorn_reload:
    service: demo
    method: hup
    workers: "{{ 'auto' | pyfleet.deploy.worker_count(ansible_facts.processor_vcpus) }}"
    release_path: "/srv/demo/releases/{{ release_id }}"
    timeout: 120
    interval: 0.5
  become: true
  register: demo_reload

- name: Show how long the swap took
  ansible.builtin.debug:
    msg: >-
      master {{ demo_reload.master_pid_after }} replaced workers
      {{ demo_reload.old_workers }} by {{ demo_reload.new_workers }}
      in {{ demo_reload.seconds }}s

- name: Restart instead when the interpreter or Gunicorn itself changed (or on first deploy)
  pyfleet.deploy.gunicorn_reload:
    service: demo.service
    method: "{{ 'restart' if venv_changed or not demo_was_running else 'hup' }}"
    workers: 3
    release_path: /srv/demo/current
  become: true

# In a rolling play (serial: 1), with a rollout lock and a health check
- name: Take the rollout lock
  pyfleet.deploy.deploy_lock:
    path: /srv/demo/.rollout.lock
    owner: "{{ rollout_id }}"
  become: true

- name: Reload
  pyfleet.deploy.gunicorn_reload:
    service: demo.service
    workers: 3
    release_path: /srv/demo/current
  become: true

- name: Check the application
  pyfleet.deploy.http_check:
    url: http://127.0.0.1/healthz

- name: Release the lock
  pyfleet.deploy.deploy_lock:
    path: /srv/demo/.rollout.lock
    owner: "{{ rollout_id }}"
    state: absent
  become: true
"""

RETURN = r"""
method:
  description: The method used.
  returned: always
  type: str
  sample: hup
master_pid_before:
  description: The unit's C(MainPID) before the reload or restart; V(0) if it was not running.
  returned: always
  type: int
  sample: 41200
master_pid_after:
  description:
    - The unit's C(MainPID) once the swap was complete. Equal to RV(master_pid_before) after a
      HUP.
    - On failure, the last C(MainPID) seen. V(null) in check mode.
  returned: always
  type: int
  sample: 41200
old_workers:
  description: Pids of the workers running under the master before the reload or restart.
  returned: always
  type: list
  elements: int
  sample: [41210, 41211, 41212]
new_workers:
  description:
    - Pids of the new worker generation.
    - On failure, the new workers seen at the last check. Empty in check mode.
  returned: always
  type: list
  elements: int
  sample: [41305, 41306, 41307]
lingering_workers:
  description: Old workers still running under the master at the last check.
  returned: when the swap failed or timed out
  type: list
  elements: int
  sample: [41211]
reason:
  description: The conditions still unmet at the last check, separated by semicolons.
  returned: when the swap failed or timed out
  type: str
  sample: worker 41305 runs from /srv/demo/releases/3f2a9c1d07be, expected /srv/demo/releases/9b81e0d4c2aa
seconds:
  description:
    - Seconds from requesting the reload or restart until the swap was complete, rounded to
      milliseconds.
    - On failure, the seconds waited. V(null) in check mode.
  returned: always
  type: float
  sample: 1.412
draining_workers:
  description:
    - Old workers still running when the swap was complete, each holding only long-lived
      connections it closes when its stream drain ends.
  returned: success
  type: list
  elements: int
  sample: [41211]
draining_connections:
  description: The number of long-lived connections RV(draining_workers) still held.
  returned: success
  type: int
  sample: 212
release_path:
  description: O(release_path) resolved with C(realpath), or V(null) if not given.
  returned: always
  type: str
  sample: /srv/demo/releases/9b81e0d4c2aa
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyfleet.deploy.plugins.module_utils.gunicorn_proc import (
    ProcFS,
    SwapError,
    normalize_service,
    wait_for_swap,
)

# Indirections so that tests can point the module at a fake /proc and clock.
PROC_ROOT = "/proc"
_clock = time.monotonic
_sleep = time.sleep


class Systemd:
    """The few systemctl calls the module needs, through module.run_command."""

    def __init__(self, module, service):
        self.module = module
        self.service = service
        self.systemctl = module.get_bin_path("systemctl", required=True)

    def _run(self, *args):
        cmd = [self.systemctl] + list(args)
        rc, out, err = self.module.run_command(cmd)
        return rc, out, err, cmd

    def show(self, prop):
        rc, out, err, cmd = self._run("show", "--property", prop, "--value", self.service)
        if rc != 0:
            self.module.fail_json(
                msg="cannot read %s of %s: %s" % (prop, self.service, (err or out).strip()),
                cmd=cmd, rc=rc, stdout=out, stderr=err,
            )
        return out.strip()

    def main_pid(self):
        value = self.show("MainPID")
        try:
            return int(value or "0")
        except ValueError:
            self.module.fail_json(msg="unexpected MainPID of %s: %r" % (self.service, value))

    def active_state(self):
        return self.show("ActiveState")

    def load_state(self):
        return self.show("LoadState")

    def action(self, verb):
        rc, out, err, cmd = self._run(verb, self.service)
        if rc != 0:
            self.module.fail_json(
                msg="systemctl %s %s failed: %s" % (verb, self.service, (err or out).strip()),
                cmd=cmd, rc=rc, stdout=out, stderr=err, method=("hup" if verb == "reload" else verb),
            )


def run_module(module, proc, clock=time.monotonic, sleep=time.sleep):
    """Module logic, given an AnsibleModule-like object and a ProcFS."""
    params = module.params
    method = params["method"]
    workers = params["workers"]
    timeout = params["timeout"]
    interval = params["interval"]

    try:
        service = normalize_service(params["service"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if workers < 1:
        module.fail_json(msg="workers must be at least 1, got %d" % workers)
    if timeout <= 0:
        module.fail_json(msg="timeout must be positive, got %s" % timeout)
    if interval <= 0:
        module.fail_json(msg="interval must be positive, got %s" % interval)

    release_path = None
    if params["release_path"]:
        release_path = os.path.realpath(params["release_path"])
        if not os.path.isdir(release_path) and not module.check_mode:
            module.fail_json(
                msg="release_path %s (resolved: %s) is not a directory" % (params["release_path"], release_path)
            )

    result = dict(
        changed=True,
        method=method,
        master_pid_before=0,
        master_pid_after=None,
        old_workers=[],
        new_workers=[],
        seconds=None,
        release_path=release_path,
    )

    systemd = Systemd(module, service)
    if systemd.load_state() == "not-found":
        if module.check_mode:
            module.warn("%s does not exist (yet); in a real run an earlier task must install it" % service)
            module.exit_json(**result)
        result["changed"] = False
        module.fail_json(msg="%s does not exist (LoadState=not-found)" % service, **result)

    old_master = systemd.main_pid()
    result["master_pid_before"] = old_master
    if not old_master and method == "hup":
        result["changed"] = False
        module.fail_json(
            msg="%s is not running; a HUP needs a running master — use method=restart" % service,
            **result
        )

    old_workers = proc.workers(old_master) if old_master else {}
    result["old_workers"] = sorted(old_workers)

    if module.check_mode:
        module.exit_json(**result)

    start = clock()
    systemd.action("reload" if method == "hup" else "restart")

    try:
        swap = wait_for_swap(
            proc,
            systemd.main_pid,
            method,
            old_master,
            old_workers,
            workers,
            release_path=release_path,
            timeout=timeout,
            interval=interval,
            active_state=systemd.active_state if method == "restart" else None,
            service=service,
            clock=clock,
            sleep=sleep,
            start=start,
        )
    except SwapError as exc:
        result.update(
            master_pid_after=exc.master_pid_after,
            new_workers=sorted(exc.new_workers),
            lingering_workers=sorted(exc.lingering),
            seconds=exc.seconds,
            reason=exc.reason,
        )
        module.fail_json(msg=exc.msg, **result)

    result.update(
        master_pid_after=swap["master_pid_after"],
        new_workers=sorted(swap["new_workers"]),
        seconds=swap["seconds"],
        draining_workers=swap["draining_workers"],
        draining_connections=swap["draining_connections"],
    )
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            method=dict(type="str", default="hup", choices=["hup", "restart"]),
            workers=dict(type="int", required=True),
            release_path=dict(type="path"),
            timeout=dict(type="float", default=60.0),
            interval=dict(type="float", default=0.2),
        ),
        supports_check_mode=True,
    )
    run_module(module, ProcFS(PROC_ROOT), clock=_clock, sleep=_sleep)


if __name__ == "__main__":
    main()
