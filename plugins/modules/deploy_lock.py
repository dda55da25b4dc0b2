#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: Take or release a rollout lock on a host
version_added: 0.2.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Takes or releases a lock file that keeps two rollouts from deploying to the same host at the
    same time.
  - The lock file is created atomically (C(O_CREAT|O_EXCL), mode C(0600)) and holds a JSON
    document naming its owner, that is the id of the rollout holding it, with free information
    such as the user, controller and release, so that a refused rollout can tell who holds it.
  - Taking a lock the same rollout already holds succeeds without a change, so a rollout can be
    re-run (for example after a failure) without breaking its own lock.
  - A lock held by another rollout is only replaced or removed with O(force=true), which is meant
    for breaking a stale lock left behind by an interrupted rollout.
options:
  path:
    description:
      - Path of the lock file on the host.
      - Its parent directory must exist; the module does not create it.
    type: path
    required: true
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Unique id of the rollout, for example a timestamp and the controller's user, or the id of
        a CI job. Every task of one rollout must use the same value.
      - Required when O(state=present), and when O(state=absent) unless O(force=true).
    type: str
  info:
    description:
      - Free information stored in the lock file with the owner, shown to a rollout that is
        refused the lock.
      - The keys C(user), C(controller), C(release) and C(started) are used in the error message.
      - Only written when the lock is created or broken; taking a lock the rollout already holds
        does not update it.
    type: dict
    default: {}
  force:
    description:
      - With O(state=present), replace a lock held by another rollout (or an unreadable lock
        file) by one owned by O(owner). The previous holder is returned as RV(broken).
      - With O(state=absent), remove the lock even if another rollout holds it.
      - Only use it for a lock you know to be stale. Two rollouts that both break the same lock at
        the same time both believe they hold it.
    type: bool
    default: false
  hint:
    description:
      - Sentence appended to the error message when another rollout holds the lock, telling the
        operator how to break a stale lock with the playbook at hand.
    type: str
    default: If it is stale, break it with force=true.
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the lock file is neither created, replaced nor removed; the module reads it
        and reports whether it would change, or fails as the real run would.
  diff_mode:
    support: none
notes:
  - The lock is advisory; it only keeps out rollouts that use this module with the same O(path).
  - The lock file is a regular file, not a C(flock) lock, so it survives the end of the play, a
    lost SSH connection or a reboot. Release it explicitly at the end of the rollout, or break it
    with O(force=true).
  - An unreadable or corrupt lock file counts as held by an unknown rollout.
  - A forced replacement writes a temporary file in the same directory and renames it over the
    lock, so the lock file is never missing or half-written.
seealso:
  - module: pyfleet.deploy.gunicorn_reload
    description: Reload the application once the lock is held.
  - module: pyfleet.deploy.http_check
    description: Check the application before releasing the lock.
"""

EXAMPLES = r"""
- name: Generate a rollout id once per run, on the controller
  ansible.builtin.set_fact:
    rollout_id: "{{ now(utc=true).strftime('%Y%m%dT%H%M%SZ') }}-{{ lookup('ansible.builtin.env', 'USER') }}"
  run_once: true
  delegate_to: localhost

- name: Take the rollout lock
  pyfleet.deploy.deploy_lock:
    path: /srv/demo/.rollout.lock
    owner: "{{ rollout_id }}"
    info:
      user: "{{ lookup('ansible.builtin.env', 'USER') }}"
      controller: "{{ lookup('ansible.builtin.pipe', 'hostname') }}"
      release: "{{ release_id }}"
      started: "{{ now(utc=true).isoformat() }}"
    force: "{{ rollout_break_lock | default(false) | bool }}"
    hint: If it is stale, run again with -e rollout_break_lock=true
  become: true

- name: Release the rollout lock at the end of the rollout
  pyfleet.deploy.deploy_lock:
    path: /srv/demo/.rollout.lock
    owner: "{{ rollout_id }}"
    state: absent
  become: true

- name: Remove a stale lock whoever holds it
  pyfleet.deploy.deploy_lock:
    path: /srv/demo/.rollout.lock
    state: absent
    force: true
  become: true
  register: unlock

- name: Say whose lock was removed
  ansible.builtin.debug:
    msg: "removed the lock of rollout {{ unlock.broken.owner | default('unknown') }}"
  when: unlock.broken
"""

RETURN = r"""
path:
  description: The lock file.
  returned: always
  type: str
  sample: /srv/demo/.rollout.lock
holder:
  description:
    - The lock record after the task (in check mode, the one the task would write), or V(null)
      when the lock is not held afterwards.
    - When the task fails because another rollout holds the lock, that rollout's record. For an
      unreadable or corrupt lock file, its C(owner) is V(null) and C(error) says what is wrong.
  returned: always
  type: dict
  sample:
    owner: 20260114T101500Z-alice
    info:
      user: alice
      controller: ctl1
      release: 9b81e0d4c2aa
      started: "2026-01-14T10:15:00+00:00"
    created: "2026-01-14T10:15:03Z"
    pid: 41873
broken:
  description: The record of another rollout's lock that O(force=true) replaced or removed, or V(null).
  returned: always
  type: dict
  sample:
    owner: 20260113T170210Z-bob
    info:
      user: bob
      controller: ctl2
      release: 3f2a9c1d07be
    created: "2026-01-13T17:02:11Z"
    pid: 30211
"""

import datetime
import errno
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native

_MAX_READ = 64 * 1024


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_record(owner, info):
    return {"owner": owner, "info": dict(info or {}), "created": _now_iso(), "pid": os.getpid()}


def _encode(record):
    return (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


class LockFile:
    """Access to the lock file at ``path``."""

    def __init__(self, path):
        self.path = path
        self.parent = os.path.dirname(os.path.abspath(path))

    def read(self):
        """Return the holder record, or None when there is no lock file.

        An unreadable or corrupt file gives ``{"owner": None, "error": ...}``.
        """
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(_MAX_READ)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            return {"owner": None, "error": "cannot read the lock file: %s" % to_native(exc)}
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            return {"owner": None, "error": "corrupt lock file: %s" % to_native(exc)}
        if not isinstance(record, dict):
            return {"owner": None, "error": "corrupt lock file: not a JSON object"}
        if not isinstance(record.get("owner"), str) or not record["owner"]:
            record = dict(record)
            record["owner"] = None
            record.setdefault("error", "corrupt lock file: no owner")
        return record

    def create(self, record):
        """Create the lock file atomically. Return False if it already exists."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(_encode(record))
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            raise
        return True

    def replace(self, record):
        """Replace the lock file atomically (temporary file + rename)."""
        fd, tmp = tempfile.mkstemp(dir=self.parent, prefix="." + os.path.basename(self.path) + ".")
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(_encode(record))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def remove(self):
        """Remove the lock file. Return False if it was already gone."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        return True


def describe(holder):
    """Human description of a holder record, for error messages."""
    if holder is None:
        return "nobody"
    if not holder.get("owner"):
        return "an unknown rollout (%s)" % holder.get("error", "no owner in the lock file")
    info = holder.get("info") if isinstance(holder.get("info"), dict) else {}
    parts = []
    user, controller = info.get("user"), info.get("controller")
    if user and controller:
        parts.append("user %s on %s" % (user, controller))
    elif user:
        parts.append("user %s" % user)
    elif controller:
        parts.append("from %s" % controller)
    if info.get("release"):
        parts.append("release %s" % info["release"])
    started = info.get("started") or holder.get("created")
    if started:
        parts.append("started %s" % started)
    text = "rollout %s" % holder["owner"]
    if parts:
        text += " (%s)" % ", ".join(parts)
    return text


def _present(module, lock, result):
    params = module.params
    owner = params["owner"]
    force = params["force"]
    record = make_record(owner, params["info"])

    # Retry if the lock disappears between a failed create and the read.
    for _attempt in range(5):
        holder = lock.read()
        if holder is None:
            if module.check_mode:
                result.update(changed=True, holder=record)
                return result
            if lock.create(record):
                result.update(changed=True, holder=record)
                return result
            continue  # somebody else created it just now: look again
        if holder.get("owner") == owner:
            result.update(changed=False, holder=holder)
            return result
        if not force:
            result["holder"] = holder
            module.fail_json(
                msg="deploy lock %s is held by %s; another rollout is in progress. %s"
                % (lock.path, describe(holder), params["hint"]),
                **result
            )
        if not module.check_mode:
            lock.replace(record)
        result.update(changed=True, holder=record, broken=holder)
        return result
    module.fail_json(msg="deploy lock %s keeps appearing and disappearing; giving up" % lock.path, **result)


def _absent(module, lock, result):
    params = module.params
    owner = params["owner"]
    force = params["force"]
    holder = lock.read()
    if holder is None:
        return result
    mine = owner is not None and holder.get("owner") == owner
    if not mine and not force:
        result["holder"] = holder
        module.fail_json(
            msg="deploy lock %s is held by %s, not by rollout %s; not removing it. %s"
            % (lock.path, describe(holder), owner, params["hint"]),
            **result
        )
    if not module.check_mode:
        lock.remove()
    result["changed"] = True
    if not mine:
        result["broken"] = holder
    return result


def run_module(module):
    params = module.params
    lock = LockFile(params["path"])
    result = dict(changed=False, path=params["path"], holder=None, broken=None)

    if params["state"] == "absent" and not params["owner"] and not params["force"]:
        module.fail_json(msg="owner is required to release a lock (or force=true to remove any lock)", **result)

    if os.path.isdir(lock.path):
        module.fail_json(msg="deploy lock path %s is a directory" % lock.path, **result)
    if not os.path.isdir(lock.parent):
        if params["state"] == "absent":
            return result  # no directory, no lock
        module.fail_json(
            msg="cannot create deploy lock %s: parent directory %s does not exist" % (lock.path, lock.parent),
            **result
        )

    try:
        if params["state"] == "present":
            return _present(module, lock, result)
        return _absent(module, lock, result)
    except OSError as exc:
        module.fail_json(
            msg="cannot %s deploy lock %s: %s"
            % ("take" if params["state"] == "present" else "release", lock.path, to_native(exc)),
            errno=errno.errorcode.get(exc.errno, exc.errno), **result
        )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            owner=dict(type="str"),
            info=dict(type="dict", default={}),
            force=dict(type="bool", default=False),
            hint=dict(type="str", default="If it is stale, break it with force=true."),
        ),
        required_if=[("state", "present", ["owner"])],
        supports_check_mode=True,
    )
    module.exit_json(**run_module(module))


if __name__ == "__main__":
    main()
