# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

"""Reading pip requirements files (lockfiles). Pure standard library."""

from __future__ import annotations

__all__ = ["logical_lines", "split_requirement"]


def logical_lines(text):
    """Lines of a requirements file with continuations joined and comments dropped."""
    current = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            stripped = ""
        else:
            stripped = stripped.split(" #", 1)[0].rstrip()
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        joined = " ".join(part for part in current if part)
        current = []
        if joined:
            yield joined
    joined = " ".join(part for part in current if part)
    if joined:
        yield joined


def split_requirement(line):
    """``(requirement, marker or None, options)`` of one logical requirement line."""
    head, sep, options = line.partition(" --")
    options = (sep.strip() + options) if sep else ""
    requirement, marker = (head.split(";", 1) + [""])[:2]
    return requirement.strip(), (marker.strip() or None), options.strip()
