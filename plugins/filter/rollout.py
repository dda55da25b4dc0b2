# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Filters that shape the rollout summary."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.soak import soak_line

_COLUMNS = (
    ("host", "host"),
    ("release", None),
    ("method", "method"),
    ("swap s", "swap_seconds"),
    ("draining", "draining"),
    ("procs s", "processes_seconds"),
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
                      "swap_seconds": None, "draining": None, "processes_seconds": None, "socket_ms": None, "nginx_ms": None,
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
    lines.extend(soak_line(soak) for soak in report.get("soaks") or [])
    if report.get("stopped"):
        lines.append("stopped: %s" % (report.get("stop_reason") or "yes"))
    for warning in report.get("warnings") or []:
        lines.append("warning: %s" % warning)
    return "\n".join(lines)


def migrations_since(records, target):
    """The warning a rollback to ``target`` owes: the migrations the database keeps that ``target`` did not have.

    ``records`` is release_facts' ``migrations`` (oldest first). The newest record says what the
    database has; ``target``'s own record what it had when ``target`` migrated. Empty when nothing
    was recorded, when the newest record is ``target``'s, or when nothing was applied since.
    """
    if not isinstance(records, list) or not records:
        return ""
    newest = records[-1]
    if newest.get("release") == target:
        return ""
    mine = [index for index, record in enumerate(records) if record.get("release") == target]
    if not mine:
        return ("release %s recorded no migrations; the database has what release %s recorded after its "
                "app_migrate: %s. rollback does not undo migrations: check that %s runs against them."
                % (target, newest.get("release"), ", ".join(newest.get("applied") or []) or "none", target))
    had = set(records[mine[-1]].get("applied") or [])
    since = [name for name in newest.get("applied") or [] if name not in had]
    if not since:
        return ""
    # Each migration was applied by the first release after the target's whose record has it.
    by = []
    for name in since:
        for record in records[mine[-1] + 1:]:
            if name in (record.get("applied") or []):
                if record.get("release") not in by:
                    by.append(record.get("release"))
                break
    return ("the database keeps %d migration%s that release %s did not have: %s (applied by %s). rollback does "
            "not undo migrations: %s must run against them (expand, then contract), or reverse them by hand."
            % (len(since), "" if len(since) == 1 else "s", target, ", ".join(since), ", ".join(by), target))


def rollout_warnings(hosts, phases, soaks=None):
    """The summary's warnings: each host's (once), an app_migrate that a rollback did not undo, and each soak
    that could not judge its batch for lack of traffic and passed (rollout_soak_inconclusive pass)."""
    warnings = []
    for record in hosts or []:
        warning = (record or {}).get("warning")
        if warning and warning not in warnings:
            warnings.append(warning)
    migrate = (phases or {}).get("app_migrate") or {}
    rolled_back = [record.get("host") for record in hosts or []
                   if record and record.get("result") in ("rolled back", "rollback failed")]
    if migrate.get("result") == "ok" and rolled_back:
        applied = migrate.get("applied")
        warnings.append("app_migrate ran for release %s on %s and stays applied%s: rolling %s back did not undo it, "
                        "so the release before runs against it."
                        % (migrate.get("release"), migrate.get("host"),
                           " (the database has %s)" % ", ".join(applied) if applied else "", ", ".join(rolled_back)))
    for soak in soaks or []:
        if soak.get("verdict") == "inconclusive" and soak.get("result") == "pass":
            warnings.append("the soak after batch %s had too little traffic to judge (%s) and passed: "
                            "rollout_soak_inconclusive is pass" % (soak.get("batch_number"), "; ".join(soak.get("reasons") or [])))
    return warnings


def rollout_outcome(report):
    """How a rollout ended, from its summary: ok, rolled back or failed."""
    results = [host.get("result") for host in report.get("hosts", [])]
    if "rollback failed" in results:
        return "failed"
    if "rolled back" in results:
        return "rolled back"
    if report.get("stopped") or any(result not in ("ok", "unchanged") for result in results):
        return "failed"
    return "ok"


def rollout_clock(rollout_id, now=None):
    """When the rollout started (its id begins with that UTC time) and how many seconds ago."""
    match = re.match(r"^(\d{8}T\d{6}Z)", str(rollout_id or ""))
    if not match:
        return {"started": None, "seconds": None}
    started = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds": round((now - started).total_seconds(), 1)}


class FilterModule:
    """pyfleet.deploy rollout filters."""

    def filters(self):
        return {"rollout_results": rollout_results, "rollout_table": rollout_table,
                "migrations_since": migrations_since, "rollout_warnings": rollout_warnings,
                "rollout_outcome": rollout_outcome, "rollout_clock": rollout_clock}
