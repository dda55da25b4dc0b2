# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Strict checks of role variables against a role's argument_specs (private).

Ansible's own argument validation converts silently: a string where a list is
expected becomes a list split on commas, and a list given where a string is
expected becomes its text. These checks refuse both. Each problem is one
sentence that names the one variable at fault, what it holds and what was
expected.

Only values that the command line cannot type are read: ``-e name=value`` gives
strings, so an integer or boolean option also takes the text of one
(``"20"``, ``"true"``). Nothing else is converted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_BOOL_TEXT = {"true", "false", "yes", "no"}
_SCALARS = (str, int, float, bool)

_EXPECTED = {
    "str": "a string",
    "path": "a path (a string)",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping",
}


def describe(value, secret=False):
    """How a value reads in a message: its kind, and its value unless it is secret."""
    if value is None:
        return "null"
    # Ansible hands over tagged subclasses of the builtin types: ask isinstance.
    for base, kind in ((bool, "a boolean"), (str, "the string"), (int, "the integer"), (float, "the number"),
                       ((list, tuple), "a list"), (Mapping, "a mapping")):
        if isinstance(value, base):
            break
    else:
        kind = "a " + type(value).__name__
    if secret:
        return kind + " (value hidden)"
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 120:
        text = text[:117] + "..."
    return "%s %s" % (kind, text)


def _type_ok(kind, value):
    if kind in ("str", "path"):
        return isinstance(value, str)
    if kind == "int":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit())
    if kind == "float":
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in _BOOL_TEXT)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "dict":
        return isinstance(value, Mapping)
    # raw, or a type this checker does not know: Ansible's own validation covers it.
    return True


def _expected(option):
    kind = option.get("type", "str")
    text = _EXPECTED.get(kind, kind)
    if kind == "list" and option.get("elements"):
        text = "a list of %s" % _plural(option["elements"])
    if option.get("choices"):
        text += " among %s" % ", ".join(str(choice) for choice in option["choices"])
    return text


def _plural(kind):
    return {"str": "strings", "path": "paths", "int": "integers", "float": "numbers", "bool": "booleans",
            "dict": "mappings", "list": "lists"}.get(kind, kind)


def check_option(name, option, value, problems):
    """Append to problems what is wrong with one value of one option; True if it is usable."""
    secret = bool(option.get("no_log"))
    kind = option.get("type", "str")
    if value is None:
        if option.get("required"):
            problems.append("%s is required: %s." % (name, _expected(option)))
            return False
        return True
    if not _type_ok(kind, value):
        problems.append("%s must be %s; got %s." % (name, _expected(option), describe(value, secret)))
        return False
    choices = option.get("choices")
    if kind == "list":
        element = option.get("elements")
        ok = True
        for index, item in enumerate(value):
            if element == "dict" and option.get("options"):
                ok = check_options("%s[%d]" % (name, index), option["options"], item, problems) and ok
            elif element and not _type_ok(element, item):
                problems.append("%s[%d] must be %s; got %s." % (name, index, _EXPECTED.get(element, element),
                                                                describe(item, secret)))
                ok = False
            elif choices and item not in choices:
                allowed = ", ".join(map(str, choices))
                problems.append("%s[%d] must be one of %s; got %s." % (name, index, allowed, describe(item, secret)))
                ok = False
        return ok
    if choices and value not in choices:
        problems.append("%s must be one of %s; got %s." % (name, ", ".join(map(str, choices)), describe(value, secret)))
        return False
    if kind == "dict" and option.get("options"):
        return check_options(name, option["options"], value, problems)
    return True


def check_options(prefix, options, values, problems):
    """Check a mapping of values against the options of a dict option (unknown keys are refused)."""
    ok = True
    unknown = sorted(set(values) - set(options))
    for key in unknown:
        problems.append("%s has no key %s; expected keys: %s." % (prefix, json.dumps(key), ", ".join(options)))
        ok = False
    for key, option in options.items():
        if key not in values:
            if option.get("required"):
                problems.append("%s.%s is required: %s." % (prefix, key, _expected(option)))
                ok = False
            continue
        ok = check_option("%s.%s" % (prefix, key), option, values[key], problems) and ok
    return ok


def scalar_values(name, value, secret=False):
    """Problems of a mapping whose values must be scalars (an environment)."""
    if not isinstance(value, Mapping):
        return []
    return ["%s.%s must be a string, a number or a boolean; got %s." % (name, key, describe(item, secret))
            for key, item in value.items() if not isinstance(item, _SCALARS)]


def spec_options(argument_specs, entry_point="main"):
    """The options of one entry point of a role's meta/argument_specs.yml document."""
    try:
        return argument_specs["argument_specs"][entry_point].get("options") or {}
    except (KeyError, TypeError, AttributeError):
        raise ValueError("no entry point %r in the role's argument_specs" % entry_point) from None


_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"(?<![\w.'\"])([A-Za-z_][A-Za-z0-9_]*)(?![\w'\"(])")
_NOT_VARIABLES = {"default", "int", "string", "bool", "list", "length", "true", "false", "none", "True", "False",
                  "None", "and", "or", "not", "if", "else", "in", "is", "lookup", "inventory_hostname", "inventory_dir",
                  "playbook_dir"}


def derived_from(name, raw_value, defaults):
    """The variables a role default is built from, while the value is still that default.

    ``app_user: "{{ app_name }}"`` makes a bad app_name a bad app_user too, and
    ``nginx_tls_mode: "{{ tls_mode | default('selfsigned') }}"`` shows a bad
    tls_mode as nginx_tls_mode; the user set app_name or tls_mode, so the
    message names that. Returns an empty set for a value the user set.
    """
    default = defaults.get(name)
    if not isinstance(default, str) or not isinstance(raw_value, str) or str(raw_value) != default:
        return set()
    names = set()
    for expression in _TEMPLATE.findall(default):
        names.update(_NAME.findall(expression))
    return names - _NOT_VARIABLES
