# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""The soak's verdict: a batch's real requests against the thresholds and the hosts not yet rolled."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.module_utils.latency import add, percentile

DEFAULTS = {"max_5xx_ratio": 0.01, "max_p99_ms": 0, "max_p99_ratio_to_baseline": 0.0, "min_requests": 100,
            "p99_floor_ms": 25}


def merge(figures):
    """One set of figures for several hosts' access_log_stats results."""
    requests = sum(int(one.get("requests", 0)) for one in figures)
    errors = sum(int(one.get("errors", 0)) for one in figures)
    histogram = {}
    for one in figures:
        add(histogram, one.get("latency_histogram"))
    return {"hosts": [_name(one) for one in figures], "requests": requests, "errors": errors,
            "error_ratio": round(errors / requests, 5) if requests else None,
            "p50_ms": percentile(histogram, 0.5), "p99_ms": percentile(histogram, 0.99)}


def _name(one):
    """A result's host: its ``host`` key, or the ``item`` of a task that looped over the hosts."""
    return one.get("host") or one.get("item")


def _host(one):
    return {"host": _name(one), "requests": int(one.get("requests", 0)), "errors": int(one.get("errors", 0)),
            "p99_ms": one.get("p99_ms")}


def soak_verdict(batch, baseline=None, slo=None):
    """Judge a batch from its hosts' access_log_stats results (each with a ``host`` key).

    Returns verdict (pass, fail or inconclusive), the reasons, the batch's and the baseline's merged figures
    and each host's. Inconclusive when the batch served fewer than min_requests; fail when its share of 5xx
    exceeds max_5xx_ratio, its p99 exceeds max_p99_ms, or its p99 exceeds max_p99_ratio_to_baseline times
    the baseline's (never less than p99_floor_ms), which is compared only when the baseline served
    min_requests too. A threshold of 0 is off.
    """
    if not isinstance(batch, list) or not batch:
        raise AnsibleFilterError("soak_verdict expects a non-empty list of the batch's access_log_stats results")
    if not isinstance(baseline or [], list):
        raise AnsibleFilterError("soak_verdict expects the baseline as a list of access_log_stats results")
    limits = dict(DEFAULTS, **{key: value for key, value in (slo or {}).items() if value is not None})
    # A log that could not be read: a batch host's fails the batch; a baseline host's leaves the baseline.
    unread = ["cannot read the access log of %s: %s" % (_name(one), one.get("msg", "failed"))
              for one in batch if one.get("failed")]
    batch = [one for one in batch if not one.get("failed")]
    baseline = [one for one in baseline or [] if not one.get("failed")]
    mine, theirs = merge(batch), merge(baseline) if baseline else None
    reasons = []
    if unread:
        verdict = "fail"
        reasons.extend(unread)
    elif mine["requests"] < int(limits["min_requests"]):
        verdict = "inconclusive"
        reasons.append("%d requests, fewer than min_requests %d" % (mine["requests"], int(limits["min_requests"])))
    else:
        if mine["error_ratio"] > float(limits["max_5xx_ratio"]):
            reasons.append("5xx ratio %.2f %% (%d of %d) above max_5xx_ratio %.2f %%" % (
                100 * mine["error_ratio"], mine["errors"], mine["requests"], 100 * float(limits["max_5xx_ratio"])))
        if float(limits["max_p99_ms"]) > 0 and (mine["p99_ms"] or 0) > float(limits["max_p99_ms"]):
            reasons.append("p99 %s ms above max_p99_ms %s" % (mine["p99_ms"], limits["max_p99_ms"]))
        ratio = float(limits["max_p99_ratio_to_baseline"])
        if ratio > 0 and theirs and theirs["requests"] >= int(limits["min_requests"]) and theirs["p99_ms"] is not None:
            bound = ratio * max(float(theirs["p99_ms"]), float(limits["p99_floor_ms"]))
            if (mine["p99_ms"] or 0) > bound:
                reasons.append("p99 %s ms above %s x the baseline's %s ms (floor %s ms)" % (
                    mine["p99_ms"], limits["max_p99_ratio_to_baseline"], theirs["p99_ms"], limits["p99_floor_ms"]))
        verdict = "fail" if reasons else "pass"
    return {"verdict": verdict, "reasons": reasons, "batch": mine, "baseline": theirs,
            "hosts": [_host(one) for one in batch], "baseline_hosts": [_host(one) for one in baseline or []]}


def soak_line(soak):
    """One line of the summary for a soak: verdict, reasons, the batch's figures beside the baseline's."""

    def figures(merged):
        if not merged:
            return "no baseline"
        ratio = "-" if merged["error_ratio"] is None else "%.2f %%" % (100 * merged["error_ratio"])
        p99 = "-" if merged["p99_ms"] is None else merged["p99_ms"]
        return "%d requests, %s 5xx, p99 %s ms" % (merged["requests"], ratio, p99)

    hosts = ", ".join("%s %d/%d p99 %s" % (one["host"], one["errors"], one["requests"], one["p99_ms"])
                      for one in soak.get("hosts", []))
    return "soak after batch %s: %s in %s s%s; batch (%s): %s; baseline (%d hosts): %s" % (
        soak.get("batch_number", "?"), soak["verdict"], soak.get("seconds", "?"),
        " (%s)" % "; ".join(soak["reasons"]) if soak["reasons"] else "", hosts, figures(soak["batch"]),
        len(soak.get("baseline_hosts", [])), figures(soak["baseline"]))


class FilterModule:
    """pyfleet.deploy soak filters."""

    def filters(self):
        return {"soak_verdict": soak_verdict, "soak_line": soak_line}
