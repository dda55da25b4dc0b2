# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Action of pyfleet.deploy.files: ship what its unpacked entries unpack, then run the module.

An entry's src is an archive on the controller, or a directory, which is packed here first into
an uncompressed tar (SSH compresses the transfer), with the walk the tree_hash lookup hashes.
Entries of other states need nothing from the controller: for them, the task is one module run,
with no temporary directory on the host.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.pyfleet.deploy.plugins.module_utils.source_tree import walk


def pack(directory, exclude, dest):
    """Tar what walk() finds in directory, the names matching exclude left out, into dest."""
    with tarfile.open(dest, "w") as archive:
        for relative, full, _kind in walk(directory, tuple(exclude)):
            archive.add(full, arcname=relative, recursive=False)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

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
        packed = tempfile.mkdtemp(prefix="pyfleet-files-")
        try:
            tmpdir = self._make_tmp_path()
            shipped = []
            for index in unpacked:
                source = os.path.expanduser(str(entries[index]["src"]))
                if os.path.isdir(source):
                    archive = os.path.join(packed, "%d.tar" % index)
                    pack(source, entries[index].get("exclude") or [], archive)
                    source = archive
                elif not os.path.isfile(source):
                    raise AnsibleActionFail("files[%d].src: %s is neither a file nor a directory on the controller"
                                            % (index, source))
                remote = self._connection._shell.join_path(tmpdir, "archive-%d" % index)
                self._transfer_file(source, remote)
                shipped.append(remote)
                entries[index] = dict(entries[index], src=remote)
            self._fixup_perms2([tmpdir] + shipped)
            result.update(self._execute_module(module_name="pyfleet.deploy.files",
                                               module_args=dict(self._task.args, files=entries), task_vars=task_vars))
        finally:
            shutil.rmtree(packed, ignore_errors=True)
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
