# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
name: unhashed_requirements
short_description: List the requirements of a lockfile that carry no hash
version_added: 0.1.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Parses the text of a pip requirements file, joining lines continued with a
    backslash and dropping comments, and returns the requirements that have no
    C(--hash) option.
  - An empty list means C(pip install --require-hashes) can accept the file.
  - A file with no requirement at all is reported as C(<no requirements>).
options:
  _input:
    description: Text of the requirements file.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Refuse a lockfile without hashes
  ansible.builtin.assert:
    that: lookup('ansible.builtin.file', 'requirements.txt') | pyfleet.deploy.unhashed_requirements | length == 0
"""

RETURN = r"""
_value:
  description: Requirement lines (without options) that carry no C(--hash).
  type: list
  elements: str
  sample: ["requests==2.32.3"]
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.module_utils.requirements import logical_lines


def unhashed_requirements(text):
    """Return the requirement specs in ``text`` that have no ``--hash``."""
    if not isinstance(text, str):
        raise AnsibleFilterError(f"unhashed_requirements: expected the lockfile text, got {type(text).__name__}")
    unhashed = []
    seen = 0
    for line in logical_lines(text):
        if line.startswith("-"):
            # Global options such as --index-url or -c constraints.txt.
            continue
        seen += 1
        spec = line.split(" --", 1)[0].strip()
        if "--hash=" not in line and "--hash " not in line:
            unhashed.append(spec)
    if seen == 0:
        return ["<no requirements>"]
    return unhashed


class FilterModule:
    """Lockfile checks."""

    def filters(self):
        return {"unhashed_requirements": unhashed_requirements}
