# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
name: linear
short_description: The linear strategy, with the connection plugins loaded once on the controller
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Runs a play exactly as P(ansible.builtin.linear#strategy) does, task by task in lockstep on
    each batch of hosts.
  - Before the first task, it loads on the controller the connection, shell and become plugins
    the play's hosts use. Each task runs on each host in a process forked from the controller,
    and a plugin loaded there first is inherited by every such process.
  - Ansible loads its plugins on the controller by their short names only. A connection named by
    its FQCN, such as V(ansible.builtin.ssh) (as ansible-lint asks) or
    V(community.docker.docker) (as Molecule's Docker driver sets), is loaded by every task on
    every host anew, which parses the plugin's documentation for its settings. In a 12-host
    rollout over SSH that was a third of the CPU time of the task processes.
  - It also makes Jinja's lexer and loads the built-in filter and test plugins once on the
    controller, which every task process would otherwise do anew for its first template.
  - It is opt-in, for example C(strategy = pyfleet.deploy.linear) in the C([defaults]) section
    of C(ansible.cfg), or C(ANSIBLE_STRATEGY=pyfleet.deploy.linear). The collection's playbooks do
    not set it, because ansible-core 2.19 deprecates strategy plugins from outside
    C(ansible.builtin), and a run that uses one prints a deprecation warning. It has no options.
notes:
  - Connection plugins are found from the play's C(connection) keyword and the
    C(ansible_connection) that the inventory sets for its hosts and groups. A plugin named
    through a template, or from C(group_vars) files, is loaded by each task as before.
seealso:
  - plugin: ansible.builtin.linear
    plugin_type: strategy
"""

from ansible import constants as C
from ansible.inventory.helpers import get_group_vars
from ansible.plugins.loader import become_loader, connection_loader, shell_loader
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy
from ansible.template import Templar, trust_as_template
from ansible.utils.display import Display
from ansible.utils.vars import combine_vars

display = Display()


def _plain(value):
    """A plugin name given literally, not through a template."""
    return isinstance(value, str) and value and "{" not in value


class StrategyModule(LinearStrategy):
    """Linear, with the plugins of the play's connections loaded before the first fork."""

    def _preload(self, play):
        connections = {play.connection or C.DEFAULT_TRANSPORT, "local"}
        become_methods = {play.become_method or C.DEFAULT_BECOME_METHOD}
        for name in self._hosts_cache_all or []:
            host = self._inventory.get_host(name)
            if host is None:
                continue
            # The inventory's own merge: groups by depth, priority and name, then the host.
            inventory_vars = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
            connections.add(inventory_vars.get("ansible_connection"))
            become_methods.add(inventory_vars.get("ansible_become_method"))
        loaded = []
        for loader, names in ((connection_loader, connections), (become_loader, become_methods),
                              (shell_loader, {"sh"})):
            for name in sorted(filter(_plain, names)):
                try:
                    if loader.get(name, class_only=True) is not None:
                        loaded.append(name)
                except Exception as error:  # pylint: disable=broad-except
                    # Each task loads it as before, and reports what is wrong with it.
                    display.vvvv("pyfleet.deploy.linear: %s not preloaded: %s" % (name, error))
        display.vvvv("pyfleet.deploy.linear: preloaded %s" % ", ".join(loaded))
        # One condition with a filter and a test: compiling it makes the lexer (cached for every
        # environment with the default delimiters) and loads the filter and test plugins.
        try:
            Templar(loader=self._loader).evaluate_conditional(trust_as_template("0 | int is number"))
        except Exception as error:  # pylint: disable=broad-except
            display.vvvv("pyfleet.deploy.linear: Jinja not preloaded: %s" % error)

    def run(self, iterator, play_context):
        self._set_hosts_cache(iterator._play)
        self._preload(iterator._play)
        return super().run(iterator, play_context)
