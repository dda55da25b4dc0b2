# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Zero-downtime benchmark: three ways to ship a release, same hosts, same load.

Runs against the Molecule ``fleet`` hosts (1 load balancer, 3 app servers),
converged by ``make bench``. Two loads run without pause through all phases:

* ``direct``: 100 clients straight to fleet-app1's nginx (127.0.0.1:9444),
  the single-host topology of the tutorials, with no load balancer to retry;
* ``lb``: 20 clients through the load balancer (127.0.0.1:9443).

Both mix keep-alive and new connections, and 10% of clients hold 1 s requests.

(a) naive restart: ``systemctl restart <app>.socket <app>.service`` on
    fleet-app1. Restarting the socket too closes the listener while the process
    restarts, as a unit without socket activation does;
(b) the tutorials' recipe: plain HUP (``systemctl reload``) of stock
    ``uvicorn_worker.UvicornWorker`` behind nginx upstream keepalive, on
    fleet-app1 (``gunicorn_drain_keepalive: false``);
(c) ``pyfleet.deploy.rolling_reload`` of the fleet between two releases,
    repeated until the direct load has sent ``--min-requests`` requests while
    rollouts ran. Through all of (c), ``--websockets`` WebSocket and
    ``--event-streams`` event-stream clients stay connected through the load
    balancer (bench/streamload.py): every close the servers send, every
    abnormal end and every reconnection is counted.

A steady window before each phase gives the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from harness import BackgroundLoad, BackgroundStreams, playbook, run  # noqa: E402
from loadgen import summarize  # noqa: E402
from releases import variant  # noqa: E402

TARGET = "fleet-app1"
LB_PORT, SERVER_NAME = 9443, "pyfleet.test"
# gunicorn_stream_drain's default: the last closes come this long after the last HUP.
STREAM_DRAIN = 10
LOADS = {
    "direct": {"url": "https://127.0.0.1:9444", "clients": 100, "slow": 10},
    "lb": {"url": "https://127.0.0.1:9443", "clients": 20, "slow": 2},
}


def go(inventory, name, extra):
    """A playbook run that must succeed; its (start, end) span."""
    done = playbook(inventory, name, extra)
    if done.returncode:
        raise SystemExit("%s failed (exit %d)" % (name, done.returncode))
    return done.started, done.ended


def phase_figures(samples, steady, spans):
    during = [s for s in samples if any(begin <= s[0] < end for begin, end in spans)]
    rollout = summarize(during)
    steady_summary = summarize(samples, *steady)
    span = sum(end - begin for begin, end in spans)
    steady_rate = steady_summary["requests"] / (steady[1] - steady[0])
    return {
        "steady": steady_summary,
        "rollout": rollout,
        "rollout_seconds": [round(end - begin, 1) for begin, end in spans],
        "throughput_ratio": round((rollout["requests"] / span) / steady_rate, 3) if steady_rate else None,
        "p99_ratio": (round(rollout["p99_ms"] / steady_summary["p99_ms"], 2)
                      if rollout["p99_ms"] and steady_summary["p99_ms"] else None),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inventory", required=True, help="the fleet scenario's inventory directory")
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--min-requests", type=int, default=200000,
                        help="direct requests during (c) rollouts before it stops")
    parser.add_argument("--max-rollouts", type=int, default=40, help="upper bound on (c) rollouts")
    parser.add_argument("--rounds", type=int, default=4, help="restarts or HUPs in (a) and (b)")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds of steady load before a phase")
    parser.add_argument("--websockets", type=int, default=200, help="WebSockets held through (c)")
    parser.add_argument("--event-streams", type=int, default=20, help="event streams held through (c)")
    parser.add_argument("--output", default=os.path.join(PROJECT, ".cache", "bench"))
    args = parser.parse_args(argv)

    os.makedirs(args.output, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pyfleet-bench-")
    releases = [variant(work, "v2", "v2"), variant(work, "v3", "v3")]
    base = {"app_requirements": os.path.join(PROJECT, "examples", "fastapi", "requirements.txt")}

    # The stock worker first, for (a) and (b).
    go(args.inventory, "site", dict(base, app_source={"type": "dir", "path": releases[0]},
                                    gunicorn_drain_keepalive=False))
    loads = {name: BackgroundLoad(work, name, spec["url"], args.ca_file, spec["clients"], spec["slow"],
                                  duration=7200, samples=True)
             for name, spec in LOADS.items()}
    phases = {}
    streams = None

    def steady_window():
        time.sleep(args.steady)
        return (time.time() - args.steady, time.time())

    try:
        for key, label, command in (
                ("a", "(a) naive restart, listener closed", ["systemctl", "restart", "demo.socket", "demo.service"]),
                ("b", "(b) plain HUP, stock UvicornWorker, nginx keepalive", ["systemctl", "reload", "demo.service"])):
            steady = steady_window()
            spans = []
            for _round in range(args.rounds):
                started = time.time()
                run(["docker", "exec", TARGET] + command)
                time.sleep(5)
                spans.append((started, time.time()))
            phases[key] = {"label": label, "steady": steady, "spans": spans}

        # The draining worker (the default) for (c); this run restarts once, outside any window.
        go(args.inventory, "site", dict(base, app_source={"type": "dir", "path": releases[0]}))
        streams = BackgroundStreams(work, "streams", LB_PORT, SERVER_NAME, args.ca_file, args.websockets,
                                    args.event_streams, duration=7200)
        if not streams.wait_connected():
            raise SystemExit("only %s of the long-lived connections connected" % (streams.opened(),))
        steady = steady_window()
        spans = []
        during = 0
        while during < args.min_requests and len(spans) < args.max_rollouts:
            before = loads["direct"].count()
            spans.append(go(args.inventory, "rolling_reload",
                            dict(base, app_source={"type": "dir", "path": releases[1 - len(spans) % 2]},
                                 rollout_expect_release=True)))
            during += loads["direct"].count() - before
            print("(c) rollout %d: %d direct requests during rollouts" % (len(spans), during), flush=True)
        phases["c"] = {"label": "(c) pyfleet.deploy.rolling_reload", "steady": steady, "spans": spans}
        held = streams.finish(STREAM_DRAIN + 4)
    finally:
        for load in loads.values():
            load.stop()
        if streams is not None:
            streams.stop()
    results = {name: load.result() for name, load in loads.items()}

    report = {"loads": {name: {key: data[key] for key in ("url", "clients", "slow_clients", "requests",
                                                          "failed", "throughput_rps", "errors")}
                        for name, data in results.items()},
              "phases": {},
              "streams": {kind: {"clients": seen["clients"], "opened": seen["opened"],
                                 "close_codes": seen["close_codes"], "abnormal": len(seen["abnormal"]),
                                 "abnormal_first": seen["abnormal"][:5], "reconnected": len(seen["reconnected"]),
                                 "last_releases": sorted({last["release"] for last in seen["last"]})}
                          for kind, seen in (("websockets", held["websockets"]), ("events", held["events"]))}}
    for key, phase in phases.items():
        report["phases"][key] = {"label": phase["label"]}
        for name, data in results.items():
            report["phases"][key][name] = phase_figures(data["samples"], phase["steady"], phase["spans"])
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(args.output, "zero_downtime-%s.json" % stamp)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)

    lines = ["| phase | load | requests during | failed | p50 / p99 steady (ms) | p50 / p99 during (ms) "
             "| p99 ratio | throughput ratio | seconds (median of n) |",
             "|---|---|---:|---:|---|---|---:|---:|---|"]
    for key in sorted(report["phases"]):
        phase = report["phases"][key]
        for name in LOADS:
            figures = phase[name]
            seconds = sorted(figures["rollout_seconds"])
            lines.append("| %s | %s | %d | %d | %s / %s | %s / %s | %s | %s | %.1f of %d |" % (
                phase["label"], name, figures["rollout"]["requests"], figures["rollout"]["failed"],
                figures["steady"]["p50_ms"], figures["steady"]["p99_ms"],
                figures["rollout"]["p50_ms"], figures["rollout"]["p99_ms"],
                figures["p99_ratio"], figures["throughput_ratio"], seconds[len(seconds) // 2], len(seconds)))
    table = "\n".join(lines)
    print(table)
    for name, data in results.items():
        print("%s: %d requests, %d failed over the whole run; errors %s"
              % (name, data["requests"], data["failed"], data["errors"]))
    for kind, seen in report["streams"].items():
        print("(c) %s through the balancer: %d held, %d opened, closed by the servers %s, %d abnormal, "
              "%d reconnected, last on %s" % (kind, seen["clients"], seen["opened"], seen["close_codes"],
                                              seen["abnormal"], seen["reconnected"], seen["last_releases"]))
    print("report: %s" % path)
    with open(path.replace(".json", ".md"), "w", encoding="utf-8") as handle:
        handle.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
