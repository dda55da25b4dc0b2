# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Latency histograms with 2 significant digits: built by access_log_stats on each host, merged by soak_verdict."""

from __future__ import annotations


def bucket(ms):
    """The histogram key of ``ms`` milliseconds: 2 significant digits (0.1 ms below 1 ms)."""
    return "%s" % (float("%.2g" % ms) if ms >= 1 else round(ms, 1))


def add(histogram, other):
    """Add the counts of ``other`` into ``histogram`` (both {key: count}); return ``histogram``."""
    for value, count in (other or {}).items():
        histogram[value] = histogram.get(value, 0) + int(count)
    return histogram


def percentile(histogram, fraction):
    """The nearest-rank percentile of a {key: count} histogram as a float, or None when it is empty."""
    items = sorted((float(value), int(count)) for value, count in histogram.items())
    total = sum(count for _value, count in items)
    if not total:
        return None
    rank = max(1, -int(-total * fraction // 1))
    seen = 0
    for value, count in items:
        seen += count
        if seen >= rank:
            return value
    return items[-1][0]
