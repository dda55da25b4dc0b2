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


def test_every_role_default_is_documented_with_the_same_value():
    for role in ["app", "gunicorn", "nginx", "tls"]:
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
        options = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())[
            "argument_specs"]["main"]["options"]
        for name, value in defaults.items():
            assert name in options, f"{role}: default {name} has no argument_spec"
            if "default" in options[name]:
                assert options[name]["default"] == value, f"{role}: {name} default differs from defaults/main.yml"
            else:
                assert "{{" in str(value), f"{role}: {name} should declare default {value!r}"
