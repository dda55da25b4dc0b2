# SPDX-License-Identifier: GPL-3.0-or-later
"""pyfleet.deploy.linear: every task process starts with the play's connection plugins and Jinja's plugins loaded.

A task's process is forked from the controller. A filter defined beside the
test playbook tells, from inside that process and before the task has loaded
its connection, whether the settings of the hosts' connection plugin, named by
its FQCN as ansible-lint asks, are loaded there already. With Ansible's own
linear strategy they are not: each task on each host parses that plugin's
documentation anew.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collection import COLLECTIONS  # tests/collection.py

PROBE = '''
from ansible import constants as C
from ansible.plugins.loader import connection_loader, test_loader


def loaded(name):
    if name == "jinja tests":
        # Filled by the first template that uses a test; this task's condition uses none.
        return bool(test_loader._cached_non_collection_wrappers)
    found = connection_loader.find_plugin_with_context(name)
    return C.config.has_configuration_definition("connection", found.plugin_resolved_name)


class FilterModule:
    def filters(self):
        return {"loaded": loaded}
'''

PLAYBOOK = '''
- name: Report what a task's process has loaded
  hosts: all
  strategy: {strategy}
  gather_facts: false
  tasks:
    - name: Leave a mark when this process had the connection plugin loaded before the task
      ansible.builtin.copy:
        dest: "{{{{ report_dir }}}}/{{{{ inventory_hostname }}}}.loaded"
        content: preloaded
        mode: "0600"
      when: "'ansible.builtin.local' | loaded"
    - name: Leave a mark when this process had the Jinja test plugins loaded before the task
      ansible.builtin.copy:
        dest: "{{{{ report_dir }}}}/{{{{ inventory_hostname }}}}.jinja"
        content: preloaded
        mode: "0600"
      when: "'jinja tests' | loaded"
'''


def run_play(tmp_path: Path, strategy: str) -> list:
    (tmp_path / "filter_plugins").mkdir()
    (tmp_path / "filter_plugins" / "probe.py").write_text(PROBE)
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(strategy=strategy))
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {
        "vars": {"ansible_connection": "ansible.builtin.local", "ansible_python_interpreter": sys.executable,
                 "report_dir": str(tmp_path)},
        "hosts": {"one": {}, "two": {}}}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(path.name for path in tmp_path.iterdir() if path.suffix in (".loaded", ".jinja"))


@pytest.mark.parametrize("strategy, marks", [
    ("pyfleet.deploy.linear", ["one.jinja", "one.loaded", "two.jinja", "two.loaded"]),
    # What it saves: with Ansible's own linear each task process loads them itself.
    ("ansible.builtin.linear", []),
])
def test_each_task_process_inherits_the_hosts_connection_plugin_and_jinjas_plugins(tmp_path, strategy, marks):
    assert run_play(tmp_path, strategy) == marks
