# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Action plugin of pyfleet.deploy.validate_vars: runs on the controller only."""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.pyfleet.deploy.plugins.plugin_utils._var_check import (
    check_option,
    derived_from,
    describe,
    scalar_values,
    spec_options,
)


class ActionModule(ActionBase):
    """Check role variables strictly against the role's argument_specs, then against its rules."""

    _requires_connection = False
    TRANSFERS_FILES = False

    @classmethod
    def finalize_task_arg(cls, name, value, templar, context):
        # The rules' conditions are evaluated one by one, after the types are known
        # to be right, so that a wrong type gets its own message instead of a
        # template error; leave them untemplated here, as assert does with `that`.
        if name == "rules":
            return value
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _valid, args = self.validate_argument_spec(argument_spec=dict(
            role_path=dict(type="path"),
            entry_point=dict(type="str", default="main"),
            names=dict(type="list", elements="str"),
            scalar_values=dict(type="list", elements="str", default=[]),
            rules=dict(type="list", elements="dict", default=[]),
        ))
        role_path = args["role_path"] or task_vars.get("role_path")
        if not role_path:
            raise AnsibleError("validate_vars runs inside a role, or needs role_path")
        specs = self._loader.load_from_file(os.path.join(role_path, "meta", "argument_specs.yml"))
        options = spec_options(specs, args["entry_point"])
        names = args["names"] or list(options)
        defaults_file = os.path.join(role_path, "defaults", "main.yml")
        defaults = (self._loader.load_from_file(defaults_file) if os.path.exists(defaults_file) else None) or {}

        values, problems = {}, {}
        for name in names:
            option = options.get(name)
            if option is None:
                raise AnsibleError("validate_vars: %s is not an option of %s" % (name, role_path))
            value = self._value(name, task_vars)
            values[name] = value
            found = []
            check_option(name, option, value, found)
            if name in args["scalar_values"]:
                found.extend(scalar_values(name, value, bool(option.get("no_log"))))
            if found:
                problems[name] = found
        if not problems:
            for rule in args["rules"]:
                if rule.get("var") not in problems:
                    problem = self._rule(rule, options, values)
                    if problem:
                        problems[rule["var"]] = [problem]
        problems = self._root_causes(problems, task_vars, defaults)
        problems = [problem for found in problems.values() for problem in found]

        result["changed"] = False
        if problems:
            result["failed"] = True
            result["msg"] = "\n".join(problems)
            result["problems"] = problems
        else:
            result["msg"] = "%d variables checked" % len(names)
        return result

    @staticmethod
    def _root_causes(problems, task_vars, defaults):
        """Name the variable the user set, not the ones whose defaults follow it.

        app_user defaults to app_name: a bad app_name is reported once, as
        app_name. A bad tls_mode seen first through nginx_tls_mode's default is
        reported as tls_mode.
        """
        causes = {}
        for name, found in problems.items():
            sources = derived_from(name, task_vars.get(name), defaults)
            if sources & (set(problems) - {name}):
                continue
            if len(sources) == 1:
                source = next(iter(sources))
                found = ["%s (through %s's default)%s" % (source, name, problem[len(name):])
                         if problem.startswith(name + " ") else problem for problem in found]
            causes[name] = found
        return causes

    def _value(self, name, task_vars):
        if name not in task_vars:
            return None
        try:
            return self._templar.template(task_vars[name])
        except AnsibleError:
            # A default built from a variable that is missing (app_user from
            # app_name, say): the missing one is reported by name.
            return None

    def _rule(self, rule, options, values):
        """The message of a rule that fails, or None."""
        var = rule.get("var")
        if var not in values:
            raise AnsibleError("validate_vars: rule %r names %r, which is not checked here" % (rule, var))
        when = rule.get("when")
        if when is not None and not self._templar.evaluate_conditional(when):
            return None
        conditions = rule.get("that")
        for condition in conditions if isinstance(conditions, list) else [conditions]:
            if not self._templar.evaluate_conditional(condition):
                secret = bool(options.get(var, {}).get("no_log"))
                shown = rule.get("show")
                got = describe(values[var], secret) if shown is None else str(self._templar.template(shown))
                expect = str(self._templar.template(rule.get("expect", "valid")))
                return "%s must be %s; got %s." % (var, expect, got)
        return None
