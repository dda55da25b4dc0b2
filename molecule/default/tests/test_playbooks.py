# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""pyfleet-default: the playbooks run by FQCN from the built tarball, what they must not leak, and a bad nginx snippet."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import tempfile

import pytest

pytestmark = pytest.mark.lane("pyfleet-default")  # every test here changes pyfleet-default, and only it

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]

SECRET, ROTATED = "s3cr3t-value-for-tests", "rotated-S3CRET-for-tests"
NEW_MIGRATION = "0002_colors.sql"


@pytest.fixture(scope="module")
def from_tarball(inventory, work, release, hosts, https):
    """By FQCN from the built tarball installed offline: rolling_reload rotating the secret, then site
    of a release whose /health answers 503 (it goes live through the rollout engine, so the host is
    switched back to the rotated release and the run fails naming the health check)."""
    out = tempfile.mkdtemp(prefix="pyfleet-tarball-")
    collections = os.path.join(out, "collections")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections)
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", out + "/dist", PROJECT],
                   check=True, capture_output=True)
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "--force", "-p", collections]
                   + glob.glob(out + "/dist/pyfleet-deploy-*.tar.gz"), check=True, capture_output=True, env=env)
    where = json.loads(subprocess.run(["ansible-galaxy", "collection", "list", "pyfleet.deploy", "--format", "json"],
                                      check=True, capture_output=True, text=True, env=env).stdout)
    app = os.path.join(PROJECT, "examples", "fastapi", "app")
    unhealthy = release.variant(work, "site-unhealthy", "v2-unhealthy", release.unhealthy_fastapi, app=app)
    # It migrates before it fails health: the migration stays, and the summary says so.
    with open(os.path.join(unhealthy, "migrations", NEW_MIGRATION), "w", encoding="utf-8") as script:
        script.write("CREATE TABLE colors (name TEXT PRIMARY KEY);\n")
    runs = {
        "rolling_reload": ["-e", json.dumps({"app_secrets": {"DEMO_SECRET": ROTATED},
                                             "rollout_report_dir": out + "/reports"})],
        "site": ["-e", json.dumps({"app_source": {"type": "dir", "path": unhealthy}, "rollout_health_timeout": 6})],
    }
    codes, served, workers = {}, {}, {}
    for playbook, extra in runs.items():
        served[playbook] = json.loads(https(_default(hosts), "/health", "pyfleet-default").body)["release"]
        workers[playbook] = _workers(_default(hosts))
        with open(os.path.join(out, playbook + ".log"), "w", encoding="utf-8") as log:
            codes[playbook] = subprocess.run(
                ["ansible-playbook", "-v", "--diff", "-i", inventory, "--limit", "pyfleet-default",
                 "pyfleet.deploy." + playbook] + extra,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, check=False).returncode
    with open(os.path.join(out, "site.log"), encoding="utf-8") as log:
        site_output = log.read()
    lock = os.path.join(PROJECT, "examples", "fastapi", "requirements.txt")
    return {"out": out, "collections": collections, "where": list(where), "codes": codes,
            "before_site": served["site"], "site_output": site_output, "unhealthy": release.id(unhealthy, lock),
            "before_reload": served["rolling_reload"], "workers": dict(workers, after=_workers(_default(hosts)))}


def _workers(host):
    """The app_processes instances (the example's worker, 2 of them): unit -> (main PID, release it runs)."""
    found = {}
    for unit in ("demo-worker@1.service", "demo-worker@2.service"):
        pid = int(host.check_output("systemctl show -P MainPID %s" % unit))
        found[unit] = (pid, host.check_output("readlink -f /proc/%d/cwd" % pid).rsplit("/", 1)[1] if pid else "")
    return found


def test_the_playbooks_resolve_from_the_installed_tarball_only(from_tarball):
    assert from_tarball["where"] == [os.path.join(from_tarball["collections"], "ansible_collections")]


def test_rolling_reload_runs_by_fqcn_from_the_tarball_and_writes_its_report(from_tarball):
    assert from_tarball["codes"]["rolling_reload"] == 0
    assert glob.glob(os.path.join(from_tarball["out"], "reports", "*.json"))


def test_no_secret_reaches_the_output_or_the_rollout_summaries(from_tarball):
    found = subprocess.run(["grep", "-r", "-l", "-F", "-e", SECRET, "-e", ROTATED, from_tarball["out"] + "/reports",
                            from_tarball["out"] + "/rolling_reload.log", from_tarball["out"] + "/site.log"],
                           capture_output=True, text=True, check=False)
    assert (found.returncode, found.stdout) == (1, "")


def _default(hosts):
    return hosts("pyfleet-default")


def _default_as_root(hosts):
    """pyfleet-default is reached as root (docker exec): no sudo, which would log these commands, secrets included."""
    host = hosts("pyfleet-default", sudo=False)
    assert host.check_output("id -u") == "0"
    return host


def test_no_secret_reaches_the_journal(from_tarball, hosts):
    count = _default_as_root(hosts).run("journalctl --no-pager -o verbose | grep -c -F -e '%s' -e '%s'" % (SECRET, ROTATED))
    assert count.stdout.strip() == "0"


def test_only_the_releases_env_files_hold_a_secret_each_0640_root_app(from_tarball, hosts):
    host = _default_as_root(hosts)
    found = host.run("grep -r -l -I -F -D skip -e '%s' -e '%s' /srv /etc /var /tmp /run /root" % (SECRET, ROTATED))
    paths = found.stdout.split()
    assert host.check_output("readlink -f /srv/demo/current") + "/.pyfleet/env" in paths
    for path in paths:
        assert re.match(r"^/srv/demo/releases/[0-9a-f]{12}-[0-9a-f]{8}/[.]pyfleet/env$", path), path
        env = host.file(path)
        assert (env.mode, env.user, env.group) == (0o640, "root", "demo")


def test_a_rotated_secret_is_a_new_release_of_the_same_code(from_tarball, hosts):
    host = _default(hosts)
    assert 'DEMO_SECRET="%s"' % ROTATED in host.file("/srv/demo/current/.pyfleet/env").content_string.splitlines()
    original = host.check_output("grep -l -F -e '%s' /srv/demo/releases/*/.pyfleet/env" % SECRET).split()
    current = host.check_output("readlink -f /srv/demo/current").rsplit("/", 1)[1]
    assert original and not any(path.split("/")[4] == current for path in original)
    # Same code, same lockfile: only the configuration part of the id differs
    # (the release of the failed site run has the secret too, with other code).
    assert current.split("-")[0] in {path.split("/")[4].split("-")[0] for path in original}


@pytest.fixture(scope="module")
def bad_snippet(inventory, hosts):
    site = "/etc/nginx/sites-available/demo.conf"
    before = _default(hosts).file(site).sha256sum
    playbook = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx_bad_snippet.yml")
    run = subprocess.run(["ansible-playbook", "-i", inventory, "--limit", "pyfleet-default", playbook],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    return {"run": run, "before": before, "site": site}


def test_rolling_reload_restarted_each_worker_warmly_onto_the_new_release(from_tarball, hosts):
    before, after = from_tarball["workers"]["rolling_reload"], from_tarball["workers"]["site"]
    current = _default(hosts).check_output("readlink -f /srv/demo/current").rsplit("/", 1)[1]
    assert current != from_tarball["before_reload"]
    assert {unit: release for unit, (_pid, release) in before.items()} == dict.fromkeys(before, from_tarball["before_reload"])
    assert {unit: release for unit, (_pid, release) in after.items()} == dict.fromkeys(after, current)
    log = _default(hosts).file("/srv/demo/shared/data/worker.log").content_string
    for unit, (pid, _release) in before.items():
        assert after[unit][0] != pid
        # SIGTERM, then the job in hand finished (0.5 s), within the stop_timeout of 10 s.
        line = re.search(r"^%s %s %d warm shutdown in ([0-9.]+) s$" % (from_tarball["before_reload"], unit[12], pid), log, re.M)
        assert line and 0.4 <= float(line.group(1)) < 10, log


def test_the_failed_site_never_restarted_the_workers(from_tarball):
    # They restart only once the web server passed its checks, which the unhealthy release never did.
    assert from_tarball["workers"]["after"] == from_tarball["workers"]["site"]


def test_nginx_refuses_a_broken_snippet_naming_its_verdict(bad_snippet):
    assert bad_snippet["run"].returncode != 0
    output = bad_snippet["run"].stdout + bad_snippet["run"].stderr
    assert "nginx rejected the new configuration" in output
    assert "this_is_not_a_directive" in output


def test_the_previous_site_is_back_byte_for_byte_with_no_backups_left(bad_snippet, hosts):
    host = _default(hosts)
    assert host.file(bad_snippet["site"]).sha256sum == bad_snippet["before"]
    assert host.check_output("find /etc/nginx/sites-available /etc/nginx/conf.d -name '*~' | wc -l") == "0"
    assert host.run("nginx -t -q").rc == 0


def test_the_site_still_serves_after_the_refused_snippet(bad_snippet, hosts, https):
    assert https(_default(hosts), "/health", "pyfleet-default").status == 200


def test_site_of_a_release_failing_health_fails_naming_the_check_and_the_rollback(from_tarball):
    assert from_tarball["codes"]["site"] != 0
    assert "rolled back" in from_tarball["site_output"] and "503" in from_tarball["site_output"]


def test_site_switched_back_to_the_release_served_before_it(from_tarball, hosts, https, release):
    answer = https(_default(hosts), "/health", "pyfleet-default")
    assert (answer.status, json.loads(answer.body)["release"]) == (200, from_tarball["before_site"])
    assert _default(hosts).file("/srv/demo/current").linked_to == "/srv/demo/releases/%s" % from_tarball["before_site"]
    assert from_tarball["unhealthy"] != release.code(from_tarball["before_site"])


def test_site_of_a_release_that_migrated_then_failed_says_the_migration_stays(from_tarball, hosts, https):
    output = " ".join(from_tarball["site_output"].split())
    assert re.search(r"app_migrate ran for release %s-[0-9a-f]{8} on pyfleet-default and stays applied "
                     r"\(the database has 0001_visits.sql, %s\)" % (from_tarball["unhealthy"], NEW_MIGRATION), output), output[-3000:]
    applied = https(_default(hosts), "/migrations", "pyfleet-default").json()["applied"]
    assert [row["name"] for row in applied] == ["0001_visits.sql", NEW_MIGRATION]


@pytest.fixture(scope="module")
def rollback_past_a_migration(from_tarball, playbooks, work):
    """After the module's other checks: rollback of pyfleet-default to the release converge deployed,
    which predates the migration the failed site applied."""
    return playbooks.run("rollback", os.path.join(PROJECT, "examples", "fastapi", "app"),
                         os.path.join(PROJECT, "examples", "fastapi", "requirements.txt"),
                         {"rollout_target_release": from_tarball["before_reload"]}, args=["--limit", "pyfleet-default"])


def test_rollback_to_a_release_before_a_migration_names_it_in_the_summary(rollback_past_a_migration, from_tarball):
    rollout = rollback_past_a_migration
    assert rollout.rc == 0, rollout.output[-4000:]
    assert [host["to"] for host in rollout.report["hosts"]] == [from_tarball["before_reload"]]
    warnings = rollout.report["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(
        "the database keeps 1 migration that release %s did not have: %s (applied by %s-"
        % (from_tarball["before_reload"], NEW_MIGRATION, from_tarball["unhealthy"])), warnings
    assert "warning: " + warnings[0] in " ".join(rollout.output.split())
