# SPDX-License-Identifier: GPL-3.0-or-later
"""inventories/example passes every validation, with its vault, and leaks no secret.

The hosts are reached with the docker connection, as containers that do not
exist: everything up to the first task on a host runs for real, then each host
is UNREACHABLE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collection import COLLECTIONS  # tests/collection.py

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "example"
PASSWORD = INVENTORY / ".vault-pass.example"
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
           ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0")


def _secrets() -> dict:
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--vault-password-file", str(PASSWORD),
         "--host", "web1.example.com"],
        capture_output=True, text=True, env=ENV, check=True, timeout=120).stdout
    return json.loads(out)["vault_shop_secrets"]


def test_the_vault_decrypts_into_app_secrets():
    secrets = _secrets()
    assert set(secrets) == {"DATABASE_URL", "SESSION_SECRET"}


@pytest.mark.parametrize(("playbook", "first_host_play"),
                         [("site", "PLAY [Deploy the app]"), ("rolling_reload", "PLAY [Lock the fleet]")])
def test_the_example_passes_validation_and_leaks_no_secret(tmp_path, playbook, first_host_play):
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "--vault-password-file", str(PASSWORD),
         "-e", "ansible_connection=community.docker.docker", "-e", "ansible_python_interpreter=/usr/bin/python3",
         "-e", f"rollout_report_dir={tmp_path}", "-v", str(ROOT / "playbooks" / f"{playbook}.yml")],
        capture_output=True, text=True, env=ENV, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert "PLAY [Validate" in output, output[-3000:]
    assert first_host_play in output, output[-3000:]
    assert "UNREACHABLE" in output
    assert "Invalid" not in output and "must be" not in output, output[-3000:]
    for value in _secrets().values():
        assert value not in output
