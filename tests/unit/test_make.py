# SPDX-License-Identifier: GPL-3.0-or-later
"""make molecule (and so make test) runs every Molecule scenario the repository has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_pipeline_order_names_every_scenario_once():
    listed = re.search(r"^SCENARIOS \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1).split()
    scenarios = sorted(path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml"))
    assert sorted(listed) == scenarios and len(set(listed)) == len(listed)
