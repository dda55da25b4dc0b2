# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""pyfleet-default: FastAPI under Gunicorn and the draining Uvicorn worker, as a user of one host sees it."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

testinfra_hosts = ["ansible://pyfleet-default"]
NAME = "pyfleet-default"
SOCKET = "/run/demo/gunicorn.sock"


@pytest.fixture(scope="module")
def expected(release):
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    lockfile = os.path.join(project, "examples", "fastapi", "requirements.txt")
    return {"release": release.id(os.path.join(project, "examples", "fastapi", "app"), lockfile),
            "lockfile": lockfile}


@pytest.mark.parametrize("unit", ["demo.socket", "demo.service", "nginx.service"])
def test_the_socket_the_service_and_nginx_are_active_and_enabled(host, unit):
    service = host.service(unit)
    assert (service.is_running, service.is_enabled) == (True, True)


def test_the_gunicorn_socket_is_0660_root_www_data(host):
    socket = host.file(SOCKET)
    assert (socket.is_socket, socket.mode, socket.user, socket.group) == (True, 0o660, "root", "www-data")


def test_the_release_carries_its_env_file_0640_root_app(host):
    env = host.file("/srv/demo/current/.pyfleet/env")
    assert (env.mode, env.user, env.group) == (0o640, "root", "demo")


def test_the_workers_see_the_environment_as_systemd_reads_the_env_file(host):
    """systemd gave the master its environment at start; the config re-applies the file on every load."""
    master = host.check_output("systemctl show --property=MainPID --value demo.service")
    started = dict(line.split("=", 1) for line in host.check_output("tr '\\0' '\\n' < /proc/%s/environ" % master).splitlines()
                   if line.startswith("EXAMPLE_"))
    shown = json.loads(host.check_output("curl -sS --max-time 5 --unix-socket %s http://localhost/config" % SOCKET))
    assert shown == started == {"EXAMPLE_QUOTED": 'say "hi" \\ back\\slash $HOME'}


def test_the_service_reads_its_config_and_env_from_the_release_and_runs_the_units_it_carries(host):
    show = host.check_output("systemctl show --property=ExecStart --property=EnvironmentFiles "
                             "--property=WorkingDirectory demo.service")
    assert "--config /srv/demo/current/.pyfleet/gunicorn.conf.py" in show
    assert "EnvironmentFiles=/srv/demo/current/.pyfleet/env" in show
    # Not a release: Gunicorn re-checks its start directory on every HUP, and releases get pruned.
    assert "WorkingDirectory=/srv/demo" in show.splitlines()
    for unit in ("demo.service", "demo.socket"):
        assert host.file("/etc/systemd/system/" + unit).sha256sum == host.file(
            "/srv/demo/current/.pyfleet/systemd/" + unit).sha256sum


def test_health_over_https_names_the_deployed_release(host, https, expected, release):
    answer = https(host, "/health", NAME)
    assert answer.status == 200
    assert (answer.json()["status"], release.code(answer.json()["release"])) == ("ok", expected["release"])
    assert answer.header("x-release") == answer.json()["release"]
    assert host.file("/srv/demo/current").linked_to.endswith("/releases/" + answer.json()["release"])
    assert "max-age=63072000" in answer.header("strict-transport-security")


def test_release_json_says_what_runs_from_which_lock_and_python_deployed_when_and_by_whom(host, expected, release):
    meta = json.loads(host.file("/srv/demo/current/.release.json").content_string)
    with open(expected["lockfile"], "rb") as handle:
        lock_hash = hashlib.sha256(handle.read()).hexdigest()[:16]
    assert release.code(meta["id"]) == expected["release"]
    assert meta["id"].endswith("-" + meta["config"][:8])
    assert meta["lock_hash"] == lock_hash
    assert re.match(r"^3\.[0-9]+\.[0-9]+$", meta["python"])
    assert re.match(r"^20[0-9-]+T[0-9:]+Z$", meta["deployed_at"])
    assert meta["deployed_by"] and meta["source_revision"]


def _normal(purl):
    return re.sub(r"[-_.]+", "-", purl.lower())


def test_the_sbom_is_valid_cyclonedx_1_6_and_lists_every_locked_package_at_its_version(host, expected):
    text = host.file("/srv/demo/current/.sbom.cdx.json").content_string
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    listed = {_normal(component["purl"]) for component in bom["components"]}
    with open(expected["lockfile"], encoding="utf-8") as handle:
        locked = [_normal("pkg:pypi/%s@%s" % match.groups()) for match in
                  (re.match(r"^([A-Za-z0-9][^=\s\[]*)(?:\[[^]]*\])?==([^\s;\\]+)", line) for line in handle) if match]
    assert bom["bomFormat"] == "CycloneDX"
    assert len(locked) >= 5
    assert [purl for purl in locked if purl not in listed] == []


def test_the_app_sees_https_and_the_real_client_not_the_proxy_socket(host, https):
    seen = https(host, "/client", NAME).json()
    assert (seen["scheme"], seen["host"]) == ("https", NAME)
    assert seen["client"] is not None


def test_plain_http_redirects_to_the_same_url_over_https(host, https):
    answer = https(host, "/health?x=1", NAME, scheme="http")
    assert (answer.status, answer.header("location")) == (301, "https://%s/health?x=1" % NAME)


@pytest.fixture(scope="module")
def processes(host):
    master = host.check_output("systemctl show --value --property=MainPID demo.service")
    lines = host.check_output("ps -o user= -o pid= --pid %s --ppid %s" % (master, master)).splitlines()
    return [line.split() for line in lines]


def test_the_master_and_every_worker_run_as_the_app_user(host, processes, worker_count):
    cpus = int(host.check_output("nproc"))
    assert len(processes) == 1 + worker_count("auto", cpus)
    assert {user for user, _pid in processes} == {"demo"}


def test_the_env_file_reaches_the_workers_verbatim(host, processes):
    environ = host.file("/proc/%s/environ" % processes[-1][1]).content.split(b"\0")
    assert b'GREETING=hello "quoted" $NOT_EXPANDED' in environ


def test_nginx_reuses_pooled_upstream_connections(host, note):
    probe = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "resources", "files", "keepalive_probe.py")
    host.ansible("copy", "src=%s dest=/tmp/keepalive_probe.py mode=0755" % probe, check=False)
    seen = json.loads(host.check_output("python3 /tmp/keepalive_probe.py --socket %s --requests 2000 --threads 8" % SOCKET))
    note("default, upstream keepalive: %(ok)d requests on new client connections, %(failed)d failed, "
         "%(upstream_connections)d upstream connections" % seen)
    assert (seen["failed"], seen["ok"]) == (0, 2000)
    assert 1 <= seen["upstream_connections"] <= 100, seen
