#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: release_facts
short_description: Read what an app host has staged and what it actually runs
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Reads, in one task, the state a rollout decides from.
  - For the release, it reads whether the release and its virtualenv are staged and complete,
    whether the virtualenv has its SBOM, and where C(current) points.
  - For the interpreter, it reads the version of the one that builds virtualenvs, and whether
    that interpreter can build them.
  - For the layout, it reads whether every directory has its owner, group and mode, and whether
    the app user and group exist.
  - With O(service), it also reads what runs, that is the unit's state, its main process, the
    interpreter that process runs, the releases its workers serve (their working
    directories), and whether the service and its socket start at boot.
  - With O(service) and O(release), it also lists the files of the release's C(.pyfleet/)
    directory (server config, environment, server modules and units) that differ from those of
    the releases the workers serve, so that the caller can tell a HUP from a restart.
  - A rollout that trusts only what it changed in this run misses a host where C(current) was
    moved but the workers were never reloaded. This module reports what the host actually runs.
options:
  root:
    description:
      - The app's root directory, holding C(releases/), C(venvs/) and C(current).
    type: path
    required: true
  release:
    description:
      - Id of the release to look for under C(<root>/releases).
    type: str
  venv:
    description:
      - The virtualenv the release's lockfile needs. A complete one holds C(.pyfleet-complete).
    type: path
  python:
    description:
      - The interpreter that builds the virtualenvs. Its version is returned as RV(python_version).
    type: path
  service:
    description:
      - The app's systemd service. Its state and worker generation are returned as RV(service).
    type: str
  user:
    description:
      - The app's system user; RV(layout_problems) says when it does not exist.
    type: str
  group:
    description:
      - The app's system group; RV(layout_problems) says when it does not exist.
    type: str
  layout:
    description:
      - Directories that must exist with the given owner, group and octal mode.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      owner:
        description: Its owner's name.
        type: str
        default: root
      group:
        description: Its group's name.
        type: str
        default: root
      mode:
        description: Its mode, as an octal string such as V(0750).
        type: str
        default: "0755"
extends_documentation_fragment:
  - pyfleet.deploy.attributes
  - pyfleet.deploy.attributes.info_module
attributes:
  facts:
    description: Returns an C(ansible_facts) dictionary that updates the host's facts.
    support: full
seealso:
  - module: pyfleet.deploy.release_switch
    description: Switch C(current) once the release is staged.
  - module: pyfleet.deploy.gunicorn_reload
    description: Swap the worker generation and check it serves the release.
"""

EXAMPLES = r"""
- name: Read what the host has staged and runs
  pyfleet.deploy.release_facts:
    root: /srv/demo
    release: "{{ app_release_id }}"
    venv: /srv/demo/venvs/5f1c0e7a2b3d
    python: /usr/bin/python3
    service: demo.service
  register: observed
  become: true

- name: Reload a host whose workers serve another release than current
  ansible.builtin.debug:
    msg: the workers still serve {{ observed.service.serving | join(', ') }}
  when: observed.service.serving != [observed.current]
"""

RETURN = r"""
current:
  description: The release C(current) points to, or an empty string.
  returned: always
  type: str
  sample: 20261202T040000-3f2a9c1b
previous:
  description: The release C(previous) points to (the one C(current) named before the last
    switch), or an empty string.
  returned: always
  type: str
  sample: 20261201T120000-9b8e7d6c
  version_added: 0.5.0
release_staged:
  description: Whether C(<root>/releases/<release>/.release.json) exists; the release is staged
    and complete (it is written last, before the release is moved into place).
  returned: always
  type: bool
release_config:
  description: The digest of the rendered configuration recorded in the release's
    C(.release.json) (its C(config) key), or V(null) when the release is not staged.
  returned: always
  type: str
  sample: 9c1f0a7e
release_venv:
  description: The target of the release's C(.venv) link, or V(null).
  returned: always
  type: str
venv_complete:
  description: Whether O(venv) holds C(.pyfleet-complete), which is written after its packages.
  returned: always
  type: bool
venv_sbom:
  description: Whether O(venv) holds its CycloneDX SBOM, C(.sbom.cdx.json).
  returned: always
  type: bool
ansible_facts:
  description:
    - The CPUs this host lets the module run on, as C(processor_nproc) (the fact of that name
      M(ansible.builtin.setup) gathers), so that a play that does not gather facts can still size
      a worker pool from it.
  returned: always
  type: dict
  contains:
    processor_nproc:
      description: The number of CPUs in the module's affinity mask.
      type: int
      sample: 2
python_version:
  description: The version of O(python), or an empty string without O(python).
  returned: always
  type: str
  sample: 3.11.2
python_venv:
  description: Whether O(python) has C(ensurepip), without which it cannot build a virtualenv
    (on Debian, the C(python3-venv) package).
  returned: always
  type: bool
layout_problems:
  description: One sentence per directory, user or group that differs from O(layout),
    O(user) and O(group). Empty when all match.
  returned: always
  type: list
  elements: str
migrations:
  description:
    - What each release under C(<root>/releases) recorded of the database after its C(app_migrate)
      ran (the C(migrations) key of its C(.release.json)), oldest first.
    - The rollout writes it on every app server once C(app_migrate) succeeded; a release
      that never migrated, or ran without C(app_migrate_applied), has no entry.
  returned: always
  type: list
  elements: dict
  contains:
    release:
      description: The release id.
      type: str
    at:
      description: When the migration ran, in seconds since the epoch.
      type: float
    applied:
      description: The migrations the database had then, one per line of C(app_migrate_applied)'s output.
      type: list
      elements: str
  sample: [{release: 3f2a9c1b04d2-9c1f0a7e, at: 1796319019.4, applied: [0001_visits.sql]}]
service:
  description: The service as it runs, when O(service) is given.
  returned: when O(service) is given
  type: dict
  contains:
    active_state:
      description: systemd's C(ActiveState).
      type: str
      sample: active
    main_pid:
      description: The main process, 0 when none.
      type: int
    exe:
      description: Real path of the main process's interpreter, or an empty string.
      type: str
      sample: /usr/bin/python3.11
    serving:
      description: Sorted ids of the releases the main process's workers run from (their
        working directories under C(<root>/releases)).
      type: list
      elements: str
    enabled:
      description: Whether the service and its socket (the unit of the same name ending in
        C(.socket)) are both enabled, that is started at boot.
      type: bool
    venvs:
      description: Sorted virtualenvs the releases in RV(service.serving) link to. A HUP keeps
        the master's packages, so a host whose workers run another virtualenv than the target
        release's needs a restart.
      type: list
      elements: str
    need_daemon_reload:
      description: Whether systemd says a unit file changed on disk since it was loaded.
      type: bool
    differs:
      description: Sorted paths, relative to the release's C(.pyfleet/) directory, of the files
        that differ (by content, or because one side lacks them) between O(release) and any
        release in RV(service.serving). Empty without O(release) or when nothing differs.
      type: list
      elements: str
      sample: [env, gunicorn.conf.py]
"""

import grp
import json
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyfleet.deploy.plugins.module_utils.atomic import read_link
from ansible_collections.pyfleet.deploy.plugins.module_utils.gunicorn_proc import ProcFS
from ansible_collections.pyfleet.deploy.plugins.module_utils.service_state import service_state

PROC_ROOT = "/proc"

_PYTHON_PROBE = (
    "import platform, importlib.util; "
    "print(platform.python_version()); "
    "print(importlib.util.find_spec('ensurepip') is not None)"
)


def layout_problems(layout, user, group):
    problems = []
    for name, lookup, kind in ((user, pwd.getpwnam, "user"), (group, grp.getgrnam, "group")):
        if name:
            try:
                lookup(name)
            except KeyError:
                problems.append("the %s %s does not exist" % (kind, name))
    for entry in layout:
        path = entry["path"]
        try:
            info = os.lstat(path)
        except OSError:
            problems.append("%s is missing" % path)
            continue
        if not stat.S_ISDIR(info.st_mode):
            problems.append("%s is not a directory" % path)
            continue
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = str(info.st_uid)
        try:
            group_name = grp.getgrgid(info.st_gid).gr_name
        except KeyError:
            group_name = str(info.st_gid)
        mode = "%04o" % stat.S_IMODE(info.st_mode)
        want = (entry["owner"], entry["group"], "%04o" % int(entry["mode"], 8))
        if (owner, group_name, mode) != want:
            problems.append("%s is %s:%s %s, not %s:%s %s" % ((path, owner, group_name, mode) + want))
    return problems


def _release_config(release_dir):
    try:
        with open(os.path.join(release_dir, ".release.json"), encoding="utf-8") as handle:
            return json.load(handle).get("config")
    except (OSError, ValueError, AttributeError):
        return None


def migration_records(releases_dir):
    """The ``migrations`` record of every release's .release.json, oldest first."""
    records = []
    try:
        names = os.listdir(releases_dir)
    except OSError:
        return records
    for name in names:
        try:
            with open(os.path.join(releases_dir, name, ".release.json"), encoding="utf-8") as handle:
                record = json.load(handle).get("migrations")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(record, dict) and isinstance(record.get("applied"), list):
            records.append(dict(release=name, at=float(record.get("at") or 0), applied=[str(x) for x in record["applied"]]))
    return sorted(records, key=lambda record: (record["at"], record["release"]))


def run_module(module, proc):
    params = module.params
    root = params["root"]
    releases_dir = os.path.join(root, "releases")
    current = read_link(os.path.join(root, "current"))
    previous = read_link(os.path.join(root, "previous"))
    result = dict(
        changed=False,
        current=os.path.basename(current.rstrip("/")) if current else "",
        previous=os.path.basename(previous.rstrip("/")) if previous else "",
        release_staged=False,
        release_venv=None,
        release_config=None,
        venv_complete=False,
        venv_sbom=False,
        python_version="",
        python_venv=False,
        layout_problems=layout_problems(params["layout"], params["user"], params["group"]),
        migrations=migration_records(releases_dir),
        ansible_facts=dict(processor_nproc=len(os.sched_getaffinity(0))),
    )
    if params["release"]:
        release_dir = os.path.join(releases_dir, params["release"])
        result["release_staged"] = os.path.isfile(os.path.join(release_dir, ".release.json"))
        result["release_venv"] = read_link(os.path.join(release_dir, ".venv"))
        result["release_config"] = _release_config(release_dir) if result["release_staged"] else None
    if params["venv"]:
        result["venv_complete"] = os.path.isfile(os.path.join(params["venv"], ".pyfleet-complete"))
        result["venv_sbom"] = os.path.isfile(os.path.join(params["venv"], ".sbom.cdx.json"))
    if params["python"]:
        if not os.access(params["python"], os.X_OK):
            module.fail_json(msg="python %s is not an executable on this host" % params["python"])
        rc, out, err = module.run_command([params["python"], "-c", _PYTHON_PROBE])
        if rc != 0:
            module.fail_json(msg="%s cannot run: %s" % (params["python"], (err or out).strip()), rc=rc)
        lines = out.split()
        result["python_version"] = lines[0] if lines else ""
        result["python_venv"] = len(lines) > 1 and lines[1] == "True"
    if params["service"]:
        result["service"] = service_state(module, proc, params["service"], releases_dir, params["release"])
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            release=dict(type="str"),
            venv=dict(type="path"),
            python=dict(type="path"),
            service=dict(type="str"),
            user=dict(type="str"),
            group=dict(type="str"),
            layout=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    path=dict(type="path", required=True),
                    owner=dict(type="str", default="root"),
                    group=dict(type="str", default="root"),
                    mode=dict(type="str", default="0755"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    run_module(module, ProcFS(PROC_ROOT))


if __name__ == "__main__":
    main()
