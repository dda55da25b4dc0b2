# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
name: worker_count
short_description: Size a Gunicorn worker pool from the host's CPU count
version_added: 0.1.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Returns the number of Gunicorn workers for a host.
  - C(auto) gives C(cpus + 1) for asynchronous workers (Uvicorn, gevent, eventlet,
    tornado), where one process serves many connections, and C(2 * cpus + 1) for
    C(sync) and C(gthread) workers, which block on I/O.
  - An integer is returned unchanged after checking that it is at least 1.
options:
  _input:
    description: C(auto) or a positive integer (or its string form).
    type: raw
    required: true
  cpus:
    description: Usable CPUs of the host, for example C(ansible_facts.processor_vcpus).
    type: int
    required: true
  worker_class:
    description: Gunicorn worker class.
    type: str
    default: uvicorn_worker.UvicornWorker
  maximum:
    description: Upper bound for C(auto); 0 means none.
    type: int
    default: 0
"""

EXAMPLES = r"""
- name: Size the pool
  ansible.builtin.debug:
    msg: "{{ 'auto' | pyfleet.deploy.worker_count(ansible_facts.processor_vcpus, 'sync') }}"
  # 2 vCPUs -> 5
"""

RETURN = r"""
_value:
  description: Number of workers.
  type: int
  sample: 3
"""

from ansible.errors import AnsibleFilterError

_SYNC_CLASSES = frozenset({"sync", "gthread", "gunicorn.workers.sync.SyncWorker", "gunicorn.workers.gthread.ThreadWorker"})


def worker_count(value, cpus, worker_class="uvicorn_worker.UvicornWorker", maximum=0):
    """Return the worker count for ``value`` (``auto`` or an int)."""
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise AnsibleFilterError(f"worker_count: cpus must be a positive integer, got {cpus!r}")
    if isinstance(value, str) and value.strip().lower() == "auto":
        count = 2 * cpus + 1 if worker_class in _SYNC_CLASSES else cpus + 1
        if maximum and maximum > 0:
            count = min(count, maximum)
        return count
    if isinstance(value, bool):
        raise AnsibleFilterError(f"worker_count: workers must be 'auto' or an integer >= 1, got {value!r}")
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"worker_count: workers must be 'auto' or an integer >= 1, got {value!r}") from None
    if count < 1:
        raise AnsibleFilterError(f"worker_count: workers must be 'auto' or an integer >= 1, got {value!r}")
    return count


class FilterModule:
    """Gunicorn worker sizing."""

    def filters(self):
        return {"worker_count": worker_count}
