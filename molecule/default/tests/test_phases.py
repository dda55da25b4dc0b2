# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The release phases: app_build on every host while staging, app_migrate and app_post once per rollout.

The scenario sets ``app_build: [python manage.py build]``, ``app_migrate:
[python manage.py migrate]`` and ``app_post: [python manage.py post]`` (the
example's manage.py), with ``app_shared_dirs: [data]`` for its database.
"""

from __future__ import annotations

import json
import os

import pytest

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
EXAMPLE = os.path.join(PROJECT, "examples", "fastapi")
LOCK = os.path.join(EXAMPLE, "requirements.txt")
HOSTS = ["pyfleet-default", "trixie-app", "uvicorn-app"]
DATA = "/srv/demo/shared/data"


@pytest.mark.parametrize("name", HOSTS)
def test_the_build_ran_in_the_release_as_the_app_user_and_root_owns_what_it_wrote(hosts, name):
    built = hosts(name).file("/srv/demo/current/static/build.json")
    assert (built.user, built.group, built.mode) == ("root", "demo", 0o644)
    # It ran in the release being staged, before it was sealed and moved into place.
    staged = hosts(name).file("/srv/demo/current").linked_to + ".partial"
    assert json.loads(built.content_string) == {"built_by": "demo", "phase": "app_build",
                                                "python": staged + "/.venv/bin/python"}
    assert hosts(name).run("find /srv/demo/current/ -user demo").stdout == ""


def test_nginx_serves_what_the_build_wrote_from_the_live_release_cached_for_a_year(hosts, https):
    host = hosts("pyfleet-default")
    answer = https(host, "/static/build.json", "pyfleet-default")
    assert answer.status == 200
    assert answer.body == host.file("/srv/demo/current/static/build.json").content_string
    assert answer.header("cache-control") == "max-age=31536000"


def test_migrate_ran_once_on_the_first_app_server_and_the_app_reads_its_database(hosts, https, release):
    assert [name for name in HOSTS if hosts(name).file(DATA + "/example.sqlite3").exists] == ["pyfleet-default"]
    applied = https(hosts("pyfleet-default"), "/migrations", "pyfleet-default").json()["applied"]
    assert [row["name"] for row in applied] == ["0001_visits.sql"]
    assert release.code(applied[0]["release"]) == release.id(os.path.join(EXAMPLE, "app"), LOCK)


def test_every_app_server_keeps_what_the_database_has_in_its_release_metadata(hosts):
    for name in HOSTS:
        meta = json.loads(hosts(name).file("/srv/demo/current/.release.json").content_string)
        assert (meta["migrations"]["applied"], meta["migrations"]["ran_on"]) == (["0001_visits.sql"], "pyfleet-default")


def test_post_ran_once_after_the_release_went_live_and_not_again_when_nothing_changed(hosts, release):
    assert [name for name in HOSTS if hosts(name).file(DATA + "/post.log").exists] == ["pyfleet-default"]
    # converge and idempotence ran site twice: only the first went live.
    first = hosts("pyfleet-default").file(DATA + "/post.log").content_string.splitlines()[0].split()
    assert first[1] == "demo" and release.code(first[0]) == release.id(os.path.join(EXAMPLE, "app"), LOCK)


def _current(hosts, name):
    return hosts(name).file("/srv/demo/current").linked_to


@pytest.fixture(scope="module")
def failing_migration(playbooks, release, work, hosts):
    """rolling_reload of a new release on pyfleet-default whose second migrate step fails: what the host
    served before, and the rollout."""
    before = _current(hosts, "pyfleet-default")
    source = release.variant(work, "phases-migrate", "v1-phases")
    return before, playbooks.run("rolling_reload", source, LOCK, {
        "app_migrate": ["python manage.py migrate", "echo 'schema is locked' >&2; exit 3"]},
        args=["--limit", "pyfleet-default"])


@pytest.fixture(scope="module")
def failing_build(playbooks, release, work, hosts):
    """rolling_reload of a new release on uvicorn-app whose second build step fails: what the host served
    before, and the rollout."""
    before = _current(hosts, "uvicorn-app")
    source = release.variant(work, "phases-build", "v1-phases")
    return before, playbooks.run("rolling_reload", source, LOCK, {
        "app_build": ["python manage.py build", "python -c 'import sys; sys.exit(\"no assets\")'"]},
        args=["--limit", "uvicorn-app"])


@pytest.mark.lane("pyfleet-default")
def test_a_failing_migration_stops_the_rollout_before_the_switch_naming_the_step(failing_migration, hosts):
    before, migrate = failing_migration
    assert migrate.rc != 0
    assert migrate.report["stopped"] and migrate.results == ["not started"]
    phase = migrate.report["phases"]["app_migrate"]
    assert (phase["host"], phase["result"]) == ("pyfleet-default", "failed")
    assert phase["error"].startswith('app_migrate[1] ("echo \'schema is locked\' >&2; exit 3") failed on pyfleet-default with exit 3')
    assert "schema is locked" in phase["error"] and "app_migrate[1]" in migrate.report["stop_reason"]
    assert _current(hosts, "pyfleet-default") == before


@pytest.mark.changes
def test_a_failing_build_step_stops_staging_with_0_hosts_changed_naming_the_step(failing_build, hosts):
    before, build = failing_build
    assert build.rc != 0 and build.results == ["not started"]
    reason = build.report["stop_reason"]
    assert "preflight on uvicorn-app failed, 0 hosts changed" in reason
    assert "app_build[1] (\"python -c 'import sys; sys.exit(\\\"no assets\\\")'\") failed on uvicorn-app with exit 1" in reason
    assert "no assets" in reason
    assert _current(hosts, "uvicorn-app") == before
    # The failed build left nothing owned by the app user in the release tree it was writing.
    assert hosts("uvicorn-app").run("find /srv/demo/releases -user demo").stdout == ""
