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
  - For a directory, the hash covers each directory's and regular file's
    relative path, each file's executable bit and bytes, in sorted order; a
    symbolic link contributes its target and is not followed. The names that
    match O(ignore), at any depth, are left out with everything under them, so
    the hash changes exactly when the deployable content does.
  - M(pyfleet.deploy.files) packs a directory for an O(pyfleet.deploy.files#module:files[].state=unpacked)
    entry with the same walk, so a release id covers exactly the files that ship.
  - The same tree always gives the same hash, on any controller, which makes it
    a release id that every host of a rollout agrees on.
options:
  _terms:
    description: Paths on the controller.
    type: list
    elements: path
    required: true
  ignore:
    description:
      - Shell patterns (C(*), C(?), C([...])) matched against each file and directory name.
      - The default is what the app role leaves out of a release by default (its
        C(app_source_exclude) and the names a release owns).
    type: list
    elements: str
    default: [.venv, .pyfleet, .release.json, .sbom.cdx.json, __pycache__, "*.pyc", .git, .hg, .svn, .mypy_cache,
              .pytest_cache]
    version_added: 0.5.0
"""

EXAMPLES = r"""
- name: Compute a release id
  ansible.builtin.set_fact:
    release_id: "{{ lookup('pyfleet.deploy.tree_hash', 'files/app')[:12] }}"

- name: Leave the front-end sources out of the hash too
  ansible.builtin.set_fact:
    release_id: "{{ lookup('pyfleet.deploy.tree_hash', 'files/app', ignore=['.venv', '__pycache__', '*.pyc', '.git', 'frontend'])[:12] }}"
"""

RETURN = r"""
_raw:
  description: One hex sha256 digest per path.
  type: list
  elements: str
  sample: ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible_collections.pyfleet.deploy.plugins.module_utils.source_tree import IGNORED, hash_file, hash_tree


def tree_hash(path, ignore=IGNORED):
    """Return the hex sha256 of the file or directory at ``path``."""
    if os.path.isfile(path):
        return hash_file(path)
    if not os.path.isdir(path):
        raise AnsibleLookupError(f"tree_hash: '{path}' is neither a file nor a directory")
    return hash_tree(path, ignore)


class LookupModule(LookupBase):
    """Hash source trees on the controller."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        # Loaded by Ansible, the options hold the default; instantiated bare (unit tests), they do not.
        ignore = tuple(self.get_option("ignore")) if self.has_option("ignore") else IGNORED
        return [tree_hash(os.path.expanduser(str(term)), ignore) for term in terms]
