# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.unhashed_requirements import unhashed_requirements

ROOT = Path(__file__).resolve().parents[4]


def test_example_lockfile_is_fully_hashed():
    text = (ROOT / "examples" / "fastapi" / "requirements.txt").read_text()
    assert unhashed_requirements(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flask==3.1.0\n", ["flask==3.1.0"]),
        ("flask==3.1.0 \\\n    --hash=sha256:abc\nclick==8.1.7\n", ["click==8.1.7"]),
        ("--index-url https://mirror.invalid/simple\nrequests==2.0 --hash=sha256:ff\n", []),
        ("# only a comment\n\n", ["<no requirements>"]),
        ("", ["<no requirements>"]),
        ("a==1 \\\n  --hash=sha256:1 \\\n  --hash=sha256:2\n    # via b\n", []),
        ("uvicorn[standard]==0.30 \\\n  # a comment line inside\n", ["uvicorn[standard]==0.30"]),
    ],
)
def test_finds_unhashed(text, expected):
    assert unhashed_requirements(text) == expected


def test_rejects_non_text():
    with pytest.raises(AnsibleFilterError, match="expected the lockfile text"):
        unhashed_requirements(None)
