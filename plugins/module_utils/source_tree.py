# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""A release's source tree, as the tree_hash lookup hashes it, the files action packs it and the files
module unpacks it.

One walk and one rule for names, so that a release id covers exactly the files that ship.
"""

from __future__ import annotations

import fnmatch
import hashlib
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


class _HashingReader:
    """A file object that feeds what it reads to a digest, so that a file is read once for both."""

    def __init__(self, handle, digest):
        self._handle = handle
        self._digest = digest

    def read(self, size=-1):
        data = self._handle.read(size)
        self._digest.update(data)
        return data


def hash_file(path, copy=None):
    """Return the hex sha256 of the file at path; with copy, an open binary file, also write the
    bytes hashed to it, reading the file once for both."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
            if copy is not None:
                copy.write(block)
    return digest.hexdigest()


def hash_tree(path, patterns=IGNORED, pack=None):
    """Return the hex sha256 of the directory at path, as the tree_hash lookup gives it.

    The digest covers each directory's and regular file's relative path, each
    file's executable bit and bytes, and each link's target, in walk() order.
    With pack, an open tarfile, each entry is also added to it, and each file
    is read once for both: the archive holds exactly the bytes hashed.
    """
    digest = hashlib.sha256()
    for relative, full, kind in walk(path, patterns):
        name = relative.encode("utf-8", "surrogateescape")
        if kind == "dir":
            digest.update(b"D\0" + name + b"\0")
        elif kind == "link":
            digest.update(b"L\0" + name + b"\0" + os.readlink(full).encode("utf-8", "surrogateescape") + b"\0")
        else:
            digest.update(b"F\0" + name + b"\0" + (b"x" if os.access(full, os.X_OK) else b"-") + b"\0")
            with open(full, "rb") as handle:
                reader = _HashingReader(handle, digest)
                if pack is not None:
                    pack.addfile(pack.gettarinfo(full, arcname=relative), reader)
                else:
                    while reader.read(1 << 16):
                        pass
            digest.update(b"\0")
            continue
        if pack is not None:
            pack.add(full, arcname=relative, recursive=False)
    return digest.hexdigest()
