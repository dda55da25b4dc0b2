# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_hash
short_description: Content hash of a source tree or archive on the controller
version_added: 0.1.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Returns the sha256 of a directory's content, or of a file.
  - For a directory, the hash covers each regular file's relative path, its
    executable bit and its bytes, in sorted order; symlinks contribute their
    target. C(__pycache__), C(.git), C(*.pyc) and C(.release.json) are ignored,
    so the hash changes exactly when the deployable content does.
  - The same tree always gives the same hash, on any controller, which makes it
    a release id that every host of a rollout agrees on.
options:
  _terms:
    description: Paths on the controller.
    type: list
    elements: path
    required: true
"""

EXAMPLES = r"""
- name: Compute a release id
  ansible.builtin.set_fact:
    release_id: "{{ lookup('pyfleet.deploy.tree_hash', 'files/app')[:12] }}"
"""

RETURN = r"""
_raw:
  description: One hex sha256 digest per path.
  type: list
  elements: str
  sample: ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
"""

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_IGNORED_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"})
_IGNORED_FILES = frozenset({".release.json"})


def _file_digest(path, digest):
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)


def tree_hash(path):
    """Return the hex sha256 of the file or directory at ``path``."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        _file_digest(path, digest)
        return digest.hexdigest()
    if not os.path.isdir(path):
        raise AnsibleLookupError(f"tree_hash: '{path}' is neither a file nor a directory")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS)
        for name in sorted(files):
            if name in _IGNORED_FILES or name.endswith(".pyc"):
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path).encode("utf-8", "surrogateescape")
            if os.path.islink(full):
                digest.update(b"L\0" + rel + b"\0" + os.readlink(full).encode("utf-8", "surrogateescape") + b"\0")
                continue
            mode = b"x" if os.access(full, os.X_OK) else b"-"
            digest.update(b"F\0" + rel + b"\0" + mode + b"\0")
            _file_digest(full, digest)
            digest.update(b"\0")
    return digest.hexdigest()


class LookupModule(LookupBase):
    """Hash source trees on the controller."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [tree_hash(os.path.expanduser(str(term))) for term in terms]
