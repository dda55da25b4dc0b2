#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: wheelhouse
short_description: Gather the wheels of a hash-pinned lockfile for another host's Python and platform
version_added: 0.4.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Downloads, on the machine it runs on (normally the controller, with C(delegate_to=localhost)), every wheel a
    lockfile needs on a B(target) host, so that the target can build its virtualenv with
    C(pip install --no-index --find-links <dir>) and never reach a package index.
  - The target is described by O(target), as the P(pyfleet.deploy.app#role) role's C(wheel_target.py) script prints
    it on the host. Requirements whose environment markers do not hold on the target (for example
    C(; python_version < "3.11") for a Python 3.13 host) are left out; the others are downloaded with their markers
    removed. Markers are evaluated against the target, not against the controller, which C(pip download) cannot do
    by itself.
  - Only wheels are accepted (C(--only-binary=:all:)), for the target's interpreter, ABI and every manylinux tag its
    C libraries accept. Every file is checked against the lockfile's C(--hash) values.
  - The result is cached in a directory named after the lockfile's SHA-256 and the target, under O(cache_dir). A
    complete directory (it carries a C(.complete) marker, written last) is reused without contacting the index, so
    a rollout over many hosts of the same kind downloads once.
options:
  requirements:
    description:
      - Lockfile on the machine the module runs on, a C(requirements.txt) in which every requirement carries
        C(--hash).
    type: path
    required: true
  target:
    description:
      - The target host's interpreter and platform.
    type: dict
    required: true
    suboptions:
      python_version:
        description: Major and minor version of the target's Python, such as C(3.13).
        type: str
        required: true
      implementation:
        description: Wheel tag of the implementation, C(cp) for CPython or C(pp) for PyPy.
        type: str
        default: cp
      abi:
        description: ABI tag of the interpreter, such as C(cp313).
        type: str
        required: true
      platforms:
        description: Platform tags the target accepts, most specific first, such as C(manylinux_2_41_x86_64).
        type: list
        elements: str
        required: true
      environment:
        description: The target's PEP 508 marker environment (C(python_version), C(sys_platform), ...).
        type: dict
        required: true
  cache_dir:
    description:
      - Directory under which the wheel directories are kept. It is created if needed.
    type: path
    required: true
  python:
    description:
      - Interpreter that runs C(pip download). Its pip configuration (index URL, trusted certificates, proxy)
        applies.
      - Defaults to the interpreter the module runs under.
    type: path
  pip_args:
    description:
      - Extra arguments for C(pip download), such as C(--index-url) of a mirror.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is downloaded; the module reports whether the wheels are already cached.
  diff_mode:
    support: none
notes:
  - Needs C(pip) and C(packaging) in O(python)'s environment on the machine the module runs on; both come with
    C(ansible-core)'s own environment.
  - A package that publishes no wheel for the target (only a source distribution) fails with its name. Build the
    wheel once for the target's platform, put it in a directory and pass C(--find-links) in O(pip_args).
seealso:
  - module: pyfleet.deploy.release_diff
    description: Compare the packages of two releases on a host.
  - name: pip download
    description: The options that select wheels for another interpreter and platform.
    link: https://pip.pypa.io/en/stable/cli/pip_download/
"""

EXAMPLES = r"""
- name: Describe the host's Python
  ansible.builtin.script:
    cmd: wheel_target.py
    executable: /usr/bin/python3
  register: host_python
  changed_when: false

- name: Gather the wheels of the lockfile for that host on the controller
  pyfleet.deploy.wheelhouse:
    requirements: "{{ playbook_dir }}/requirements.txt"
    target: "{{ host_python.stdout | from_json }}"
    cache_dir: "{{ lookup('ansible.builtin.env', 'HOME') }}/.cache/pyfleet/wheelhouse"
  delegate_to: localhost
  become: false
  register: wheels

- name: Ship them
  ansible.builtin.copy:
    src: "{{ wheels.path }}/"
    dest: /srv/shop/wheelhouse/
    mode: "0644"
"""

RETURN = r"""
path:
  description: Directory holding the wheels (and the C(.complete) marker).
  returned: always
  type: str
  sample: /home/deploy/.cache/pyfleet/wheelhouse/3f2a9c1d07be51aa/cp313-cp313-x86_64-glibc2.41
archive:
  description:
    - An uncompressed tar of the wheels in RV(path) (they are compressed already), so that a host receives them in
      one transfer, for example with M(pyfleet.deploy.files) (an entry with O(pyfleet.deploy.files#module:files[].state=unpacked))
      or M(ansible.builtin.unarchive). Made once, with the download.
    - Not made in check mode.
  returned: always
  type: str
  sample: /home/deploy/.cache/pyfleet/wheelhouse/3f2a9c1d07be51aa/cp313-cp313-x86_64-glibc2.41/wheels.tar
wheels:
  description: File names of the wheels in RV(path), sorted. Empty in check mode when nothing is cached.
  returned: always
  type: list
  elements: str
  sample: [anyio-4.16.0-py3-none-any.whl, pydantic_core-2.50.4-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl]
cached:
  description: Whether the wheels were already in the cache, so nothing was downloaded.
  returned: always
  type: bool
skipped_requirements:
  description: Requirements left out because their markers do not hold on the target.
  returned: always
  type: list
  elements: str
  sample: ['exceptiongroup==1.3.0 ; python_version < "3.11"']
"""

import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.pyfleet.deploy.plugins.module_utils.requirements import logical_lines, split_requirement

try:
    from packaging.markers import InvalidMarker, Marker
except ImportError:  # pragma: no cover - packaging ships with ansible-core
    Marker = None
    InvalidMarker = ValueError

COMPLETE = ".complete"
ARCHIVE = "wheels.tar"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def for_target(text, environment):
    """The lockfile ``text`` reduced to what ``environment`` needs.

    Returns ``(lines, skipped)``: requirement lines without markers (hashes
    kept) whose markers hold, global option lines unchanged, and the
    requirements left out.
    """
    if Marker is None:  # pragma: no cover
        raise RuntimeError("the packaging library is needed to evaluate environment markers")
    lines, skipped = [], []
    for line in logical_lines(text):
        if line.startswith("-"):
            lines.append(line)
            continue
        requirement, marker, options = split_requirement(line)
        if marker is not None:
            try:
                holds = Marker(marker).evaluate(dict(environment))
            except InvalidMarker as exc:
                raise ValueError("invalid marker in %r: %s" % (requirement, exc))
            if not holds:
                skipped.append("%s ; %s" % (requirement, marker))
                continue
        lines.append(" ".join(part for part in (requirement, options) if part))
    return lines, skipped


def target_key(target):
    """A directory name for the target, such as ``cp313-cp313-manylinux_2_41_x86_64``."""
    platform = target["platforms"][0] if target["platforms"] else "any"
    key = "%s%s-%s-%s" % (target["implementation"], target["python_version"].replace(".", ""), target["abi"], platform)
    return _SAFE.sub("_", key)


def download_command(python, requirements, dest, target, pip_args):
    """The ``pip download`` argv for ``target``."""
    argv = [python, "-m", "pip", "download", "--no-input", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:", "--require-hashes",
            "--python-version", target["python_version"],
            "--implementation", target["implementation"],
            "--abi", target["abi"]]
    for platform in target["platforms"]:
        argv += ["--platform", platform]
    return argv + ["--dest", dest, "-r", requirements] + list(pip_args)


def _wheels(path):
    return sorted(name for name in os.listdir(path) if name.endswith(".whl"))


def write_archive(path):
    """Tar the wheels of ``path`` into ``path/wheels.tar``, atomically, unless it is there."""
    archive = os.path.join(path, ARCHIVE)
    if os.path.exists(archive):
        return False
    handle, partial = tempfile.mkstemp(prefix=".wheels-", suffix=".tar", dir=path)
    os.close(handle)
    try:
        with tarfile.open(partial, "w") as tar:
            for name in _wheels(path):
                tar.add(os.path.join(path, name), arcname=name)
        os.rename(partial, archive)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return True


def _missing_wheel(output):
    found = re.search(r"(?:No matching distribution found for|Could not find a version that satisfies the requirement) (\S+)", output)
    return found.group(1) if found else None


def run_module(module):
    params = module.params
    target = params["target"]
    if not target["platforms"]:
        module.fail_json(msg="target.platforms must name at least one platform tag")
    try:
        with open(params["requirements"], "rb") as handle:
            data = handle.read()
    except OSError as exc:
        module.fail_json(msg="cannot read the lockfile %s: %s" % (params["requirements"], exc))
    lock_hash = hashlib.sha256(data).hexdigest()
    path = os.path.join(params["cache_dir"], lock_hash[:16], target_key(target))
    result = dict(changed=False, path=path, archive=os.path.join(path, ARCHIVE), wheels=[], cached=False,
                  skipped_requirements=[])
    try:
        lines, result["skipped_requirements"] = for_target(data.decode("utf-8"), target["environment"])
    except (ValueError, UnicodeDecodeError) as exc:
        module.fail_json(msg="cannot read the lockfile %s: %s" % (params["requirements"], exc), **result)

    if os.path.exists(os.path.join(path, COMPLETE)):
        result.update(cached=True, wheels=_wheels(path))
        if not module.check_mode:
            # A cache from before the archive existed gets one now.
            result["changed"] = write_archive(path)
        return result
    result["changed"] = True
    if module.check_mode:
        return result

    os.makedirs(params["cache_dir"], exist_ok=True)
    work = tempfile.mkdtemp(prefix=".wheelhouse-", dir=params["cache_dir"])
    try:
        lockfile = os.path.join(work, "requirements.txt")
        with open(lockfile, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        wheels = os.path.join(work, "wheels")
        argv = download_command(params["python"] or sys.executable, lockfile, wheels, target, params["pip_args"])
        rc, out, err = module.run_command(argv)
        if rc != 0:
            missing = _missing_wheel(err + out)
            hint = (
                "%s has no wheel for %s (Python %s, %s); build one for that platform and add its directory "
                "with --find-links" % (missing, target_key(target), target["python_version"], target["platforms"][0])
                if missing else "pip download failed"
            )
            module.fail_json(msg="%s: %s" % (hint, (err or out).strip()[-2000:]), cmd=argv, rc=rc, **result)
        write_archive(wheels)
        with open(os.path.join(wheels, COMPLETE), "w", encoding="utf-8") as handle:
            handle.write(lock_hash + "\n")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):  # an interrupted earlier run left it without the marker
            shutil.rmtree(path)
        os.rename(wheels, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["wheels"] = _wheels(path)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            requirements=dict(type="path", required=True),
            target=dict(
                type="dict",
                required=True,
                options=dict(
                    python_version=dict(type="str", required=True),
                    implementation=dict(type="str", default="cp"),
                    abi=dict(type="str", required=True),
                    platforms=dict(type="list", elements="str", required=True),
                    environment=dict(type="dict", required=True),
                ),
            ),
            cache_dir=dict(type="path", required=True),
            python=dict(type="path"),
            pip_args=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    if Marker is None:  # pragma: no cover
        module.fail_json(msg=missing_required_lib("packaging"))
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
