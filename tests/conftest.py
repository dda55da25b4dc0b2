# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the repository importable as ansible_collections.pyfleet.deploy."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from collection import COLLECTIONS as _TREE, ROOT  # noqa: E402

_LINK = _TREE / "ansible_collections" / "pyfleet" / "deploy"
if _LINK.resolve() != ROOT:
    # Absent, or a copy some tool installed: the tests run this checkout's code only.
    if _LINK.is_symlink() or _LINK.is_file():
        _LINK.unlink()
    elif _LINK.exists():
        shutil.rmtree(_LINK)
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    _LINK.symlink_to(ROOT, target_is_directory=True)
if str(_TREE) not in sys.path:
    sys.path.insert(0, str(_TREE))
