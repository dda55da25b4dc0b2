# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""The rollout history (history.jsonl, one summary per line) as the scorecard pyfleet.deploy.history prints."""

from __future__ import annotations

import json
from datetime import datetime

from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.rollout import rollout_outcome


def _reports(history):
    """The summaries of a history: a list of dicts, or the text of history.jsonl."""
    if isinstance(history, str):
        reports = []
        for number, line in enumerate(history.splitlines(), 1):
            if line.strip():
                try:
                    reports.append(json.loads(line))
                except ValueError as error:
                    raise AnsibleFilterError("history line %d is not JSON: %s" % (number, error)) from error
        return reports
    if not isinstance(history, list):
        raise AnsibleFilterError("rollout_scorecard expects the text of history.jsonl or a list of summaries")
    return history


def _period(finished, period):
    at = datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ")
    return at.strftime("%G-W%V") if period == "week" else at.strftime("%Y-%m")


def _quantile(values, fraction):
    ordered = sorted(values)
    return ordered[max(0, -int(-len(ordered) * fraction // 1) - 1)] if ordered else None


def rollout_scorecard(history, period="week"):
    """The scorecard of a rollout history: each host's releases over time, the failed rollouts and the
    rollbacks, and per period the count, failures, rollbacks, median and p90 seconds. A dict with
    ``hosts``, ``failures``, ``periods`` and ``lines`` (the text to print)."""
    if period not in ("week", "month"):
        raise AnsibleFilterError("period must be week or month; got %r" % (period,))
    reports = sorted(_reports(history), key=lambda report: report.get("finished", ""))
    hosts, failures, periods = {}, [], {}
    for report in reports:
        outcome = rollout_outcome(report)
        for host in report.get("hosts", []):
            if host.get("result") in ("ok", "unchanged"):
                releases = hosts.setdefault(host["host"], [])
                if not releases or releases[-1]["release"] != host.get("to"):
                    releases.append({"release": host.get("to"), "since": report.get("finished"),
                                     "playbook": report.get("playbook")})
        if outcome != "ok":
            failures.append({"rollout": report.get("rollout"), "finished": report.get("finished"),
                             "release": report.get("release"), "outcome": outcome,
                             "reason": report.get("stop_reason", "")})
        if report.get("finished"):
            entry = periods.setdefault(_period(report["finished"], period),
                                       {"rollouts": 0, "failed": 0, "rolled_back": 0, "seconds": []})
            entry["rollouts"] += 1
            entry["failed"] += outcome == "failed"
            entry["rolled_back"] += outcome == "rolled back"
            if report.get("seconds") is not None:
                entry["seconds"].append(float(report["seconds"]))
    for entry in periods.values():
        entry["median_seconds"] = _quantile(entry["seconds"], 0.5)
        entry["p90_seconds"] = _quantile(entry["seconds"], 0.9)
        del entry["seconds"]

    lines = ["releases per host:"]
    for name in sorted(hosts):
        changes = ["%s (%s)" % (item["release"], item["since"]) for item in hosts[name]]
        lines.append("  %s: %s" % (name, " -> ".join(changes)))
    lines.append("failed rollouts and rollbacks: %d" % len(failures))
    for failure in failures:
        reason = " (%s)" % failure["reason"] if failure["reason"] else ""
        lines.append("  %s %s %s: %s%s" % (failure["finished"], failure["rollout"], failure["outcome"],
                                           failure["release"], reason))
    lines.append("per %s: rollouts, failed, rolled back, median s, p90 s" % period)
    for name in sorted(periods):
        entry = periods[name]
        lines.append("  %s: %d, %d, %d, %s, %s" % (name, entry["rollouts"], entry["failed"], entry["rolled_back"],
                                                   entry["median_seconds"], entry["p90_seconds"]))
    return {"hosts": hosts, "failures": failures, "periods": periods, "lines": lines}


class FilterModule:
    """pyfleet.deploy history filters."""

    def filters(self):
        return {"rollout_scorecard": rollout_scorecard}
