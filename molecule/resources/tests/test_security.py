# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""What every app server of every scenario must show a stranger and an auditor.

The sandbox's exposure score, the listening sockets, the app's lack of any
network socket, HTTP/2, the default server for unknown names and nginx's
version kept quiet. Shared by the scenarios (each lists this file in its
verifier's additional_files_or_dirs).
"""

from __future__ import annotations

import json
import re

import pytest

testinfra_hosts = ["ansible://app_servers"]


@pytest.fixture(scope="module")
def site(host):
    variables = host.ansible.get_variables()
    name = variables.get("nginx_server_names", [variables["inventory_hostname"]])[0]
    # The site's name need not resolve on the host: ask its own nginx by name.
    return {"app": variables["app_name"], "name": name, "resolve": "%s:443:127.0.0.1" % name}


def curl(host, site, options=""):
    """curl the site's /health on the host's own nginx, by name (the command is built here, not quoted)."""
    return host.run("curl --silent --show-error --insecure --resolve {} {} https://{}/health".format(
        site["resolve"], options, site["name"]))


def test_the_service_sandbox_scores_at_most_2_0(host, site):
    out = host.check_output("systemd-analyze security --no-pager {}.service".format(site["app"]))
    score = float(re.search(r"exposure level for \S+: ([0-9.]+)", out).group(1))
    assert score <= 2.0, [line for line in out.splitlines() if line.startswith("✗")]


def test_the_app_answers_health_under_the_sandbox(host, site):
    out = curl(host, site, "--fail")
    assert out.rc == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "ok"


def _listeners(host):
    lines = host.check_output("ss -H -l -t -u -n -p").splitlines()
    # 127.0.0.11 is Docker's embedded DNS, run by dockerd outside the test host; a VPS has none.
    return [line for line in lines if " 127.0.0.11:" not in line]


def test_only_nginx_and_sshd_listen_on_tcp(host):
    tcp = [line for line in _listeners(host) if line.startswith("tcp")]
    assert [line for line in tcp if not re.search(r'users:\(\("(nginx|sshd)"', line)] == []
    assert any(":443 " in line for line in tcp), tcp


def test_nothing_listens_on_udp(host):
    assert [line for line in _listeners(host) if line.startswith("udp")] == []


def test_the_app_listens_on_no_network_socket_only_its_unix_socket(host, site):
    """The app may connect out (the Django example to PostgreSQL and Redis); nothing reaches it but nginx."""
    pids = host.check_output("pgrep -u {}".format(site["app"])).split()
    assert pids, "no process runs as %s" % site["app"]
    sockets = host.check_output("ss -H -l -n -p -t -u").splitlines()
    mine = [line for line in sockets if re.search(r"pid=(%s)," % "|".join(pids), line)]
    assert mine == []


def test_nginx_speaks_http2_over_tls(host, site):
    out = curl(host, site, "--http2 --head --output /dev/null --write-out %{http_version}")
    assert out.stdout == "2"


@pytest.mark.parametrize(("request_args", "curl_exit"), [
    # 52: an empty reply (nginx's 444); 35: the TLS handshake refused (ssl_reject_handshake).
    ("--header 'Host: unknown.invalid' http://127.0.0.1/", 52),
    ("--insecure --resolve unknown.invalid:443:127.0.0.1 https://unknown.invalid/", 35),
    ("--insecure https://127.0.0.1/", 35),
], ids=["http-unknown-host", "https-unknown-name", "https-by-address"])
def test_unknown_names_get_no_answer_and_no_certificate(host, request_args, curl_exit):
    assert host.run("curl --silent --max-time 5 %s" % request_args).rc == curl_exit


def test_nginx_does_not_give_its_version_away(host, site):
    out = curl(host, site, "--output /dev/null --write-out %header{server}")
    assert out.stdout == "nginx"
