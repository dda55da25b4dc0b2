# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Rollouts of each single-host stack, under load through its published port, and what they must not leak.

Each class is one rollout: its fixture runs ``ansible-playbook
pyfleet.deploy.rolling_reload --limit <host>`` once while bench/loadgen.py
sends requests (40 clients, 4 of them holding 1 s requests) to the host's
published HTTPS port; each test asserts one thing a user would notice.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import tempfile

import pytest

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
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
                 extra_code="", extra_vars=None, rolled_back=False):
        self.host, self.port, self.name, self.version = host, port, name, version
        self.app, self.module, self.lockfile, self.method = app, module, lockfile, method
        self.extra_code, self.extra_vars, self.rolled_back = extra_code, extra_vars or {}, rolled_back


CASES = {
    "wsgi-hup": Case("wsgi-app", 9445, "wsgi.test", "v2", app=FLASK, module="app.py",
                     lockfile=os.path.join(FLASK, "requirements.txt")),
    "trixie-hup": Case("trixie-app", 9446, "trixie.test", "v2"),
    "uvicorn-hup": Case("uvicorn-app", 9447, "uvicorn.test", "v2"),
    "uvicorn-new-lockfile": Case("uvicorn-app", 9447, "uvicorn.test", "v2", lockfile=LOCK_DEPS, method="restart"),
    # It imports, so the preflight passes, but its lifespan startup raises, so no
    # new worker ever serves: Uvicorn keeps the old workers, the rollout sees no
    # new generation and rolls back.
    "uvicorn-startup-fails": Case("uvicorn-app", 9447, "uvicorn.test", "v3-broken", lockfile=LOCK_DEPS,
                                  extra_code=BROKEN_STARTUP, extra_vars={"rollout_swap_timeout": 20}, rolled_back=True),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def rollout(request, playbooks, load, release, work, hosts, https):
    case = CASES[request.param]
    source = release.variant(work, request.param, case.version, extra_code=case.extra_code,
                             app=os.path.join(case.app, "app"), module=case.module)
    before = https(hosts(case.host), "/health", case.name).json()["release"]
    traffic = load("https://127.0.0.1:%d" % case.port, case.name, clients=40, pause=0.1, label=request.param)
    outcome = playbooks.run("rolling_reload", source, case.lockfile, case.extra_vars, args=("--limit", case.host))
    served = traffic.finish()
    after = https(hosts(case.host), "/health", case.name).json()["release"]
    return {"case": case, "rollout": outcome, "load": served, "expected": release.id(source, case.lockfile),
            "before": before, "after": after}


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
        assert [host["to"] for host in rollout["rollout"].report["hosts"]] == [rollout["expected"]]
        assert rollout["after"] == rollout["expected"]


def test_clients_saw_the_new_version_only_if_it_went_live(rollout):
    seen = rollout["case"].version in rollout["load"]["versions"]
    assert seen is not rollout["case"].rolled_back, rollout["load"]["versions"]


# --- pyfleet-default: the built tarball, secrets, and a bad nginx snippet -----------------

SECRET, ROTATED = "s3cr3t-value-for-tests", "rotated-S3CRET-for-tests"


@pytest.fixture(scope="module")
def from_tarball(inventory):
    """rolling_reload (rotating the secret) then site (back), by FQCN from the built tarball installed offline."""
    out = tempfile.mkdtemp(prefix="pyfleet-tarball-")
    collections = os.path.join(out, "collections")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections)
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", out + "/dist", PROJECT],
                   check=True, capture_output=True)
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "--force", "-p", collections]
                   + glob.glob(out + "/dist/pyfleet-deploy-*.tar.gz"), check=True, capture_output=True, env=env)
    where = json.loads(subprocess.run(["ansible-galaxy", "collection", "list", "pyfleet.deploy", "--format", "json"],
                                      check=True, capture_output=True, text=True, env=env).stdout)
    runs = {
        "rolling_reload": ["-e", json.dumps({"app_secrets": {"DEMO_SECRET": ROTATED},
                                             "rollout_report_dir": out + "/reports"})],
        "site": [],
    }
    codes = {}
    for playbook, extra in runs.items():
        with open(os.path.join(out, playbook + ".log"), "w", encoding="utf-8") as log:
            codes[playbook] = subprocess.run(
                ["ansible-playbook", "-v", "--diff", "-i", inventory, "--limit", "pyfleet-default",
                 "pyfleet.deploy." + playbook] + extra,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, check=False).returncode
    return {"out": out, "collections": collections, "where": list(where), "codes": codes}


def test_the_playbooks_resolve_from_the_installed_tarball_only(from_tarball):
    assert from_tarball["where"] == [os.path.join(from_tarball["collections"], "ansible_collections")]


def test_rolling_reload_and_site_run_by_fqcn_from_the_tarball(from_tarball):
    assert from_tarball["codes"] == {"rolling_reload": 0, "site": 0}
    assert glob.glob(os.path.join(from_tarball["out"], "reports", "*.json"))


def test_no_secret_reaches_the_output_or_the_rollout_summaries(from_tarball):
    found = subprocess.run(["grep", "-r", "-l", "-F", "-e", SECRET, "-e", ROTATED, from_tarball["out"] + "/reports",
                            from_tarball["out"] + "/rolling_reload.log", from_tarball["out"] + "/site.log"],
                           capture_output=True, text=True, check=False)
    assert (found.returncode, found.stdout) == (1, "")


def _default(hosts):
    return hosts("pyfleet-default")


def test_no_secret_reaches_the_journal(from_tarball, hosts):
    count = _default(hosts).run("journalctl --no-pager -o verbose | grep -c -F -e '%s' -e '%s'" % (SECRET, ROTATED))
    assert count.stdout.strip() == "0"


def test_the_env_file_is_the_only_file_on_the_host_holding_a_secret(from_tarball, hosts):
    found = _default(hosts).run("grep -r -l -I -F -D skip -e '%s' -e '%s' /srv /etc /var /tmp /run /root" % (SECRET, ROTATED))
    assert found.stdout.split() == ["/srv/demo/shared/env"]


def test_the_env_file_holds_the_current_secret(from_tarball, hosts):
    assert 'DEMO_SECRET="%s"' % SECRET in _default(hosts).file("/srv/demo/shared/env").content_string.splitlines()


@pytest.fixture(scope="module")
def bad_snippet(inventory, hosts):
    site = "/etc/nginx/sites-available/demo.conf"
    before = _default(hosts).file(site).sha256sum
    playbook = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx_bad_snippet.yml")
    run = subprocess.run(["ansible-playbook", "-i", inventory, "--limit", "pyfleet-default", playbook],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    return {"run": run, "before": before, "site": site}


def test_nginx_refuses_a_broken_snippet_naming_its_verdict(bad_snippet):
    assert bad_snippet["run"].returncode != 0
    assert "nginx rejected the new configuration" in bad_snippet["run"].stdout
    assert "this_is_not_a_directive" in bad_snippet["run"].stdout


def test_the_previous_site_is_back_byte_for_byte_with_no_backups_left(bad_snippet, hosts):
    host = _default(hosts)
    assert host.file(bad_snippet["site"]).sha256sum == bad_snippet["before"]
    assert host.check_output("find /etc/nginx/sites-available /etc/nginx/conf.d -name '*~' | wc -l") == "0"
    assert host.run("nginx -t -q").rc == 0


def test_the_site_still_serves_after_the_refused_snippet(bad_snippet, hosts, https):
    assert https(_default(hosts), "/health", "pyfleet-default").status == 200
