# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""pyfleet.deploy.maintenance on pyfleet-default: on, then off, as a user runs it.

The scenario sets ``nginx_maintenance_allow: [127.0.0.2/32]``; the requests go
through the host's own nginx from 127.0.0.1 (not allowed) and 127.0.0.2.
"""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.lane("pyfleet-default")  # it switches pyfleet-default, and only it

HOST = "pyfleet-default"


def _switch(inventory, state):
    return subprocess.run(["ansible-playbook", "-i", inventory, "--limit", HOST, "pyfleet.deploy.maintenance",
                           "-e", "maintenance=%s" % state], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)


def _get(host, path, source="127.0.0.1"):
    """Status, headers (lower-case) and body of an HTTPS request to the site, from a local source address."""
    out = host.run("curl --silent --include --insecure --interface %s --resolve pyfleet-default:443:127.0.0.1 "
                   "https://pyfleet-default%s" % (source, path))
    head, _sep, body = out.stdout.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _colon, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.fixture(scope="module")
def maintenance(inventory, hosts):
    host = hosts(HOST)
    on = _switch(inventory, "on")
    seen = {"on": on, "page": _get(host, "/"), "health": _get(host, "/health"),
            "allowed": _get(host, "/", source="127.0.0.2"),
            "reload_pid": host.check_output("systemctl show -P MainPID nginx")}
    seen["off"] = _switch(inventory, "off")
    seen["after"] = _get(host, "/")
    seen["pid_after"] = host.check_output("systemctl show -P MainPID nginx")
    return seen


def test_on_every_request_gets_503_with_retry_after_and_the_page(maintenance):
    assert maintenance["on"].returncode == 0, maintenance["on"].stdout[-3000:]
    status, headers, body = maintenance["page"]
    assert (status, headers.get("retry-after"), headers.get("cache-control")) == (503, "300", "no-store")
    assert "Down for maintenance" in body and "demo is being updated" in body


def test_on_the_health_path_and_the_allowed_address_still_reach_the_app(maintenance):
    status, _headers, body = maintenance["health"]
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, _headers, body = maintenance["allowed"]
    assert status == 200 and json.loads(body)["app"] == "pyfleet-example"


def test_off_serves_again_without_an_nginx_restart(maintenance, hosts):
    assert maintenance["off"].returncode == 0
    status, _headers, body = maintenance["after"]
    assert status == 200 and json.loads(body)["app"] == "pyfleet-example"
    assert maintenance["pid_after"] == maintenance["reload_pid"]
    assert not hosts(HOST).file("/etc/nginx/pyfleet-maintenance/demo.on").exists


def test_a_wrong_switch_is_refused_before_any_host_changes(inventory, hosts):
    out = _switch(inventory, "maybe")
    assert out.returncode != 0
    assert "value of maintenance must be one of: on, off, got: maybe" in out.stdout + out.stderr
    assert not hosts(HOST).file("/etc/nginx/pyfleet-maintenance/demo.on").exists
