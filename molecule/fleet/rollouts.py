# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Fleet scenario checks: rollouts under load, as a user would run them.

Each step runs ``ansible-playbook pyfleet.deploy.<playbook>`` against the
scenario's inventory while bench/loadgen.py drives traffic through the load
balancer (127.0.0.1:9443), then asserts on what a user notices: the exit code,
the rollout summary JSON, the release each app server serves, and the number
of failed requests.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

PROJECT = os.environ["PYFLEET_PROJECT"]
INVENTORY = os.environ["PYFLEET_INVENTORY"]
CA_FILE = os.path.join(INVENTORY, ".pyfleet-ca", "ca.crt")
LB_URL = "https://127.0.0.1:9443"
SERVER_NAME = "pyfleet.test"
APP_HOSTS = ["fleet-app1", "fleet-app2", "fleet-app3"]
EXAMPLE = os.path.join(PROJECT, "examples", "fastapi")

sys.path.insert(0, os.path.join(PROJECT, "bench"))

from releases import release_id, variant  # noqa: E402

WORK = tempfile.mkdtemp(prefix="pyfleet-fleet-")
FAILURES = []


def log(message):
    print(message, flush=True)


def check(condition, message):
    log(("ok    " if condition else "FAIL  ") + message)
    if not condition:
        FAILURES.append(message)
    return condition


# --- release variants, derived from the v1 example -------------------------

LOCK_V1 = os.path.join(EXAMPLE, "requirements.txt")
LOCK_DEPS = os.path.join(EXAMPLE, "requirements-deps-change.txt")
V2 = variant(WORK, "v2", "v2")
V3 = variant(WORK, "v3", "v3")
BROKEN = variant(WORK, "broken", "v2-broken", "\nimport module_that_is_not_installed  # noqa: F401\n")
UNHEALTHY = variant(WORK, "unhealthy", "v2-unhealthy", '''

@app.middleware("http")
async def _health_fails(request, call_next):
    if request.url.path == "/health":
        from fastapi.responses import JSONResponse
        return JSONResponse({"status": "failing"}, status_code=503)
    return await call_next(request)
''')


# --- running things --------------------------------------------------------

def playbook(name, source, lockfile=LOCK_V1, extra=(), background=False):
    reports = os.path.join(WORK, "reports-%s-%d" % (name, time.monotonic_ns()))
    extra_vars = {
        "app_source": {"type": "dir", "path": source},
        "app_requirements": lockfile,
        "rollout_report_dir": reports,
    }
    argv = ["ansible-playbook", "-i", INVENTORY, "pyfleet.deploy.%s" % name,
            "-e", json.dumps(extra_vars)] + list(extra)
    output = open(os.path.join(WORK, os.path.basename(reports) + ".log"), "w+", encoding="utf-8")
    process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if background:
        return process, output, reports
    return finish(process, output, reports)


def finish(process, output, reports):
    rc = process.wait()
    output.seek(0)
    text = output.read()
    output.close()
    found = sorted(glob.glob(os.path.join(reports, "*.json")))
    report = json.load(open(found[-1], encoding="utf-8")) if found else None
    return rc, text, report


class Load:
    """bench/loadgen.py in the background, through the load balancer."""

    def __init__(self, label):
        self.stop = os.path.join(WORK, "stop-" + label)
        self.result = os.path.join(WORK, "load-%s.json" % label)
        self.process = subprocess.Popen([
            sys.executable, os.path.join(PROJECT, "bench", "loadgen.py"), LB_URL,
            "--host-header", SERVER_NAME, "--ca-file", CA_FILE,
            "--clients", "100", "--slow-clients", "10", "--slow-seconds", "1",
            "--keepalive-percent", "50", "--duration", "900", "--requests", "2000000",
            # A bounded rate (about 300 requests/s) leaves the 2-core test machine
            # room to run the rollout itself; bench/ measures at full speed.
            "--pause", "0.25",
            "--stop-file", self.stop, "--output", self.result])
        time.sleep(3)

    def finish(self):
        open(self.stop, "w").close()
        self.process.wait(timeout=120)
        with open(self.result, encoding="utf-8") as handle:
            return json.load(handle)


def served_release(host):
    """The release id the host's Gunicorn reports, asked through its socket."""
    out = subprocess.run(["docker", "exec", host, "curl", "-sS", "--max-time", "5",
                          "--unix-socket", "/run/demo/gunicorn.sock", "http://localhost/health"],
                         capture_output=True, text=True, check=False)
    try:
        return json.loads(out.stdout).get("release")
    except ValueError:
        return "unreadable: %s %s" % (out.stdout[:80], out.stderr[:80])


class _LbConnection(http.client.HTTPSConnection):
    """HTTPS to the load balancer's published port, with the site's name as SNI.

    The balancer refuses handshakes for names it does not serve (and without
    SNI), as a browser never dials by address; the chain and name are verified.
    """

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=SERVER_NAME)


def lb_get(path="/"):
    """(status, headers, JSON body) of one request through the load balancer."""
    host, port = LB_URL.split("//", 1)[1].rsplit(":", 1)
    connection = _LbConnection(host, int(port), timeout=10, context=ssl.create_default_context(cafile=CA_FILE))
    try:
        connection.request("GET", path, headers={"Host": SERVER_NAME})
        answer = connection.getresponse()
        # answer.headers looks names up case-insensitively (Uvicorn sends "x-release").
        return answer.status, answer.headers, json.loads(answer.read())
    finally:
        connection.close()


def lb_versions(count=30):
    seen = {}
    for _request in range(count):
        version = lb_get("/")[2]["version"]
        seen[version] = seen.get(version, 0) + 1
    return seen


class LbLog:
    """Requests the load balancer had to retry on another app server, from its JSON access log."""

    PATH = "/var/log/nginx/demo.access.log"

    def __init__(self):
        self.start = self._lines()

    def _lines(self):
        out = subprocess.run(["docker", "exec", "fleet-lb", "wc", "-l", self.PATH],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0])

    def retried(self):
        out = subprocess.run(["docker", "exec", "fleet-lb", "tail", "-n", "+%d" % (self.start + 1), self.PATH],
                             capture_output=True, text=True, check=True)
        retried = 0
        for line in out.stdout.splitlines():
            entry = json.loads(line)
            if "," in entry["upstream_status"] or entry["upstream_status"] not in ("200", "-"):
                retried += 1
        return retried


def results(report):
    return [host["result"] for host in (report or {}).get("hosts", [])]


def show(label, load, rc, report):
    if load is None:
        log("== %s: exit %s" % (label, rc))
    else:
        log("== %s: exit %s, %d requests, %d failed, p50 %s ms, p99 %s ms, versions %s, errors %s"
            % (label, rc, load["requests"], load["failed"], load["p50_ms"], load["p99_ms"],
               load["versions"], load["errors"]))
    for host in (report or {}).get("hosts", []):
        log("   %-10s %s -> %s  %-7s swap %s s  socket %s ms  nginx %s ms  %s %s" % (
            host["host"], host["from"], host["to"], host["method"], host["swap_seconds"],
            host["socket_ms"], host["nginx_ms"], host["result"], host.get("reason") or ""))


# --- the steps -------------------------------------------------------------

def step_v2():
    expected = release_id(V2, LOCK_V1)
    before = {host: served_release(host) for host in APP_HOSTS}
    lb_log = LbLog()
    load = Load("v2")
    started = time.monotonic()
    rc, text, report = playbook("rolling_reload", V2)
    seconds = time.monotonic() - started
    load = load.finish()
    show("rolling_reload v1 -> v2 (%.0f s)" % seconds, load, rc, report)
    check(rc == 0, "rolling_reload to v2 exits 0")
    check(load["failed"] == 0, "0 failed requests during the v2 rollout (%d requests)" % load["requests"])
    retried = lb_log.retried()
    check(retried == 0, "no request needed a retry at the load balancer: %d did" % retried)
    check(results(report) == ["ok"] * 3, "the summary reports ok on all 3 hosts: %s" % results(report))
    check(all(h["method"] == "hup" for h in report["hosts"]), "a code-only change is a HUP on every host")
    check(all(h["from"] == before[h["host"]] and h["to"] == expected for h in report["hosts"]),
          "the summary names the release each host came from and went to")
    check({host: served_release(host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, expected),
          "every app server serves v2 (%s)" % expected)
    versions = lb_versions()
    check(set(versions) == {"v2"}, "only v2 answers through the load balancer: %s" % versions)
    if rc != 0:
        log(text[-4000:])
    return expected


def step_broken(v2):
    load = Load("broken")
    rc, text, report = playbook("rolling_reload", BROKEN)
    load = load.finish()
    show("rolling_reload to a release that cannot import", load, rc, report)
    check(rc != 0, "the rollout of a release that cannot import fails")
    check(report is not None and report["stopped"] and "preflight" in report["stop_reason"],
          "it stopped at the preflight: %s" % (report or {}).get("stop_reason", "")[:200])
    check("module_that_is_not_installed" in (report or {}).get("stop_reason", ""),
          "the reason names the import error")
    check(results(report) == ["not started"] * 3, "0 hosts changed: %s" % results(report))
    check(load["failed"] == 0, "0 failed requests (%d requests)" % load["requests"])
    check({host: served_release(host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, v2),
          "every app server still serves v2")


def step_unhealthy(v2):
    load = Load("unhealthy")
    rc, text, report = playbook("rolling_reload", UNHEALTHY)
    load = load.finish()
    show("rolling_reload to a release that imports but fails its health check", load, rc, report)
    check(rc != 0, "the rollout of an unhealthy release fails")
    check(results(report) == ["rolled back", "not started", "not started"],
          "the canary is rolled back, the other hosts untouched: %s" % results(report))
    canary = (report or {"hosts": [{}]})["hosts"][0]
    check("503" in canary.get("reason", ""), "the canary's reason names the failed health check")
    check({host: served_release(host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, v2),
          "every app server serves v2 again: 0 hosts left on the bad release")
    check(load["failed"] == 0, "0 failed requests (%d requests)" % load["requests"])
    versions = lb_versions()
    check(set(versions) == {"v2"}, "only v2 answers through the load balancer: %s" % versions)


def step_new_lockfile():
    expected = release_id(V2, LOCK_DEPS)
    lb_log = LbLog()
    load = Load("deps")
    rc, text, report = playbook("rolling_reload", V2, lockfile=LOCK_DEPS)
    load = load.finish()
    show("rolling_reload of v2 with a new lockfile", load, rc, report)
    check(rc == 0, "the rollout with a new lockfile exits 0")
    check(report is not None and all(h["method"] == "restart" for h in report["hosts"]),
          "a new lock hash takes the restart path on every host")
    check(load["failed"] == 0, "0 failed requests during the restarts (%d requests)" % load["requests"])
    retried = lb_log.retried()
    check(retried == 0, "no request needed a retry at the load balancer: %d did" % retried)
    check({host: served_release(host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, expected),
          "every app server serves the new release (%s)" % expected)
    downloads, cache_hits = wheel_gathers(text)
    check(downloads == 1 and cache_hits >= 1,
          "the new lockfile's wheels were downloaded once for 3 hosts (%d downloads, %d cache hits)"
          % (downloads, cache_hits))
    return expected


def wheel_gathers(text):
    """(downloads, cache hits) of pyfleet.deploy.wheelhouse in a playbook's output."""
    blocks = re.findall(r"TASK \[pyfleet\.deploy\.app : Gather the wheels[^\n]*\n((?:[^\n]+\n)+)", text)
    return (sum(block.count("changed: [") for block in blocks),
            sum(block.count("ok: [") for block in blocks))


def step_what_changed(v2, deps):
    """pyfleet.deploy.what_changed: the last rollout added a package; v1 -> deps also changed code."""
    v1 = release_id(os.path.join(EXAMPLE, "app"), LOCK_V1)
    for label, extra, expected_from in (("previous -> current", (), v2),
                                        ("v1 -> current", ("-e", "rollout_diff_from=%s" % v1), v1)):
        out = os.path.join(WORK, "what_changed-%d.json" % time.monotonic_ns())
        rc, text, _report = playbook("what_changed", V2, lockfile=LOCK_DEPS,
                                     extra=("-e", "rollout_diff_json=%s" % out) + extra)
        log("\n".join(line for line in text.splitlines() if "->" in line or line.strip().startswith(("~", "+", "-", "M", "A", "D"))))
        check(rc == 0, "what_changed (%s) exits 0" % label)
        results = json.load(open(out, encoding="utf-8")) if os.path.exists(out) else {}
        pairs = {(r.get("from", {}).get("id"), r.get("to", {}).get("id")) for r in results.values()}
        check(sorted(results) == APP_HOSTS and pairs == {(expected_from, deps)},
              "every app server compares %s with %s: %s" % (expected_from, deps, sorted(pairs)))
        added = [p for r in results.values() for p in r.get("packages", {}).get("added", [])]
        check(added and all(p == {"name": "itsdangerous", "version": "2.2.0"} for p in added),
              "the added package is itsdangerous 2.2.0 on every host: %s" % added[:3])
        changed_sources = {tuple(r.get("source", {}).get("changed", [])) for r in results.values()}
        expected_sources = {()} if expected_from == v2 else {("main.py",)}
        check(changed_sources == expected_sources, "source files changed: %s" % sorted(changed_sources))
        check("(3 hosts)" in text, "the report shows the change once for the three hosts")
    status, headers, body = lb_get("/health")
    check(status == 200 and headers.get("X-Release") == deps == body.get("release"),
          "X-Release through the load balancer names the live release: %s" % headers.get("X-Release"))


def step_concurrent(current):
    first = playbook("rolling_reload", V3, background=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        held = subprocess.run(["docker", "exec", APP_HOSTS[0], "test", "-e", "/srv/demo/.rollout.lock"],
                              check=False).returncode == 0
        if held:
            break
        time.sleep(0.5)
    check(held, "the first rollout holds the deploy lock")
    rc, text, report = playbook("rolling_reload", V2)
    check(rc != 0 and "held by rollout" in text, "a second rollout started meanwhile is refused by the lock")
    check("rollout_break_lock=true" in text, "the refusal says how to break a stale lock")
    rc1, text1, report1 = finish(*first)
    show("the first of two concurrent rollouts (v3), without load", None, rc1, report1)
    check(rc1 == 0, "the first rollout completes")
    v3 = release_id(V3, LOCK_V1)
    check({host: served_release(host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, v3),
          "the fleet serves the first rollout's release")
    return v3


def step_rollback(previous):
    load = Load("rollback")
    rc, text, report = playbook("rollback", V3)
    load = load.finish()
    show("rollback to each host's previous release", load, rc, report)
    check(rc == 0, "pyfleet.deploy.rollback exits 0")
    check({host: served_release(host) for host in APP_HOSTS} == dict.fromkeys(APP_HOSTS, previous),
          "every app server serves its previous release again (%s)" % previous)
    check(load["failed"] == 0, "0 failed requests during the rollback (%d requests)" % load["requests"])


def main():
    v2 = step_v2()
    step_broken(v2)
    step_unhealthy(v2)
    deps = step_new_lockfile()
    step_what_changed(v2, deps)
    step_concurrent(deps)
    step_rollback(deps)
    log("%d check(s) failed" % len(FAILURES) if FAILURES else "all rollout checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
