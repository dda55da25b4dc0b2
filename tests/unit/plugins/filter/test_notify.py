# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The webhook text and the warnings for webhooks that did not answer."""

from __future__ import annotations

from ansible_collections.pyfleet.deploy.plugins.filter.notify import rollout_notification_text, webhook_failures


def test_the_slack_text_carries_the_builds_metadata_and_each_hosts_result():
    text = rollout_notification_text({
        "event": "rolled back", "app": "shop", "playbook": "rolling_reload", "release": "abc-123", "rollout": "r1",
        "started_by": "ana@ci", "hosts": ["app1", "app2"], "source_revision": "9f1c", "lock_hash": "77aa",
        "python": ["3.11.2"], "seconds": 41.5, "stopped": True, "stop_reason": "the soak after batch 1 failed",
        "results": [{"host": "app1", "result": "rolled back", "reason": "soak"}, {"host": "app2", "result": "not started"}]})
    assert text.splitlines() == [
        "pyfleet.deploy rolling_reload: shop rolled back, release abc-123",
        "rollout r1 by ana@ci on app1, app2; source 9f1c, lock 77aa, Python 3.11.2",
        "41.5 s since it started",
        "app1: rolled back (soak)",
        "app2: not started",
        "stopped: the soak after batch 1 failed"]


def test_only_failed_webhooks_warn_and_their_token_stays_out():
    results = [
        {"status": 204, "item": {"url": "https://hooks.example.com/ok"}},
        {"status": -1, "msg": "Request failed: <urlopen error timed out>",
         "item": {"url": "https://hooks.example.com/services/T000/SECRET"}},
        {"status": 500, "item": {"url": "http://127.0.0.1:9/x"}},
    ]
    assert webhook_failures(results, "soak") == [
        "webhook hooks.example.com (soak) failed: Request failed: <urlopen error timed out>",
        "webhook 127.0.0.1 (soak) failed: status 500"]
