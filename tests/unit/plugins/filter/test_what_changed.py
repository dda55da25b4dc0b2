# SPDX-License-Identifier: GPL-3.0-or-later
"""what_changed_report: one block per distinct change, with its hosts."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.what_changed import FilterModule, what_changed_report


def _result(from_id="a1", to_id="b2", **extra):
    result = {
        "from": {"id": from_id, "meta": {"lock_hash": "l1", "python": "3.11.2", "deployed_by": "ci"}},
        "to": {"id": to_id, "meta": {"lock_hash": "l2", "python": "3.11.2", "deployed_by": "ci"}},
        "summary": f"{from_id} -> {to_id}: 1 package changed",
        "packages": {"changed": [{"name": "fastapi", "from": "0.1", "to": "0.2"}],
                     "added": [{"name": "itsdangerous", "version": "2.2.0"}],
                     "removed": [{"name": "oldpkg", "version": "1.0"}]},
        "source": {"changed": ["main.py"], "added": ["new.py"], "removed": ["gone.py"],
                   "diff": "--- a/main.py\n+++ b/main.py\n-v1\n+v2", "diff_truncated": True},
    }
    result.update(extra)
    return result


def test_filter_is_registered():
    assert FilterModule().filters()["what_changed_report"] is what_changed_report


def test_hosts_with_the_same_change_are_shown_once():
    lines = what_changed_report({"web1": _result(), "web2": _result(), "web3": _result("b2", "c3")})
    assert lines[0] == "web1, web2 (2 hosts): a1 -> b2"
    assert "web3 (1 host): b2 -> c3" in lines
    assert lines.count("  ~ fastapi 0.1 -> 0.2") == 2
    assert "  + itsdangerous 2.2.0" in lines and "  - oldpkg 1.0" in lines
    assert {"  M main.py", "  A new.py", "  D gone.py"} <= set(lines)
    assert "  lock_hash: l1 -> l2" in lines
    assert not any(line.startswith("  python") for line in lines)


def test_diff_only_when_asked():
    assert "    +v2" not in what_changed_report({"web1": _result()})
    lines = what_changed_report({"web1": _result()}, show_diff=True)
    assert "    +v2" in lines and "    ... (diff truncated)" in lines


def test_failed_and_missing_hosts_are_listed_last():
    lines = what_changed_report({"web1": {"failed": True, "msg": "no previous release"}, "web2": {}, "web3": _result()})
    assert lines[0].startswith("web3 (1 host)")
    assert lines[-3:] == ["not compared:", "  web1: no previous release", "  web2: no result"]


def test_wrong_input_type():
    with pytest.raises(AnsibleFilterError):
        what_changed_report(["web1"])
