# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Filters that shape the rollout summary."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

_COLUMNS = (
    ("host", "host"),
    ("release", None),
    ("method", "method"),
    ("swap s", "swap_seconds"),
    ("socket ms", "socket_ms"),
    ("nginx ms", "nginx_ms"),
    ("result", "result"),
)


def _text(value):
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return "%.2f" % value
    return str(value)


def rollout_results(hosts, hostvars):
    """One result per host, in inventory order; hosts never reached say so."""
    results = []
    for host in hosts:
        record = None
        try:
            record = hostvars[host].get("rollout_result")
        except KeyError:
            record = None
        if not record:
            record = {"host": host, "from": None, "to": None, "method": None, "why": None,
                      "swap_seconds": None, "socket_ms": None, "nginx_ms": None,
                      "result": "not started", "reason": ""}
        results.append(dict(record))
    return results


def rollout_table(report):
    """Render a rollout report as a fixed-width text table."""
    if not isinstance(report, dict) or "hosts" not in report:
        raise AnsibleFilterError("rollout_table expects a rollout report with a 'hosts' list")
    rows = []
    for record in report["hosts"]:
        row = []
        for title, key in _COLUMNS:
            if key is None:
                row.append("%s -> %s" % (_text(record.get("from")), _text(record.get("to"))))
            else:
                row.append(_text(record.get(key)))
        rows.append(row)
    titles = [title for title, _key in _COLUMNS]
    widths = [max([len(titles[i])] + [len(row[i]) for row in rows]) for i in range(len(titles))]
    lines = ["rollout %s  release %s" % (_text(report.get("rollout")), _text(report.get("release")))]
    lines.append("  ".join(titles[i].ljust(widths[i]) for i in range(len(titles))).rstrip())
    lines.append("  ".join("-" * width for width in widths))
    for row in rows:
        lines.append("  ".join(row[i].ljust(widths[i]) for i in range(len(row))).rstrip())
    for record in report["hosts"]:
        if record.get("reason"):
            lines.append("%s: %s" % (record.get("host"), record.get("reason")))
    for name, phase in sorted((report.get("phases") or {}).items()):
        lines.append("%s on %s: %s in %s s%s" % (name, _text(phase.get("host")), _text(phase.get("result")),
                                                 _text(phase.get("seconds")),
                                                 ": " + phase["error"] if phase.get("error") else ""))
    if report.get("stopped"):
        lines.append("stopped: %s" % (report.get("stop_reason") or "yes"))
    return "\n".join(lines)


class FilterModule:
    """pyfleet.deploy rollout filters."""

    def filters(self):
        return {"rollout_results": rollout_results, "rollout_table": rollout_table}
