# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Rollouts of single hosts, under load through the host's published port (the scenarios that list this file).

Each case is one ``ansible-playbook pyfleet.deploy.rolling_reload --limit
<host>`` of a variant of the host's example app, run once by a module fixture;
bench/loadgen.py sends requests (40 clients, 4 of them holding 1 s requests)
to the host's published HTTPS port through the rollout's go-live plays (the
migration, the switch, reload and checks, any switch back); each test asserts
one thing a user would notice. The cases of the running scenario are in CASES.
"""

from __future__ import annotations

import os
import tarfile

import pytest

pytestmark = pytest.mark.changes

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
FASTAPI, FLASK = (os.path.join(PROJECT, "examples", name) for name in ("fastapi", "flask"))
LOCK = os.path.join(FASTAPI, "requirements.txt")
LOCK_DEPS = os.path.join(FASTAPI, "requirements-deps-change.txt")
BROKEN_STARTUP = '''

import contextlib


@contextlib.asynccontextmanager
async def _startup_fails(_app):
    raise RuntimeError("broken on purpose: the database is unreachable")
    yield


app.router.lifespan_context = _startup_fails
'''


class Case:
    """One rollout of one host: what to ship, where to send load, what must happen."""

    def __init__(self, host, port, name, version, app=FASTAPI, module="main.py", lockfile=LOCK, method="hup",
                 extra_code="", extra_vars=None, rolled_back=False, ca_file=None, archive=False):
        self.host, self.port, self.name, self.version = host, port, name, version
        self.app, self.module, self.lockfile, self.method = app, module, lockfile, method
        self.extra_code, self.extra_vars, self.rolled_back = extra_code, extra_vars or {}, rolled_back
        self.ca_file, self.archive = ca_file, archive


# What a developer's source tree holds beside the code, written into every
# case's source: a local virtualenv, version control data, and files named as
# the release's own (.pyfleet/env would override the rendered environment).
# None of it may reach a host, and none of it is part of the release id.
SMUGGLED = {".venv/bin/python": "#!/bin/sh\n", ".venv/pyvenv.cfg": "home = /usr/bin\n",
            ".pyfleet/env": "EXAMPLE_COLOR=smuggled\n", ".git/HEAD": "ref: refs/heads/main\n",
            "static/.sbom.cdx.json": "{}\n", "static/__pycache__/x.cpython-311.pyc": "junk"}


def _with_smuggled_files(source):
    for relative, text in SMUGGLED.items():
        os.makedirs(os.path.dirname(os.path.join(source, relative)), exist_ok=True)
        with open(os.path.join(source, relative), "w", encoding="utf-8") as handle:
            handle.write(text)


def _archive_of(source):
    """A .tar.gz of the source tree (smuggled files included) whose top level is the app."""
    path = source + ".tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name in sorted(os.listdir(source)):
            archive.add(os.path.join(source, name), arcname=name)
    return path


CASES = {
    "default": {
        "trixie-hup": Case("trixie-app", 9446, "trixie.test", "v2"),
        # The next release as an app_source archive, with what a source tree should not ship.
        "trixie-archive": Case("trixie-app", 9446, "trixie.test", "v3", archive=True),
        # A new environment variable with the code: standalone Uvicorn re-reads the
        # release's env file on HUP, so no restart.
        "uvicorn-hup": Case("uvicorn-app", 9447, "uvicorn.test", "v2",
                            extra_vars={"app_env": {"EXAMPLE_COLOR": "blue"}}),
        "uvicorn-new-lockfile": Case("uvicorn-app", 9447, "uvicorn.test", "v2", lockfile=LOCK_DEPS, method="restart"),
        # It imports, so the preflight passes, but its lifespan startup raises, so
        # no new worker ever serves: Uvicorn keeps the old workers, the rollout
        # sees no new generation and rolls back.
        "uvicorn-startup-fails": Case("uvicorn-app", 9447, "uvicorn.test", "v3-broken", lockfile=LOCK_DEPS,
                                      extra_code=BROKEN_STARTUP, extra_vars={"rollout_swap_timeout": 10},
                                      rolled_back=True),
    },
    "acme": {
        # Flask under gthread workers, behind the certificate the user provided.
        "wsgi-hup": Case("acme-provided", 9445, "shop.acme.test", "v2", app=FLASK, module="app.py",
                         lockfile=os.path.join(FLASK, "requirements.txt"),
                         ca_file=os.path.join(EPHEMERAL, "provided", "root.pem")),
    },
}[os.environ["MOLECULE_SCENARIO_NAME"]]


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def rollout(request, playbooks, load, release, work, hosts, https, ca_file, measured, release_env):
    case = CASES[request.param]
    source = release.variant(work, request.param, case.version, extra_code=case.extra_code,
                             app=os.path.join(case.app, "app"), module=case.module)
    _with_smuggled_files(source)
    extra_vars = dict(case.extra_vars)
    if case.archive:
        source = _archive_of(source)
        extra_vars["app_source"] = {"type": "archive", "path": source}
    trust = case.ca_file or ca_file
    before = https(hosts(case.host), "/health", case.name, ca=trust).json()["release"]
    config_before = https(hosts(case.host), "/config", case.name, ca=trust).json() if case.app == FASTAPI else None
    traffic = load("https://127.0.0.1:%d" % case.port, case.name, clients=40, pause=0.1, label=request.param,
                   ca_file=trust, held=True)
    outcome = playbooks.run("rolling_reload", source, case.lockfile, extra_vars, args=("--limit", case.host),
                            load=traffic)
    served = traffic.finish()
    after = https(hosts(case.host), "/health", case.name, ca=trust).json()["release"]
    config_after = https(hosts(case.host), "/config", case.name, ca=trust).json() if case.app == FASTAPI else None
    env_after = {name: value for name, value in release_env(hosts(case.host)).items() if name.startswith("EXAMPLE_")}
    live = hosts(case.host).run(
        "cd /srv/demo/current && readlink .venv && find . -name .git -o -name '*.pyc' -o -name .sbom.cdx.json"
        " -o -name .venv -o -name .pyfleet | sort && grep -c smuggled .pyfleet/env || true").stdout.split()
    measured("%s, %s" % (os.environ["MOLECULE_SCENARIO_NAME"], request.param), outcome, served)
    return {"case": case, "rollout": outcome, "load": served, "expected": release.id(source, case.lockfile),
            "before": before, "after": after, "config_before": config_before, "config_after": config_after,
            "env_after": env_after, "live": live}


def test_no_request_fails(rollout):
    assert rollout["load"]["requests"] > 0
    assert rollout["load"]["failed"] == 0, rollout["load"]["errors"]


def test_the_method_is_the_one_the_change_needs(rollout):
    assert rollout["rollout"].methods == [rollout["case"].method]


def test_the_playbook_succeeds_or_fails_as_it_must(rollout):
    if rollout["case"].rolled_back:
        assert rollout["rollout"].rc != 0
    else:
        assert rollout["rollout"].rc == 0, rollout["rollout"].output[-4000:]


def test_the_host_ends_on_the_new_release_or_back_on_the_old_one(rollout):
    if rollout["case"].rolled_back:
        assert rollout["rollout"].results == ["rolled back"]
        assert rollout["after"] == rollout["before"]
    else:
        assert [host["to"] for host in rollout["rollout"].report["hosts"]] == [rollout["after"]]
        assert rollout["after"].rsplit("-", 1)[0] == rollout["expected"]


def test_the_workers_run_with_the_environment_of_the_release_they_serve(rollout):
    """The FastAPI example shows its EXAMPLE_* variables at /config, as its workers see them."""
    if rollout["case"].app != FASTAPI:
        assert rollout["config_after"] is None  # the Flask example has no /config
        return
    assert rollout["config_after"] == rollout["env_after"]
    if rollout["case"].rolled_back:
        assert rollout["config_after"] == rollout["config_before"]
    for name, value in rollout["case"].extra_vars.get("app_env", {}).items():
        assert rollout["config_after"].get(name) == value


def test_the_live_release_holds_the_code_and_nothing_of_the_source_it_owns_or_ignores(rollout):
    """Its .venv is the link to the lockfile's virtualenv, its .pyfleet/ the rendered one, and no
    .git, compiled file or nested SBOM or virtualenv of the source came with the code: from a
    directory (the controller packs it) or from an archive (the host leaves them out)."""
    venv, *found, smuggled = rollout["live"]
    assert venv.startswith("/srv/demo/venvs/"), rollout["live"]
    # compileall's own __pycache__/*.pyc of the sealed release are there; none from the source.
    assert [path for path in found if "__pycache__" not in path] == ["./.pyfleet", "./.sbom.cdx.json", "./.venv"]
    assert "./static/__pycache__/x.cpython-311.pyc" not in found
    assert smuggled == "0"


def test_clients_saw_the_new_version_only_if_it_went_live(rollout):
    seen = rollout["case"].version in rollout["load"]["versions"]
    assert seen is not rollout["case"].rolled_back, rollout["load"]["versions"]
