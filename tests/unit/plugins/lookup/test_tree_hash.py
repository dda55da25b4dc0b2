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


def test_a_local_virtualenv_and_what_a_release_owns_are_left_out(tree):
    first = tree_hash(str(tree))
    (tree / ".venv" / "bin").mkdir(parents=True)
    (tree / ".venv" / "bin" / "python").write_text("#!/bin/sh\n")
    (tree / "pkg" / ".pyfleet").mkdir()
    (tree / "pkg" / ".pyfleet" / "env").write_text("SECRET=x\n")
    (tree / ".sbom.cdx.json").write_text("{}")
    (tree / "pkg" / "mod.pyc").write_bytes(b"\0")
    assert tree_hash(str(tree)) == first


@pytest.mark.parametrize("change", [
    lambda t: (t / "static").mkdir(),  # an empty directory ships, so it counts
    lambda t: os.symlink("pkg", t / "lib"),  # a link to a directory is one entry, not followed
], ids=["empty-directory", "directory-link"])
def test_directories_and_links_to_them_count(tree, change):
    before = tree_hash(str(tree))
    change(tree)
    assert tree_hash(str(tree)) != before


def test_ignore_names_other_patterns(tree):
    (tree / "frontend").mkdir()
    (tree / "frontend" / "app.js").write_text("x")
    with_frontend = tree_hash(str(tree), ignore=(".venv",))
    assert tree_hash(str(tree), ignore=("front*",)) != with_frontend
    (tree / "frontend" / "app.js").write_text("y")
    assert tree_hash(str(tree), ignore=("front*",)) == tree_hash(str(tree), ignore=("frontend",))


def test_the_default_is_what_the_app_role_leaves_out_by_default():
    """The lookup's default and the app role's list (its own names, then app_source_exclude) are one list."""
    import yaml
    from ansible_collections.pyfleet.deploy.plugins.lookup import tree_hash as module
    from ansible_collections.pyfleet.deploy.plugins.module_utils.source_tree import DEFAULT_EXCLUDE, IGNORED, RELEASE_OWNED

    role = os.path.join(os.path.dirname(module.__file__), "..", "..", "roles", "app")
    with open(os.path.join(role, "defaults", "main.yml"), encoding="utf-8") as handle:
        assert tuple(yaml.safe_load(handle)["app_source_exclude"]) == DEFAULT_EXCLUDE
    with open(os.path.join(role, "vars", "main.yml"), encoding="utf-8") as handle:
        assert str(list(RELEASE_OWNED)) in yaml.safe_load(handle)["_app_source_ignored"]
    assert list(IGNORED) == yaml.safe_load(module.DOCUMENTATION)["options"]["ignore"]["default"]
