#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: validate_vars
short_description: Check a role's variables strictly, on the controller, before any host is contacted
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Reads the options of one entry point of a role's C(meta/argument_specs.yml) and checks the
    value of each variable against its declared C(type), C(elements), C(choices), C(required) and
    nested C(options), without converting anything.
  - Ansible's own argument validation converts silently, for example a string where a list is
    expected becomes a list split on commas. This action refuses it instead.
  - Only the text of an integer or a boolean is accepted for an C(int) or C(bool) option, because
    C(-e name=value) on the command line can only give text.
  - When every type is right, it evaluates the O(rules) in order; the first rule that fails for a
    variable gives that variable's message.
  - Each message names the one variable at fault, its value (hidden for C(no_log) options) and what
    was expected. Nothing runs on the managed host.
options:
  role_path:
    description:
      - Role whose C(meta/argument_specs.yml) declares the variables.
      - Defaults to the role the task runs in.
    type: path
  entry_point:
    description: Entry point of the argument specs whose options are checked.
    type: str
    default: main
  names:
    description:
      - Check only these options of the entry point. Defaults to all of them.
    type: list
    elements: str
  scalar_values:
    description:
      - Mapping options whose values must be strings, numbers or booleans, such as an environment.
    type: list
    elements: str
    default: []
  rules:
    description:
      - Further checks, evaluated only when every type is right.
      - Each rule is a mapping with C(var), the variable it is about, C(that), a conditional or a
        list of conditionals as in M(ansible.builtin.assert), C(expect), the text of what was
        expected, and optionally C(when), a conditional, and C(show), a template for the value to
        print instead of the variable's.
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - pyfleet.deploy.attributes
  - pyfleet.deploy.attributes.info_module
notes:
  - Use it as the first task of a role's C(validate) entry point, so that a wrong variable stops the
    play before any host changes.
"""

EXAMPLES = r"""
- name: Check the app variables
  pyfleet.deploy.validate_vars:
    scalar_values: [app_env, app_secrets]
    rules:
      - var: app_keep_releases
        that: app_keep_releases | int >= 1
        expect: an integer of at least 1

- name: Check the nginx variables of the load balancer only
  pyfleet.deploy.validate_vars:
    role_path: "{{ role_path }}"
    names: [nginx_server_names, nginx_lb_backends]
"""

RETURN = r"""
msg:
  description: The problems found, one per line, or how many variables were checked.
  returned: always
  type: str
  sample: "nginx_server_names must be a list of strings; got the string \"shop.example.com\"."
problems:
  description: Each problem found, one sentence each.
  returned: failed
  type: list
  elements: str
  sample: ["app_keep_releases must be an integer of at least 1; got the integer 0."]
"""
