# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""The least a code-only rollout must do, scripted over SSH: the floor that no engine goes under.

On a fleet that ``pyfleet.deploy.site`` converged, it does to each app server
what a safe code-only rollout cannot skip, with nothing else around it (no
lock, no variable checks, no history, no summary, no Ansible):

* preflight, on every host at once: receive the code (one uncompressed tar,
  made once on the controller, over the host's SSH connection), unpack it into
  ``releases/<id>.partial`` beside the live release's own config, environment
  and virtualenv link, import it with ``gunicorn --check-config`` and the real
  config, as the engine does (a transient unit as the app's user), compile its
  bytecode and move it into place;
* then batch by batch, as ``rollout_batches`` cuts them by default
  (``[1, "50%", "100%"]``), every host of a batch at once: switch ``current``,
  HUP the master, wait until every worker of the old generation has exited,
  and check through the host's nginx that ``/health`` answers 200 from the
  new release.

It uses the SSH options, user and ports of an inventory that
``bench/rollout_speed.py`` writes, and the same connection multiplexing.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
COLLECTIONS = os.path.join(PROJECT, ".cache", "ansible", "collections")

# Arguments: app root, app user, release id. The code's tar on stdin.
PREFLIGHT = r'''
set -eu
app=$1 user=$2 id=$3
release=$app/releases/$id
rm -rf "$release.partial" "$release"
mkdir "$release.partial"
tar -x -C "$release.partial"
for name in .pyfleet .venv .sbom.cdx.json; do cp -a "$app/current/$name" "$release.partial/"; done
sed "s/\"id\": \"[^\"]*\"/\"id\": \"$id\"/" "$app/current/.release.json" > "$release.partial/.release.json"
systemd-run --quiet --wait --pipe --collect --service-type=exec -p "User=$user" -p "Group=$user" \
  -p "EnvironmentFile=$release.partial/.pyfleet/env" -p "WorkingDirectory=$release.partial" \
  --setenv=PYTHONDONTWRITEBYTECODE=1 "--setenv=PYFLEET_CHDIR=$release.partial" \
  "$release.partial/.venv/bin/gunicorn" "--config=$release.partial/.pyfleet/gunicorn.conf.py" --check-config
"$release.partial/.venv/bin/python" -m compileall -q "$release.partial"
mv -T "$release.partial" "$release"
'''

# Arguments: app root, service, release id, server name.
GO_LIVE = r'''
set -eu
app=$1 service=$2 id=$3 name=$4
master=$(systemctl show -p MainPID --value "$service")
old=$(pgrep -P "$master" | tr '\n' ' ')
ln -sfn "releases/$id" "$app/.current-floor"
mv -T "$app/.current-floor" "$app/current"
kill -HUP "$master"
for _ in $(seq 600); do
  alive=0
  for pid in $old; do [ -d "/proc/$pid" ] && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.05
done
[ "$alive" = 0 ] || { echo "old workers still running: $old" >&2; exit 1; }
headers=$(curl -sk --max-time 5 -o /dev/null -D - --resolve "$name:443:127.0.0.1" "https://$name/health" | tr -d '\r')
echo "$headers" | grep -q '^HTTP/[0-9.]* 200' || { echo "health: $headers" >&2; exit 1; }
echo "$headers" | grep -qi "^x-release: $id\$" || { echo "release: $headers" >&2; exit 1; }
'''


def _source_tree():
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.pyfleet.deploy.plugins.module_utils.source_tree import IGNORED, hash_tree
    return IGNORED, hash_tree


def code_tar(source):
    """The code as the files action ships it: an uncompressed tar of the walk, without the ignored names."""
    ignored, hash_tree = _source_tree()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        hash_tree(source, ignored, archive)
    return buffer.getvalue()


def batches(hosts, serial=(1, "50%", "100%")):
    """Cut hosts as Ansible cuts a play by a serial list: each item in turn, the last one repeated."""
    cut, rest, index = [], list(hosts), 0
    while rest:
        item = serial[min(index, len(serial) - 1)]
        size = int(len(hosts) * int(item[:-1]) / 100) if isinstance(item, str) else int(item)
        size = max(1, size)
        cut.append(rest[:size])
        rest = rest[size:]
        index += 1
    return cut


class Fleet:
    """SSH to the app servers of an inventory that bench/rollout_speed.py wrote."""

    def __init__(self, inventory_path):
        with open(inventory_path, encoding="utf-8") as handle:
            data = json.load(handle)["all"]
        self.vars = data["vars"]
        self.ports = {name: host["ansible_port"] for name, host in data["children"]["app_servers"]["hosts"].items()}

    def ssh(self, host, script, args, stdin=b""):
        argv = (["ssh"] + shlex.split(self.vars["ansible_ssh_common_args"])
                + ["-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o", "BatchMode=yes",
                   "-i", self.vars["ansible_ssh_private_key_file"], "-p", str(self.ports[host]),
                   "%s@%s" % (self.vars["ansible_user"], self.vars["ansible_host"]),
                   "sudo -n sh -c %s floor %s" % (shlex.quote(script), " ".join(shlex.quote(arg) for arg in args))])
        done = subprocess.run(argv, input=stdin, capture_output=True, check=False, timeout=300)
        if done.returncode:
            raise RuntimeError("%s: exit %d: %s" % (host, done.returncode, done.stderr.decode(errors="replace")[-2000:]))


def _each(hosts, action):
    """Run action(host) on every host at once; raise the first failure."""
    errors = []

    def one(host):
        try:
            action(host)
        except Exception as error:  # pylint: disable=broad-except
            errors.append(error)

    threads = [threading.Thread(target=one, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def rollout(inventory_path, source, release, hosts=None):
    """Roll ``source`` out as release id ``release`` to hosts (default: every app server).

    Return the seconds, and those of the preflight and of each batch.
    """
    fleet = Fleet(inventory_path)
    hosts = list(hosts or fleet.ports)
    app, user, name = fleet.vars["app_name"], fleet.vars["app_name"], fleet.vars["nginx_server_names"][-1]
    started = time.monotonic()
    code = code_tar(source)
    _each(hosts, lambda host: fleet.ssh(host, PREFLIGHT, ["/srv/" + app, user, release], code))
    phases = [time.monotonic() - started]
    for batch in batches(hosts):
        _each(batch, lambda host: fleet.ssh(host, GO_LIVE, ["/srv/" + app, app, release, name]))
        phases.append(time.monotonic() - started - sum(phases))
    return round(time.monotonic() - started, 1), [round(phase, 1) for phase in phases]


if __name__ == "__main__":
    INVENTORY, SOURCE, RELEASE = sys.argv[1:4]
    print(rollout(INVENTORY, SOURCE, RELEASE, sys.argv[4].split(",") if len(sys.argv) > 4 else None))
