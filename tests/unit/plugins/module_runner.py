# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the module tests: run a module's main() with arguments, return (exit code, JSON result)."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_main(main, capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            main()
    return info.value.code, json.loads(capsys.readouterr().out)
