#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: http_check
short_description: Probe an HTTP endpoint until it is healthy
version_added: 0.2.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Sends an HTTP request to an endpoint and retries until the response matches every expectation
    (status code, JSON fields, headers, body text) or until O(deadline) passes.
  - Connects over TCP, over TLS (with a private CA and an SNI / verified server name independent of the
    connected address, as needed to check C(https://127.0.0.1/health) behind nginx), or over a unix socket
    (for example C(/run/<app>/gunicorn.sock)).
  - Every attempt opens a new connection, so a successful attempt proves that the server accepts new
    connections, not only that an old keep-alive connection still works.
  - Use O(consecutive) to require several successful attempts in a row, which shows that the service is
    stable after a reload rather than answering once before failing again.
  - The module never changes anything on the host; it always returns RV(ignore:changed=false) and also
    probes in check mode.
extends_documentation_fragment:
  - pyfleet.deploy.attributes
  - pyfleet.deploy.attributes.info_module
options:
  url:
    description:
      - The C(http://) or C(https://) URL to request. Its path and query string are sent in the request line.
      - Unless a C(Host) header is given in O(headers), the C(Host) header is the host and port part of the URL.
    type: str
    required: true
  unix_socket:
    description:
      - Connect to this unix socket instead of the host and port of O(url).
      - Plain HTTP is spoken over the socket; an C(https://) O(url) together with O(unix_socket) is an error.
    type: path
  method:
    description:
      - The HTTP method.
    type: str
    default: GET
  headers:
    description:
      - Request headers, name to value.
    type: dict
    default: {}
  body:
    description:
      - Request body, sent encoded as UTF-8.
      - Set a matching C(Content-Type) header in O(headers).
    type: str
  validate_certs:
    description:
      - Verify the server certificate and host name for C(https://) URLs.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of CA certificates used to verify the server certificate.
      - When set, only these CAs are trusted, not the system trust store.
    type: path
  tls_server_name:
    description:
      - Server name sent as TLS SNI and verified against the server certificate.
      - Defaults to the host name of the C(Host) header in O(headers) if there is one, otherwise to the host of O(url).
    type: str
  status_code:
    description:
      - Accepted HTTP status codes.
    type: list
    elements: int
    default: [200]
  expect_json:
    description:
      - The response body must be JSON, and each key must have the given value.
      - Keys may be dotted paths into nested objects, for example C(checks.db); a numeric part indexes a list
        (C(items.0.name)). A top-level key that literally contains dots is matched first.
      - Values are compared as strings after converting both sides, so V(1) matches V("1").
        Booleans convert to V(true) or V(false), null to V(null), and objects and lists to compact JSON with sorted keys.
    type: dict
    default: {}
  expect_headers:
    description:
      - Response headers that must be present with exactly the given value. Header names are case-insensitive.
      - If the header occurs several times, one of its values or all values joined with C(, ) must match.
    type: dict
    default: {}
  body_contains:
    description:
      - Text the decoded response body must contain.
    type: str
  timeout:
    description:
      - Seconds allowed for one attempt, for connecting and for reading the complete response.
    type: float
    default: 5
  deadline:
    description:
      - Seconds to keep retrying, counted from the first attempt.
      - The last pause is shortened so that one attempt starts at the deadline; an attempt in progress is not
        cut short, so the module can run up to O(timeout) seconds longer.
      - V(0) means exactly one attempt.
    type: float
    default: 30
  interval:
    description:
      - Seconds to wait between two attempts.
    type: float
    default: 0.5
  consecutive:
    description:
      - Number of successful attempts in a row required. A failed attempt resets the count.
    type: int
    default: 1
  also:
    description:
      - Other ways to reach the same service, probed at the same time as O(url), each in its own thread,
        with the same method, body, expectations, timeout, deadline, interval and O(consecutive).
      - The check passes when every target has passed. Checking an app's socket and the proxy in front of it
        side by side takes as long as the slower of the two, not their sum.
      - Each entry's results are returned in RV(also), in the same order.
    type: list
    elements: dict
    default: []
    version_added: 0.5.0
    suboptions:
      url:
        description: As O(url).
        type: str
        required: true
      unix_socket:
        description: As O(unix_socket).
        type: path
      headers:
        description: As O(headers).
        type: dict
        default: {}
      validate_certs:
        description: As O(validate_certs).
        type: bool
        default: true
      ca_path:
        description: As O(ca_path).
        type: path
      tls_server_name:
        description: As O(tls_server_name).
        type: str
notes:
  - A failed attempt (connection error, timeout, TLS error, unexpected status, JSON field, header or body)
    is retried. When the deadline passes, the module fails with a message naming the URL, the socket, the number
    of attempts, the time spent and the reason of the last failed attempt.
  - Only the Python standard library is used on the managed host.
seealso:
  - module: pyfleet.deploy.gunicorn_reload
  - module: ansible.builtin.uri
    description: General purpose HTTP requests.
  - module: ansible.builtin.wait_for
    description: Wait for a port or a file.
"""

EXAMPLES = r"""
- name: Wait until gunicorn answers on its unix socket with the new release
  pyfleet.deploy.http_check:
    url: http://localhost/health
    unix_socket: /run/shop/gunicorn.sock
    expect_json:
      status: ok
      release: "{{ release_id }}"
    deadline: 60
    consecutive: 3

- name: Check the public path through nginx with the real server name and a private CA
  pyfleet.deploy.http_check:
    url: https://127.0.0.1/health
    headers:
      Host: shop.example.com
    ca_path: /etc/ssl/private-ca/ca.pem
    expect_headers:
      X-Release: "{{ release_id }}"
    deadline: 30
  register: health

- name: Show the latency through nginx
  ansible.builtin.debug:
    msg: "health answered in {{ health.latency_ms }} ms after {{ health.attempts }} attempt(s)"

- name: Verify TLS against an explicit server name, accepting a redirect as healthy
  pyfleet.deploy.http_check:
    url: https://10.0.3.15:8443/
    tls_server_name: shop.internal.example.com
    ca_path: /etc/ssl/private-ca/ca.pem
    status_code: [200, 301, 302]
    deadline: 0

- name: Nested JSON fields and body text
  pyfleet.deploy.http_check:
    url: http://127.0.0.1:8000/health?full=1
    expect_json:
      checks.database: ok
      checks.cache.hits_enabled: true
      workers: 4
    body_contains: '"database"'
    timeout: 2
    interval: 1

- name: POST a readiness probe with a token
  pyfleet.deploy.http_check:
    url: http://127.0.0.1:8000/internal/ready
    method: POST
    headers:
      Authorization: "Bearer {{ ready_token }}"
      Content-Type: application/json
    body: '{"probe": "deploy"}'
    status_code: [200, 204]
  no_log: true

- name: Check the new workers through their socket and through nginx at the same time
  pyfleet.deploy.http_check:
    url: http://shop.example.com/health
    unix_socket: /run/shop/gunicorn.sock
    also:
      - url: https://127.0.0.1/health
        headers:
          Host: shop.example.com
        validate_certs: false
    expect_json:
      release: "{{ release_id }}"
    deadline: 30
    consecutive: 3
"""

RETURN = r"""
status:
  description:
    - HTTP status of the last successful attempt.
    - On failure, the status of the last attempt, or V(null) if it got no response.
  returned: always
  type: int
  sample: 200
headers:
  description:
    - Response headers of the last successful attempt, with lower-cased names.
    - Repeated headers are joined with C(, ).
  returned: success
  type: dict
  sample: {"content-type": "application/json", "x-release": "3f9a1c2b7d4e"}
json:
  description: Response body parsed as JSON, or V(null) if the body is not JSON.
  returned: success
  type: raw
  sample: {"status": "ok", "release": "3f9a1c2b7d4e"}
body:
  description: Response body as text, truncated to 64 KiB.
  returned: success
  type: str
  sample: '{"status": "ok", "release": "3f9a1c2b7d4e"}'
latency_ms:
  description: Latency of the last successful attempt in milliseconds, from the start of the connection to the end of the body.
  returned: success
  type: float
  sample: 3.41
latencies_ms:
  description: Latencies of the successful attempts counted for O(consecutive), oldest first.
  returned: success
  type: list
  elements: float
  sample: [4.02, 3.77, 3.41]
attempts:
  description: Number of attempts made.
  returned: always
  type: int
  sample: 4
elapsed:
  description: Seconds spent in total.
  returned: always
  type: float
  sample: 1.532
reason:
  description: Why the last failed attempt failed.
  returned: failure
  type: str
  sample: "expected release='3f9a1c2b7d4e' in JSON, got '8d0e6a7b1c22'"
url:
  description: The probed URL.
  returned: always
  type: str
  sample: http://localhost/health
unix_socket:
  description: The unix socket connected to, or V(null).
  returned: always
  type: str
  sample: /run/shop/gunicorn.sock
also:
  description: The result of each target of O(also), in order.
  returned: success
  type: list
  elements: dict
  contains:
    url:
      description: The probed URL.
      type: str
      sample: https://127.0.0.1/health
    unix_socket:
      description: The unix socket connected to, or V(null).
      type: str
      sample: null
    status:
      description: HTTP status code of the last response.
      type: int
      sample: 200
    latency_ms:
      description: Milliseconds the last successful attempt took.
      type: float
      sample: 3.2
    attempts:
      description: Number of attempts made.
      type: int
      sample: 3
    elapsed:
      description: Seconds spent on this target.
      type: float
      sample: 1.02
"""

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyfleet.deploy.plugins.module_utils.http_probe import (
    HttpProbe,
    ProbeConfigError,
    check,
    failure_message,
)


# Where and how to connect: the main target's options, and each entry of `also`.
TARGET_SPEC = dict(
    url=dict(type="str", required=True),
    unix_socket=dict(type="path"),
    headers=dict(type="dict", default={}),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    tls_server_name=dict(type="str"),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            TARGET_SPEC,
            method=dict(type="str", default="GET"),
            body=dict(type="str"),
            status_code=dict(type="list", elements="int", default=[200]),
            expect_json=dict(type="dict", default={}),
            expect_headers=dict(type="dict", default={}),
            body_contains=dict(type="str"),
            timeout=dict(type="float", default=5),
            deadline=dict(type="float", default=30),
            interval=dict(type="float", default=0.5),
            consecutive=dict(type="int", default=1),
            also=dict(type="list", elements="dict", default=[], options=TARGET_SPEC),
        ),
        supports_check_mode=True,
    )
    p = module.params
    common = dict(url=p["url"], unix_socket=p["unix_socket"], changed=False)

    if not p["status_code"]:
        module.fail_json(msg="status_code must not be empty", **common)
    if p["deadline"] < 0 or p["interval"] < 0:
        module.fail_json(msg="deadline and interval must not be negative", **common)
    if p["consecutive"] < 1:
        module.fail_json(msg="consecutive must be at least 1", **common)

    def make_probe(target):
        return HttpProbe(
            target["url"],
            unix_socket=target["unix_socket"],
            method=p["method"],
            headers=target["headers"],
            body=p["body"],
            validate_certs=target["validate_certs"],
            ca_path=target["ca_path"],
            tls_server_name=target["tls_server_name"],
            status_code=p["status_code"],
            expect_json=p["expect_json"],
            expect_headers=p["expect_headers"],
            body_contains=p["body_contains"],
            timeout=p["timeout"],
        )

    try:
        probes = [make_probe(target) for target in [p] + p["also"]]
    except ProbeConfigError as exc:
        module.fail_json(msg=str(exc), **common)

    def run(probe):
        return check(probe.once, deadline=p["deadline"], interval=p["interval"], consecutive=p["consecutive"])

    # Side by side: the check takes as long as the slowest target.
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        results = list(pool.map(run, probes))

    result = results[0]
    elapsed = round(result.elapsed, 3)
    failed = [(probe, outcome) for probe, outcome in zip(probes, results) if not outcome.ok]
    if failed:
        first = failed[0][1]
        module.fail_json(
            msg="; ".join(failure_message(probe, outcome) for probe, outcome in failed),
            attempts=first.attempts,
            elapsed=round(first.elapsed, 3),
            reason=first.reason,
            status=first.status,
            **common,
        )

    last = result.last
    module.exit_json(
        status=last.status,
        headers=last.headers,
        json=last.json,
        body=last.body,
        latency_ms=last.latency_ms,
        latencies_ms=result.latencies_ms,
        attempts=result.attempts,
        elapsed=elapsed,
        also=[dict(url=target["url"], unix_socket=target["unix_socket"], status=outcome.last.status,
                   latency_ms=outcome.last.latency_ms, attempts=outcome.attempts, elapsed=round(outcome.elapsed, 3))
              for target, outcome in zip(p["also"], results[1:])],
        **common,
    )


if __name__ == "__main__":
    main()
