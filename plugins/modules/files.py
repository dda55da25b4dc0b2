#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Write a set of small files and directories in one task
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Makes each entry of O(files) what it says, in order. An entry is a directory, a file with the
    given content, a symbolic link, or nothing; or it adds content to the end of a file, such as a
    line of a log or history; or it unpacks an archive from the controller into a directory.
  - A file is only written when its content differs. It is written to a temporary file in the same
    directory, given its owner, group and mode, and renamed over the old one, so a reader sees the
    old or the new content, never a partial one. When only the owner, group or mode differ, they
    are fixed in place.
  - One task does what would otherwise take one M(ansible.builtin.template),
    M(ansible.builtin.copy) or M(ansible.builtin.file) task per entry, each a round trip to the
    host. Render the content on the controller, for example with the
    P(ansible.builtin.template#lookup) lookup.
  - RV(changed_paths) names the entries that changed, so that the caller can tell a config change
    (a HUP) from a unit change (a restart).
options:
  files:
    description:
      - The entries, made in the order given. Give a directory before the files in it.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path of the entry.
        type: path
        required: true
      state:
        description:
          - V(file) writes O(files[].content).
          - V(directory) creates the directory, and its missing parents with O(files[].parents=true).
          - V(link) makes the entry a symbolic link to O(files[].src), replaced by a rename when it
            pointed elsewhere.
          - V(absent) removes a file, a link, or a directory with everything in it.
          - V(append) adds O(files[].content) to the end of the file in one write, creating the file
            with the owner, group and mode given when it is missing (an existing file keeps its
            own). It always counts as a change.
          - V(unpacked) unpacks O(files[].src) into the existing directory O(files[].path), leaving
            out the members whose name, at any depth, matches O(files[].exclude). Each file, directory and link is owned by O(files[].owner) and
            O(files[].group); files and directories keep the archive's permission bits, less
            write for the group and others. A member that would land outside O(files[].path), by
            its name or through a link, or that is a device or a FIFO, fails the task. It always
            counts as a change.
        type: str
        choices: [file, directory, link, absent, append, unpacked]
        default: file
      content:
        description: The file's content, for O(files[].state=file), or what to add, for O(files[].state=append).
        type: str
      parents:
        description:
          - With O(files[].state=directory), also create the missing parent directories, as
            C(mkdir -p) does (owned by the user the module runs as, mode 0777 less the umask).
        type: bool
        default: false
      src:
        description:
          - The target of the link, for O(files[].state=link), written as given (it may be relative
            to the link's directory).
          - For O(files[].state=unpacked), a tar archive (plain, gzip, bzip2 or xz) or a directory on
            the controller. The action packs a directory first, leaving out what O(files[].exclude)
            matches, with the walk of the P(pyfleet.deploy.tree_hash#lookup) lookup, so a hash of the
            directory covers exactly what is shipped. It ships the archive to the host's temporary
            directory and removes it there afterwards.
        type: str
      exclude:
        description:
          - With O(files[].state=unpacked), shell patterns (C(*), C(?), C([...])) matched against each
            file and directory name, at any depth; what matches is left out with everything under it.
            V(.venv) leaves out C(.venv) and C(src/.venv/bin/python), V(*.pyc) every compiled file.
        type: list
        elements: str
        default: []
      src_hash:
        description:
          - With O(files[].state=unpacked), the P(pyfleet.deploy.tree_hash#lookup) lookup's hash of
            O(files[].src), taken with the same O(files[].exclude) (for an archive, its sha256).
          - The action then packs O(files[].src) once per run, in the run's temporary directory on
            the controller, and every host of the run receives that same archive. It holds exactly
            the bytes that were hashed while packing; when they no longer hash to this value (the
            source changed after the hash was taken, for example by an edit during the run), the
            task fails on each host before anything is shipped or written there.
          - Without it, the action packs a directory for each host anew.
        type: str
        version_added: 0.5.0
      owner:
        description: Name of the owner.
        type: str
        default: root
      group:
        description: Name of the group.
        type: str
        default: root
      mode:
        description: Octal mode, such as V(0640). Links have none.
        type: str
        default: "0644"
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; RV(changed_paths) names what would change.
  diff_mode:
    support: full
    details:
      - The diff shows each changed file's old and new content. Do not pass secrets to this module
        in diff mode, or set C(no_log) and C(diff=false) on the task.
  action:
    description: Has an action plugin of the same name, which runs on the controller first.
    support: full
    details:
      - Packs the directories and ships the archives of O(files[].state=unpacked) entries from the
        controller; nothing is shipped for the other entries.
notes:
  - Meant for configuration files and small modules; each content travels as a module argument.
    An archive travels as a file.
  - Parent directories are not created, except those given as entries and those of a directory
    with O(files[].parents=true).
seealso:
  - module: ansible.builtin.template
    description: One file rendered on the controller per task, with backups and validation.
  - module: ansible.builtin.copy
    description: One file or directory tree per task.
  - module: ansible.builtin.lineinfile
    description: One line per task, kept once in the file or replaced by a pattern.
  - module: ansible.builtin.unarchive
    description: One archive per task, idempotent, in more formats.
"""

EXAMPLES = r"""
- name: Write the server config, its modules and the units in one task
  pyfleet.deploy.files:
    files:
      - path: /etc/demo
        state: directory
        group: demo
        mode: "0750"
      - path: /etc/demo/gunicorn.conf.py
        content: "{{ lookup('ansible.builtin.template', 'gunicorn.conf.py.j2') }}"
        group: demo
        mode: "0640"
      - path: /etc/demo/uvicorn.json
        state: absent
      - path: /etc/systemd/system/demo.service
        content: "{{ lookup('ansible.builtin.template', 'demo.service.j2') }}"
      - path: /srv/demo/.history.jsonl
        state: append
        content: "{{ {'release': 'a1b2c3', 'result': 'ok'} | to_json }}\n"
  register: written
  become: true

- name: Start a new release directory and unpack the code into it, in one task
  pyfleet.deploy.files:
    files:
      - path: /srv/demo/releases/a1b2c3
        state: directory
      - path: /srv/demo/releases/a1b2c3/.release.json
        content: "{{ {'id': 'a1b2c3'} | to_nice_json }}"
      - path: /srv/demo/releases/a1b2c3
        state: unpacked
        src: /home/deploy/src/demo
        exclude: [.release.json, .venv, __pycache__, "*.pyc", .git]
  become: true

- name: Reload systemd when a unit changed
  ansible.builtin.systemd_service:
    daemon_reload: true
  when: written.changed_paths | select('match', '/etc/systemd/') | list | length > 0
  become: true
"""

RETURN = r"""
changed_paths:
  description: The paths of the entries that changed (or would, in check mode), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/demo/gunicorn.conf.py]
"""

import grp
import os
import pwd
import shutil
import stat
import tarfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes
from ansible_collections.pyfleet.deploy.plugins.module_utils.atomic import replace_link, write_file
from ansible_collections.pyfleet.deploy.plugins.module_utils.source_tree import excluded


def _ids(module, entry):
    try:
        uid = pwd.getpwnam(entry["owner"]).pw_uid
    except KeyError:
        module.fail_json(msg="%s: the owner %s does not exist" % (entry["path"], entry["owner"]))
    try:
        gid = grp.getgrnam(entry["group"]).gr_gid
    except KeyError:
        module.fail_json(msg="%s: the group %s does not exist" % (entry["path"], entry["group"]))
    try:
        mode = int(entry["mode"], 8)
    except (TypeError, ValueError):
        module.fail_json(msg="%s: mode must be an octal string such as 0640 (got %r)" % (entry["path"], entry["mode"]))
    return uid, gid, mode


def _fix_attributes(path, info, uid, gid, mode, check):
    """Give an existing entry its owner, group and mode; return True if they differed."""
    if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (uid, gid, mode):
        return False
    if not check:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _append(module, entry, info, uid, gid, mode, diffs):
    """Add the entry's content to the end of its file, made with uid, gid and mode when missing."""
    path = entry["path"]
    if entry["content"] is None:
        module.fail_json(msg="%s: content is required with state=append" % path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        module.fail_json(msg="%s exists and is not a regular file" % path)
    if module._diff:
        diffs.append(dict(before_header=path, after_header=path, before="", after=entry["content"]))
    if module.check_mode:
        return True
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        if info is None:
            os.fchown(descriptor, uid, gid)
            os.fchmod(descriptor, mode)
        os.write(descriptor, to_bytes(entry["content"], errors="surrogate_or_strict"))
    finally:
        os.close(descriptor)
    return True


def _member_parts(module, entry, name):
    """The path components of an archive member's name; fail for one that climbs out."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        module.fail_json(msg="%s: the archive member %s would land outside %s" % (entry["src"], name, entry["path"]))
    return parts


def _inside(module, entry, root, parts, name):
    """The path of parts under root; fail when a link on the way leads out of root."""
    target = os.path.join(root, *parts)
    parent = os.path.realpath(os.path.dirname(target))
    if parent != root and not parent.startswith(root + os.sep):
        module.fail_json(msg="%s: the archive member %s would be written through a link, outside %s"
                         % (entry["src"], name, entry["path"]))
    return target


def _unpack_member(module, entry, archive, member, root, uid, gid):
    """Write one member of the archive under root (its real path)."""
    parts = _member_parts(module, entry, member.name)
    if not parts or any(excluded(part, entry["exclude"]) for part in parts):
        return
    target = _inside(module, entry, root, parts, member.name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    mode = member.mode & 0o755
    existing = os.path.lexists(target)
    if member.isdir():
        if existing and (os.path.islink(target) or not os.path.isdir(target)):
            os.unlink(target)
            existing = False
        if not existing:
            os.mkdir(target, 0o700)
        os.chown(target, uid, gid)
        os.chmod(target, mode)
        return
    if existing:
        if os.path.isdir(target) and not os.path.islink(target):
            module.fail_json(msg="%s: the archive member %s is not a directory, but one is there" % (entry["src"], member.name))
        os.unlink(target)
    if member.issym():
        os.symlink(member.linkname, target)
        os.lchown(target, uid, gid)
    elif member.islnk():
        linked = _inside(module, entry, root, _member_parts(module, entry, member.linkname), member.name)
        os.link(linked, target, follow_symlinks=False)
    elif member.isfile():
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as handle, archive.extractfile(member) as source:
            shutil.copyfileobj(source, handle, 1 << 20)
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
        os.utime(target, (member.mtime, member.mtime))
    else:
        module.fail_json(msg="%s: the archive member %s is a device or a FIFO" % (entry["src"], member.name))


def _unpack(module, entry):
    """Unpack the archive entry["src"] into the directory entry["path"]."""
    path = entry["path"]
    if not entry["src"]:
        module.fail_json(msg="%s: src is required with state=unpacked" % path)
    if module.check_mode:
        return True
    if not os.path.isdir(path):
        module.fail_json(msg="%s: the directory to unpack into does not exist" % path)
    uid, gid, dummy = _ids(module, dict(entry, mode="0755"))
    root = os.path.realpath(path)
    try:
        with tarfile.open(entry["src"], "r:*") as archive:
            for member in archive:
                _unpack_member(module, entry, archive, member, root, uid, gid)
    except (OSError, tarfile.TarError) as error:
        module.fail_json(msg="%s: cannot unpack %s: %s" % (path, entry["src"], error))
    return True


def apply_entry(module, entry, diffs):
    """Make one entry what it says; return True if it changed (or would)."""
    path, state = entry["path"], entry["state"]
    check = module.check_mode
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if state == "unpacked":
        return _unpack(module, entry)
    if state == "absent":
        if info is None:
            return False
        if not check:
            if stat.S_ISDIR(info.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return True
    if state == "link":
        if not entry["src"]:
            module.fail_json(msg="%s: src is required with state=link" % path)
        if info is not None and stat.S_ISLNK(info.st_mode) and os.readlink(path) == entry["src"]:
            return False
        if info is not None and stat.S_ISDIR(info.st_mode):
            module.fail_json(msg="%s exists and is a directory, not a link" % path)
        if not check:
            replace_link(path, entry["src"])
        return True
    uid, gid, mode = _ids(module, entry)
    if state == "append":
        return _append(module, entry, info, uid, gid, mode, diffs)
    if state == "directory":
        if info is not None and not stat.S_ISDIR(info.st_mode):
            module.fail_json(msg="%s exists and is not a directory" % path)
        if info is None:
            if not check:
                if entry["parents"]:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                elif not os.path.isdir(os.path.dirname(path)):
                    module.fail_json(msg="%s: the parent directory does not exist (parents=true makes it)" % path)
                os.mkdir(path, mode)
                os.chown(path, uid, gid)
                os.chmod(path, mode)
            return True
        return _fix_attributes(path, info, uid, gid, mode, check)
    if entry["content"] is None:
        module.fail_json(msg="%s: content is required with state=file" % path)
    if info is not None and not stat.S_ISREG(info.st_mode):
        module.fail_json(msg="%s exists and is not a regular file" % path)
    data = to_bytes(entry["content"], errors="surrogate_or_strict")
    before = _read(path) if info is not None else None
    if before != data:
        if module._diff:
            diffs.append(dict(before_header=path, after_header=path,
                              before=(before or b"").decode("utf-8", "replace"), after=entry["content"]))
        if not check:
            write_file(path, data, mode, uid, gid)
        return True
    return _fix_attributes(path, info, uid, gid, mode, check)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    path=dict(type="path", required=True),
                    state=dict(type="str", choices=["file", "directory", "link", "absent", "append", "unpacked"],
                               default="file"),
                    content=dict(type="str"),
                    src=dict(type="str"),
                    exclude=dict(type="list", elements="str", default=[]),
                    src_hash=dict(type="str"),
                    parents=dict(type="bool", default=False),
                    owner=dict(type="str", default="root"),
                    group=dict(type="str", default="root"),
                    mode=dict(type="str", default="0644"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    diffs = []
    changed_paths = [entry["path"] for entry in module.params["files"] if apply_entry(module, entry, diffs)]
    result = dict(changed=bool(changed_paths), changed_paths=changed_paths)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
