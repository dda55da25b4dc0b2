# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""soak_verdict: a batch's real requests against the thresholds and the baseline."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.soak import soak_line, soak_verdict


def host(name, requests, errors=0, latency=None):
    histogram = latency or {"5.0": requests}
    return {"host": name, "requests": requests, "errors": errors, "latency_histogram": histogram,
            "p99_ms": max(float(key) for key in histogram)}


BASELINE = [host("app2", 400, 1, {"5.0": 396, "20.0": 4}), host("app3", 400, 0, {"6.0": 400})]


def test_a_healthy_batch_passes_with_its_figures_beside_the_baselines():
    verdict = soak_verdict([host("app1", 300)], BASELINE, {"max_p99_ratio_to_baseline": 3})
    assert (verdict["verdict"], verdict["reasons"]) == ("pass", [])
    assert verdict["batch"] == {"hosts": ["app1"], "requests": 300, "errors": 0, "error_ratio": 0.0,
                                "p50_ms": 5.0, "p99_ms": 5.0}
    assert (verdict["baseline"]["requests"], verdict["baseline"]["errors"], verdict["baseline"]["p99_ms"]) == (
        800, 1, 6.0)


def test_3_percent_of_5xx_fails_against_the_default_1_percent():
    verdict = soak_verdict([host("app1", 300, 9)], BASELINE)
    assert verdict["verdict"] == "fail"
    assert verdict["reasons"] == ["5xx ratio 3.00 % (9 of 300) above max_5xx_ratio 1.00 %"]


def test_a_tripled_p99_fails_against_the_baseline_but_not_below_the_floor():
    slow = host("app1", 300, latency={"5.0": 290, "90.0": 10})
    verdict = soak_verdict([slow], BASELINE, {"max_p99_ratio_to_baseline": 2})
    assert verdict["verdict"] == "fail"
    assert verdict["reasons"] == ["p99 90.0 ms above 2 x the baseline's 6.0 ms (floor 25 ms)"]
    # 3 x a 6 ms baseline is noise below the 25 ms floor: 18 ms passes.
    assert soak_verdict([host("app1", 300, latency={"18.0": 300})], BASELINE,
                        {"max_p99_ratio_to_baseline": 2})["verdict"] == "pass"


def test_an_absolute_p99_bound_fails_without_a_baseline():
    verdict = soak_verdict([host("app1", 300, latency={"700.0": 300})], [], {"max_p99_ms": 500})
    assert verdict["verdict"] == "fail" and verdict["baseline"] is None
    assert verdict["reasons"] == ["p99 700.0 ms above max_p99_ms 500"]


def test_too_little_traffic_is_inconclusive_and_a_thin_baseline_is_not_compared():
    assert soak_verdict([host("app1", 20, 20)], BASELINE)["verdict"] == "inconclusive"
    thin = [host("app2", 10, latency={"1.0": 10})]
    verdict = soak_verdict([host("app1", 300, latency={"90.0": 300})], thin, {"max_p99_ratio_to_baseline": 2})
    assert verdict["verdict"] == "pass"


def test_the_summary_line_names_the_verdict_reasons_and_both_sides():
    verdict = dict(soak_verdict([host("app1", 300, 9)], BASELINE), batch_number=1, seconds=20)
    assert soak_line(verdict) == (
        "soak after batch 1: fail in 20 s (5xx ratio 3.00 % (9 of 300) above max_5xx_ratio 1.00 %); "
        "batch (app1 9/300 p99 5.0): 300 requests, 3.00 % 5xx, p99 5.0 ms; "
        "baseline (2 hosts): 800 requests, 0.12 % 5xx, p99 6.0 ms")


def test_an_empty_batch_is_refused():
    with pytest.raises(AnsibleFilterError, match="non-empty list"):
        soak_verdict([], BASELINE)


def test_a_batch_hosts_unreadable_log_fails_the_batch_and_a_baseline_hosts_leaves_the_baseline():
    unreadable = {"item": "app1", "failed": True, "msg": "the access log /var/log/nginx/shop.access.log does not exist"}
    verdict = soak_verdict([unreadable, host("app4", 300)], BASELINE)
    assert verdict["verdict"] == "fail"
    assert verdict["reasons"] == ["cannot read the access log of app1: the access log /var/log/nginx/shop.access.log "
                                  "does not exist"]
    verdict = soak_verdict([host("app1", 300)], [dict(unreadable, item="app2"), BASELINE[1]])
    assert verdict["verdict"] == "pass" and verdict["baseline"]["hosts"] == ["app3"]
