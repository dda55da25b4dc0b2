# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The Django example under Gunicorn's gthread workers, on both TLS hosts of the scenario."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("name", ["acme-app", "acme-provided"])
def test_gunicorn_runs_2_cpus_plus_1_gthread_workers_with_4_threads(hosts, children, name):
    host = hosts(name)
    _master, workers = children(host, "demo.service")
    config = host.file("/srv/demo/current/.pyfleet/gunicorn.conf.py").content_string
    # gthread workers start their threads on demand, so the configuration says it.
    assert len(workers) == 2 * int(host.check_output("nproc")) + 1
    assert 'worker_class = "gthread"' in config and "threads = 4" in config
