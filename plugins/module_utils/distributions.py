# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

"""The distributions installed in a virtualenv, read from their metadata. Pure standard library.

Shared by ``pyfleet.deploy.release_diff`` (which packages changed) and
``pyfleet.deploy.sbom`` (the SBOM of a virtualenv).
"""

from __future__ import annotations

import glob
import os
import re

__all__ = ["metadata_paths", "normalize_name"]

_NAME_RUNS = re.compile(r"[-_.]+")


def normalize_name(name):
    """PEP 503 normalised form of a distribution name (also its name in a ``pkg:pypi`` URL)."""
    return _NAME_RUNS.sub("-", name.strip()).lower()


def metadata_paths(venv):
    """Paths of the ``METADATA`` file of every distribution installed in the virtualenv, sorted."""
    pattern = os.path.join(glob.escape(venv), "lib", "python*", "site-packages", "*.dist-info", "METADATA")
    return sorted(glob.glob(pattern))
