# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Webhook bodies for rollout_notify, and the warnings for webhooks that failed."""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible_collections.pyfleet.deploy.plugins.filter.soak import soak_line

OK = (200, 201, 202, 204)


def rollout_notification_text(fields):
    """One message for a Slack-compatible webhook from the event's fields."""
    head = "pyfleet.deploy %s: %s %s, release %s" % (
        fields.get("playbook", "rollout"), fields.get("app", ""), fields.get("event", ""), fields.get("release", ""))
    lines = [head, "rollout %s by %s on %s; source %s, lock %s, Python %s" % (
        fields.get("rollout", ""), fields.get("started_by", ""), ", ".join(fields.get("hosts") or []),
        fields.get("source_revision") or "-", fields.get("lock_hash") or "-", ", ".join(fields.get("python") or []) or "-")]
    if fields.get("seconds") is not None:
        lines.append("%s s since it started" % fields["seconds"])
    if fields.get("soak"):
        lines.append(soak_line(fields["soak"]))
    for result in fields.get("results") or []:
        lines.append("%s: %s%s" % (result.get("host"), result.get("result"),
                                   " (%s)" % result["reason"] if result.get("reason") else ""))
    if fields.get("stopped"):
        lines.append("stopped: %s" % fields.get("stop_reason", ""))
    return "\n".join(lines)


def webhook_failures(results, event):
    """A warning for each webhook of a looped uri task that did not answer 2xx; the URL is cut to its host."""
    warnings = []
    for result in results or []:
        if result.get("status") in OK:
            continue
        host = urlsplit(str((result.get("item") or {}).get("url", ""))).hostname or "?"
        why = ("status %s" % result["status"]) if result.get("status", -1) > 0 else str(result.get("msg", "no answer"))
        warnings.append("webhook %s (%s) failed: %s" % (host, event, why[:200]))
    return warnings


class FilterModule:
    """pyfleet.deploy notification filters."""

    def filters(self):
        return {"rollout_notification_text": rollout_notification_text, "webhook_failures": webhook_failures}
