# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection tarball holds what users run, and no test beds, caches or secrets.

The repository is copied, decoys are planted where a user's or a test run's
state would sit (the internal CA's key beside an inventory, rollout summaries,
a vault password, caches), and the copy is built with ansible-galaxy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", ".cache", ".demo", ".ansible", "__pycache__", ".pytest_cache")
DECOYS = [
    ".pyfleet-ca/ca.key",
    "inventories/local/.pyfleet-ca/ca.key",
    "inventories/example/.pyfleet-ca/ca.key",
    ".pyfleet-rollouts/20261122T000000Z.json",
    "inventories/example/.vault-pass",
    ".vault-pass.txt",
    "playbooks/site.retry",
    "plugins/filter/__pycache__/tls_chain.cpython-311.pyc",
    ".cache/dist/old.tar.gz",
    ".venv/bin/python",
    "changelogs/.plugin-cache.yaml",
]
FORBIDDEN_PREFIXES = ("molecule/", "bench/results", "scripts/", ".ci/", ".config/", ".cache/", ".venv/", ".demo/")


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[str]:
    tree = tmp_path_factory.mktemp("src") / "deploy"
    shutil.copytree(ROOT, tree, ignore=SKIP_COPY, symlinks=True)
    for decoy in DECOYS:
        path = tree / decoy
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("decoy\n")
    out = tmp_path_factory.mktemp("dist")
    galaxy = Path(sys.executable).parent / "ansible-galaxy"
    if not galaxy.exists():  # under ansible-test units, its own bin directory is on PATH
        galaxy = shutil.which("ansible-galaxy")
    subprocess.run([str(galaxy), "collection", "build", "--output-path", str(out), str(tree)],
                   check=True, capture_output=True, text=True)
    (tarball,) = out.glob("pyfleet-deploy-*.tar.gz")
    with tarfile.open(tarball) as archive:
        return archive.getnames()


def test_the_tarball_holds_what_users_run(members):
    for required in ["MANIFEST.json", "FILES.json", "playbooks/site.yml", "playbooks/rolling_reload.yml",
                     "playbooks/rollback.yml", "meta/runtime.yml", "meta/execution-environment.yml",
                     "plugins/modules/gunicorn_reload.py", "plugins/filter/tls_chain.py", "CHANGELOG.md",
                     "roles/gunicorn/files/pyfleet_workers.py"]:
        assert required in members, required
    for role in ["app", "gunicorn", "nginx", "tls", "rollout"]:
        assert f"roles/{role}/meta/argument_specs.yml" in members
        assert f"roles/{role}/README.md" in members


def test_no_test_beds_caches_or_secrets(members):
    leaked = [name for name in members
              if name.startswith(FORBIDDEN_PREFIXES)
              or any(part in name for part in (".pyfleet-ca", ".pyfleet-rollouts", ".vault-pass", "__pycache__",
                                               ".retry", ".plugin-cache", "ca.key"))
              or name.endswith((".pyc", ".tar.gz"))]
    assert leaked == []
