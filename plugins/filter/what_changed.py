# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Fleet-wide report of release_diff results: each distinct change once, with its hosts."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _key(result):
    """Two hosts share a change when they compare the same pair of releases."""
    return (result.get("from", {}).get("id", ""), result.get("to", {}).get("id", ""))


def _change_lines(result, show_diff):
    lines = [result.get("summary", "")]
    meta_from, meta_to = result.get("from", {}).get("meta", {}), result.get("to", {}).get("meta", {})
    for field in ("source_revision", "lock_hash", "python", "deployed_at", "deployed_by"):
        before, after = meta_from.get(field, "-"), meta_to.get(field, "-")
        if before != after:
            lines.append("  %s: %s -> %s" % (field, before, after))
    packages = result.get("packages", {})
    for item in packages.get("changed", []):
        lines.append("  ~ %s %s -> %s" % (item["name"], item["from"], item["to"]))
    for item in packages.get("added", []):
        lines.append("  + %s %s" % (item["name"], item["version"]))
    for item in packages.get("removed", []):
        lines.append("  - %s %s" % (item["name"], item["version"]))
    source = result.get("source") or {}
    config = result.get("config") or {}
    for mark, field in (("M", "changed"), ("A", "added"), ("D", "removed")):
        lines.extend("  %s %s" % (mark, path) for path in source.get(field, []))
        lines.extend("  %s .pyfleet/%s" % (mark, path) for path in config.get(field, []))
        lines.extend("  %s env %s" % (mark, name) for name in config.get("env", {}).get(field, []))
    if show_diff and source.get("diff"):
        lines.extend("    " + line for line in source["diff"].splitlines())
        if source.get("diff_truncated"):
            lines.append("    ... (diff truncated)")
    return lines


def what_changed_report(results, show_diff=False):
    """Lines of text: for each distinct (from, to) pair, the hosts, then the change.

    ``results`` maps host names to release_diff results; hosts whose result
    failed or is missing are listed at the end with their error.
    """
    if not isinstance(results, dict):
        raise AnsibleFilterError("what_changed_report expects a dict of host name to release_diff result")
    groups, order, failed = {}, [], []
    for host, result in results.items():
        if not isinstance(result, dict) or result.get("failed") or "to" not in result:
            message = result.get("msg", "no result") if isinstance(result, dict) else "no result"
            failed.append("%s: %s" % (host, message))
            continue
        key = _key(result)
        if key not in groups:
            groups[key] = {"hosts": [], "result": result}
            order.append(key)
        groups[key]["hosts"].append(host)
    lines = []
    for key in order:
        group = groups[key]
        count = len(group["hosts"])
        plural = "" if count == 1 else "s"
        lines.append("%s (%d host%s): %s -> %s" % (", ".join(group["hosts"]), count, plural, key[0], key[1]))
        lines.extend(_change_lines(group["result"], show_diff))
    if failed:
        lines.append("not compared:")
        lines.extend("  " + line for line in failed)
    return lines


class FilterModule:
    def filters(self):
        return {"what_changed_report": what_changed_report}
