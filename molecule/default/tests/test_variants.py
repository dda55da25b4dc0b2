# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The platform and the server mode beside the default host: Debian 13 and standalone Uvicorn."""

from __future__ import annotations

import glob
import json
import os
import re


PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
FASTAPI = os.path.join(PROJECT, "examples", "fastapi")


# --- trixie-app: Debian 13 --------------------------------------------------------

def test_trixie_runs_debian_13(hosts):
    assert hosts("trixie-app").system_info.release.startswith("13")


def test_trixie_runs_the_release_on_python_3_13_and_answers_with_its_id(hosts, https, release):
    host = hosts("trixie-app")
    expected = release.id(os.path.join(FASTAPI, "app"), os.path.join(FASTAPI, "requirements.txt"))
    meta = json.loads(host.file("/srv/demo/current/.release.json").content_string)
    answer = https(host, "/health", "trixie.test")
    assert meta["python"].startswith("3.13.")
    assert answer.header("x-release") == answer.json()["release"] == meta["id"]
    assert release.code(meta["id"]) == expected


def test_trixie_venvs_come_from_python_3_13_wheels_the_controller_gathered():
    wheels = glob.glob(os.path.join(EPHEMERAL, "wheelhouse-trixie", "**", "*.whl"), recursive=True)
    binary = [path for path in wheels if not path.endswith("-none-any.whl")]
    assert binary and [path for path in binary if "-cp313-" not in path] == []
    assert len([path for path in binary if "/pydantic_core-" in path]) == 1


def test_trixie_nginx_gets_the_http2_directive_not_the_deprecated_listen_flag(hosts):
    out = hosts("trixie-app").run("nginx -T")
    assert re.search(r"\n\s*http2 on;", out.stdout)
    assert not re.search(r"listen [^;]*http2", out.stdout)
    assert "deprecated" not in out.stderr


# --- uvicorn-app: standalone Uvicorn on a host without a package index -------------

def test_uvicorn_host_cannot_reach_a_package_index(hosts):
    assert hosts("uvicorn-app").run("curl --silent --max-time 10 --output /dev/null https://pypi.org/simple/pip/").rc != 0


def test_uvicorn_runs_its_own_supervisor_as_a_notify_service(hosts):
    show = hosts("uvicorn-app").check_output("systemctl show --property=Type --property=ExecStart demo.service")
    assert "Type=notify" in show.splitlines()
    assert re.search(r"current/[.]pyfleet/pyfleet_uvicorn[.]py /srv/demo/current/[.]pyfleet/uvicorn[.]json", show)
    assert "bin/gunicorn" not in show


def test_uvicorn_runs_cpus_plus_1_workers_from_the_current_release(hosts, children, release):
    host = hosts("uvicorn-app")
    _master, lines = children(host, "demo.service")
    workers = [line.split()[0] for line in lines if "multiprocessing.spawn" in line]
    cwds = {host.check_output("readlink /proc/%s/cwd" % pid) for pid in workers}
    expected = release.id(os.path.join(FASTAPI, "app"), os.path.join(FASTAPI, "requirements.txt"))
    assert len(workers) == int(host.check_output("nproc")) + 1
    assert cwds == {host.check_output("readlink -f /srv/demo/current")}
    assert release.code(cwds.pop().rsplit("/releases/", 1)[1]) == expected


def test_uvicorn_answers_through_nginx_with_its_release(hosts, https, release):
    answer = https(hosts("uvicorn-app"), "/health", "uvicorn.test")
    expected = release.id(os.path.join(FASTAPI, "app"), os.path.join(FASTAPI, "requirements.txt"))
    assert answer.header("x-release") == answer.json()["release"]
    assert release.code(answer.json()["release"]) == expected


def test_uvicorn_host_has_the_locked_versions_and_no_shipped_wheels_left(hosts):
    host = hosts("uvicorn-app")
    versions = host.check_output(
        "/srv/demo/current/.venv/bin/python -c 'import fastapi, uvicorn; print(fastapi.__version__, uvicorn.__version__)'")
    assert versions == "0.165.0 0.54.0"
    # The SBOM comes from the packages' metadata: no SBOM tool was installed, so none had to be shipped.
    assert not host.file("/opt/pyfleet/sbom").exists
    assert json.loads(host.file("/srv/demo/current/.sbom.cdx.json").content_string)["bomFormat"] == "CycloneDX"
    assert host.check_output("find /srv/demo /opt/pyfleet -maxdepth 2 -name '*.wheels' | wc -l") == "0"


def test_uvicorn_wheels_were_gathered_on_the_controller_for_python_3_11():
    wheels = glob.glob(os.path.join(EPHEMERAL, "wheelhouse-uvicorn", "**", "*.whl"), recursive=True)
    assert len([path for path in wheels if re.search(r"/fastapi-0[.]165[.]0-", path)]) == 1
    assert len([path for path in wheels if re.search(r"/pydantic_core-.*-cp311-cp311-manylinux", path)]) == 1
