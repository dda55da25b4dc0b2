# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The Django example (examples/django) on PostgreSQL and Redis, with its Celery worker and a timer.

Both app servers run it under Gunicorn's gthread workers; acme-ca is the
services host (PostgreSQL and Redis from Debian's packages). The readers check
the converged v1: the migration in the database, the admin and its hashed
static files through nginx, media from shared/, an order the web app enqueues
and the worker fulfils, the timer firing. Then three rolling_reloads of both
hosts run one after another under load through shop.acme.test's published
port: a release with a new migration, a release whose migration fails, and a
release that migrates and then fails its health check.
"""

from __future__ import annotations

import json
import os
import shlex
import time

import pytest

PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
DJANGO = os.path.join(PROJECT, "examples", "django")
APP, LOCK = os.path.join(DJANGO, "app"), os.path.join(DJANGO, "requirements.txt")
NAMES = {"acme-app": "app.acme.test", "acme-provided": "shop.acme.test"}
APP_HOSTS = list(NAMES)
PORT = 9445
ROOT = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "provided", "root.pem")

# v2: a nullable column (expand): v1 keeps inserting orders while v2 rolls out.
NOTE_FIELD = "    note = models.CharField(max_length=200, null=True, blank=True)\n"
ADD_NOTE = '''# SPDX-License-Identifier: GPL-3.0-or-later
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]
    operations = [migrations.AddField("order", "note", models.CharField(max_length=200, null=True, blank=True))]
'''
# v3: a migration that fails half-way; PostgreSQL rolls its transaction back.
FAILING = '''# SPDX-License-Identifier: GPL-3.0-or-later
from django.db import migrations


def _fail(apps, schema_editor):
    raise RuntimeError("orders_order is locked by a long-running report")


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_order_note")]
    operations = [migrations.RunSQL("CREATE INDEX orders_item_idx ON orders_order (item)"), migrations.RunPython(_fail)]
'''
# v4: an index (expand), then /health answers 503.
ADD_INDEX = '''# SPDX-License-Identifier: GPL-3.0-or-later
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_order_note")]
    operations = [migrations.RunSQL("CREATE INDEX orders_created_idx ON orders_order (created)",
                                    "DROP INDEX orders_created_idx")]
'''
UNHEALTHY = '''# SPDX-License-Identifier: GPL-3.0-or-later
from django.http import JsonResponse


class HealthFails:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/health":
            return JsonResponse({"status": "failing"}, status=503)
        return self.get_response(request)
'''


def _models_with_note():
    with open(os.path.join(APP, "orders", "models.py"), encoding="utf-8") as handle:
        models = handle.read()
    anchor = "    fulfilled_release = models.CharField(max_length=100, blank=True)\n"
    assert anchor in models
    return models.replace(anchor, anchor + NOTE_FIELD)


@pytest.fixture(scope="module")
def web(hosts):
    """web(name, path, method="GET", body=None) -> (status, JSON or text) through the host's own nginx."""

    def call(name, path, method="GET", body=None):
        # acme-app's certificate is pebble's (test_acme.py verifies it); this checks what the app answers.
        data = " -H 'Content-Type: application/json' --data %s" % shlex.quote(json.dumps(body)) if body else ""
        out = hosts(name).check_output(
            "curl --silent --insecure --max-time 10 --resolve %s:443:127.0.0.1 -X %s -w '\\n%%{http_code}'%s "
            "https://%s%s" % (NAMES[name], method, data, NAMES[name], path))
        text, status = out.rsplit("\n", 1)
        try:
            return int(status), json.loads(text)
        except ValueError:
            return int(status), text

    return call


@pytest.fixture(scope="module")
def sql(hosts):
    """sql(query) -> the rows PostgreSQL returns on the services host, one string per row."""

    def query(text):
        out = hosts("acme-ca").check_output("runuser -u postgres -- psql -d shop -tA -c %s", text)
        return out.splitlines()

    return query


def served(web):
    return {name: web(name, "/health")[1]["release"] for name in APP_HOSTS}


def _wait_for(probe, seconds=40):
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(1)


def place_and_wait(web, name):
    """Place an order through the web app on a host; the order as it stands once a worker fulfilled it."""
    status, placed = web(name, "/orders/", "POST", {"item": "widget from %s" % name})
    assert status == 201, placed

    def fulfilled():
        order = web(name, "/orders/%d" % placed["id"])[1]
        return order if order["fulfilled_by"] else None

    return _wait_for(fulfilled)


def test_site_migrated_postgresql_once_and_every_release_records_it(hosts, sql):
    assert sql("SELECT name FROM django_migrations WHERE app = 'orders'") == ["0001_initial"]
    for name in APP_HOSTS:
        meta = json.loads(hosts(name).file("/srv/demo/current/.release.json").content_string)
        assert "orders.0001_initial" in meta["migrations"]["applied"] and "admin.0001_initial" in meta["migrations"]["applied"]
        assert meta["migrations"]["ran_on"] == "acme-app"


def test_the_admin_login_page_answers_through_nginx_and_links_hashed_static_files(hosts, https):
    answer = https(hosts("acme-provided"), "/admin/login/", "shop.acme.test", ca=ROOT)
    assert answer.status == 200 and "Django administration" in answer.body
    manifest = json.loads(hosts("acme-provided").file("/srv/demo/current/staticfiles/staticfiles.json").content_string)
    assert '"/static/%s"' % manifest["paths"]["admin/css/base.css"] in answer.body


def test_nginx_serves_a_static_file_by_its_manifest_name_from_the_release_cached_for_a_year(hosts, https):
    host = hosts("acme-provided")
    manifest = json.loads(host.file("/srv/demo/current/staticfiles/staticfiles.json").content_string)
    hashed = manifest["paths"]["admin/js/core.js"]
    assert hashed != "admin/js/core.js"
    answer = https(host, "/static/" + hashed, "shop.acme.test", ca=ROOT)
    assert answer.status == 200 and answer.header("cache-control") == "max-age=31536000"
    assert answer.body == host.file("/srv/demo/current/staticfiles/" + hashed).content_string
    # Collected into the release while it was staged, and sealed: root owns it, the app user cannot change it.
    collected = host.file("/srv/demo/current/staticfiles/" + hashed)
    assert (collected.user, collected.mode) == ("root", 0o644)


def test_nginx_serves_media_from_shared_which_the_app_user_writes(hosts, https):
    host = hosts("acme-provided")
    host.check_output("runuser -u demo -- sh -c 'echo uploaded > /srv/demo/shared/media/upload.txt'")
    answer = https(host, "/media/upload.txt", "shop.acme.test", ca=ROOT)
    assert (answer.status, answer.body) == (200, "uploaded\n")


@pytest.mark.parametrize("name", APP_HOSTS)
def test_an_order_placed_through_the_web_app_is_fulfilled_by_a_celery_worker_of_the_live_release(web, name):
    order = place_and_wait(web, name)
    assert order["fulfilled_by"] in ("acme-app", "acme-provided"), order
    assert order["fulfilled_release"] == served(web)[name]


def test_the_timer_fires_on_every_app_server_and_a_worker_runs_its_task(hosts, web, sql):
    since = sql("SELECT now()")[0]

    def from_both_hosts():
        rows = sql("SELECT timer_host, worker_host, release FROM orders_tick WHERE at > '%s'" % since)
        return rows if {row.split("|")[0] for row in rows} == set(APP_HOSTS) else None

    fired = _wait_for(from_both_hosts, seconds=30)
    assert fired, "the timer did not fire on both app servers in 30 s"
    live = set(served(web).values())
    for row in fired:
        _timer_host, worker_host, release = row.split("|")
        assert worker_host in APP_HOSTS and release in live, row
    for name in APP_HOSTS:
        timer = hosts(name).service("demo-tick.timer")
        assert (timer.is_running, timer.is_enabled) == (True, True)
        assert "enqueued tick" in hosts(name).check_output("journalctl -u demo-tick.service -o cat --no-pager")


def _rows(sql, name):
    return sql("SELECT count(*) FROM django_migrations WHERE app = 'orders' AND name = '%s'" % name)[0]


def _worker_release(host):
    """The release the Celery worker instance runs: its main process's working directory."""
    pid = host.check_output("systemctl show --value --property=MainPID demo-worker@1.service")
    return os.path.basename(host.check_output("readlink /proc/%s/cwd" % pid))


@pytest.fixture(scope="module")
def rollouts(playbooks, load, release, work, web, sql, hosts, measured):
    """The three rolling_reloads of both app servers, one after another, each under load through
    shop.acme.test's published port: the rollout, the load's outcome and what the hosts and the database
    show afterwards."""
    cases = {
        "new-migration": release.variant(work, "django-v2", "v2", app=APP, module="shop/settings.py", files={
            "orders/models.py": _models_with_note(), "orders/migrations/0002_order_note.py": ADD_NOTE}),
        "failing-migration": release.variant(
            work, "django-v3", "v3-failing-migration", app=APP, module="shop/settings.py", files={
                "orders/models.py": _models_with_note(), "orders/migrations/0002_order_note.py": ADD_NOTE,
                "orders/migrations/0003_locked.py": FAILING}),
        "migrates-then-unhealthy": release.variant(
            work, "django-v4", "v4-unhealthy", app=APP, module="shop/settings.py",
            extra_code='\nMIDDLEWARE = ["orders.unhealthy.HealthFails", *MIDDLEWARE]\n', files={
                "orders/models.py": _models_with_note(), "orders/migrations/0002_order_note.py": ADD_NOTE,
                "orders/migrations/0003_order_created_idx.py": ADD_INDEX, "orders/unhealthy.py": UNHEALTHY}),
    }
    extra_vars = {
        # The unhealthy release fails its checks for 8 s, not the scenario's 20, before it is rolled back.
        "migrates-then-unhealthy": {"rollout_health_timeout": 8},
    }
    outcomes = {}
    for name, source in cases.items():
        before = served(web)
        traffic = load("https://127.0.0.1:%d" % PORT, "shop.acme.test", clients=40, pause=0.1, label="django-" + name,
                       ca_file=ROOT, held=True)
        outcome = playbooks.run("rolling_reload", source, LOCK, extra_vars.get(name), load=traffic)
        served_load = traffic.finish()
        measured("acme, django " + name, outcome, served_load)
        outcomes[name] = {
            "rollout": outcome, "load": served_load, "before": before, "after": served(web),
            "expected": release.id(source, LOCK),
            "workers": {host: _worker_release(hosts(host)) for host in APP_HOSTS},
            "migrations": sql("SELECT name FROM django_migrations WHERE app = 'orders' ORDER BY id"),
            "order": place_and_wait(web, "acme-provided"),
        }
    return outcomes


CASES = ["new-migration", "failing-migration", "migrates-then-unhealthy"]


@pytest.mark.changes
@pytest.mark.parametrize("case", CASES)
def test_no_request_fails_during_the_rollout(rollouts, case):
    served_load = rollouts[case]["load"]
    assert served_load["requests"] > 0 and served_load["failed"] == 0, served_load["errors"]


@pytest.mark.changes
def test_a_new_migration_runs_once_before_the_switch_and_both_hosts_go_live(rollouts, sql):
    case = rollouts["new-migration"]
    assert case["rollout"].rc == 0, case["rollout"].output[-4000:]
    assert case["rollout"].results == ["ok", "ok"]
    assert {release.rsplit("-", 1)[0] for release in case["after"].values()} == {case["expected"]}
    phase = case["rollout"].report["phases"]["app_migrate"]
    assert (phase["host"], phase["result"]) == ("acme-app", "ok")
    assert "orders.0002_order_note" in phase["applied"]
    # Exactly once in the database, whichever host ran it.
    assert case["migrations"][:2] == ["0001_initial", "0002_order_note"]
    assert _rows(sql, "0002_order_note") == "1"
    # The clients saw v1 and then v2, never an error.
    assert set(case["load"]["versions"]) == {"v1", "v2"}, case["load"]["versions"]


@pytest.mark.changes
def test_the_celery_workers_moved_to_the_new_release_and_fulfil_its_orders(rollouts):
    case = rollouts["new-migration"]
    assert case["workers"] == case["after"]
    # Each host's worker restarted once its web tier passed: a warm shutdown within its stop_timeout (30 s).
    assert [0 <= entry["processes_seconds"] < 30 for entry in case["rollout"].report["hosts"]] == [True, True]
    assert case["order"]["fulfilled_release"] in case["after"].values()


@pytest.mark.changes
def test_a_failing_migration_stops_the_rollout_with_0_hosts_switched(rollouts):
    case = rollouts["failing-migration"]
    assert case["rollout"].rc != 0
    assert case["rollout"].report["stopped"] and case["rollout"].results == ["not started", "not started"]
    phase = case["rollout"].report["phases"]["app_migrate"]
    assert (phase["host"], phase["result"]) == ("acme-app", "failed")
    assert phase["error"].startswith('app_migrate[0] ("python manage.py migrate --noinput") failed on acme-app with exit 1')
    assert "orders_order is locked by a long-running report" in phase["error"]
    assert case["after"] == case["before"] and case["workers"] == case["before"]
    # PostgreSQL rolled the failed migration back, its index too.
    assert "0003_locked" not in case["migrations"]
    assert set(case["load"]["versions"]) == {"v2"}


@pytest.mark.changes
def test_a_release_that_migrates_then_fails_health_is_rolled_back_and_the_summary_says_the_migration_stays(
        rollouts, sql):
    case = rollouts["migrates-then-unhealthy"]
    assert case["rollout"].rc != 0
    hosts_report = {entry["host"]: entry["result"] for entry in case["rollout"].report["hosts"]}
    assert hosts_report == {"acme-app": "rolled back", "acme-provided": "not started"}
    warnings = " ".join(case["rollout"].report["warnings"])
    assert "app_migrate ran for release" in warnings and "stays applied" in warnings
    assert "orders.0003_order_created_idx" in warnings
    assert _rows(sql, "0003_order_created_idx") == "1"
    assert case["after"] == case["before"] and case["workers"] == case["before"]


@pytest.mark.changes
def test_the_release_rolled_back_to_runs_against_the_expanded_schema(rollouts):
    """v2 predates 0003 (an index): orders placed after the rollback are fulfilled by v2's workers."""
    case = rollouts["migrates-then-unhealthy"]
    assert case["order"]["fulfilled_release"] in case["before"].values()
