# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""pyfleet_env.py, which applies a release's env file to the server's master on every load of its config."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
FILES = os.path.join(ROOT, "roles", "gunicorn", "files")
TEMPLATE = os.path.join(ROOT, "roles", "app", "templates", "srv", "app", "release", "env.j2")


@pytest.fixture(scope="module")
def pyfleet_env():
    spec = importlib.util.spec_from_file_location("pyfleet_env", os.path.join(FILES, "pyfleet_env.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render(tmp_path, env):
    """The env file as the app role's template writes it, rendered by Ansible's own templar."""
    out = tmp_path / "env"
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.template: {src: %s, dest: %s, mode: '0600'}\n" % (TEMPLATE, out))
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({"app_env": env, "app_secrets": {}}))
    playbook_bin = shutil.which("ansible-playbook") or os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    result = subprocess.run([playbook_bin, "-i", "localhost,",
                             "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                             "-e", "@%s" % vars_file, str(playbook)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:]
    return str(out)


def test_values_written_by_the_template_are_read_back_exactly(tmp_path, pyfleet_env):
    # The default scenario checks on a host that systemd reads the same values from the file.
    env = {"QUOTED": 'say "hi"', "BACKSLASH": "a\\b\\", "DOLLAR": "$HOME stays", "SPACES": "  padded  ",
           "EMPTY": "", "NUMBER": "42"}
    assert pyfleet_env.read(_render(tmp_path, env)) == env


def test_apply_sets_the_new_values_and_removes_the_variables_the_new_file_lacks(tmp_path, pyfleet_env):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text('A="1"\nB="2"\n')
    second.write_text('# comment\nA="10"\nC="3"\n')
    environ = {"PATH": "/usr/bin", "B": "from systemd"}
    assert pyfleet_env.apply(str(first), environ) == ["A", "B"]
    assert environ == {"PATH": "/usr/bin", "A": "1", "B": "2", "PYFLEET_ENV_KEYS": "A,B"}
    assert pyfleet_env.apply(str(second), environ) == ["A", "C"]
    assert environ == {"PATH": "/usr/bin", "A": "10", "C": "3", "PYFLEET_ENV_KEYS": "A,C"}


def test_a_missing_env_file_is_an_error_not_an_empty_environment(tmp_path, pyfleet_env):
    with pytest.raises(FileNotFoundError):
        pyfleet_env.apply(str(tmp_path / "absent"), {})
