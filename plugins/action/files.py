# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Action of pyfleet.deploy.files: ship what its unpacked entries unpack, then run the module.

An entry's src is an archive on the controller, or a directory, which is packed here first into
an uncompressed tar (SSH compresses the transfer), with the walk the tree_hash lookup hashes.
With src_hash, the archive is made once per run, in the run's own temporary directory, for every
host, and holds exactly the bytes that hash to src_hash. Entries of other states need nothing from
the controller: for them, the task is one module run, with no temporary directory on the host.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tarfile
import tempfile

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.pyfleet.deploy.plugins.module_utils.source_tree import hash_file, hash_tree

SHA256 = re.compile(r"^[0-9a-f]{64}$")


def pack(source, exclude, dest):
    """Write source, a directory or an archive, to dest as it ships; return the sha256 that
    the tree_hash lookup gives for source, taken from the very bytes written."""
    if os.path.isdir(source):
        with tarfile.open(dest, "w") as archive:
            return hash_tree(source, tuple(exclude), archive)
    with open(dest, "wb") as copy:
        return hash_file(source, copy)


def pack_once(source, exclude, src_hash, directory):
    """The archive of source whose content hashes to src_hash, made by the first task of the
    run that asks for it and kept in directory for the others; None when source no longer
    hashes to src_hash (nothing is kept then).

    The name is the hash, so two entries or hosts that expect the same content share one
    archive. A lock makes the other hosts' tasks wait for the first one's pack.
    """
    archive = os.path.join(directory, "pyfleet-source-%s.tar" % src_hash)
    with open(archive + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(archive):
            return archive
        partial = archive + ".partial"
        try:
            if pack(source, exclude, partial) != src_hash:
                return None
            os.replace(partial, archive)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return archive


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def _archive(self, index, entry, scratch):
        """The local archive that entry index ships."""
        source = os.path.expanduser(str(entry["src"]))
        exclude = entry.get("exclude") or []
        if not (os.path.isdir(source) or os.path.isfile(source)):
            raise AnsibleActionFail("files[%d].src: %s is neither a file nor a directory on the controller"
                                    % (index, source))
        src_hash = entry.get("src_hash")
        if src_hash is None:
            if not os.path.isdir(source):
                return source
            archive = os.path.join(scratch, "%d.tar" % index)
            pack(source, exclude, archive)
            return archive
        if not SHA256.match(str(src_hash)):
            raise AnsibleActionFail("files[%d].src_hash: expected the 64 hex digits of a sha256, as the"
                                    " pyfleet.deploy.tree_hash lookup returns, got %r" % (index, src_hash))
        archive = pack_once(source, exclude, src_hash, C.DEFAULT_LOCAL_TMP)
        if archive is None:
            raise AnsibleActionFail(
                "files[%d].src: %s changed after its src_hash was taken (%s): nothing was shipped or"
                " written. Run again to ship what it holds now, with its new hash." % (index, source, src_hash))
        return archive

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        entries = self._task.args.get("files")
        unpacked = [index for index, entry in enumerate(entries or [])
                    if isinstance(entry, dict) and entry.get("state") == "unpacked" and entry.get("src")]
        if not unpacked or self._task.check_mode:
            result.update(self._execute_module(module_name="pyfleet.deploy.files", task_vars=task_vars))
            return result
        entries = list(entries)
        scratch = tempfile.mkdtemp(prefix="pyfleet-files-")
        try:
            archives = {index: self._archive(index, entries[index], scratch) for index in unpacked}
            tmpdir = self._make_tmp_path()
            shipped = []
            for index, archive in archives.items():
                remote = self._connection._shell.join_path(tmpdir, "archive-%d" % index)
                self._transfer_file(archive, remote)
                shipped.append(remote)
                entries[index] = dict(entries[index], src=remote)
            self._fixup_perms2([tmpdir] + shipped)
            result.update(self._execute_module(module_name="pyfleet.deploy.files",
                                               module_args=dict(self._task.args, files=entries), task_vars=task_vars))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if self._connection._shell.tmpdir:
                self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
