# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's variable tables are generated from argument_specs and must match them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_readme_tables_match_argument_specs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "role_docs.py"), "--check", str(ROOT / "README.md")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_each_role_readme_matches_its_specs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "role_docs.py"), "--check-roles"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_role_has_specs_and_is_documented():
    roles = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())
    documented = yaml.safe_load("[" + (ROOT / "scripts" / "role_docs.py").read_text()
                                .split("ROLES = [", 1)[1].split("]", 1)[0] + "]")
    assert sorted(documented) == roles
    for role in roles:
        assert (ROOT / "roles" / role / "meta" / "argument_specs.yml").is_file(), role
        assert (ROOT / "roles" / role / "README.md").is_file(), role


def test_every_role_default_is_documented_with_the_same_value():
    for role in sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir()):
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
        # Every entry point's options: some defaults belong to one entry point only (rollout's what_changed).
        options = {}
        specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        for entry in specs.values():
            options.update(entry.get("options", {}))
        for name, value in defaults.items():
            assert name in options, f"{role}: default {name} has no argument_spec"
            if "default" in options[name]:
                assert options[name]["default"] == value, f"{role}: {name} default differs from defaults/main.yml"
            else:
                assert "{{" in str(value), f"{role}: {name} should declare default {value!r}"
