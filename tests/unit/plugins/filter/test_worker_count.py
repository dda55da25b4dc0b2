# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pyfleet.deploy.plugins.filter.worker_count import worker_count


@pytest.mark.parametrize(
    ("value", "cpus", "worker_class", "maximum", "expected"),
    [
        ("auto", 1, "uvicorn_worker.UvicornWorker", 0, 2),
        ("auto", 2, "uvicorn_worker.UvicornWorker", 0, 3),
        ("auto", 8, "uvicorn_worker.UvicornWorker", 0, 9),
        ("auto", 2, "sync", 0, 5),
        ("auto", 4, "gthread", 0, 9),
        ("AUTO", 16, "sync", 12, 12),
        (4, 2, "sync", 0, 4),
        ("7", 2, "uvicorn_worker.UvicornWorker", 0, 7),
    ],
)
def test_sizes(value, cpus, worker_class, maximum, expected):
    assert worker_count(value, cpus, worker_class, maximum) == expected


@pytest.mark.parametrize("value", [0, "0", -1, "many", None, True, 2.5j])
def test_rejects_bad_counts(value):
    with pytest.raises(AnsibleFilterError, match="workers must be 'auto' or an integer >= 1"):
        worker_count(value, 2)


@pytest.mark.parametrize("cpus", [0, -2, "2", None, True])
def test_rejects_bad_cpus(cpus):
    with pytest.raises(AnsibleFilterError, match="cpus must be a positive integer"):
        worker_count("auto", cpus)
