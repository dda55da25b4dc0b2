# SPDX-License-Identifier: GPL-3.0-or-later
"""Strict variable checks: nothing is converted, each message names one variable."""

from __future__ import annotations

import pytest

from ansible_collections.pyfleet.deploy.plugins.plugin_utils._var_check import (
    check_option,
    derived_from,
    describe,
    scalar_values,
    spec_options,
)

NAMES = {"type": "list", "elements": "str"}
SOURCE = {"type": "dict", "required": True, "options": {
    "type": {"type": "str", "required": True, "choices": ["dir", "archive"]},
    "path": {"type": "path", "required": True},
}}


def problems_of(name, option, value):
    found = []
    check_option(name, option, value, found)
    return found


@pytest.mark.parametrize(("option", "value", "expected"), [
    (NAMES, "shop.example", ['names must be a list of strings; got the string "shop.example".']),
    (NAMES, ["a", 3], ["names[1] must be a string; got the integer 3."]),
    ({"type": "int"}, True, ["names must be an integer; got a boolean true."]),
    ({"type": "int"}, "ten", ['names must be an integer; got the string "ten".']),
    ({"type": "str"}, ["x"], ['names must be a string; got a list ["x"].']),
    ({"type": "bool"}, "maybe", ['names must be true or false; got the string "maybe".']),
    ({"type": "dict"}, "k=v", ['names must be a mapping; got the string "k=v".']),
    ({"type": "str", "choices": ["a", "b"]}, "c", ['names must be one of a, b; got the string "c".']),
    ({"type": "list", "elements": "str", "choices": ["a"]}, ["a", "z"], ['names[1] must be one of a; got the string "z".']),
    ({"type": "str", "required": True}, None, ["names is required: a string."]),
    ({"type": "str", "no_log": True}, ["s3cret"], ["names must be a string; got a list (value hidden)."]),
])
def test_a_wrong_value_gets_one_sentence_naming_it(option, value, expected):
    assert problems_of("names", option, value) == expected


@pytest.mark.parametrize(("option", "value"), [
    (NAMES, ["a", "b"]),
    ({"type": "int"}, 3),
    ({"type": "int"}, "3"),  # -e name=3 on the command line
    ({"type": "bool"}, "true"),
    ({"type": "bool"}, False),
    ({"type": "float"}, 1),
    ({"type": "raw"}, {"any": ["thing"]}),
    ({"type": "str"}, None),  # unset and optional
])
def test_a_right_value_passes(option, value):
    assert problems_of("names", option, value) == []


def test_nested_options_refuse_unknown_and_missing_keys():
    assert problems_of("app_source", SOURCE, {"type": "svn", "pth": "/x"}) == [
        'app_source has no key "pth"; expected keys: type, path.',
        'app_source.type must be one of dir, archive; got the string "svn".',
        "app_source.path is required: a path (a string).",
    ]


def test_a_list_of_dicts_is_checked_entry_by_entry():
    option = {"type": "list", "elements": "dict", "options": {"location": {"type": "str", "required": True}}}
    assert problems_of("locations", option, [{"location": "/a/"}, {"where": "/b/"}]) == [
        'locations[1] has no key "where"; expected keys: location.',
        "locations[1].location is required: a string.",
    ]


def test_environment_values_must_be_scalars():
    assert scalar_values("app_env", {"A": "1", "B": 2, "C": True, "D": ["x"], "E": None}) == [
        'app_env.D must be a string, a number or a boolean; got a list ["x"].',
        "app_env.E must be a string, a number or a boolean; got null.",
    ]
    assert scalar_values("app_secrets", {"T": {"k": "v"}}, secret=True) == [
        "app_secrets.T must be a string, a number or a boolean; got a mapping (value hidden).",
    ]


def test_a_default_built_from_another_variable_names_it():
    defaults = {"app_user": "{{ app_name }}", "nginx_tls_mode": "{{ tls_mode | default('selfsigned') }}",
                "app_root": "/srv/{{ app_name }}", "nginx_upstream_keepalive": 32}
    assert derived_from("app_user", "{{ app_name }}", defaults) == {"app_name"}
    assert derived_from("nginx_tls_mode", "{{ tls_mode | default('selfsigned') }}", defaults) == {"tls_mode"}
    assert derived_from("app_root", "/srv/{{ app_name }}", defaults) == {"app_name"}
    # Set by the user: the variable itself is at fault.
    assert derived_from("app_user", "shop user", defaults) == set()
    assert derived_from("nginx_upstream_keepalive", 32, defaults) == set()


def test_long_values_are_shortened():
    assert describe("x" * 300) == 'the string "' + "x" * 116 + "..."


def test_an_unknown_entry_point_is_an_error():
    with pytest.raises(ValueError, match="no entry point 'setup'"):
        spec_options({"argument_specs": {"main": {"options": {}}}}, "setup")
    assert spec_options({"argument_specs": {"main": {"options": {"a": {}}}}}) == {"a": {}}
