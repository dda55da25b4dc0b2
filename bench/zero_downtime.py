#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Zero-downtime benchmark: three ways to ship a release, same hosts, same load.

Runs against the Molecule ``fleet`` hosts (1 load balancer, 3 app servers),
converged by ``make bench``. The load (bench/loadgen.py) goes through the load
balancer's port published on 127.0.0.1 and never stops between phases:

(a) naive restart: ``systemctl restart <app>.socket <app>.service`` on each app
    server in turn. Restarting the socket too closes the listener while the
    process restarts, as a unit without socket activation does;
(b) the tutorials' recipe: plain HUP (``systemctl reload``) of stock
    ``uvicorn_worker.UvicornWorker`` behind nginx upstream keepalive, each app
    server in turn (``gunicorn_drain_keepalive: false``);
(c) ``pyfleet.deploy.rolling_reload`` between two releases, repeated until the
    requests in flight during rollouts reach ``--min-requests``.

Each phase is measured in its own window; a steady window before each phase
gives the baseline. Output: one JSON document and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from loadgen import summarize  # noqa: E402
from releases import variant  # noqa: E402

APP_HOSTS = ["fleet-app1", "fleet-app2", "fleet-app3"]
LB_URL = "https://127.0.0.1:9443"


def run(argv, **kwargs):
    print("$ " + " ".join(argv), flush=True)
    return subprocess.run(argv, check=True, **kwargs)


def on_hosts(*command):
    for host in APP_HOSTS:
        run(["docker", "exec", host] + list(command))


def playbook(inventory, name, extra):
    started = time.time()
    run(["ansible-playbook", "-i", inventory, "pyfleet.deploy.%s" % name, "-e", json.dumps(extra)],
        stdout=subprocess.DEVNULL)
    return started, time.time()


def window(samples, start, end):
    return summarize(samples, start, end)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="the fleet scenario's inventory directory")
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--min-requests", type=int, default=200000,
                        help="requests during (c) rollouts before it stops")
    parser.add_argument("--max-rollouts", type=int, default=30, help="upper bound on (c) rollouts")
    parser.add_argument("--rounds", type=int, default=2, help="restarts or HUPs per host in (a) and (b)")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady load before a phase")
    parser.add_argument("--output", default=os.path.join(PROJECT, ".cache", "bench"))
    args = parser.parse_args(argv)

    os.makedirs(args.output, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pyfleet-bench-")
    releases = [variant(work, "v2", "v2"), variant(work, "v3", "v3")]
    lockfile = os.path.join(PROJECT, "examples", "fastapi", "requirements.txt")
    base = {"app_requirements": lockfile}
    stop = os.path.join(work, "stop")
    samples_file = os.path.join(work, "load.json")
    progress = os.path.join(work, "progress")

    def requests_so_far():
        try:
            with open(progress, encoding="utf-8") as handle:
                return int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    # Stock worker first, for (a) and (b).
    playbook(args.inventory, "site", dict(base, app_source={"type": "dir", "path": releases[0]},
                                          gunicorn_drain_keepalive=False))
    load = subprocess.Popen([sys.executable, os.path.join(HERE, "loadgen.py"), LB_URL,
                             "--host-header", "pyfleet.test", "--ca-file", args.ca_file,
                             "--clients", "100", "--slow-clients", "10", "--keepalive-percent", "50",
                             "--duration", "3600", "--stop-file", stop, "--samples",
                             "--progress-file", progress,
                             "--output", samples_file])
    phases = {}
    try:
        time.sleep(args.steady)
        steady_a = (time.time() - args.steady, time.time())
        started = time.time()
        for _ in range(args.rounds):
            for host in APP_HOSTS:
                run(["docker", "exec", host, "systemctl", "restart", "demo.socket", "demo.service"])
                time.sleep(3)
        phases["a"] = {"steady": steady_a, "rollout": (started, time.time()),
                       "label": "(a) naive restart, listener closed"}

        time.sleep(args.steady)
        steady_b = (time.time() - args.steady, time.time())
        started = time.time()
        for _ in range(args.rounds):
            for host in APP_HOSTS:
                run(["docker", "exec", host, "systemctl", "reload", "demo.service"])
                time.sleep(3)
        phases["b"] = {"steady": steady_b, "rollout": (started, time.time()),
                       "label": "(b) plain HUP, stock UvicornWorker, nginx keepalive"}

        # Draining worker (the default) for (c); this site run restarts once, outside any window.
        playbook(args.inventory, "site", dict(base, app_source={"type": "dir", "path": releases[0]}))
        time.sleep(args.steady)
        steady_c = (time.time() - args.steady, time.time())
        rollouts = []
        during = 0
        index = 1
        while during < args.min_requests and len(rollouts) < args.max_rollouts:
            source = releases[index % 2]
            index += 1
            before = requests_so_far()
            rollouts.append(playbook(args.inventory, "rolling_reload",
                                     dict(base, app_source={"type": "dir", "path": source},
                                          rollout_expect_release=True)))
            during += requests_so_far() - before
            print("(c) rollout %d: %d requests during rollouts so far" % (len(rollouts), during), flush=True)
        phases["c"] = {"steady": steady_c, "rollout": (rollouts[0][0], rollouts[-1][1]),
                       "rollouts": rollouts, "label": "(c) pyfleet.deploy.rolling_reload"}
    finally:
        open(stop, "w").close()
        load.wait(timeout=300)

    with open(samples_file, encoding="utf-8") as handle:
        data = json.load(handle)
    samples = data["samples"]
    report = {"load": {key: data[key] for key in ("clients", "slow_clients", "requests", "failed",
                                                  "throughput_rps", "errors")}, "phases": {}}
    for key, phase in phases.items():
        steady = window(samples, *phase["steady"])
        if key == "c":
            during = [s for s in samples if any(b <= s[0] < e for b, e in phase["rollouts"])]
            rollout = summarize(during)
            seconds = [round(e - b, 1) for b, e in phase["rollouts"]]
        else:
            rollout = window(samples, *phase["rollout"])
            seconds = [round(phase["rollout"][1] - phase["rollout"][0], 1)]
        span = sum(seconds)
        report["phases"][key] = {
            "label": phase["label"],
            "steady": steady,
            "rollout": rollout,
            "rollout_seconds": seconds,
            "throughput_ratio": round((rollout["requests"] / span) /
                                      (steady["requests"] / (phase["steady"][1] - phase["steady"][0])), 3),
            "p99_ratio": (round(rollout["p99_ms"] / steady["p99_ms"], 2)
                          if rollout["p99_ms"] and steady["p99_ms"] else None),
        }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(args.output, "zero_downtime-%s.json" % stamp)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    lines = ["| phase | requests during | failed | p50 / p99 steady (ms) | p50 / p99 during (ms) "
             "| p99 ratio | throughput ratio | seconds |",
             "|---|---:|---:|---|---|---:|---:|---|"]
    for key in sorted(report["phases"]):
        p = report["phases"][key]
        lines.append("| %s | %d | %d | %s / %s | %s / %s | %s | %s | %s |" % (
            p["label"], p["rollout"]["requests"], p["rollout"]["failed"],
            p["steady"]["p50_ms"], p["steady"]["p99_ms"], p["rollout"]["p50_ms"], p["rollout"]["p99_ms"],
            p["p99_ratio"], p["throughput_ratio"],
            ("median %.1f of %d" % (sorted(p["rollout_seconds"])[len(p["rollout_seconds"]) // 2],
                                    len(p["rollout_seconds"]))) if key == "c" else p["rollout_seconds"][0]))
    table = "\n".join(lines)
    print(table)
    print("errors over the whole run: %s" % data["errors"])
    print("report: %s" % path)
    with open(path.replace(".json", ".md"), "w", encoding="utf-8") as handle:
        handle.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
