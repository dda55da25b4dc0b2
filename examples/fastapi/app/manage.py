# SPDX-License-Identifier: GPL-3.0-or-later
"""The example's release phases, as a Django or Flask app's manage.py would run them.

* ``build``: writes ``static/build.json`` into the release being staged
  (app_build), the way ``collectstatic`` fills a static root;
* ``migrate``: applies ``migrations/*.sql`` in order to the app's SQLite
  database in ``shared/`` (app_migrate), recording each one once;
* ``applied``: prints the migrations the database has, one per line
  (app_migrate_applied), as ``showmigrations --plan`` does for Django;
* ``post``: appends a line to ``shared/data/post.log`` (app_post);
* ``worker``: a background process (app_processes) that beats every second
  into ``shared/data/worker-<instance>.json`` and, on SIGTERM, finishes its
  job and logs a warm shutdown to ``shared/data/worker.log``;
* ``tick``: a scheduled job (app_timers) that appends to ``shared/data/tick.log``.

The database is ``$EXAMPLE_DATABASE``, or ``shared/data/example.sqlite3`` in the app
root (this file lives in ``<root>/releases/<id>/``); app_shared_dirs must hold data.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# shared/data: a directory of app_shared_dirs, which the app user may write.
DATA = HERE.parent.parent / "shared" / "data"


def database() -> Path:
    return Path(os.environ.get("EXAMPLE_DATABASE") or DATA / "example.sqlite3")


def build() -> None:
    static = Path.cwd() / "static"
    static.mkdir(exist_ok=True)
    (static / "build.json").write_text(json.dumps({
        "built_by": getpass.getuser(), "python": sys.executable, "phase": os.environ.get("PYFLEET_PHASE")}))


def migrate() -> None:
    with sqlite3.connect(database()) as db:
        db.execute("CREATE TABLE IF NOT EXISTS applied (name TEXT PRIMARY KEY, release TEXT, at REAL)")
        done = {row[0] for row in db.execute("SELECT name FROM applied")}
        release = json.loads((HERE / ".release.json").read_text())["id"]
        for script in sorted((HERE / "migrations").glob("*.sql")):
            if script.name not in done:
                db.executescript(script.read_text())
                db.execute("INSERT INTO applied VALUES (?, ?, ?)", (script.name, release, time.time()))
                print("applied %s" % script.name)


def applied() -> None:
    with sqlite3.connect(database()) as db:
        for (name,) in db.execute("SELECT name FROM applied ORDER BY name"):
            print(name)


def post() -> None:
    _log("post.log", "%s %s" % (json.loads((HERE / ".release.json").read_text())["id"], getpass.getuser()))


def _log(name: str, line: str) -> None:
    with open(DATA / name, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def worker() -> None:
    release = json.loads((HERE / ".release.json").read_text())["id"]
    instance = os.environ.get("PYFLEET_INSTANCE", "0")
    stopping = threading.Event()
    asked = []
    signal.signal(signal.SIGTERM, lambda *_: (asked.append(time.monotonic()), stopping.set()))
    beats = 0
    while not stopping.is_set():
        beats += 1
        # Written aside, then renamed: a reader never sees the file half written.
        beat = DATA / ("worker-%s.json" % instance)
        beat.with_suffix(".tmp").write_text(json.dumps(
            {"release": release, "pid": os.getpid(), "beats": beats, "user": getpass.getuser()}))
        beat.with_suffix(".tmp").replace(beat)
        stopping.wait(1)
    time.sleep(0.5)  # the job in hand finishes: a warm shutdown
    _log("worker.log", "%s %s %d warm shutdown in %.1f s" % (release, instance, os.getpid(), time.monotonic() - asked[0]))


def tick() -> None:
    release = json.loads((HERE / ".release.json").read_text())["id"]
    _log("tick.log", "%s %s" % (release, getpass.getuser()))
    print("tick %s" % release)


if __name__ == "__main__":
    {"build": build, "migrate": migrate, "applied": applied, "post": post, "worker": worker, "tick": tick}[sys.argv[1]]()
