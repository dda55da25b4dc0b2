#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: release_switch
short_description: Point an app's current link at a staged release and prune old releases
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Switches C(<root>/current) to C(releases/<release>) and C(<root>/previous) to the release
    C(current) pointed to before, each through a temporary link and C(rename(2)), so a reader
    sees the old or the new release and never a missing link.
  - Refuses a release that is not complete on the host, that is one without its C(.venv) link.
    Nothing is moved then.
  - Then prunes, whether or not it switched. Releases beyond the O(keep) newest are removed,
    never the current or the previous one, and so is any C(<id>.partial) directory a failed
    staging left. Virtualenvs (C(<root>/venvs/*)) that no kept release
    links to are removed too.
  - With O(units) (and, with O(unit_manifest), every unit the release carries), it then installs the release's systemd units, C(.pyfleet/systemd/<name>) in
    the release, as C(<units_dir>/<name>), each only where its bytes differ, written to a
    temporary file and renamed. The units are part of the release, so switching back to an
    earlier release restores its units too. A release without one of the units is refused
    before anything moves.
  - Reports what the switch changed for the reload that follows. It tells whether the
    virtualenv (that is, the lockfile) changes with the release, and which interpreter the
    release runs.
  - With O(service), it reloads systemd when it installed or removed a unit, or when systemd
    says a unit file changed on disk since it was loaded, and then reads the service as it runs
    (RV(service)), as M(pyfleet.deploy.release_facts) does, compared with O(release). The reload
    that follows decides from what runs, not from what this task moved.
  - One task does what would otherwise take about a dozen, which counts on every host of every
    rollout batch.
options:
  root:
    description:
      - The app's root directory, holding C(releases/), C(venvs/), C(current) and C(previous).
    type: path
    required: true
  release:
    description:
      - Id of the release to switch to, a directory name under C(<root>/releases).
    type: str
    required: true
  keep:
    description:
      - How many releases to keep, newest first by modification time. The current and the
        previous release are always kept, even beyond this number.
    type: int
    default: 5
  units:
    description:
      - File names of the systemd units the release carries in C(.pyfleet/systemd/), installed
        into O(units_dir) after the switch. Without O(service), the caller reloads systemd when
        RV(units_changed) or RV(units_removed) is not empty.
    type: list
    elements: str
    default: []
  units_dir:
    description:
      - Where the units are installed.
    type: path
    default: /etc/systemd/system
  unit_manifest:
    description:
      - A JSON file that records the names of the units this module installed for the app, such as
        C(<root>/.pyfleet-units.json).
      - When given, every unit the release carries in C(.pyfleet/systemd/) is installed, not only
        O(units) (which must still be there). A unit that the manifest names but the release does not
        carry (a process or timer the release dropped) is removed from O(units_dir), with its
        C(*.wants/) links, and the manifest is rewritten. Stopping what ran from such a unit is the
        caller's business (M(pyfleet.deploy.app_processes) does it).
    type: path
    version_added: 0.5.0
  service:
    description:
      - The app's systemd service (C(demo.service)). See RV(service).
    type: str
    version_added: 0.5.0
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is switched or removed and systemd is not reloaded; the module
        reports what it would do, and RV(service) is the service as it runs before the switch.
  diff_mode:
    support: none
notes:
  - The links are relative (C(releases/<id>)), so the app root can be moved or mounted
    elsewhere.
  - Releases are directories; a file or link in C(releases/) is left alone.
seealso:
  - module: pyfleet.deploy.gunicorn_reload
    description: Reload or restart the service once C(current) points at the new release.
  - module: pyfleet.deploy.release_facts
    description: Read what is staged and running before deciding to switch.
"""

EXAMPLES = r"""
- name: Switch current to the staged release, keeping five
  pyfleet.deploy.release_switch:
    root: /srv/demo
    release: "{{ app_release_id }}"
    keep: 5
  register: switch
  become: true

- name: Restart when the lockfile changed, HUP when only the code did
  ansible.builtin.debug:
    msg: "{{ 'restart' if switch.venv_changed else 'hup' if switch.switched else 'none' }}"

- name: Switch back to the release that served before
  pyfleet.deploy.release_switch:
    root: /srv/demo
    release: "{{ switch.previous }}"
  when: switch.previous | length > 0
  become: true
"""

RETURN = r"""
release:
  description: The release C(current) points to after the task.
  returned: always
  type: str
  sample: 20261202T040000-3f2a9c1b
previous:
  description: The release C(current) pointed to before the task, or an empty string on a
    first deploy.
  returned: always
  type: str
  sample: 20261201T120000-9b8e7d6c
switched:
  description: Whether C(current) moved. False when it already pointed to O(release).
  returned: always
  type: bool
venv_changed:
  description: Whether the release's virtualenv differs from the previous release's, or there
    was no previous release. A HUP keeps the interpreter and imported packages, so the
    service must restart when this is true.
  returned: always
  type: bool
active_venv:
  description: The virtualenv O(release) links to.
  returned: always
  type: str
  sample: /srv/demo/venvs/5f1c0e7a2b3d
active_python:
  description: The real path of the release's interpreter (C(<venv>/bin/python3) resolved), to
    compare with the running master's C(/proc/<pid>/exe).
  returned: always
  type: str
  sample: /usr/bin/python3.11
units_changed:
  description: The units that were written, because they differed or were missing.
  returned: always
  type: list
  elements: str
  sample: [demo.service]
units_removed:
  description: The units that O(unit_manifest) named and the release does not carry, removed.
  returned: always
  type: list
  elements: str
  sample: [demo-beat@.service]
  version_added: 0.5.0
daemon_reloaded:
  description: Whether systemd was reloaded (only with O(service)).
  returned: always
  type: bool
  version_added: 0.5.0
service:
  description:
    - The service as it runs after the switch, when O(service) is given. Its keys are those of
      M(pyfleet.deploy.release_facts)'s RV(pyfleet.deploy.release_facts#module:service), and
      its C(differs) compares O(release) with the releases the workers serve.
  returned: when O(service) is given
  type: dict
  sample:
    active_state: active
    main_pid: 4242
    exe: /usr/bin/python3.11
    serving: [20261201T120000-9b8e7d6c]
    venvs: [/srv/demo/venvs/5f1c0e7a2b3d]
    enabled: true
    need_daemon_reload: false
    differs: [env]
  version_added: 0.5.0
pruned_releases:
  description: Ids of the releases removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
pruned_venvs:
  description: Paths of the virtualenvs removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyfleet.deploy.plugins.module_utils.atomic import read_link, replace_link, write_file
from ansible_collections.pyfleet.deploy.plugins.module_utils.gunicorn_proc import ProcFS
from ansible_collections.pyfleet.deploy.plugins.module_utils.service_state import service_state

PARTIAL = ".partial"  # a release the app role is still staging (releases/<id>.partial)
PROC_ROOT = "/proc"


def _relink(root, name, release):
    """Point <root>/<name> at releases/<release> with a temporary link and rename(2)."""
    replace_link(os.path.join(root, name), os.path.join("releases", release))


def install_units(module, release_dir, names, units_dir):
    """Copy each unit of the release where its bytes differ; return the names written."""
    written = []
    for name in names:
        with open(os.path.join(release_dir, ".pyfleet", "systemd", name), "rb") as handle:
            wanted = handle.read()
        dest = os.path.join(units_dir, name)
        try:
            with open(dest, "rb") as handle:
                if handle.read() == wanted:
                    continue
        except OSError:
            pass
        written.append(name)
        if module.check_mode:
            continue
        write_file(dest, wanted, 0o644)
    return written


def _read_manifest(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return sorted(json.load(handle))
    except (OSError, ValueError, TypeError):
        return []


def remove_units(module, names, units_dir):
    """Remove units and every ``*.wants/`` link to them (or to an instance of a template unit)."""
    for name in names:
        stem, dot, suffix = name.rpartition(".")
        template = stem.endswith("@")
        for entry in os.listdir(units_dir):
            wants = os.path.join(units_dir, entry)
            if not (entry.endswith(".wants") and os.path.isdir(wants)):
                continue
            for link in os.listdir(wants):
                if link == name or (template and link.startswith(stem) and link.endswith(dot + suffix)):
                    if not module.check_mode:
                        os.unlink(os.path.join(wants, link))
        if os.path.lexists(os.path.join(units_dir, name)) and not module.check_mode:
            os.unlink(os.path.join(units_dir, name))


def _releases_by_age(releases_dir):
    found = []
    for name in os.listdir(releases_dir):
        path = os.path.join(releases_dir, name)
        if os.path.isdir(path) and not os.path.islink(path) and not name.endswith(PARTIAL):
            found.append((os.stat(path).st_mtime, name))
    return [name for _mtime, name in sorted(found, reverse=True)]


def plan_prune(root, keep, protected):
    """The releases and virtualenvs to remove: (release ids, venv paths).

    Releases still being staged (<id>.partial) count as none: at a switch, under the deploy lock,
    one is what a failed staging left, and it goes too.
    """
    releases_dir = os.path.join(root, "releases")
    ordered = _releases_by_age(releases_dir)
    doomed = [name for name in ordered[keep:] if name not in protected]
    doomed += sorted(name for name in os.listdir(releases_dir)
                     if name.endswith(PARTIAL) and os.path.isdir(os.path.join(releases_dir, name))
                     and not os.path.islink(os.path.join(releases_dir, name)))
    used = set()
    for name in ordered:
        if name in doomed:
            continue
        target = read_link(os.path.join(releases_dir, name, ".venv"))
        if target:
            used.add(os.path.normpath(os.path.join(releases_dir, name, target)))
    venvs_dir = os.path.join(root, "venvs")
    unused = []
    if os.path.isdir(venvs_dir):
        for name in sorted(os.listdir(venvs_dir)):
            path = os.path.join(venvs_dir, name)
            if os.path.isdir(path) and not os.path.islink(path) and os.path.normpath(path) not in used:
                unused.append(path)
    return doomed, unused


def _daemon_reload(module):
    systemctl = module.get_bin_path("systemctl", required=True)
    rc, out, err = module.run_command([systemctl, "daemon-reload"])
    if rc != 0:
        module.fail_json(msg="systemctl daemon-reload failed after the switch: %s" % (err or out).strip())


def read_service(module, releases_dir, release, units_touched):
    """Reload systemd when a unit changed, then read the service: (its state, whether systemd reloaded)."""
    service = module.params["service"]
    reloaded = False
    if units_touched and not module.check_mode:
        _daemon_reload(module)
        reloaded = True
    state = service_state(module, ProcFS(PROC_ROOT), service, releases_dir, release)
    if state["need_daemon_reload"] and not module.check_mode:
        _daemon_reload(module)
        reloaded, state["need_daemon_reload"] = True, False
    return state, reloaded


def run_module(module):
    root = module.params["root"]
    release = module.params["release"]
    keep = module.params["keep"]
    if keep < 1:
        module.fail_json(msg="keep must be at least 1 (got %d)" % keep)
    if not release or "/" in release or release in (".", ".."):
        module.fail_json(msg="release must be a directory name under %s/releases (got %r)" % (root, release))

    target_dir = os.path.join(root, "releases", release)
    target_venv = read_link(os.path.join(target_dir, ".venv"))
    if not os.path.isdir(target_dir) or target_venv is None:
        module.fail_json(
            msg="Release %s is not staged on this host (%s/.venv is missing); current was not moved."
            % (release, target_dir)
        )
    active_venv = os.path.normpath(os.path.join(target_dir, target_venv))
    missing = [name for name in module.params["units"]
               if not os.path.isfile(os.path.join(target_dir, ".pyfleet", "systemd", name))]
    if missing:
        module.fail_json(
            msg="Release %s does not carry its units (%s missing under %s/.pyfleet/systemd); it was staged by "
            "pyfleet.deploy before 0.5.0, which kept them outside the release. current was not moved."
            % (release, ", ".join(missing), target_dir)
        )

    current = read_link(os.path.join(root, "current"))
    previous = os.path.basename(current.rstrip("/")) if current else ""
    previous_venv = read_link(os.path.join(root, "releases", previous, ".venv")) if previous else None
    if previous_venv is not None:
        previous_venv = os.path.normpath(os.path.join(root, "releases", previous, previous_venv))
    switched = previous != release

    if switched and not module.check_mode:
        if previous:
            _relink(root, "previous", previous)
        _relink(root, "current", release)

    units = list(module.params["units"])
    manifest = module.params["unit_manifest"]
    removed = []
    if manifest:
        carried = os.path.join(target_dir, ".pyfleet", "systemd")
        units += sorted(name for name in os.listdir(carried)
                        if name not in units and os.path.isfile(os.path.join(carried, name)))
        removed = [name for name in _read_manifest(manifest) if name not in units]
    units_changed = install_units(module, target_dir, units, module.params["units_dir"])
    if manifest:
        remove_units(module, removed, module.params["units_dir"])
        if _read_manifest(manifest) != sorted(units) and not module.check_mode:
            write_file(manifest, (json.dumps(sorted(units)) + "\n").encode(), 0o644)

    protected = {release, previous} if switched else {release, os.path.basename(read_link(os.path.join(root, "previous")) or "")}
    doomed, unused = plan_prune(root, keep, protected)
    if not module.check_mode:
        for name in doomed:
            shutil.rmtree(os.path.join(root, "releases", name))
        for path in unused:
            shutil.rmtree(path)

    extra = {}
    reloaded = False
    if module.params["service"]:
        extra["service"], reloaded = read_service(module, os.path.join(root, "releases"), release,
                                                  bool(units_changed or removed))
    module.exit_json(
        changed=bool(switched or units_changed or removed or doomed or unused or reloaded),
        daemon_reloaded=reloaded,
        release=release,
        previous=previous,
        switched=switched,
        venv_changed=previous_venv is None or previous_venv != active_venv,
        active_venv=active_venv,
        active_python=os.path.realpath(os.path.join(active_venv, "bin", "python3")),
        units_changed=units_changed,
        units_removed=removed,
        pruned_releases=doomed,
        pruned_venvs=unused,
        **extra
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            release=dict(type="str", required=True),
            keep=dict(type="int", default=5),
            units=dict(type="list", elements="str", default=[]),
            units_dir=dict(type="path", default="/etc/systemd/system"),
            unit_manifest=dict(type="path"),
            service=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
