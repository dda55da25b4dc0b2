# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""What the benches and the Molecule verifiers share to drive a fleet.

* ``run``: a command, echoed, that must succeed;
* ``playbook``: one ``ansible-playbook pyfleet.deploy.<name>`` run, timed;
* ``BackgroundLoad``: bench/loadgen.py in a child process against a published
  port, bounded in time and count, stopped through its stop file;
* ``BackgroundStreams``: bench/streamload.py the same way, WebSocket and
  event-stream clients held open.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(argv, **kwargs):
    """Run a command that must succeed, echoing it first."""
    print("$ " + " ".join(argv), flush=True)
    return subprocess.run(argv, check=True, **kwargs)


class PlaybookRun:
    """The exit code and wall-clock span of one playbook run."""

    def __init__(self, returncode, started, ended):
        self.returncode = returncode
        self.started = started
        self.ended = ended

    @property
    def seconds(self):
        return round(self.ended - self.started, 1)


def playbook_argv(inventory, name, extra, limit=None):
    """The command line of ``ansible-playbook pyfleet.deploy.<name>`` with ``extra`` as JSON extra vars."""
    argv = ["ansible-playbook", "-i", inventory, "pyfleet.deploy." + name, "-e", json.dumps(extra)]
    return argv + (["--limit", limit] if limit else [])


def playbook(inventory, name, extra, limit=None, env=None, log=None, label=None):
    """Run ``pyfleet.deploy.<name>`` against ``inventory`` with ``extra`` as JSON extra vars.

    The output goes to ``log`` (appended) or nowhere; a failed run is returned,
    not raised, so that the caller decides whether it counts or stops.
    """
    argv = playbook_argv(inventory, name, extra, limit)
    print("$ %s%s" % ("[%s] " % label if label else "", " ".join(argv[:4] + argv[6:])), flush=True)
    started = time.time()
    with open(log or os.devnull, "a", encoding="utf-8") as output:
        code = subprocess.run(argv, env=env, stdout=output, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, check=False).returncode
    return PlaybookRun(code, started, time.time())


class _Background:
    """A bench/ script in a child process that stops when its stop file appears, reports progress in a file
    and writes its JSON result: the shape loadgen.py and streamload.py share."""

    def __init__(self, work, kind, label, script, arguments):
        stamp = "%s-%s-%d" % (kind, label, time.monotonic_ns())
        self.stop_file = os.path.join(work, "stop-" + stamp)
        self.output = os.path.join(work, "%s.json" % stamp)
        self.progress = os.path.join(work, "progress-" + stamp)
        self.process = subprocess.Popen([sys.executable, os.path.join(HERE, script)] + arguments + [
            "--stop-file", self.stop_file, "--progress-file", self.progress, "--output", self.output])

    def progress_fields(self):
        """The numbers the progress file holds now (empty before the first write)."""
        try:
            with open(self.progress, encoding="utf-8") as handle:
                return [int(field) for field in handle.read().split()]
        except (OSError, ValueError):
            return []

    def stop(self):
        with open(self.stop_file, "w", encoding="utf-8"):
            pass

    def result(self):
        """Wait for the script to end (stop() first) and return its JSON result."""
        self.process.wait(timeout=600)
        with open(self.output, encoding="utf-8") as handle:
            return json.load(handle)

    def finish(self, settle=2.0):
        """Wait ``settle`` seconds (the answers, or drains, after the last switch), then stop and return the result."""
        time.sleep(settle)
        self.stop()
        return self.result()


class BackgroundLoad(_Background):
    """bench/loadgen.py in the background; see its --help for the meaning of each knob."""

    def __init__(self, work, label, url, ca_file, clients, slow_clients, pause=0.0, path=None,
                 host_header="pyfleet.test", duration=900, requests=0, samples=False, held=False, tls_resume=False):
        self.start_file = os.path.join(work, "start-%s-%d" % (label, time.monotonic_ns())) if held else None
        arguments = [url, "--host-header", host_header, "--ca-file", ca_file, "--clients", str(clients),
                     "--slow-clients", str(slow_clients), "--slow-seconds", "1", "--keepalive-percent", "50",
                     "--pause", str(pause), "--duration", str(duration), "--requests", str(requests)]
        if path:
            arguments += ["--path", path]
        if samples:
            arguments.append("--samples")
        if tls_resume:
            arguments.append("--tls-resume")
        if held:
            arguments += ["--start-file", self.start_file]
        super().__init__(work, "load", label, "loadgen.py", arguments)

    def go(self):
        """Open a held load (held=True): its clients send nothing until then."""
        with open(self.start_file, "w", encoding="utf-8"):
            pass

    def count(self):
        """Requests answered or failed so far (the progress file, rewritten every second)."""
        return (self.progress_fields() or [0])[0]


class BackgroundStreams(_Background):
    """bench/streamload.py in the background: long-lived connections held through a rollout."""

    def __init__(self, work, label, port, server_name, ca_file, websockets=200, event_streams=20, duration=900):
        self.wanted = (websockets, event_streams)
        super().__init__(work, "streams", label, "streamload.py", [
            "--port", str(port), "--server-name", server_name, "--ca-file", ca_file, "--websockets",
            str(websockets), "--event-streams", str(event_streams), "--duration", str(duration)])

    def opened(self):
        """(WebSockets, event streams) opened so far."""
        return tuple(self.progress_fields()) or (0, 0)

    def wait_connected(self, timeout=60):
        """Wait until every client has connected once; False if not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            opened = self.opened()
            if len(opened) == 2 and opened[0] >= self.wanted[0] and opened[1] >= self.wanted[1]:
                return True
            time.sleep(0.5)
        return False
