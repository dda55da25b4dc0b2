#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: release_diff
short_description: Show what changed between two releases of the app on a host
version_added: 0.3.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Compares two releases of the application deployed on a host by the P(pyfleet.deploy.app#role) role, that
    is two directories C(<app_root>/releases/<id>/), and answers what changed between them.
  - "Packages: the Python distributions installed in each release's virtualenv (the C(.venv) link of the
    release), read from C(.venv/lib/python*/site-packages/*.dist-info/METADATA). Names are normalised as in
    PEP 503 (lower case, runs of C(-), C(_) and C(.) replaced by one C(-)), so C(Foo_Bar) and C(foo-bar) are
    the same package."
  - "Source: the files of the two release trees, compared by the SHA-256 of their content, with a unified diff
    of the text files that were changed, added or removed."
  - By default the module compares the release C(<app_root>/previous) points to with the release
    C(<app_root>/current) points to, that is the last rollout on this host.
  - The module never changes anything on the host; it always returns RV(ignore:changed=false) and runs the
    same in check mode.
extends_documentation_fragment:
  - pyfleet.deploy.attributes
  - pyfleet.deploy.attributes.info_module
options:
  app_root:
    description:
      - Root directory of the application on the host, the one holding C(releases/), C(current) and
        C(previous), for example C(/srv/shop).
    type: path
    required: true
  from_release:
    description:
      - Id of the older release, the name of its directory under C(<app_root>/releases/).
      - Defaults to the release the C(<app_root>/previous) link points to. The module fails if there is no such
        link, as on a host that has only been deployed once.
    type: str
  to_release:
    description:
      - Id of the newer release, the name of its directory under C(<app_root>/releases/).
      - Defaults to the release the C(<app_root>/current) link points to.
    type: str
  source:
    description:
      - Compare the source trees of the two releases as well as their packages.
      - With V(false), RV(source) is not returned and the source files are not read.
    type: bool
    default: true
  diff_lines:
    description:
      - Maximum number of lines of unified diff returned in RV(source.diff). A longer diff is cut and
        RV(source.diff_truncated) is V(true).
      - V(0) returns no diff text; the lists of changed, added and removed files are still returned.
    type: int
    default: 200
notes:
  - A release is given by its id only, never by a path; an id that is not the name of a directory under
    C(<app_root>/releases/) is an error whose message lists the releases present on the host.
  - The C(current) and C(previous) links may have absolute or relative targets; the id is the last component of
    the target, as in the P(pyfleet.deploy.app#role) and P(pyfleet.deploy.rollout#role) roles.
  - When both releases use the same virtualenv (their C(.venv) links resolve to the same directory, because they
    were built from the same lock file), the packages are not scanned and RV(packages.same_venv) is V(true).
  - A release without a virtualenv counts as having no packages, with a warning.
  - The source comparison leaves out C(.venv) and C(__pycache__) directories, C(*.pyc) files, the release's
    configuration directory C(.pyfleet/) (compared in RV(config)) and the top-level
    C(.release.json) and C(.sbom.cdx.json).
  - The configuration is compared by file name only, and the environment file by variable name only; no
    value of it, secrets included, is ever read into the result. Symbolic links are not followed; they are compared by their target and are not part of the
    diff. File modes and owners are not compared.
  - Files larger than 1 MiB, not valid UTF-8 or containing NUL bytes are not diffed; they are listed in
    RV(source.binary).
  - Only the Python standard library is used on the managed host.
seealso:
  - module: pyfleet.deploy.deploy_lock
    description: Take the rollout lock before switching releases.
  - module: pyfleet.deploy.http_check
    description: Check the application after a rollout.
"""

EXAMPLES = r"""
- name: Show what the last rollout changed on each host
  pyfleet.deploy.release_diff:
    app_root: /srv/shop
  register: last_rollout

- name: Print the summary
  ansible.builtin.debug:
    msg: "{{ last_rollout.summary }}"

- name: Compare two named releases, packages only
  pyfleet.deploy.release_diff:
    app_root: /srv/shop
    from_release: 3f2a9c1d07be
    to_release: 9b81e0d4c2aa
    source: false
  register: packages_diff

- name: List the package upgrades
  ansible.builtin.debug:
    msg: "{{ item.name }} {{ item.from }} -> {{ item.to }}"
  loop: "{{ packages_diff.packages.changed }}"

- name: What would switching back to a given release undo, with a longer diff
  pyfleet.deploy.release_diff:
    app_root: /srv/shop
    from_release: "{{ rollout_target_release }}"
    diff_lines: 1000
  register: rollback_preview

- name: Show the source diff
  ansible.builtin.debug:
    msg: "{{ rollback_preview.source.diff.splitlines() }}"
"""

RETURN = r"""
app_root:
  description: The application root.
  returned: always
  type: str
  sample: /srv/shop
from:
  description: The older release.
  returned: success
  type: dict
  contains:
    id:
      description: Release id.
      type: str
      sample: 3f2a9c1d07be
    path:
      description: Release directory.
      type: str
      sample: /srv/shop/releases/3f2a9c1d07be
    venv:
      description: Directory the release's C(.venv) link resolves to, or V(null) if the release has no virtualenv.
      type: str
      sample: /srv/shop/venvs/5d41402abc4b
    meta:
      description: The release's C(.release.json), or an empty dict if it is missing or unreadable.
      type: dict
      sample:
        id: 3f2a9c1d07be
        app: shop
        source_type: git
        source_revision: v1.4.0
        lock_hash: 5d41402abc4b
        python: 3.11.2
        deployed_at: "2026-01-13T17:02:11Z"
        deployed_by: bob
to:
  description: The newer release, with the same keys as RV(from).
  returned: success
  type: dict
  sample:
    id: 9b81e0d4c2aa
    path: /srv/shop/releases/9b81e0d4c2aa
    venv: /srv/shop/venvs/7d793037a076
    meta:
      id: 9b81e0d4c2aa
      app: shop
      source_type: git
      source_revision: v1.5.0
      lock_hash: 7d793037a076
      python: 3.11.2
      deployed_at: "2026-01-14T10:15:03Z"
      deployed_by: alice
same_release:
  description: Whether both sides are the same release, in which case nothing is compared.
  returned: success
  type: bool
  sample: false
packages:
  description: Differences between the Python distributions installed in the two virtualenvs.
  returned: success
  type: dict
  contains:
    same_venv:
      description: Whether both releases use the same virtualenv, in which case the lists are empty.
      type: bool
      sample: false
    added:
      description: Distributions only in the newer release, sorted by name.
      type: list
      elements: dict
      sample: [{"name": "itsdangerous", "version": "2.2.0"}]
    removed:
      description: Distributions only in the older release, sorted by name.
      type: list
      elements: dict
      sample: [{"name": "oldpkg", "version": "1.0"}]
    changed:
      description: Distributions whose version changed, sorted by name.
      type: list
      elements: dict
      sample: [{"name": "fastapi", "from": "0.110.0", "to": "0.111.0"}]
source:
  description: Differences between the two source trees.
  returned: success and O(source=true)
  type: dict
  contains:
    added:
      description: Paths, relative to the release directory, of the files only in the newer release, sorted.
      type: list
      elements: str
      sample: [app/new.py]
    removed:
      description: Paths of the files only in the older release, sorted.
      type: list
      elements: str
      sample: [app/gone.py]
    changed:
      description: Paths of the files whose content changed, sorted.
      type: list
      elements: str
      sample: [app/main.py]
    binary:
      description:
        - Paths of changed, added or removed files left out of RV(source.diff) because they are larger than
          1 MiB or are not text, sorted.
      type: list
      elements: str
      sample: [static/logo.png]
    diff:
      description:
        - Unified diff of the changed, added and removed text files, file after file in path order, with
          C(a/<path>) and C(b/<path>) labels, cut to O(diff_lines) lines.
        - Empty when O(diff_lines=0).
      type: str
      sample: |
        --- a/app/main.py
        +++ b/app/main.py
        @@ -1 +1 @@
        -VERSION = "1.4.0"
        +VERSION = "1.5.0"
    diff_truncated:
      description: Whether RV(source.diff) was cut to O(diff_lines) lines.
      type: bool
      sample: false
config:
  description: Differences between the two releases' configuration (C(.pyfleet/)), by name only.
  returned: success
  type: dict
  contains:
    added:
      description: Files only in the newer release's C(.pyfleet/), sorted.
      type: list
      elements: str
    removed:
      description: Files only in the older release's C(.pyfleet/), sorted.
      type: list
      elements: str
    changed:
      description: Files of C(.pyfleet/) whose content changed, sorted.
      type: list
      elements: str
      sample: [env, gunicorn.conf.py, systemd/demo.service]
    env:
      description: The environment file's variables that were added, removed or changed, by name only.
      type: dict
      sample: {added: [EXAMPLE_COLOR], removed: [], changed: [DEMO_SECRET]}
summary:
  description: One line saying what changed, or V(same release).
  returned: success
  type: str
  sample: >-
    3f2a9c1d07be -> 9b81e0d4c2aa: 2 packages changed, 1 added, 0 removed;
    3 source files changed, 1 added, 0 removed
"""

import difflib
import hashlib
import json
import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.pyfleet.deploy.plugins.module_utils.distributions import metadata_paths, normalize_name

MAX_DIFF_SIZE = 1024 * 1024
# Written by the app role into each release; not part of its source.
RELEASE_METADATA = (".release.json", ".sbom.cdx.json")
# The release's configuration (environment, server config, modules, units), compared apart from the source.
CONFIG_DIR = ".pyfleet"
_MAX_META = 64 * 1024
_MAX_HEADERS = 256 * 1024
_CHUNK = 64 * 1024


class ReleaseError(Exception):
    """A release cannot be found; the message is for the user."""


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


class AppRoot:
    """The releases of an application under ``app_root``."""

    def __init__(self, path):
        self.path = path
        self.releases = os.path.join(path, "releases")

    def ids(self):
        """Ids of the releases present, sorted; half-built C(.partial) directories are left out."""
        try:
            names = os.listdir(self.releases)
        except OSError:
            return []
        return sorted(
            name for name in names
            if not name.startswith(".") and not name.endswith(".partial")
            and os.path.isdir(os.path.join(self.releases, name))
        )

    def link_target(self, name):
        """Release id the link ``name`` (current, previous) points to, or None without a link."""
        link = os.path.join(self.path, name)
        try:
            target = os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if os.path.lexists(link):
                raise ReleaseError("%s is not a symbolic link to a release (%s)" % (link, to_native(exc)))
            return None
        return os.path.basename(os.path.normpath(target))

    def available(self):
        ids = self.ids()
        if not ids:
            return "there are no releases in %s" % self.releases
        marks = {}
        for link in ("previous", "current"):
            try:
                target = self.link_target(link)
            except ReleaseError:
                target = None
            if target:
                marks.setdefault(target, []).append(link)
        return "available releases: %s" % ", ".join(
            "%s (%s)" % (rid, ", ".join(marks[rid])) if rid in marks else rid for rid in ids
        )

    def release(self, option, given, link):
        """Resolve ``option`` (from_release, to_release) to a release id, defaulting to the ``link`` target."""
        if given is not None:
            rid = given
            if not rid or rid in (".", "..") or "/" in rid or "\0" in rid:
                raise ReleaseError("%s %r is not a release id; %s" % (option, rid, self.available()))
            if not os.path.isdir(os.path.join(self.releases, rid)):
                raise ReleaseError("%s: release %s does not exist in %s; %s"
                                   % (option, rid, self.releases, self.available()))
            return rid
        rid = self.link_target(link)
        if rid is None:
            raise ReleaseError("no %s release on this host (%s does not exist); name %s. %s"
                               % (link, os.path.join(self.path, link), option, self.available()))
        if rid in ("", ".", "..") or not os.path.isdir(os.path.join(self.releases, rid)):
            raise ReleaseError("%s points to release %s, which does not exist in %s; name %s. %s"
                               % (os.path.join(self.path, link), rid, self.releases, option, self.available()))
        return rid


def read_meta(path):
    """The parsed .release.json of a release, or {} when it is missing or unreadable."""
    try:
        with open(os.path.join(path, ".release.json"), "rb") as handle:
            data = handle.read(_MAX_META)
        meta = json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def venv_of(path):
    """Directory the release's .venv resolves to, or None."""
    link = os.path.join(path, ".venv")
    if not os.path.isdir(link):
        return None
    return os.path.realpath(link)


def _metadata_headers(path):
    """Name and Version headers of a METADATA file (only the header block is read)."""
    name = version = None
    read = 0
    with open(path, "rb") as handle:
        for raw in handle:
            read += len(raw)
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line.strip() or read > _MAX_HEADERS:
                break
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            if key == "name" and name is None:
                name = value.strip()
            elif key == "version" and version is None:
                version = value.strip()
    return name, version


def installed_packages(venv):
    """Map of normalised name -> version of the distributions in a virtualenv."""
    found = {}
    if venv is None:
        return found
    for metadata in metadata_paths(venv):
        try:
            name, version = _metadata_headers(metadata)
        except OSError:
            name = version = None
        if not name or version is None:
            # Fall back on the directory name, <name>-<version>.dist-info.
            stem = os.path.basename(os.path.dirname(metadata))[: -len(".dist-info")]
            dir_name, _sep, dir_version = stem.partition("-")
            name = name or dir_name
            version = version if version is not None else dir_version
        key = normalize_name(name)
        if key in found and found[key] != version:
            versions = set(found[key].split(", ")) | {version}
            found[key] = ", ".join(sorted(versions))
        else:
            found[key] = version
    return found


def compare_packages(old, new):
    return dict(
        same_venv=False,
        added=[dict(name=n, version=new[n]) for n in sorted(set(new) - set(old))],
        removed=[dict(name=n, version=old[n]) for n in sorted(set(old) - set(new))],
        changed=[dict(name=n, **{"from": old[n], "to": new[n]})
                 for n in sorted(set(old) & set(new)) if old[n] != new[n]],
    )


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root):
    """Map of relative path -> ("file", sha256) or ("link", target) for a release tree."""
    files = {}

    def fail(exc):
        raise exc

    for dirpath, dirnames, filenames in os.walk(root, onerror=fail):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        entries = []
        keep = []
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if name in (".venv", "__pycache__") or (not rel_dir and name == CONFIG_DIR):
                continue
            if os.path.islink(full):
                entries.append(name)  # not followed
            else:
                keep.append(name)
        dirnames[:] = keep
        entries.extend(filenames)
        for name in entries:
            if name.endswith(".pyc") or name == ".venv" or (not rel_dir and name in RELEASE_METADATA):
                continue
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                files[rel_dir + name] = ("link", os.readlink(full))
            elif stat.S_ISREG(info.st_mode):
                files[rel_dir + name] = ("file", _sha256(full))
    return files


def _env_lines(path):
    """The environment file's lines by variable name (NAME=...); the values are only compared, never returned."""
    found = {}
    try:
        with open(path, "rb") as handle:
            for line in handle:
                name, sep, _value = line.strip().partition(b"=")
                if sep and not name.startswith(b"#"):
                    found[name.decode("utf-8", "replace")] = hashlib.sha256(line.strip()).hexdigest()
    except FileNotFoundError:
        pass
    return found


def compare_config(old_root, new_root):
    """The .pyfleet/ files added, removed and changed, and the env file's variables, by name only."""
    old, new = ({} if not os.path.isdir(os.path.join(root, CONFIG_DIR)) else tree_files(os.path.join(root, CONFIG_DIR))
                for root in (old_root, new_root))
    old_env = _env_lines(os.path.join(old_root, CONFIG_DIR, "env"))
    new_env = _env_lines(os.path.join(new_root, CONFIG_DIR, "env"))
    return dict(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=sorted(p for p in set(old) & set(new) if old[p] != new[p]),
        env=dict(added=sorted(set(new_env) - set(old_env)), removed=sorted(set(old_env) - set(new_env)),
                 changed=sorted(n for n in set(old_env) & set(new_env) if old_env[n] != new_env[n])),
    )


def _text_lines(root, rel, entry):
    """Lines of a text file (keeping line ends), [] when absent, or None when it cannot be diffed."""
    if entry is None:
        return []
    if entry[0] != "file":
        return None
    path = os.path.join(root, rel)
    if os.path.getsize(path) > MAX_DIFF_SIZE:
        return None
    with open(path, "rb") as handle:
        data = handle.read(MAX_DIFF_SIZE + 1)
    if len(data) > MAX_DIFF_SIZE or b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(True)
    except UnicodeDecodeError:
        return None


def compare_sources(old_root, new_root, diff_lines):
    old = tree_files(old_root)
    new = tree_files(new_root)
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(p for p in set(old) & set(new) if old[p] != new[p])

    binary = []
    lines = []
    truncated = False
    for rel in sorted(added + removed + changed):
        old_entry, new_entry = old.get(rel), new.get(rel)
        if any(entry is not None and entry[0] == "link" for entry in (old_entry, new_entry)):
            continue  # symbolic links are listed, not diffed
        a_lines = _text_lines(old_root, rel, old_entry)
        b_lines = _text_lines(new_root, rel, new_entry)
        if a_lines is None or b_lines is None:
            binary.append(rel)
            continue
        if truncated or diff_lines == 0:
            continue
        for line in difflib.unified_diff(a_lines, b_lines, "a/" + rel, "b/" + rel):
            if line.endswith("\n"):
                lines.append(line[:-1])
            else:
                lines.append(line)
                lines.append("\\ No newline at end of file")
            if len(lines) > diff_lines:
                truncated = True
                break
    lines = lines[:diff_lines]
    return dict(
        added=added,
        removed=removed,
        changed=changed,
        binary=sorted(binary),
        diff="".join(line + "\n" for line in lines),
        diff_truncated=truncated,
    )


def summarize(from_id, to_id, packages, source, config=None):
    if packages["same_venv"]:
        text = "same virtualenv"
    else:
        text = "%s changed, %d added, %d removed" % (
            _plural(len(packages["changed"]), "package"), len(packages["added"]), len(packages["removed"]))
    if source is not None:
        text += "; %s changed, %d added, %d removed" % (
            _plural(len(source["changed"]), "source file"), len(source["added"]), len(source["removed"]))
    files = len(config["changed"]) + len(config["added"]) + len(config["removed"]) if config else 0
    if files:
        text += "; %s changed" % _plural(files, "config file")
    return "%s -> %s: %s" % (from_id, to_id, text)


def run_module(module):
    params = module.params
    app_root = params["app_root"]
    result = dict(changed=False, app_root=app_root)

    if params["diff_lines"] < 0:
        module.fail_json(msg="diff_lines must be 0 or more, not %d" % params["diff_lines"], **result)
    root = AppRoot(app_root)
    if not os.path.isdir(root.releases):
        module.fail_json(msg="%s has no releases directory %s; is app_root right?" % (app_root, root.releases),
                         **result)
    try:
        from_id = root.release("from_release", params["from_release"], "previous")
        to_id = root.release("to_release", params["to_release"], "current")
    except ReleaseError as exc:
        module.fail_json(msg=to_native(exc), **result)

    sides = []
    for rid in (from_id, to_id):
        path = os.path.join(root.releases, rid)
        sides.append(dict(id=rid, path=path, venv=venv_of(path), meta=read_meta(path)))
    old, new = sides
    result.update({"from": old, "to": new, "same_release": from_id == to_id})

    empty = dict(same_venv=True, added=[], removed=[], changed=[])
    if from_id == to_id:
        result["packages"] = empty
        if params["source"]:
            result["source"] = dict(added=[], removed=[], changed=[], binary=[], diff="", diff_truncated=False)
        result["config"] = dict(added=[], removed=[], changed=[], env=dict(added=[], removed=[], changed=[]))
        result["summary"] = "same release"
        return result

    try:
        if old["venv"] is not None and old["venv"] == new["venv"]:
            result["packages"] = empty
        else:
            for side in sides:
                if side["venv"] is None:
                    module.warn("release %s has no virtualenv at %s; it counts as having no packages"
                                % (side["id"], os.path.join(side["path"], ".venv")))
            result["packages"] = compare_packages(installed_packages(old["venv"]), installed_packages(new["venv"]))
        if params["source"]:
            result["source"] = compare_sources(old["path"], new["path"], params["diff_lines"])
        result["config"] = compare_config(old["path"], new["path"])
    except OSError as exc:
        module.fail_json(
            msg="cannot compare releases %s and %s: %s" % (from_id, to_id, to_native(exc)), **result)

    result["summary"] = summarize(from_id, to_id, result["packages"], result.get("source"), result["config"])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", required=True),
            from_release=dict(type="str"),
            to_release=dict(type="str"),
            source=dict(type="bool", default=True),
            diff_lines=dict(type="int", default=200),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
