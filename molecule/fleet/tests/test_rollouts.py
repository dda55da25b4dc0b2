# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The fleet's rollouts, as a user runs them, under load through the load balancer.

Each class is one step: its fixture runs ``ansible-playbook
pyfleet.deploy.<playbook>`` once, against the scenario's inventory (over SSH,
as the deploy user with sudo), while bench/loadgen.py sends about 300
requests/s through the load balancer's published port: through the go-live
plays of a rolling_reload (conftest.GO_LIVE), through the whole run of the
others; each test asserts one thing a user would notice. The steps build on each other, in file order.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

LB_URL = "https://127.0.0.1:9443"
SERVER_NAME = "pyfleet.test"
APP_HOSTS = ["fleet-app1", "fleet-app2", "fleet-app3"]
LB_LOG = "/var/log/nginx/demo.access.log"
APP_ERROR_LOG = "/var/log/nginx/demo.error.log"


@pytest.fixture(scope="session")
def example():
    return os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "examples", "fastapi")


@pytest.fixture(scope="session")
def locks(example):
    return {"v1": os.path.join(example, "requirements.txt"),
            "deps": os.path.join(example, "requirements-deps-change.txt")}


@pytest.fixture(scope="session")
def sources(work, release, example):
    app = os.path.join(example, "app")
    return {
        "v1": app,
        "v2": release.variant(work, "v2", "v2", app=app),
        "v3": release.variant(work, "v3", "v3", app=app),
        "broken": release.variant(work, "broken", "v2-broken", "\nimport module_that_is_not_installed  # noqa: F401\n",
                                  app=app),
        "unhealthy": release.variant(work, "unhealthy", "v2-unhealthy", release.unhealthy_fastapi, app=app),
    }


@pytest.fixture(scope="session")
def ids(release, sources, locks):
    """The code part of each release's id (<code>-<config>): what the tests predict from the source."""
    return {"v1": release.id(sources["v1"], locks["v1"]), "v2": release.id(sources["v2"], locks["v1"]),
            "deps": release.id(sources["v2"], locks["deps"])}


@pytest.fixture(scope="session")
def full_id(hosts):
    """The whole id of the one release on fleet-app1 whose code part is `code`."""

    def find(code):
        found = hosts("fleet-app1").check_output("ls /srv/demo/releases").split()
        matches = [name for name in found if not name.endswith(".partial") and name.rsplit("-", 1)[0] == code]
        assert len(matches) == 1, (code, found)
        return matches[0]

    return find


def _socket_get(host, path):
    out = host.run("curl -sS --max-time 5 --unix-socket /run/demo/gunicorn.sock http://localhost%s" % path)
    try:
        return json.loads(out.stdout)
    except ValueError:
        return "unreadable: %s %s" % (out.stdout[:80], out.stderr[:80])


@pytest.fixture(scope="session")
def served(hosts, release):
    """The release each app server's Gunicorn reports through its socket: the code part of its id, or the whole id."""

    def releases(whole=False):
        found = {}
        for name in APP_HOSTS:
            answer = _socket_get(hosts(name), "/health")
            found[name] = answer.get("release") if isinstance(answer, dict) else answer
        return found if whole else {name: release.code(value) for name, value in found.items()}

    return releases


@pytest.fixture(scope="session")
def worker_env(hosts):
    """Per app server: the EXAMPLE_* variables its workers see (the example's /config), and whether any
    process of the service was started with EXAMPLE_COLOR in its environment."""

    def read():
        found = {}
        for name in APP_HOSTS:
            # One command per host: the workers' /config on the first line, then the processes' environ files.
            out = hosts(name).run(
                "curl -sS --max-time 5 --unix-socket /run/demo/gunicorn.sock http://localhost/config; echo; "
                "main=$(systemctl show --property=MainPID --value demo.service); "
                "for pid in $main $(pgrep -P $main); do grep -l -a EXAMPLE_COLOR /proc/$pid/environ; done; true")
            config, _newline, started_with = out.stdout.partition("\n")
            try:
                config = json.loads(config)
            except ValueError:
                config = "unreadable: %s %s" % (config[:80], out.stderr[:80])
            found[name] = {"config": config, "started_with": started_with.split()}
        return found

    return read


# The files that make a host serve what it serves: where current points, the
# release's config, environment, modules and units, and the units systemd runs.
_LIVE_FILES = ("readlink /srv/demo/current; cd /srv/demo/current/.pyfleet && "
               "for f in $(find . -type f ! -path '*/__pycache__/*' | sort) /etc/systemd/system/demo.service "
               "/etc/systemd/system/demo.socket; do echo \"$f $(stat -c %.9Y $f) $(sha256sum < $f | cut -c1-64)\"; done")


@pytest.fixture(scope="session")
def live_files(hosts):
    """Per app server, one line per live file: its path, mtime and sha256 (see _LIVE_FILES)."""

    def read(with_mtime=True):
        found = {}
        for name in APP_HOSTS:
            lines = hosts(name).check_output(_LIVE_FILES).splitlines()
            found[name] = lines if with_mtime else [re.sub(r" [0-9.]+ ", " ", line, count=1) for line in lines]
        return found

    return read


@pytest.fixture(scope="session")
def lb_raw(named_https):
    """(status, headers, body text) of one request through the load balancer, chain and name verified."""

    def get(path="/"):
        connection = named_https(int(LB_URL.rsplit(":", 1)[1]), SERVER_NAME, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": SERVER_NAME})
            answer = connection.getresponse()
            return answer.status, answer.headers, answer.read().decode()
        finally:
            connection.close()

    return get


@pytest.fixture(scope="session")
def lb_get(lb_raw):
    """(status, headers, JSON body) of one request through the load balancer."""

    def get(path="/"):
        status, headers, body = lb_raw(path)
        return status, headers, json.loads(body)

    return get


@pytest.fixture(scope="session")
def lb_versions(lb_get):
    def versions(count=30):
        seen = {}
        for _request in range(count):
            version = lb_get("/")[2]["version"]
            seen[version] = seen.get(version, 0) + 1
        return seen

    return versions


class LogMark:
    """A host's log from a mark on: mark() notes its length, since(mark) returns the lines added after it."""

    def __init__(self, host, path):
        self.host, self.path = host, path

    def mark(self):
        return int(self.host.check_output("wc -l < %s" % self.path))

    def since(self, mark):
        return self.host.check_output("tail -n +%d %s" % (mark + 1, self.path)).splitlines()


@pytest.fixture(scope="session")
def lb_log(hosts):
    """The balancer's JSON access log, from a mark on."""
    return LogMark(hosts("fleet-lb"), LB_LOG)


@pytest.fixture(scope="session")
def lb_retries(lb_log):
    """Count the requests the balancer had to retry on another app server, from its JSON access log (a
    WebSocket's handshake answers 101)."""

    def retried(since):
        retries = 0
        for entry in map(json.loads, lb_log.since(since)):
            if "," in entry["upstream_status"] or entry["upstream_status"] not in ("200", "101", "-"):
                retries += 1
        return retries

    return lb_log.mark, retried


@pytest.fixture(scope="session")
def cut_websockets(hosts):
    """The app servers' nginx errors on WebSockets it was proxying (a worker that closed or reset one
    while the client's message was in flight), from their error logs since a mark."""
    logs = {name: LogMark(hosts(name), APP_ERROR_LOG) for name in APP_HOSTS}

    def mark():
        return {name: log.mark() for name, log in logs.items()}

    def found(since):
        return {name: [line for line in log.since(since[name]) if "while proxying upgraded connection" in line]
                for name, log in logs.items()}

    return mark, found


def _under_load(load, run, held=True, path="/health"):
    """run(traffic) under load on ``path`` through the balancer. Held (a rolling_reload): the load opens when
    the run reaches its go-live plays (conftest.GO_LIVE); otherwise it runs from before the run starts."""
    traffic = load(LB_URL, SERVER_NAME, clients=100, pause=0.25, held=held, path=path)
    outcome = run(traffic if held else None)
    return outcome, traffic.finish()


# gunicorn_stream_drain, which the fleet leaves at its default: after a HUP the
# old workers keep WebSockets and event streams this long, then close them.
STREAM_DRAIN = 10
WEBSOCKETS, EVENT_STREAMS = 200, 20


class ServiceMemory(threading.Thread):
    """demo.service's memory on one app server, every second while a rollout runs: the Pss of the master
    and all its workers, old generation included, and how many workers it has. Read with docker exec,
    beside the test: a measurement, not a step a user takes."""

    COMMAND = ("m=$(systemctl show -P MainPID demo.service); n=$(pgrep -c -P $m); "
               "for p in $m $(pgrep -P $m); do awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup; done 2>/dev/null "
               "| awk -v n=$n '{s += $1} END {print s, n}'")

    def __init__(self, host):
        super().__init__(daemon=True)
        self.host, self.samples, self.stopping = host, [], threading.Event()

    def run(self):
        while not self.stopping.wait(1.0):
            out = subprocess.run(["docker", "exec", self.host, "sh", "-c", self.COMMAND],
                                 capture_output=True, text=True, check=False).stdout.split()
            if len(out) == 2:
                self.samples.append((time.time(), int(out[0]) // 1024, int(out[1])))

    def finish(self):
        self.stopping.set()
        self.join()
        return self.samples


def _under_load_with_streams(load, stream_load, run, settle, path="/health"):
    """Like _under_load, with WebSocket and event-stream clients through the balancer held from before the
    rollout until ``settle(started)`` seconds after it, and fleet-app1's memory sampled meanwhile."""
    streams = stream_load(int(LB_URL.rsplit(":", 1)[1]), SERVER_NAME, WEBSOCKETS, EVENT_STREAMS)
    memory = ServiceMemory("fleet-app1")
    memory.start()
    started = time.time()
    outcome, traffic = _under_load(load, run, path=path)
    held = streams.finish(settle(started))
    return outcome, traffic, dict(held, started=started, memory=memory.finish())


def _hups(hosts, since):
    """Per app server, the times (epoch seconds) its Gunicorn master handled a HUP since ``since``."""
    found = {}
    for name in APP_HOSTS:
        out = hosts(name).check_output("journalctl -u demo.service -o short-unix --no-pager --since @%d "
                                       "| grep -F 'Handling signal: hup' | cut -d' ' -f1; true" % int(since))
        found[name] = sorted(float(line) for line in out.split())
    return found


def _memory_figure(samples):
    """fleet-app1's service memory: before the rollout, at its peak (with how many workers) and at the end."""
    if not samples:
        return "no memory samples"
    peak = max(samples, key=lambda sample: sample[1])
    return "fleet-app1 Pss %d MiB (%d workers) before, peak %d MiB (%d workers) while draining, %d MiB (%d) after" % (
        samples[0][1], samples[0][2], peak[1], peak[2], samples[-1][1], samples[-1][2])


def _streams_figure(label, held):
    kinds = []
    for kind in ("websockets", "events"):
        seen = held[kind]
        kinds.append("%s: %d held, %d closed by the server %s, %d abnormal, %d reconnected" % (
            kind, seen["clients"], len(seen["closes"]), seen["close_codes"], len(seen["abnormal"]),
            len(seen["reconnected"])))
    return "%s: %s; %s" % (label, "; ".join(kinds), _memory_figure(held["memory"]))


class TestCodeOnlyRollout:
    """rolling_reload v1 -> v2 (a code change: HUP) in two batches, the canary then the other two, each soaked
    on the load's "/" (a good release passes), with the webhooks; while a second rollout tries to start."""

    @pytest.fixture(scope="class")
    def step(self, playbooks, load, stream_load, sources, locks, served, hosts, lb_retries, cut_websockets, measured,
             note, webhooks):
        before = served(whole=True)
        mark, retried = lb_retries
        since, cut_since = mark(), cut_websockets[0]()

        def run(traffic):
            first = playbooks.start("rolling_reload", sources["v2"], locks["v1"], load=traffic,
                                    extra_vars={**SOAKED_IN_TWO_BATCHES, **webhooks["vars"]})
            lock = hosts("fleet-app1").file("/srv/demo/.rollout.lock")
            deadline = time.monotonic() + 120
            while not lock.exists and time.monotonic() < deadline and first[0].poll() is None:
                time.sleep(0.5)
            held = lock.exists
            second = playbooks.run("rolling_reload", sources["v3"], locks["v1"])
            return held, second, playbooks.finish(first)

        def settle(started):
            """Until the drain after the last host's HUP is over, and 8 s more: the drain starts once the new
            generation has booted (the swap, up to about 4.5 s seen under load), then the closes arrive."""
            last = max(max(times, default=started) for times in _hups(hosts, started - 1).values())
            return max(2.0, last + STREAM_DRAIN + 8 - time.time())

        (held, second, rollout), traffic, streams = _under_load_with_streams(load, stream_load, run, settle, path="/")
        measured("fleet, v1 -> v2, code only", rollout, traffic)
        _note_soaks(note, "fleet, v1 -> v2, code only", rollout)
        note(_streams_figure("fleet, v1 -> v2, code only, long-lived connections", streams))
        # "<eof>" after the file: it must end with a newline, as the text format requires.
        textfile = hosts("fleet-app1").check_output("cat /var/lib/prometheus/node-exporter/pyfleet_demo.prom; echo '<eof>'")
        host_history = hosts("fleet-app1").check_output("tail -n 1 /srv/demo/.pyfleet-history.jsonl")
        return {"before": before, "held": held, "second": second, "rollout": rollout, "load": traffic,
                "retried": retried(since), "streams": streams, "hups": _hups(hosts, streams["started"] - 1),
                "cut": cut_websockets[1](cut_since), "textfile": textfile, "host_history": json.loads(host_history)}

    def test_exits_0(self, step):
        assert step["rollout"].rc == 0, step["rollout"].output[-4000:]

    def test_no_request_fails(self, step):
        assert step["load"]["requests"] > 0
        assert step["load"]["failed"] == 0, step["load"]["errors"]

    def test_no_request_needed_a_retry_at_the_load_balancer(self, step):
        assert step["retried"] == 0

    def test_the_summary_reports_ok_on_every_host(self, step):
        assert step["rollout"].results == ["ok"] * 3

    def test_a_code_only_change_is_a_hup_on_every_host(self, step):
        assert step["rollout"].methods == ["hup"]

    def test_the_summary_names_where_each_host_came_from_and_went_to(self, step, ids, release):
        assert [(h["host"], h["from"], release.code(h["to"])) for h in step["rollout"].report["hosts"]] == [
            (name, step["before"][name], ids["v2"]) for name in APP_HOSTS]

    def test_every_app_server_serves_v2(self, step, served, ids):
        assert served() == dict.fromkeys(APP_HOSTS, ids["v2"])

    def test_only_v2_answers_through_the_load_balancer(self, step, lb_versions):
        assert set(lb_versions()) == {"v2"}

    def test_the_first_rollout_held_the_deploy_lock(self, step):
        assert step["held"]

    def test_a_second_rollout_is_refused_by_the_lock_with_how_to_break_it(self, step):
        assert step["second"].rc != 0
        assert "held by rollout" in step["second"].output
        assert "rollout_break_lock=true" in step["second"].output

    def test_no_websocket_or_event_stream_ended_abnormally(self, step):
        assert [step["streams"][kind]["abnormal"] for kind in ("websockets", "events")] == [[], []]

    def test_no_websocket_was_cut_while_the_client_wrote_to_it(self, step):
        assert step["cut"] == dict.fromkeys(APP_HOSTS, [])

    def test_the_old_workers_closed_every_websocket_with_1012_and_ended_every_event_stream(self, step):
        websockets, events = step["streams"]["websockets"], step["streams"]["events"]
        # Every first connection was served by a generation this rollout retired.
        assert set(websockets["close_codes"]) == {"1012"} and len(websockets["closes"]) >= WEBSOCKETS
        assert set(events["close_codes"]) == {"end"} and len(events["closes"]) >= EVENT_STREAMS

    def test_they_closed_them_only_after_the_stream_drain(self, step):
        early = []
        for close in step["streams"]["websockets"]["closes"] + step["streams"]["events"]["closes"]:
            hup = max([at for at in step["hups"][close["host"]] if at <= close["at"]], default=None)
            if hup is None or close["at"] - hup < STREAM_DRAIN - 0.5:
                early.append((close, hup))
        assert early == []

    def test_every_client_reconnected_to_the_new_release(self, step, ids, release):
        for kind in ("websockets", "events"):
            last = step["streams"][kind]["last"]
            assert len(last) == step["streams"][kind]["clients"]
            assert {release.code(found["release"]) for found in last} == {ids["v2"]}

    def test_the_swap_did_not_wait_out_the_drain_and_the_summary_counts_what_drained(self, step):
        hosts = step["rollout"].report["hosts"]
        assert all(host["swap_seconds"] < STREAM_DRAIN for host in hosts), hosts
        assert all(int(host["draining"]) >= 1 for host in hosts), hosts

    def test_the_good_release_passed_both_soaks(self, step):
        rollout = step["rollout"]
        soaks = rollout.report["soaks"]
        assert [(soak["verdict"], soak["batch"]["hosts"]) for soak in soaks] == [
            ("pass", ["fleet-app1"]), ("pass", ["fleet-app2", "fleet-app3"])]
        assert [len(soak["baseline_hosts"]) for soak in soaks] == [2, 0]
        assert all(soak["batch"]["requests"] >= SOAK_VARS["rollout_slo"]["min_requests"] for soak in soaks), soaks
        # Response times: the event streams the old workers closed during a soak are not requests of 40 s.
        assert all(soak["batch"]["p99_ms"] < 1000 for soak in soaks), soaks
        assert "soak after batch 1: pass in %d s" % SOAK_SECONDS in rollout.output

    def test_a_webhook_that_never_answers_is_a_warning_not_a_failure(self, step):
        assert step["rollout"].rc == 0
        warnings = step["rollout"].report["warnings"]
        assert any(warning.startswith("webhook 127.0.0.1 (started) failed: ") for warning in warnings), warnings

    def test_each_host_keeps_its_history_and_a_textfile_for_node_exporter(self, step):
        report = step["rollout"].report
        assert (step["host_history"]["rollout"], step["host_history"]["result"]) == (report["rollout"], "ok")
        release = report["hosts"][0]["to"]
        assert 'pyfleet_release_info{app="demo",release="%s"} 1' % release in step["textfile"]
        assert 'pyfleet_last_rollout_success{app="demo",result="ok"} 1' in step["textfile"]
        assert re.search(r'\npyfleet_last_rollout_duration_seconds\{app="demo"\} [0-9.]+\n<eof>$', step["textfile"])
        assert re.search(r'\npyfleet_last_rollout_timestamp_seconds\{app="demo"\} \d{10}\n', step["textfile"])


class TestReleaseThatCannotImport:
    """rolling_reload of a release whose import fails: stopped in the preflight, 0 hosts changed."""

    @pytest.fixture(scope="class")
    def step(self, playbooks, load, sources, locks, measured):
        # Loaded from the start: this release stops in the preflight, which runs beside the live one.
        rollout, traffic = _under_load(load, lambda _traffic: playbooks.run("rolling_reload", sources["broken"],
                                                                            locks["v1"]), held=False)
        measured("fleet, a release that cannot import", rollout, traffic)
        return {"rollout": rollout, "load": traffic}

    def test_fails(self, step):
        assert step["rollout"].rc != 0

    def test_stops_at_the_preflight_naming_the_import_error(self, step):
        report = step["rollout"].report
        assert report["stopped"] and "preflight" in report["stop_reason"]
        assert "module_that_is_not_installed" in report["stop_reason"]

    def test_changes_no_host(self, step):
        assert step["rollout"].results == ["not started"] * 3

    def test_no_request_fails(self, step):
        assert step["load"]["requests"] > 0
        assert step["load"]["failed"] == 0, step["load"]["errors"]

    def test_every_app_server_still_serves_v2(self, step, served, ids):
        assert served() == dict.fromkeys(APP_HOSTS, ids["v2"])


class TestReleaseThatFailsHealth:
    """rolling_reload of a release that imports but answers 503 on /health, with a new environment
    variable and a new server setting: the canary is rolled back, config and environment included."""

    @pytest.fixture(scope="class")
    def step(self, playbooks, load, sources, locks, measured, live_files):
        before = live_files()
        # The health deadline only bounds how long the failing release is given (default 30 s).
        changes = {"rollout_health_timeout": 10, "app_env": {"EXAMPLE_COLOR": "red"}, "gunicorn_timeout": 45}
        rollout, traffic = _under_load(load, lambda traffic: playbooks.run(
            "rolling_reload", sources["unhealthy"], locks["v1"], extra_vars=changes, load=traffic))
        measured("fleet, a release that fails health", rollout, traffic)
        return {"rollout": rollout, "load": traffic, "before": before}

    def test_the_canary_went_live_with_the_new_configuration_before_it_was_rolled_back(self, step):
        canary = step["rollout"].report["hosts"][0]
        assert canary["to"].rsplit("-", 1)[1] != canary["from"].rsplit("-", 1)[1], canary

    def test_the_canarys_live_files_are_byte_identical_to_before(self, step, live_files):
        strip = re.compile(r" [0-9.]+ ")
        before = [strip.sub(" ", line, count=1) for line in step["before"]["fleet-app1"]]
        assert live_files(with_mtime=False)["fleet-app1"] == before

    def test_the_hosts_not_started_keep_every_live_file_hash_and_mtime(self, step, live_files):
        after = live_files()
        assert {name: after[name] for name in APP_HOSTS[1:]} == {name: step["before"][name] for name in APP_HOSTS[1:]}

    def test_no_worker_holds_the_new_variable(self, step, worker_env):
        assert worker_env() == dict.fromkeys(APP_HOSTS, {"config": {}, "started_with": []})

    def test_fails(self, step):
        assert step["rollout"].rc != 0

    def test_rolls_the_canary_back_and_leaves_the_others_untouched(self, step):
        assert step["rollout"].results == ["rolled back", "not started", "not started"]

    def test_the_canarys_reason_names_the_failed_health_check(self, step):
        assert "503" in step["rollout"].report["hosts"][0].get("reason", "")

    def test_leaves_no_host_on_the_bad_release(self, step, served, ids):
        assert served() == dict.fromkeys(APP_HOSTS, ids["v2"])

    def test_no_request_fails(self, step):
        assert step["load"]["requests"] > 0
        assert step["load"]["failed"] == 0, step["load"]["errors"]

    def test_only_v2_answers_through_the_load_balancer(self, step, lb_versions):
        assert set(lb_versions()) == {"v2"}


# The new lockfile's release also sets an environment variable and a unit
# setting (graceful_timeout is in the unit's TimeoutStopSec); TestRollback
# takes both back.
_DEPS_CHANGES = {"app_env": {"EXAMPLE_COLOR": "green"}, "gunicorn_graceful_timeout": 25}


class TestNewLockfile:
    """rolling_reload of v2 with a new lockfile, environment and unit: a restart on every host, wheels gathered once."""

    @pytest.fixture(scope="class")
    def step(self, playbooks, load, stream_load, sources, locks, lb_retries, cut_websockets, measured, note):
        mark, retried = lb_retries
        since, cut_since = mark(), cut_websockets[0]()
        rollout, traffic, streams = _under_load_with_streams(
            load, stream_load, lambda traffic: playbooks.run("rolling_reload", sources["v2"], locks["deps"],
                                                             extra_vars=_DEPS_CHANGES, load=traffic),
            settle=lambda _started: 4)
        measured("fleet, v2 with a new lockfile", rollout, traffic)
        note(_streams_figure("fleet, v2 with a new lockfile, long-lived connections", streams))
        return {"rollout": rollout, "load": traffic, "retried": retried(since), "streams": streams,
                "cut": cut_websockets[1](cut_since)}

    def test_exits_0(self, step):
        assert step["rollout"].rc == 0, step["rollout"].output[-4000:]

    def test_a_new_lock_hash_restarts_every_host(self, step):
        assert step["rollout"].methods == ["restart"]
        assert step["rollout"].results == ["ok"] * 3

    def test_no_request_fails(self, step):
        assert step["load"]["requests"] > 0
        assert step["load"]["failed"] == 0, step["load"]["errors"]

    def test_no_request_needed_a_retry_at_the_load_balancer(self, step):
        assert step["retried"] == 0

    def test_a_restart_closes_websockets_with_1012_and_ends_event_streams_never_abnormally(self, step):
        websockets, events = step["streams"]["websockets"], step["streams"]["events"]
        assert (websockets["abnormal"], events["abnormal"]) == ([], [])
        assert set(websockets["close_codes"]) == {"1012"} and len(websockets["closes"]) >= WEBSOCKETS
        assert set(events["close_codes"]) == {"end"} and len(events["closes"]) >= EVENT_STREAMS

    def test_no_websocket_was_cut_while_the_client_wrote_to_it(self, step):
        assert step["cut"] == dict.fromkeys(APP_HOSTS, [])

    def test_every_long_lived_client_reconnected_to_the_new_release(self, step, ids, release):
        for kind in ("websockets", "events"):
            assert {release.code(found["release"]) for found in step["streams"][kind]["last"]} == {ids["deps"]}

    def test_every_app_server_serves_the_new_release(self, step, served, ids):
        assert served() == dict.fromkeys(APP_HOSTS, ids["deps"])

    def test_the_workers_run_with_the_new_environment(self, step, worker_env):
        assert {name: found["config"] for name, found in worker_env().items()} == dict.fromkeys(
            APP_HOSTS, {"EXAMPLE_COLOR": "green"})

    def test_systemd_runs_the_unit_the_release_carries(self, step, hosts):
        for name in APP_HOSTS:
            assert hosts(name).check_output("systemctl show --property=TimeoutStopUSec --value demo.service") == "35s"

    def test_the_wheels_were_downloaded_once_for_three_hosts(self, step):
        blocks = re.findall(r"TASK \[pyfleet\.deploy\.app : Gather the wheels[^\n]*\n((?:[^\n]+\n)+)", step["rollout"].output)
        downloads = sum(block.count("changed: [") for block in blocks)
        cache_hits = sum(block.count("ok: [") for block in blocks)
        assert (downloads, cache_hits >= 1) == (1, True), (downloads, cache_hits)


class TestWhatChanged:
    """pyfleet.deploy.what_changed: the last rollout added a package; from v1, the code changed too."""

    @pytest.fixture(scope="class", params=["previous", "v1"])
    def compare(self, request):
        return request.param

    @pytest.fixture(scope="class")
    def step(self, playbooks, work, sources, locks, ids, compare, full_id):
        out = os.path.join(work, "what_changed-%s.json" % compare)
        args = ("-e", "rollout_diff_json=%s" % out)
        if compare == "v1":
            args += ("-e", "rollout_diff_from=%s" % full_id(ids["v1"]))
        rollout = playbooks.run("what_changed", sources["v2"], locks["deps"], _DEPS_CHANGES, args=args)
        found = {}
        if os.path.exists(out):
            with open(out, encoding="utf-8") as handle:
                found = json.load(handle)
        return {"rollout": rollout, "results": found, "from": ids["v2"] if compare == "previous" else ids["v1"]}

    def test_exits_0(self, step):
        assert step["rollout"].rc == 0, step["rollout"].output[-3000:]

    def test_every_app_server_compares_the_same_two_releases(self, step, ids, release):
        pairs = {(release.code(r.get("from", {}).get("id")), release.code(r.get("to", {}).get("id")))
                 for r in step["results"].values()}
        assert sorted(step["results"]) == APP_HOSTS
        assert pairs == {(step["from"], ids["deps"])}

    def test_the_added_package_is_itsdangerous_on_every_host(self, step):
        added = [p for r in step["results"].values() for p in r.get("packages", {}).get("added", [])]
        assert added == [{"name": "itsdangerous", "version": "2.2.0"}] * 3

    def test_the_changed_source_files_are_listed(self, step, compare):
        changed = {tuple(r.get("source", {}).get("changed", [])) for r in step["results"].values()}
        assert changed == ({()} if compare == "previous" else {("main.py",)})

    def test_the_new_variable_and_unit_are_named_and_no_env_value_is_shown(self, step):
        configs = [r.get("config") for r in step["results"].values()]
        # graceful_timeout is in gunicorn.conf.py and in the unit's TimeoutStopSec.
        assert configs == [{"added": [], "removed": [], "changed": ["env", "gunicorn.conf.py", "systemd/demo.service"],
                            "env": {"added": ["EXAMPLE_COLOR"], "removed": [], "changed": []}}] * 3
        assert "  A env EXAMPLE_COLOR" in step["rollout"].output and "green" not in step["rollout"].output

    def test_the_report_shows_the_change_once_for_the_three_hosts(self, step):
        assert "(3 hosts)" in step["rollout"].output


def test_x_release_through_the_load_balancer_names_the_live_release(lb_get, ids, release, served):
    status, headers, body = lb_get("/health")
    assert (status, headers.get("X-Release")) == (200, body.get("release"))
    assert body["release"] in served(whole=True).values() and release.code(body["release"]) == ids["deps"]


class TestRollback:
    """pyfleet.deploy.rollback to each host's previous release, under load."""

    @pytest.fixture(scope="class")
    def step(self, playbooks, load, sources, locks, measured):
        rollout, traffic = _under_load(load, lambda _traffic: playbooks.run("rollback", sources["v2"], locks["v1"]),
                                       held=False)
        measured("fleet, rollback", rollout, traffic)
        return {"rollout": rollout, "load": traffic}

    def test_exits_0(self, step):
        assert step["rollout"].rc == 0, step["rollout"].output[-4000:]

    def test_every_app_server_serves_its_previous_release_again(self, step, served, ids):
        assert served() == dict.fromkeys(APP_HOSTS, ids["v2"])

    def test_the_environment_comes_back_with_the_code(self, step, worker_env):
        assert worker_env() == dict.fromkeys(APP_HOSTS, {"config": {}, "started_with": []})

    def test_the_units_come_back_with_the_code(self, step, hosts):
        for name in APP_HOSTS:
            out = hosts(name).check_output(
                "sha256sum < /etc/systemd/system/demo.service; sha256sum < /srv/demo/current/.pyfleet/systemd/demo.service; "
                "systemctl show --property=TimeoutStopUSec --value demo.service").split("\n")
            assert (out[0] == out[1], out[2]) == (True, "40s"), (name, out)

    def test_no_request_fails(self, step):
        assert step["load"]["requests"] > 0
        assert step["load"]["failed"] == 0, step["load"]["errors"]


def _maintenance(inventory, state):
    """ansible-playbook pyfleet.deploy.maintenance -e maintenance=<state>, on the whole fleet."""
    return subprocess.run(["ansible-playbook", "-i", inventory, "pyfleet.deploy.maintenance", "-e", "maintenance=" + state],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)


class TestWorkersBehindCurrent:
    """A host whose current names the live release while its workers still run another one, fixed by a
    rollout that runs while the fleet is in maintenance mode.

    A rollout stopped between the switch and the reload leaves this, and so does
    a hand edit: here fleet-app3 is restarted on the release before (another
    virtualenv), then `current` is put back without a reload. The next
    rolling_reload of the live release must see it, from what runs. It runs
    between `pyfleet.deploy.maintenance -e maintenance=on` and `off`.
    """

    @pytest.fixture(scope="class")
    def step(self, playbooks, hosts, served, sources, locks, ids, full_id, inventory, lb_raw):
        host = hosts("fleet-app3")
        assert served()["fleet-app3"] == ids["v2"]
        whole = {"v2": full_id(ids["v2"]), "deps": full_id(ids["deps"])}

        def point_current(release):
            host.check_output("ln -sfn releases/%s /srv/demo/.current.tmp && mv -Tf /srv/demo/.current.tmp /srv/demo/current"
                              % release)

        point_current(whole["deps"])
        host.check_output("systemctl restart demo.service")
        deadline = time.monotonic() + 60
        while served()["fleet-app3"] != ids["deps"] and time.monotonic() < deadline:
            time.sleep(1)
        behind = served()["fleet-app3"]
        point_current(whole["v2"])
        maintenance = {"on": _maintenance(inventory, "on")}
        maintenance.update(page=lb_raw("/"), health=lb_raw("/health"))
        rollout = playbooks.run("rolling_reload", sources["v2"], locks["v1"])
        maintenance.update(after_rollout=lb_raw("/"), off=_maintenance(inventory, "off"))
        maintenance["reopened"] = lb_raw("/")
        return {"behind": behind, "rollout": rollout, "hosts": {h["host"]: h for h in rollout.report["hosts"]},
                "whole": whole, "maintenance": maintenance}

    def test_maintenance_closes_the_fleet_at_the_balancer_with_retry_after_and_the_page(self, step):
        assert step["maintenance"]["on"].returncode == 0, step["maintenance"]["on"].stdout[-3000:]
        for answer in (step["maintenance"]["page"], step["maintenance"]["after_rollout"]):
            status, headers, body = answer
            assert (status, headers["Retry-After"]) == (503, "300")
            assert "Down for maintenance" in body

    def test_the_health_path_still_reaches_the_fleet_during_maintenance(self, step):
        status, _headers, body = step["maintenance"]["health"]
        assert status == 200 and json.loads(body)["status"] == "ok"

    def test_maintenance_off_reopens_the_fleet(self, step):
        assert step["maintenance"]["off"].returncode == 0
        status, _headers, body = step["maintenance"]["reopened"]
        assert status == 200 and json.loads(body)["version"] == "v2"

    def test_the_host_ran_the_release_before_while_current_named_the_live_one(self, step, ids):
        assert step["behind"] == ids["deps"]

    def test_exits_0(self, step):
        assert step["rollout"].rc == 0, step["rollout"].output[-4000:]

    def test_the_host_is_restarted_naming_the_release_its_workers_served(self, step, ids):
        entry = step["hosts"]["fleet-app3"]
        assert (entry["method"], entry["result"]) == ("restart", "ok"), entry
        assert "workers serve %s, not %s" % (step["whole"]["deps"], step["whole"]["v2"]) in entry["why"]
        assert "new virtualenv" in entry["why"]

    def test_the_hosts_already_serving_the_release_are_left_alone(self, step):
        assert [(step["hosts"][name]["method"], step["hosts"][name]["result"]) for name in APP_HOSTS[:2]] == [
            ("none", "unchanged")] * 2

    def test_every_app_server_serves_the_live_release(self, step, served, ids):
        assert served() == dict.fromkeys(APP_HOSTS, ids["v2"])


def test_the_load_balancer_sends_strict_transport_security_once(lb_raw):
    _status, headers, _body = lb_raw("/health")
    assert headers.get_all("Strict-Transport-Security") == ["max-age=63072000"]


def test_testssl_sh_sees_one_strict_transport_security_header_at_the_load_balancer(work):
    """testssl.sh (Debian's package, which bootstrap-host.sh installs) reports "HSTS_multiple" for a header
    sent twice, as it did when the balancer passed the app server's own through."""
    report = os.path.join(work, "testssl-lb.json")
    ran = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "--headers", "--ip", "127.0.0.1",
                          "--jsonfile", report, "https://%s:9443/" % SERVER_NAME],
                         capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    assert os.path.exists(report), ran.stdout[-3000:] + ran.stderr[-2000:]
    with open(report, encoding="utf-8") as handle:
        findings = {finding["id"]: finding["finding"] for finding in json.load(handle)}
    assert "HSTS_multiple" not in findings, findings["HSTS_multiple"]
    assert findings["HSTS_time"].startswith("730 days (=63072000 seconds)"), findings.get("HSTS_time")


@pytest.mark.parametrize("port", [9443, 9444], ids=["load balancer", "app server"])
def test_the_certificate_is_served_without_the_root_ca(port):
    shown = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", SERVER_NAME,
                            "-showcerts"], input="", capture_output=True, text=True, timeout=30, check=False)
    assert shown.stdout.count("-----BEGIN CERTIFICATE-----") == 1, shown.stdout[-2000:]


def test_a_websocket_echoes_through_the_load_balancer_from_the_live_release(streams, served):
    """/ws is one of nginx_stream_locations, on the balancer and on the app servers."""
    answer = streams.websocket(9443, SERVER_NAME, "/ws", ["ping", "déjà vu"])
    assert [answer["hello"]["release"]] == sorted(set(served(whole=True).values()))
    assert (answer["echoes"], answer["close_code"]) == (["ping", "déjà vu"], 1000)


def test_an_event_stream_reaches_the_client_event_by_event_through_both_nginx(streams):
    """/events goes through "/": the app's X-Accel-Buffering: no reaches the balancer, which buffers nothing either."""
    answer = streams.events(9443, SERVER_NAME, "/events?count=3&every=1")
    assert answer["status"] == 200 and answer["headers"]["Content-Type"].startswith("text/event-stream")
    assert [event["n"] for _at, event in answer["events"]] == [0, 1, 2]
    # Sent a second apart (2 s from the first to the last): streamed, they arrive so; buffered, together.
    span, shortest_gap = streams.spread(answer)
    assert span >= 1.5 and shortest_gap >= 0.3, answer["events"]


# Soaks: each release goes out with rollout_soak_seconds under load on "/"
# (the health path does not count), judged against these thresholds; /slow,
# which the load's slow clients hold for 1 s, is left out of the figures.
SOAK_SECONDS = 6
SOAK_VARS = {"rollout_soak_seconds": SOAK_SECONDS, "rollout_soak_inconclusive": "fail",
             # p99 3 x the baseline's, never less than 3 x 100 ms: a canary's first seconds after its HUP
             # (workers warming up, beside the baseline on 2 shared cores) are not a slow release.
             "rollout_slo": {"max_5xx_ratio": 0.01, "max_p99_ratio_to_baseline": 3, "p99_floor_ms": 100,
                             "min_requests": 100, "exclude_paths": ["/slow"]}}
# Two batches: the canary against the other two, then those two against the thresholds alone.
SOAKED_IN_TWO_BATCHES = {**SOAK_VARS, "rollout_batches": [1, "100%"]}
# About 3 % of "/" answers 500 (every 33rd request of each worker); /health stays healthy.
FAILS_3_PERCENT = '''

import itertools as _itertools

_index_requests = _itertools.count(1)


@app.middleware("http")
async def _every_33rd_index_fails(request, call_next):
    if request.url.path == "/" and next(_index_requests) % 33 == 0:
        from fastapi.responses import JSONResponse
        return JSONResponse({"error": "upstream timed out"}, status_code=500)
    return await call_next(request)
'''
# "/" takes 0.6 s longer; /health stays fast.
SLOW_INDEX = '''

import asyncio as _asyncio


@app.middleware("http")
async def _slow_index(request, call_next):
    if request.url.path == "/":
        await _asyncio.sleep(0.6)
    return await call_next(request)
'''


class Receiver(threading.Thread):
    """A webhook receiver on 127.0.0.1: keeps each POST's JSON body and when it arrived. With answer=False it
    accepts connections and never answers (a hung webhook), keeping when each arrived and, in ``held_for``,
    how long the sender kept it open before it gave up and closed it."""

    def __init__(self, answer=True):
        super().__init__(daemon=True)
        import socket

        self.answer, self.received, self.connected = answer, [], []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = "http://127.0.0.1:%d/hook" % self.server.getsockname()[1]
        self.held, self.held_for = [], []
        self.start()

    def _hold(self, connection, connected):
        """Read until the sender closes (or resets) the connection, then note how long it held it."""
        connection.settimeout(60)
        try:
            while connection.recv(65536):
                pass
        except OSError:  # a reset ends it too; a timeout notes 60 s
            pass
        self.held_for.append(time.monotonic() - connected)

    def run(self):
        while True:
            try:
                connection, _peer = self.server.accept()
            except OSError:
                return
            self.connected.append(time.monotonic())
            if not self.answer:
                self.held.append(connection)
                threading.Thread(target=self._hold, args=(connection, self.connected[-1]), daemon=True).start()
                continue
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, body = data.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < length:
                    body += connection.recv(65536)
                self.received.append((time.monotonic(), json.loads(body)))
                connection.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self):
        self.server.close()
        for connection in self.held:
            connection.close()


@pytest.fixture(scope="session")
def webhooks(work):
    """Three webhooks (JSON, Slack, and one that never answers) and one rollout history, shared by the soaked
    rollouts: the code-only one (TestCodeOnlyRollout, a good release) and TestSoak's two bad canaries."""
    receiver, slack, dead = Receiver(), Receiver(), Receiver(answer=False)
    variables = {"rollout_notify": [{"url": dead.url, "timeout": 1}, {"url": receiver.url},
                                    {"url": slack.url, "format": "slack"}],
                 "rollout_report_dir": os.path.join(work, "soak-history")}
    yield {"vars": variables, "json": receiver, "slack": slack, "dead": dead}
    dead.close()


def _note_soaks(note, label, rollout):
    """One figure per soak of the rollout: its verdict, the batch's requests, 5xx and p99, and the baseline's."""
    for soak in (rollout.report or {}).get("soaks", []):
        note("%s, batch %s (%s): %s in %s s; batch %d requests, %d 5xx, p99 %s ms; baseline %s" % (
            label, soak["batch_number"], ", ".join(soak["batch"]["hosts"]), soak["verdict"], soak["seconds"],
            soak["batch"]["requests"], soak["batch"]["errors"], soak["batch"]["p99_ms"],
            "%d requests, %d 5xx, p99 %s ms" % (soak["baseline"]["requests"], soak["baseline"]["errors"],
                                                soak["baseline"]["p99_ms"]) if soak["baseline"] else "none"))


class TestSoak:
    """Two rolling_reloads with rollout_soak_seconds through the load balancer, each under load on "/": a
    release that fails 3 % of "/" and one that makes "/" 0.6 s slower; with the webhooks and the rollout
    history the code-only rollout (a good release, soaked too) began."""

    @pytest.fixture(scope="class")
    def step(self, playbooks, load, release, work, example, locks, served, measured, note, inventory, webhooks,
             lb_log):
        app = os.path.join(example, "app")
        # The slow canary holds each client 0.6 s: twice the clients give it about 230 requests in its soak,
        # well above min_requests (100), where 20 gave it 115.
        cases = {"fails-3-percent": (release.variant(work, "soak-5xx", "v4-5xx", FAILS_3_PERCENT, app=app), 20),
                 "slow": (release.variant(work, "soak-slow", "v4-slow", SLOW_INDEX, app=app), 40)}
        outcomes = {}
        for name, (source, clients) in cases.items():
            before = served()
            began, mark = time.monotonic(), lb_log.mark()
            traffic = load(LB_URL, SERVER_NAME, clients=clients, pause=0.1, label="soak-" + name, path="/",
                           held=True)
            rollout = playbooks.run("rolling_reload", source, locks["v1"],
                                    extra_vars={**SOAKED_IN_TWO_BATCHES, **webhooks["vars"]}, load=traffic)
            finished = traffic.finish()
            balancer = [json.loads(line) for line in lb_log.since(mark)]
            outcomes[name] = {"rollout": rollout, "load": finished, "before": before, "after": served(),
                              "began": began, "expected": release.id(source, locks["v1"]), "balancer": balancer}
            measured("fleet, soak, " + name, rollout, outcomes[name]["load"])
            _note_soaks(note, "fleet, soak, " + name, rollout)
        scorecard = subprocess.run(
            ["ansible-playbook", "-i", inventory, "pyfleet.deploy.history",
             "-e", "rollout_report_dir=" + webhooks["vars"]["rollout_report_dir"]],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        return {**outcomes, "json": webhooks["json"].received, "slack": webhooks["slack"].received,
                "dead": webhooks["dead"].connected, "dead_held_for": webhooks["dead"].held_for, "scorecard": scorecard}

    @pytest.mark.parametrize("case", ["fails-3-percent", "slow"])
    def test_a_bad_canary_fails_its_soak_and_only_the_canary_went_live_and_came_back(self, step, case):
        outcome = step[case]
        assert outcome["rollout"].rc != 0
        assert outcome["rollout"].results == ["rolled back", "not started", "not started"]
        assert outcome["after"] == outcome["before"]
        [soak] = outcome["rollout"].report["soaks"]
        assert (soak["verdict"], soak["batch"]["hosts"], soak["seconds"]) == ("fail", ["fleet-app1"], SOAK_SECONDS)
        assert sorted(soak["baseline"]["hosts"]) == ["fleet-app2", "fleet-app3"]
        assert outcome["rollout"].report["stop_reason"].startswith("the soak after batch 1 (fleet-app1) failed: ")

    def test_the_5xx_canary_is_caught_by_its_share_of_errors(self, step):
        soak = step["fails-3-percent"]["rollout"].report["soaks"][0]
        assert soak["reasons"][0].startswith("5xx ratio") and soak["batch"]["requests"] >= 100
        assert 0.015 < soak["batch"]["error_ratio"] < 0.06, soak["batch"]
        assert soak["baseline"]["errors"] == 0

    def test_the_clients_lost_only_the_canarys_500s(self, step, hosts):
        """The balancer retries no 500: each request the clients lost is a 500 the canary itself answered
        (the balancer logged it from fleet-app1, tried once), about 3 % of what the canary answered while it
        ran the bad release, and nothing else failed."""
        outcome = step["fails-3-percent"]
        served_load = outcome["load"]
        assert served_load["failed"] > 0 and set(served_load["errors"]) == {"HTTP 500"}, served_load["errors"]
        answered_500 = [entry for entry in outcome["balancer"] if entry["status"] == 500]
        assert served_load["failed"] == len(answered_500), (served_load["failed"], answered_500[:3])
        canary = {"%s:443" % address for address in hosts("fleet-app1").check_output("hostname -I").split()}
        assert {(entry["upstream"], entry["upstream_status"]) for entry in answered_500} <= {
            (address, "500") for address in canary}, answered_500[:3]
        # What the canary answered on "/" from its first 500 to its last: while it ran the bad release.
        first, last = answered_500[0]["msec"], answered_500[-1]["msec"]
        from_canary = [entry for entry in outcome["balancer"]
                       if entry["upstream"] in canary and entry["uri"] == "/" and first <= entry["msec"] <= last]
        assert 0.015 < len(answered_500) / len(from_canary) < 0.06, (len(answered_500), len(from_canary))

    def test_the_slow_canary_is_caught_by_its_p99_against_the_baseline(self, step):
        outcome = step["slow"]
        soak = outcome["rollout"].report["soaks"][0]
        assert soak["reasons"][0].startswith("p99 ") and "the baseline's" in soak["reasons"][0], soak["reasons"]
        assert soak["batch"]["p99_ms"] >= 600 and soak["batch"]["p99_ms"] > 3 * soak["baseline"]["p99_ms"]
        assert outcome["load"]["failed"] == 0, outcome["load"]["errors"]

    def test_the_json_webhook_hears_each_event_with_the_builds_metadata(self, step, locks, ids):
        events = [(body["event"], body["release"].rsplit("-", 1)[0]) for _at, body in step["json"]]
        codes = {name: step[name]["expected"] for name in ("fails-3-percent", "slow")}
        assert events == [("started", ids["v2"])] + [("soak", ids["v2"])] * 2 + [("finished", ids["v2"])] + [
            ("started", codes["fails-3-percent"]), ("soak", codes["fails-3-percent"]),
            ("rolled back", codes["fails-3-percent"]),
            ("started", codes["slow"]), ("soak", codes["slow"]), ("rolled back", codes["slow"])]
        [last] = [body for _at, body in step["json"] if body["event"] == "finished"]
        assert last["hosts"] == APP_HOSTS and last["app"] == "demo" and last["python"] == ["3.11.2"]
        with open(locks["v1"], "rb") as handle:
            import hashlib
            assert last["lock_hash"] == hashlib.sha256(handle.read()).hexdigest()[:16]
        assert last["seconds"] > 0 and "@" in last["started_by"]
        assert [result["result"] for result in last["results"]] == ["ok", "ok", "ok"]
        failed = [body for _at, body in step["json"] if body["event"] == "soak" and body["soak"]["verdict"] == "fail"]
        assert [body["soak"]["batch"]["hosts"] for body in failed] == [["fleet-app1"], ["fleet-app1"]]

    def test_the_slack_webhook_gets_text(self, step):
        texts = [body["text"] for _at, body in step["slack"]]
        assert len(texts) == len(step["json"]) and all(set(body) == {"text"} for _at, body in step["slack"])
        assert texts[6].startswith("pyfleet.deploy rolling_reload: demo rolled back, release "), texts

    def test_a_webhook_that_never_answers_costs_each_event_at_most_its_timeout(self, step):
        """The dead webhook is tried first, each time, and given up after its 1 s timeout: the controller
        closes each of its connections about 1 s after it opened it, and only then the next webhook hears
        the event."""
        assert len(step["dead"]) == len(step["json"]) == len(step["dead_held_for"])
        assert all(heard > tried for tried, (heard, _body) in zip(step["dead"], step["json"]))
        assert all(0.9 < held < 2 for held in step["dead_held_for"]), step["dead_held_for"]
        for name in ("fails-3-percent", "slow"):
            warnings = step[name]["rollout"].report["warnings"]
            assert any(warning.startswith("webhook 127.0.0.1 (started) failed: ") for warning in warnings), warnings

    def test_the_history_shows_the_three_rollouts_and_the_two_rollbacks(self, step):
        scorecard = step["scorecard"]
        assert scorecard.returncode == 0, scorecard.stdout[-3000:]
        assert "failed rollouts and rollbacks: 2" in scorecard.stdout
        assert re.search(r"  \d{4}-W\d\d: 3, 0, 2, [0-9.]+, [0-9.]+", scorecard.stdout), scorecard.stdout[-3000:]


def test_a_returning_client_resumes_its_tls_session_at_the_load_balancer(ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    session, reused = None, []
    for _visit in ("first", "returning"):
        with socket.create_connection(("127.0.0.1", int(LB_URL.rsplit(":", 1)[1])), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=SERVER_NAME, session=session) as tls:
            tls.sendall(("GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % SERVER_NAME).encode())
            while tls.recv(65536):
                pass
            session = tls.session
            reused.append(tls.session_reused)
    assert reused == [False, True]
