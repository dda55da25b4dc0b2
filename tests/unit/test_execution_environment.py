# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/execution-environment.yml names files that exist and covers the controller-side imports."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EE = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())


def _requirement_names() -> set[str]:
    lines = (ROOT / EE["dependencies"]["python"]).read_text().splitlines()
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower())
    return names


def _controller_imports() -> set[str]:
    """Top-level third-party modules imported by plugins that run on the controller."""
    found = set()
    for kind in ("filter", "lookup", "callback"):
        for path in (ROOT / "plugins" / kind).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return {name for name in found
            if name not in sys.stdlib_module_names and name not in {"ansible", "ansible_collections", "__future__"}}


def test_ee_metadata_names_existing_files():
    assert EE["version"] == 1
    for kind in ("python", "system"):
        assert (ROOT / EE["dependencies"][kind]).is_file(), kind


def test_every_controller_side_import_is_an_ee_requirement():
    imports = _controller_imports()
    assert "cryptography" in imports  # the check would be vacuous without it
    assert imports <= _requirement_names(), imports - _requirement_names()
