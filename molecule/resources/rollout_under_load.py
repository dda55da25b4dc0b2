# SPDX-License-Identifier: GPL-3.0-or-later
"""One rolling_reload of a v2 variant of an example app, under load; prints a JSON verdict.

Used by the single-host scenarios (wsgi, ...): it makes v2 of the example
(APP_VERSION "v1" -> "v2"), starts bench/loadgen.py against the host's
published HTTPS port, runs ``ansible-playbook pyfleet.deploy.rolling_reload``
with that source, stops the load, and prints what a user would check: the
playbook's exit code, the method each host took, the requests and failures,
and the release each answer named. Exit status 0 only if the rollout exited 0,
no request failed, the method was the expected one and the answers switched
to v2 (or, with ``--expect "rolled back"``, only if the rollout failed, every
host was rolled back and the new version never answered).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(PROJECT, "bench"))

from releases import release_id, variant  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--app", required=True, help="the v1 example app directory")
    parser.add_argument("--module", default="main.py", help="file holding APP_VERSION")
    parser.add_argument("--lockfile", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--host-header", required=True)
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--method", default="hup", help="method every host must take")
    parser.add_argument("--clients", default="40")
    parser.add_argument("--version", default="v2", help="APP_VERSION of the new release")
    parser.add_argument("--extra-code", default="", help="appended to --module, to break the release")
    parser.add_argument("--expect", choices=["switched", "rolled back"], default="switched",
                        help="switched: every host serves the new release; rolled back: the rollout fails "
                             "and every host is rolled back, the new version never answers")
    parser.add_argument("--extra-vars", default="{}", help="JSON extra vars for the playbook")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="pyfleet-rollout-")
    v2 = variant(work, args.version, args.version, extra_code=args.extra_code, app=args.app, module=args.module)
    expected = release_id(v2, args.lockfile)
    stop, result, reports = (os.path.join(work, name) for name in ("stop", "load.json", "reports"))
    load = subprocess.Popen([
        sys.executable, os.path.join(PROJECT, "bench", "loadgen.py"), args.url,
        "--host-header", args.host_header, "--ca-file", args.ca_file, "--path", "/health",
        "--clients", args.clients, "--slow-clients", "4", "--slow-seconds", "1", "--keepalive-percent", "50",
        "--duration", "600", "--pause", "0.1", "--stop-file", stop, "--output", result])
    time.sleep(3)
    extra = {"app_source": {"type": "dir", "path": v2}, "app_requirements": args.lockfile,
             "rollout_report_dir": reports, **json.loads(args.extra_vars)}
    with open(os.path.join(work, "rollout.log"), "w+", encoding="utf-8") as log:
        rc = subprocess.run(["ansible-playbook", "-i", args.inventory, "pyfleet.deploy.rolling_reload",
                             "-e", json.dumps(extra)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, check=False).returncode
        log.seek(0)
        tail = log.read()[-3000:]
    time.sleep(2)  # answers after the switch
    open(stop, "w").close()
    load.wait(timeout=120)
    with open(result, encoding="utf-8") as handle:
        summary = json.load(handle)
    found = sorted(glob.glob(os.path.join(reports, "*.json")))
    report = json.load(open(found[-1], encoding="utf-8")) if found else {"hosts": []}
    methods = sorted({host["method"] for host in report["hosts"]})
    verdict = {
        "rc": rc, "expected_release": expected, "methods": methods,
        "requests": summary["requests"], "failed": summary["failed"], "errors": summary["errors"],
        "versions": summary["versions"], "p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"],
        "hosts": report["hosts"],
    }
    ok = summary["failed"] == 0 and summary["requests"] > 0 and methods == [args.method]
    if args.expect == "switched":
        ok = ok and rc == 0 and args.version in summary["versions"] and all(h["to"] == expected for h in report["hosts"])
    else:
        ok = (ok and rc != 0 and args.version not in summary["versions"] and bool(report["hosts"])
              and all(h["result"] == "rolled back" for h in report["hosts"]))
    if not ok:
        verdict["playbook_tail"] = tail
    print(json.dumps(verdict, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
