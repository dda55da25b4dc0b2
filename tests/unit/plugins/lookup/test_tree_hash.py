# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleLookupError

from ansible_collections.pyfleet.deploy.plugins.lookup.tree_hash import LookupModule, tree_hash


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "main.py").write_text("app = 1\n")
    (tmp_path / "pkg" / "mod.py").write_text("x = 2\n")
    return tmp_path


def test_is_stable_and_ignores_build_artifacts(tree):
    first = tree_hash(str(tree))
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0junk")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref\n")
    (tree / ".release.json").write_text("{}")
    assert tree_hash(str(tree)) == first
    assert len(first) == 64


@pytest.mark.parametrize(
    "change",
    [
        lambda t: (t / "main.py").write_text("app = 2\n"),
        lambda t: (t / "pkg" / "new.py").write_text(""),
        lambda t: (t / "pkg" / "mod.py").rename(t / "pkg" / "other.py"),
        lambda t: os.chmod(t / "main.py", 0o755),
        lambda t: os.symlink("main.py", t / "alias.py"),
    ],
)
def test_changes_with_content(tree, change):
    before = tree_hash(str(tree))
    change(tree)
    assert tree_hash(str(tree)) != before


def test_hashes_a_file(tmp_path):
    archive = tmp_path / "release.tar.gz"
    archive.write_bytes(b"abc")
    assert tree_hash(str(archive)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(AnsibleLookupError, match="neither a file nor a directory"):
        LookupModule().run([str(tmp_path / "nope")], variables={})
