# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""A release's source tree, as the tree_hash lookup hashes it, the files action packs it and the files
module unpacks it.

One walk and one rule for names, so that a release id covers exactly the files that ship.
"""

from __future__ import annotations

import fnmatch
import os

# What the app role leaves out by default: what a release owns itself (its
# virtualenv link, its .pyfleet directory, its metadata and SBOM link), caches
# and version control data. The role's list is this one, with app_source_exclude
# in place of the part after the release's own names (a unit test keeps them equal).
RELEASE_OWNED = (".venv", ".pyfleet", ".release.json", ".sbom.cdx.json")
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache")
IGNORED = RELEASE_OWNED + DEFAULT_EXCLUDE


def excluded(name, patterns):
    """Whether a file or directory name matches one of the shell patterns."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def walk(path, patterns=IGNORED):
    """Yield (relative path, full path, kind) in a stable order; kind is "dir", "file" or "link".

    Names that match a pattern are left out with everything under them. A link,
    to a file or a directory, is one entry: it is not followed.
    """
    for root, dirs, files in os.walk(path):
        kinds = {}
        for name in dirs + files:
            if not excluded(name, patterns):
                full = os.path.join(root, name)
                kinds[name] = "link" if os.path.islink(full) else "dir" if name in dirs else "file"
        dirs[:] = sorted(name for name, kind in kinds.items() if kind == "dir")
        for name in sorted(kinds):
            full = os.path.join(root, name)
            yield os.path.relpath(full, path), full, kinds[name]
