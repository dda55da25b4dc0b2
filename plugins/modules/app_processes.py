#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: app_processes
short_description: Bring an app's processes and timers to a release and check that they run it
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Reads what a release runs beside its web server from C(<root>/releases/<release>/.pyfleet/processes.json),
    which the app role writes from C(app_processes) and C(app_timers). Each process is a systemd template unit
    C(<app>-<name>@.service) with instances C(1) to C(count); each timer is C(<app>-<name>.timer).
  - Compares that with what runs. An instance runs the release when its unit is active and its main
    process's working directory (C(/proc/<pid>/cwd)) is the release's directory.
  - Enables and restarts every instance that does not run the release, all at once with C(systemctl restart),
    which sends C(SIGTERM), waits up to the unit's C(TimeoutStopSec) for the process to finish, then sends C(SIGKILL). It
    leaves the instances that already run it alone.
  - Stops and disables the instances of the app's processes that the release does not have (a process it
    dropped, or instances above its count), and the timers it does not have. A unit counts as the app's when
    one of the releases on the host, or the O(state) file, names it.
  - Enables and starts the release's timers, and restarts them when the release they were last brought to
    (recorded in O(state)) is another one, so that a changed schedule applies.
  - Then waits until every instance runs the release and stays up for O(settle) seconds with the same
    main process. It fails otherwise, naming each instance at fault with its state and the last lines of its
    journal.
  - The caller installs the units (M(pyfleet.deploy.release_switch) with its C(unit_manifest)) and reloads
    systemd first.
options:
  root:
    description: The app's root directory, holding C(releases/) and C(current).
    type: path
    required: true
  app:
    description: The app's name, the prefix of its unit names.
    type: str
    required: true
  release:
    description: Id of the release the processes and timers must run, a directory name under C(<root>/releases).
    type: str
    required: true
  timeout:
    description: Seconds to wait, after the restarts, for every instance to run the release.
    type: int
    default: 60
  settle:
    description:
      - Seconds every instance must then stay up with the same main process, so that one which crashes
        right after it starts (and which C(Restart=always) starts again) is caught. Only when the task
        started or restarted an instance.
    type: float
    default: 2.0
  state:
    description:
      - A JSON file where the module records the release it brought the processes and timers to, and their
        names. Defaults to C(<root>/.pyfleet-processes.json).
    type: path
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is started, stopped or written; the module reports what it would do.
  diff_mode:
    support: none
notes:
  - A release staged before C(processes.json) existed runs no processes and no timers.
seealso:
  - module: pyfleet.deploy.release_switch
    description: Switch C(current) and install the units the release carries.
  - module: pyfleet.deploy.gunicorn_reload
    description: Swap the web server's workers, which a rollout does before the processes.
"""

EXAMPLES = r"""
- name: Bring the worker and the timers to the live release
  pyfleet.deploy.app_processes:
    root: /srv/shop
    app: shop
    release: "{{ app_active_release }}"
  register: processes
  become: true

- name: Show which instances were restarted
  ansible.builtin.debug:
    msg: "{{ processes.restarted }}"
"""

RETURN = r"""
instances:
  description: Every instance of the release's processes after the task, with the release it runs.
  returned: always
  type: list
  elements: dict
  contains:
    unit:
      description: The instance, such as C(shop-worker@1.service).
      type: str
    pid:
      description: Its main process, 0 when it does not run.
      type: int
    release:
      description: The release its main process runs, from its working directory, or an empty string.
      type: str
  sample: [{unit: shop-worker@1.service, pid: 4242, release: 2b9c4d1e7a30-5f0e9a21}]
restarted:
  description: The instances started or restarted because they did not run the release.
  returned: always
  type: list
  elements: str
stopped:
  description: The instances and timers stopped and disabled because the release does not have them.
  returned: always
  type: list
  elements: str
restart_seconds:
  description:
    - Seconds C(systemctl restart) of the restarted instances took, in one call. It waits until each old main
      process exited, so it is the graceful stop (Celery's warm shutdown) plus the start.
  returned: when an instance was restarted
  type: float
  sample: 2.41
timers:
  description: The release's timers, each enabled and active after the task.
  returned: always
  type: list
  elements: str
  sample: [shop-nightly.timer]
"""

import json
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyfleet.deploy.plugins.module_utils.atomic import write_file


def read_json(path, default):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def release_units(app, manifest):
    """The instances and timers a release's processes.json asks for."""
    instances = ["%s-%s@%d.service" % (app, process["name"], number)
                 for process in manifest.get("processes", []) for number in range(1, int(process.get("count", 1)) + 1)]
    timers = ["%s-%s.timer" % (app, name) for name in manifest.get("timers", [])]
    return instances, timers


def known_names(root, state):
    """Process and timer names any release on the host, or the state file, gives the app."""
    processes, timers = set(state.get("processes", [])), set(state.get("timers", []))
    releases = os.path.join(root, "releases")
    for release in os.listdir(releases) if os.path.isdir(releases) else []:
        manifest = read_json(os.path.join(releases, release, ".pyfleet", "processes.json"), {})
        processes.update(process["name"] for process in manifest.get("processes", []))
        timers.update(manifest.get("timers", []))
    return processes, timers


class Systemd:
    """The systemctl calls the module needs, and /proc for where a process runs."""

    def __init__(self, module, proc="/proc"):
        self.module = module
        self.proc = proc

    def systemctl(self, *args):
        rc, out, err = self.module.run_command(["systemctl"] + list(args))
        return rc, out, err

    def units(self, pattern):
        """Loaded units (any state) and unit files enabled, whose names match the glob."""
        _rc, out, _err = self.systemctl("list-units", "--all", "--plain", "--no-legend", "--full", pattern)
        names = {line.split()[0] for line in out.splitlines() if line.strip()}
        _rc, out, _err = self.systemctl("list-unit-files", "--plain", "--no-legend", "--full", "--state=enabled", pattern)
        names.update(line.split()[0] for line in out.splitlines() if line.strip())
        return names

    def show(self, unit):
        _rc, out, _err = self.systemctl("show", unit, "--property=ActiveState,MainPID,NRestarts,UnitFileState")
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return {"active": values.get("ActiveState", ""), "pid": int(values.get("MainPID") or 0),
                "restarts": int(values.get("NRestarts") or 0), "enabled": values.get("UnitFileState", "")}

    def runs_from(self, pid):
        try:
            return os.path.realpath(os.readlink(os.path.join(self.proc, str(pid), "cwd")))
        except OSError:
            return ""

    def journal(self, unit):
        _rc, out, _err = self.module.run_command(["journalctl", "-u", unit, "-n", "5", "--no-pager", "-o", "cat"])
        return " | ".join(out.strip().splitlines())


def observe(systemd, units, releases_dir):
    """unit -> its state and the release its main process runs."""
    seen = {}
    for unit in units:
        state = systemd.show(unit)
        where = systemd.runs_from(state["pid"]) if state["pid"] else ""
        state["release"] = os.path.basename(where) if os.path.dirname(where) == releases_dir else ""
        seen[unit] = state
    return seen


def run_module(module, systemd, clock=time.monotonic, sleep=time.sleep):
    params = module.params
    root, app, release = params["root"], params["app"], params["release"]
    state_path = params["state"] or os.path.join(root, ".pyfleet-processes.json")
    releases_dir = os.path.realpath(os.path.join(root, "releases"))
    if not os.path.isdir(os.path.join(releases_dir, release)):
        module.fail_json(msg="Release %s is not on this host (%s/%s)" % (release, releases_dir, release))

    manifest = read_json(os.path.join(releases_dir, release, ".pyfleet", "processes.json"), {})
    wanted, timers = release_units(app, manifest)
    state = read_json(state_path, {})
    process_names, timer_names = known_names(root, state)
    ours = re.compile(r"^%s-(%s)@\d+\.service$" % (re.escape(app), "|".join(map(re.escape, sorted(process_names))) or "(?!)"))
    our_timers = {"%s-%s.timer" % (app, name) for name in timer_names}

    present = systemd.units("%s-*" % app)
    stale = sorted(unit for unit in present if (ours.match(unit) and unit not in wanted)
                   or (unit in our_timers and unit not in timers))
    running = observe(systemd, wanted, releases_dir)
    behind = [unit for unit in wanted if running[unit]["active"] != "active" or running[unit]["release"] != release]
    enable = [unit for unit in wanted + timers if (running[unit] if unit in running else systemd.show(unit))["enabled"] != "enabled"]
    timers_behind = [unit for unit in timers if state.get("release") != release or systemd.show(unit)["active"] != "active"]
    result = dict(changed=bool(stale or behind or enable or timers_behind), restarted=behind, stopped=stale, timers=timers)
    if module.check_mode:
        result["instances"] = [{"unit": unit, "pid": running[unit]["pid"], "release": running[unit]["release"]}
                               for unit in wanted]
        module.exit_json(**result)

    def must(*args):
        rc, out, err = systemd.systemctl(*args)
        if rc != 0:
            module.fail_json(msg="systemctl %s failed (exit %d): %s" % (" ".join(args), rc, (err or out).strip()), **result)

    if stale:
        systemd.systemctl("disable", "--now", *stale)  # a unit whose file is gone cannot be disabled
        must("stop", *stale)
    if enable:
        must("enable", *enable)
    if behind:
        began = clock()
        must("restart", *behind)
        result["restart_seconds"] = round(clock() - began, 2)
    if timers_behind:
        must("restart", *timers_behind)

    deadline = clock() + params["timeout"]
    while True:
        running = observe(systemd, wanted, releases_dir)
        lagging = [unit for unit in wanted if running[unit]["active"] != "active" or running[unit]["release"] != release]
        if not lagging and not behind:
            break  # nothing restarted, and everything runs the release: nothing to settle
        if not lagging:
            sleep(params["settle"])
            after = observe(systemd, wanted, releases_dir)
            lagging = [unit for unit in wanted if (after[unit]["pid"], after[unit]["restarts"])
                       != (running[unit]["pid"], running[unit]["restarts"]) or after[unit]["active"] != "active"]
            running = after
            if not lagging:
                break
        if clock() >= deadline:
            result["instances"] = [{"unit": unit, "pid": running[unit]["pid"], "release": running[unit]["release"]}
                                   for unit in wanted]
            module.fail_json(msg="%s of %s process instance(s) do not run release %s after %ss: %s" % (
                len(lagging), len(wanted), release, params["timeout"],
                "; ".join("%s is %s, runs %s; journal: %s" % (
                    unit, running[unit]["active"] or "unknown", running[unit]["release"] or "no release",
                    systemd.journal(unit)) for unit in lagging)), **result)
        sleep(0.5)

    record = {"release": release, "processes": sorted({p["name"] for p in manifest.get("processes", [])} | process_names),
              "timers": sorted(set(manifest.get("timers", [])) | timer_names)}
    if record != state:
        write_file(state_path, (json.dumps(record, sort_keys=True) + "\n").encode(), 0o644)
    result["instances"] = [{"unit": unit, "pid": running[unit]["pid"], "release": running[unit]["release"]}
                           for unit in wanted]
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            app=dict(type="str", required=True),
            release=dict(type="str", required=True),
            timeout=dict(type="int", default=60),
            settle=dict(type="float", default=2.0),
            state=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    if "/" in module.params["release"] or module.params["release"] in ("", ".", ".."):
        module.fail_json(msg="release must be a directory name under %s/releases (got %r)"
                         % (module.params["root"], module.params["release"]))
    run_module(module, Systemd(module))


if __name__ == "__main__":
    main()
