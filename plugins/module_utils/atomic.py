# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Replace a file or a symbolic link so that a reader sees the old one or the new one, never a partial one.

Both write a temporary entry in the same directory and rename(2) it over the old one; shared by the
files module and release_switch (the current and previous links, the units a release carries).
read_link reads such a link back (release_switch, release_facts and service_state).
"""

from __future__ import annotations

import os
import tempfile


def write_file(path, data, mode, uid=None, gid=None):
    """Write ``data`` (bytes) to ``path`` through a synced temporary file, with its mode and, if given, owner."""
    handle, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if uid is not None:
            os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def replace_link(path, target):
    """Make ``path`` a symbolic link to ``target`` (written as given) through a temporary link."""
    tmp = os.path.join(os.path.dirname(path), ".%s.tmp" % os.path.basename(path))
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.rename(tmp, path)


def read_link(path):
    """The target of the symbolic link ``path``, or None when it is missing or not a link."""
    try:
        return os.readlink(path)
    except OSError:
        return None
