# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""What an app's service runs, read by release_facts before a rollout decides and by
release_switch right after it switches: the unit's state, the master's interpreter, the releases
its workers serve, and the release's .pyfleet/ files that differ from theirs."""

from __future__ import annotations

import filecmp
import os

from ansible_collections.pyfleet.deploy.plugins.module_utils.atomic import read_link


def _pyfleet_files(release_dir):
    """Relative paths of the regular files under a release's .pyfleet/ directory."""
    base = os.path.join(release_dir, ".pyfleet")
    found = set()
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [name for name in dirnames if name != "__pycache__"]
        for name in filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), base))
    return found


def pyfleet_differences(releases_dir, target, others):
    """The .pyfleet/ files that differ between the target release and any of the others."""
    target_dir = os.path.join(releases_dir, target)
    target_files = _pyfleet_files(target_dir)
    differs = set()
    for other in others:
        if other == target:
            continue
        other_dir = os.path.join(releases_dir, other)
        other_files = _pyfleet_files(other_dir)
        differs.update(target_files ^ other_files)
        for name in target_files & other_files:
            if not filecmp.cmp(os.path.join(target_dir, ".pyfleet", name), os.path.join(other_dir, ".pyfleet", name),
                               shallow=False):
                differs.add(name)
    return sorted(differs)


def service_state(module, proc, service, releases_dir, compare_to=None):
    """The service as it runs (RV(service) of release_facts); compare_to names the target release."""
    systemctl = module.get_bin_path("systemctl", required=True)
    rc, out, err = module.run_command([systemctl, "show", "--property=ActiveState,MainPID,NeedDaemonReload", service])
    if rc != 0:
        module.fail_json(msg="cannot read the state of %s: %s" % (service, (err or out).strip()))
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    try:
        main_pid = int(props.get("MainPID") or "0")
    except ValueError:
        main_pid = 0
    exe = ""
    serving = set()
    if main_pid:
        exe_link = os.path.join(proc.root, str(main_pid), "exe")
        exe = os.path.realpath(exe_link) if os.path.lexists(exe_link) else ""
        prefix = os.path.realpath(releases_dir) + os.sep
        for worker in proc.children(main_pid):
            cwd = proc.cwd(worker.pid)
            if cwd and cwd.startswith(prefix):
                serving.add(cwd[len(prefix):].split(os.sep, 1)[0])
    enabled = {}
    socket = (service[: -len(".service")] if service.endswith(".service") else service) + ".socket"
    for unit in (service, socket):
        rc, out, err = module.run_command([systemctl, "show", "--property=UnitFileState", "--value", unit])
        enabled[unit] = rc == 0 and out.strip() == "enabled"
    venvs = set()
    for release in serving:
        target = read_link(os.path.join(releases_dir, release, ".venv"))
        if target:
            venvs.add(os.path.normpath(os.path.join(releases_dir, release, target)))
    return dict(active_state=props.get("ActiveState", ""), main_pid=main_pid, exe=exe, serving=sorted(serving),
                venvs=sorted(venvs), enabled=all(enabled.values()),
                need_daemon_reload=props.get("NeedDaemonReload", "no") == "yes",
                differs=pyfleet_differences(releases_dir, compare_to, serving) if compare_to else [])
