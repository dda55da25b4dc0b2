# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the tests find this collection: the one link the Makefile and tests/conftest.py keep."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ansible_collections/pyfleet/deploy under it links to ROOT (make venv, tests/conftest.py).
COLLECTIONS = ROOT / ".cache" / "ansible" / "collections"
