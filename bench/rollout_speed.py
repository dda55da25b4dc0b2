# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Rollout seconds for 3 and 12 hosts: this tree beside the 0.4.0 engine, in one run.

Two fleets of light hosts (the Molecule host image, each with 2 Gunicorn
workers, reached over SSH as ``deploy`` with passwordless sudo and pipelining)
are created side by side: one load balancer and 12 app servers each. One fleet
is converged by the collection as released in 0.4.0 (built from the git
commit ``--old-ref``), the other by this tree. Then, round after round, each
engine ships a new code-only release (``bench/releases.py`` variants, the
same lockfile) with ``pyfleet.deploy.rolling_reload`` and the default batches,
alternating between the engines so that both see the same machine:

* to 3 app servers (``--limit``) and to all 12, with no load;
* to 3 app servers under the fleet verifier's load through that fleet's
  balancer: 100 clients, each pausing 0.25 s between requests (about 330
  requests/s), half on keep-alive connections, one in ten holding 1 s
  requests. Every failed request is counted.

Beside them, on this tree's fleet, ``bench/floor.py`` does the same rollouts
with only what a safe code-only rollout cannot skip (ship, unpack, import,
compile, then per batch switch, HUP, wait for the old workers and check
health through nginx), scripted over the same SSH connections: the floor that
no engine goes under on this machine, and its own 12-host / 3-host ratio.
Every run on that fleet starts after ``QUIET`` seconds without a rollout, so
that nginx has closed the upstream connections the last health checks left
(an old worker waits for them, in any engine).

This tree runs with its opt-in strategy, ``pyfleet.deploy.linear``.
``forks`` is 13: a play reaches the balancer and all 12 app servers at once,
so no host waits for a free fork (Ansible's default of 5 would run a 12-host
task in three rounds).

The seconds are the whole ``ansible-playbook`` run, validation to report; beside
them, the core-seconds the whole machine was busy meanwhile (/proc/stat), whose
half is the least time two cores could do that work in, and the part of them
the hosts' containers spent (Docker's cgroup): the rest is the controller's.
Figures go to ``.cache/bench/rollout_speed-<time>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import floor  # noqa: E402
from harness import BackgroundLoad, playbook, run  # noqa: E402
from releases import variant  # noqa: E402

RESOURCES = os.path.join(PROJECT, "molecule", "resources")
EXAMPLE = os.path.join(PROJECT, "examples", "fastapi")
ENGINES = {
    # name: (first SSH port, the balancer's published HTTPS port)
    "old": (2301, 9501),
    "new": (2341, 9502),
}
FORKS = 13
# Seconds longer than nginx's upstream keepalive_timeout (10 s, the nginx role's site).
QUIET = 11


def collection(work, engine, ref):
    """Build and install the collection of ``ref`` (None: this tree) into its own collections path."""
    source = PROJECT
    if ref:
        source = os.path.join(work, "src-" + engine)
        os.makedirs(source)
        archive = subprocess.run(["git", "-C", PROJECT, "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", source], input=archive, check=True)
    dist = os.path.join(work, "dist-" + engine)
    path = os.path.join(work, "collections-" + engine)
    run(["ansible-galaxy", "collection", "build", "--force", "--output-path", dist, source], stdout=subprocess.DEVNULL)
    run(["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "--force", "-p", path]
        + glob.glob(os.path.join(dist, "*.tar.gz")), stdout=subprocess.DEVNULL)
    return path


def platforms(hosts):
    """Molecule-style platforms for both fleets: ssh on 127.0.0.1:<port>, HTTPS of each balancer."""
    result = []
    for engine, (ssh, https) in ENGINES.items():
        result.append({"name": "speed-%s-lb" % engine, "published_ports": [
            "127.0.0.1:%d:443" % https, "127.0.0.1:%d:22" % ssh]})
        for index in range(1, hosts + 1):
            result.append({"name": "speed-%s-app%d" % (engine, index),
                           "published_ports": ["127.0.0.1:%d:22" % (ssh + index)]})
    return result


def inventory(work, engine, hosts):
    ssh_dir = os.path.join(work, "hosts", "ssh")
    first_port = ENGINES[engine][0]
    directory = os.path.join(work, "inventory-" + engine)
    os.makedirs(directory, exist_ok=True)
    data = {"all": {
        "vars": {
            "ansible_connection": "ansible.builtin.ssh",
            "ansible_host": "127.0.0.1",
            "ansible_user": "deploy",
            "ansible_ssh_private_key_file": os.path.join(ssh_dir, "id_ed25519"),
            "ansible_ssh_common_args": "-F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
                                       "-o UserKnownHostsFile=%s/known_hosts -o ControlPath=/tmp/pyfleet-ssh-%%C"
                                       % ssh_dir,
            "ansible_ssh_pipelining": True,
            "ansible_python_interpreter": "/usr/bin/python3",
            "app_name": "demo",
            "app_source": {"type": "dir", "path": os.path.join(EXAMPLE, "app")},
            "app_requirements": os.path.join(EXAMPLE, "requirements.txt"),
            "app_install_mode": "wheelhouse",
            "app_wheelhouse_cache": os.path.join(work, "wheelhouse-" + engine),
            "app_secrets": {"DEMO_SECRET": "bench-secret-value"},
            "gunicorn_app": "main:app",
            "gunicorn_workers": 2,
            "nginx_server_names": ["pyfleet.test", "localhost"],
            "nginx_trusted_proxies": ["172.16.0.0/12"],
            "tls_mode": "selfsigned",
            "rollout_expect_release": True,
        },
        "children": {
            "load_balancers": {"hosts": {"speed-%s-lb" % engine: {"ansible_port": first_port}}},
            "app_servers": {"hosts": {"speed-%s-app%d" % (engine, index): {"ansible_port": first_port + index}
                                      for index in range(1, hosts + 1)}},
        },
    }}
    path = os.path.join(directory, "hosts.yml")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    return path


def busy_core_seconds():
    """CPU time the whole machine has spent busy since boot (controller, hosts and load alike)."""
    with open("/proc/stat", encoding="utf-8") as handle:
        fields = [int(value) for value in handle.readline().split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def hosts_core_seconds():
    """CPU time every container has spent since it started (Docker's cgroup, v1 or v2); None if unknown."""
    try:
        with open("/sys/fs/cgroup/cpuacct/docker/cpuacct.stat", encoding="utf-8") as handle:
            return sum(int(line.split()[1]) for line in handle) / os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    scopes = glob.glob("/sys/fs/cgroup/system.slice/docker-*.scope/cpu.stat")
    if not scopes:
        return None
    total = 0
    for path in scopes:
        with open(path, encoding="utf-8") as handle:
            total += next(int(line.split()[1]) for line in handle if line.startswith("usage_usec "))
    return total / 1e6


class Engine:
    """One engine's collections path and fleet inventory."""

    def __init__(self, name, collections, inventory_path):
        self.name = name
        self.inventory = inventory_path
        self.env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_FORKS=str(FORKS))
        if name == "new":
            # This tree's opt-in strategy (the README's design decisions); 0.4.0 has none.
            self.env["ANSIBLE_STRATEGY"] = "pyfleet.deploy.linear"

    def playbook(self, name, extra, limit=None, log=None):
        """Seconds, busy core-seconds (all, and the hosts') and exit code of one run; a failed site stops the bench."""
        def one():
            done = playbook(self.inventory, name, extra, limit=limit, env=self.env, log=log, label=self.name)
            if done.returncode and name == "site":
                raise SystemExit("%s %s failed (exit %d); log: %s" % (self.name, name, done.returncode, log))
            return done.seconds, done.returncode
        return measured(one)


def measured(run_once):
    """(seconds, busy core-seconds, the hosts' part of them, exit code) of run_once(), which returns
    (seconds, exit code)."""
    busy, hosts = busy_core_seconds(), hosts_core_seconds()
    seconds, code = run_once()
    hosts_after = hosts_core_seconds()
    return (seconds, round(busy_core_seconds() - busy, 1),
            None if hosts is None or hosts_after is None else round(hosts_after - hosts, 1), code)


def floor_rollout(inventory_path, source, release, hosts):
    """bench/floor.py's rollout, measured as Engine.playbook measures one; a failure stops the bench."""
    def one():
        seconds, phases = floor.rollout(inventory_path, source, release, hosts)
        print("floor %s: %.1f s, preflight and batches %s" % (release, seconds, phases), flush=True)
        return seconds, 0
    return measured(one)


def _runs(cell):
    runs = ", ".join("%.1f" % seconds for seconds in cell["seconds"])
    return runs + ("; %d failed and rolled back" % cell["failed_rollouts"] if cell["failed_rollouts"] else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=12, help="app servers per fleet")
    parser.add_argument("--rounds", type=int, default=3, help="rollouts of each kind per engine")
    parser.add_argument("--old-ref", default="a69c7f8", help="the git commit of the engine to compare with (0.4.0)")
    parser.add_argument("--output", default=os.path.join(PROJECT, ".cache", "bench"))
    parser.add_argument("--keep", action="store_true", help="leave the hosts running")
    args = parser.parse_args(argv)

    os.makedirs(args.output, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pyfleet-speed-", dir=os.path.join(PROJECT, ".cache"))
    hosts_dir = os.path.join(work, "hosts")
    os.makedirs(hosts_dir)
    env = dict(os.environ, MOLECULE_EPHEMERAL_DIRECTORY=hosts_dir)
    layout = {"molecule_yml": {"platforms": platforms(args.hosts)}}
    with open(os.path.join(work, "platforms.json"), "w", encoding="utf-8") as handle:
        json.dump(layout, handle)
    engines = {
        "old": Engine("old", collection(work, "old", args.old_ref), inventory(work, "old", args.hosts)),
        "new": Engine("new", collection(work, "new", None), inventory(work, "new", args.hosts)),
    }

    def three(name):
        return ",".join("speed-%s-app%d" % (name, index) for index in range(1, 4))

    rows = []
    try:
        run(["ansible-playbook", "-i", "localhost,", os.path.join(RESOURCES, "create.yml"),
             "-e", "@" + os.path.join(work, "platforms.json"), "-e", "ansible_python_interpreter=" + sys.executable],
            env=env, stdout=subprocess.DEVNULL)
        # As Molecule's prepare does: package lists, as a fresh VPS has them. The images ship none, and
        # within an hour of their build apt's cache_valid_time took the empty lists for fresh.
        for engine in engines.values():
            run(["ansible-playbook", "-i", engine.inventory, os.path.join(RESOURCES, "prepare.yml")],
                env=engine.env, stdout=subprocess.DEVNULL)
        converge = {name: engine.playbook("site", {}, log=os.path.join(work, name + "-site.log"))[0]
                    for name, engine in engines.items()}
        print("converge seconds: %s" % converge, flush=True)
        number = 0
        for round_ in range(args.rounds):
            for kind, limit, loaded in (("3 hosts, no load", three, False), ("%d hosts, no load" % args.hosts, None, False),
                                        ("3 hosts, under load", three, True)):
                number += 1
                source = variant(work, "r%d" % number, "r%d" % number)
                for name in (("old", "new", "floor") if round_ % 2 == 0 else ("floor", "new", "old")):
                    fleet = "new" if name == "floor" else name
                    engine = engines[fleet]
                    if fleet == "new":
                        time.sleep(QUIET)
                    load = None
                    if loaded:
                        ca_file = os.path.join(os.path.dirname(engine.inventory), ".pyfleet-ca", "ca.crt")
                        # The fleet verifier's load (molecule/conftest.py), through this fleet's balancer.
                        load = BackgroundLoad(work, "%s-%d" % (name, number), "https://127.0.0.1:%d" % ENGINES[fleet][1],
                                              ca_file, clients=100, slow_clients=10, pause=0.25, path="/health")
                    if name == "floor":
                        seconds, cpu, hosts_cpu, code = floor_rollout(
                            engine.inventory, source, "floor-r%d" % number, limit(fleet).split(",") if limit else None)
                    else:
                        seconds, cpu, hosts_cpu, code = engine.playbook(
                            "rolling_reload", {"app_source": {"type": "dir", "path": source}},
                            limit=limit(name) if limit else None, log=os.path.join(work, "%s-r%d.log" % (name, number)))
                    row = {"engine": name, "kind": kind, "round": round_ + 1, "seconds": seconds, "busy_core_seconds": cpu,
                           "hosts_core_seconds": hosts_cpu, "exit": code}
                    if load:
                        row["load"] = {key: value for key, value in load.finish().items()
                                       if key in ("requests", "failed", "errors")}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        if not args.keep:
            run(["ansible-playbook", "-i", "localhost,", os.path.join(RESOURCES, "destroy.yml"),
                 "-e", "@" + os.path.join(work, "platforms.json"), "-e", "ansible_python_interpreter=" + sys.executable],
                env=env, stdout=subprocess.DEVNULL)

    lines = ["| rollout | 0.4.0 engine: seconds (median, runs) | this tree: seconds (median, runs) | ratio |"
             " floor: seconds (median, runs) |"
             " busy core-seconds, median, 0.4.0 / this tree / floor (the hosts' part) |"
             " failed requests (0.4.0 / this tree / floor) |",
             "|---|---|---|---:|---|---|---|"]
    summary = {}
    for kind in dict.fromkeys(row["kind"] for row in rows):
        cells = {}
        for name in ("old", "new", "floor"):
            # A rollout that failed (and rolled back) is counted, not timed.
            failures = [row for row in rows if row["kind"] == kind and row["engine"] == name and row["exit"]]
            mine = [row for row in rows if row["kind"] == kind and row["engine"] == name and not row["exit"]]
            seconds = [row["seconds"] for row in mine]
            failed = sum(row["load"]["failed"] for row in mine + failures if "load" in row)
            requests = sum(row["load"]["requests"] for row in mine + failures if "load" in row)
            cells[name] = {"median": statistics.median(seconds) if seconds else float("nan"), "seconds": seconds,
                           "failed_rollouts": len(failures),
                           "busy_core_seconds": statistics.median([row["busy_core_seconds"] for row in mine] or [float("nan")]),
                           "hosts_core_seconds": statistics.median(
                               [row["hosts_core_seconds"] for row in mine if row["hosts_core_seconds"] is not None]
                               or [float("nan")]),
                           "requests": requests, "failed": failed}
        summary[kind] = cells
        loaded = any("load" in row for row in rows if row["kind"] == kind)
        lines.append("| %s | %.1f (%s) | %.1f (%s) | %.2f | %.1f (%s) | %s | %s |" % (
            kind, cells["old"]["median"], _runs(cells["old"]), cells["new"]["median"], _runs(cells["new"]),
            cells["new"]["median"] / cells["old"]["median"], cells["floor"]["median"], _runs(cells["floor"]),
            " / ".join("%.0f (%.0f)" % (cells[name]["busy_core_seconds"], cells[name]["hosts_core_seconds"])
                       for name in ("old", "new", "floor")),
            " / ".join("%d of %d" % (cells[name]["failed"], cells[name]["requests"])
                       for name in ("old", "new", "floor")) if loaded else "-"))
    kinds = list(summary)
    if len(kinds) >= 2:
        # The second kind is all the hosts, the first 3 of them, both with no load.
        lines.append("")
        lines.append("%s / %s, medians: %s." % (kinds[1], kinds[0], ", ".join(
            "%s %.2f" % (label, summary[kinds[1]][name]["median"] / summary[kinds[0]][name]["median"])
            for name, label in (("old", "0.4.0"), ("new", "this tree"), ("floor", "floor")))))
    table = "\n".join(lines)
    print(table)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(args.output, "rollout_speed-%s" % stamp)
    with open(path + ".json", "w", encoding="utf-8") as handle:
        json.dump({"hosts": args.hosts, "forks": FORKS, "old_ref": args.old_ref, "converge_seconds": converge,
                   "rows": rows, "summary": summary}, handle, indent=2)
    with open(path + ".md", "w", encoding="utf-8") as handle:
        handle.write(table + "\n")
    print("report: %s.json" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
