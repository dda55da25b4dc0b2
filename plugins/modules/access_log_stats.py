#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: access_log_stats
short_description: Count the app's real requests of the last seconds in nginx's JSON access log
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Reads the access log an app server's site writes (the C(pyfleet_json) format of the nginx role) from its
    end backwards, and keeps the requests that ended in the last O(window) seconds, by the host's own clock.
  - Counts only the requests nginx passed to the app (those with an upstream address), so static files,
    refused names and maintenance pages do not count; and leaves out the paths in O(exclude_paths), such as
    the health path that probes and rollouts ask for. WebSocket handshakes (status 101) and event streams
    (content type C(text/event-stream), the C(type) field) never count, since their time is the life of a
    connection, which a client may hold for minutes, not a response time.
  - Returns the number of requests, of those that ended with a 5xx status, and the upstream response time
    (the sum over retries) as a compact histogram with 2 significant digits, which the
    C(pyfleet.deploy.soak_verdict) filter merges across hosts, and its median and 99th percentile.
  - The rollout's soak (C(rollout_soak_seconds)) calls it on the hosts of a batch and on the hosts not yet
    rolled, to compare them.
options:
  path:
    description: The access log, such as C(/var/log/nginx/shop.access.log).
    type: path
    required: true
  window:
    description: Seconds before now whose requests count.
    type: float
    required: true
  exclude_paths:
    description:
      - Path prefixes whose requests do not count, compared with the request URI without its query string.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads.
  diff_mode:
    support: none
notes:
  - A line without the C(msec) field (written before pyfleet.deploy 0.5.0) is dated by its C(ts) field, to the
    second.
  - When the log begins inside the window (it was just rotated), RV(covered) is false and the figures cover
    only what the log holds.
seealso:
  - module: pyfleet.deploy.http_check
    description: The health check a rollout makes before the soak.
"""

EXAMPLES = r"""
- name: Count the requests of the last 60 seconds, the health checks left out
  pyfleet.deploy.access_log_stats:
    path: /var/log/nginx/shop.access.log
    window: 60
    exclude_paths: [/health]
  register: traffic
  become: true

- name: Show the share of server errors
  ansible.builtin.debug:
    msg: "{{ traffic.errors }} of {{ traffic.requests }} requests failed; p99 {{ traffic.p99_ms }} ms"
"""

RETURN = r"""
requests:
  description: Requests nginx passed to the app that ended in the window, the excluded ones left out.
  returned: success
  type: int
  sample: 1520
errors:
  description: Those of RV(requests) that ended with a status of 500 or more.
  returned: success
  type: int
  sample: 3
statuses:
  description: RV(requests) by status code.
  returned: success
  type: dict
  sample: {"200": 1517, "500": 3}
latency_histogram:
  description:
    - Upstream response times in milliseconds, rounded to 2 significant digits, with how many requests took
      each; the keys are the rounded values as strings.
  returned: success
  type: dict
  sample: {"4.1": 320, "4.2": 301, "120": 2}
p50_ms:
  description: The median upstream response time in milliseconds, or null without requests.
  returned: success
  type: float
  sample: 4.2
p99_ms:
  description: The 99th percentile of the upstream response time in milliseconds, or null without requests.
  returned: success
  type: float
  sample: 31.0
covered:
  description: Whether the log reaches back to the start of the window.
  returned: success
  type: bool
  sample: true
"""

import json
import os
import time
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.pyfleet.deploy.plugins.module_utils.latency import bucket, percentile

CHUNK = 65536


def lines_backwards(handle, chunk):
    """The file's lines, last first, read from its end in chunks."""
    handle.seek(0, os.SEEK_END)
    position = handle.tell()
    rest = b""
    while position > 0:
        step = min(chunk, position)
        position -= step
        handle.seek(position)
        block = handle.read(step) + rest
        parts = block.split(b"\n")
        rest = parts[0]
        for line in reversed(parts[1:]):
            if line:
                yield line
    if rest:
        yield rest


def ended_at(record):
    """When nginx logged the request: its msec field, else its ISO 8601 ts (to the second)."""
    if "msec" in record:
        return float(record["msec"])
    return datetime.fromisoformat(str(record["ts"])).timestamp()


def upstream_ms(value):
    """The upstream response time in milliseconds (summed over retries), or None when there was none."""
    total, seen = 0.0, False
    for part in str(value).replace(":", ",").split(","):
        part = part.strip()
        if part and part != "-":
            total += float(part)
            seen = True
    return total * 1000.0 if seen else None


# The Content-Type of a server-sent event stream: held open, like a WebSocket.
STREAM_TYPE = "text/event-stream"


def read(path, window, exclude_paths, now=None):
    """The figures of the requests in ``path`` that ended in the last ``window`` seconds."""
    start = (time.time() if now is None else now) - window
    requests = errors = 0
    statuses, histogram, covered = {}, {}, False
    with open(path, "rb") as handle:
        for line in lines_backwards(handle, CHUNK):
            try:
                record = json.loads(line)
                at = ended_at(record)
            except (ValueError, KeyError, TypeError):
                continue  # a line of another format, or cut by a write in progress
            if at < start:
                covered = True
                break
            if str(record.get("upstream", "")) in ("", "-"):
                continue
            uri = str(record.get("uri", "")).split("?", 1)[0]
            status = int(record.get("status", 0))
            if status == 101 or str(record.get("type", "")).startswith(STREAM_TYPE) \
                    or any(uri.startswith(prefix) for prefix in exclude_paths):
                continue
            requests += 1
            errors += status >= 500
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            ms = upstream_ms(record.get("upstream_time", ""))
            if ms is not None:
                key = bucket(ms)
                histogram[key] = histogram.get(key, 0) + 1
    return {"requests": requests, "errors": errors, "statuses": statuses, "latency_histogram": histogram,
            "p50_ms": percentile(histogram, 0.5), "p99_ms": percentile(histogram, 0.99), "covered": covered}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            window=dict(type="float", required=True),
            exclude_paths=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if params["window"] <= 0:
        module.fail_json(msg="window must be a positive number of seconds; got %s" % params["window"])
    if not os.path.isfile(params["path"]):
        module.fail_json(msg="the access log %s does not exist: no request reached this site" % params["path"])
    try:
        figures = read(params["path"], params["window"], params["exclude_paths"])
    except OSError as error:
        module.fail_json(msg="cannot read the access log %s: %s" % (params["path"], error))
    module.exit_json(changed=False, **figures)


if __name__ == "__main__":
    main()
