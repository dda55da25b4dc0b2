# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Fixtures shared by every scenario's testinfra verifiers (molecule/<scenario>/tests/).

Molecule runs the verifiers with pytest-testinfra, ``--connection=ansible``
and the scenario's inventory, so a host fixture reaches each host the way the
playbooks do (over SSH in the fleet scenario). The fixtures here run what a
user runs (``ansible-playbook pyfleet.deploy.<playbook>``), drive load through
the published ports with bench/loadgen.py, and read the rollout summaries.
"""

from __future__ import annotations

import asyncio
import glob
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import testinfra
from websockets.asyncio.client import connect as websocket_connect

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(PROJECT, "bench"))

from harness import BackgroundLoad, BackgroundStreams, playbook_argv  # noqa: E402  (bench/harness.py, shared with the bench)
from releases import UNHEALTHY_FASTAPI, code_of, release_id, variant  # noqa: E402  (bench/releases.py, shared with the bench)


FIGURES = []


def pytest_terminal_summary(terminalreporter):
    """What the rollouts measured, printed once before pytest's summary line."""
    if FIGURES:
        terminalreporter.section("rollouts measured")
        for line in FIGURES:
            terminalreporter.write_line(line)


def _host_figures(host):
    """One host's line of a rollout summary: its result, and how it swapped if it did."""
    if host["swap_seconds"] is None:
        return "%s %s" % (host["host"], host["result"])
    processes = ", processes %s s" % host["processes_seconds"] if host.get("processes_seconds") is not None else ""
    return "%s %s by %s, swap %s s%s" % (host["host"], host["result"], host["method"], host["swap_seconds"], processes)


@pytest.fixture(scope="session")
def measured():
    """measured(label, rollout, load): keep one rollout's figures for the terminal summary."""

    def record(label, rollout, load=None):
        hosts = ", ".join(_host_figures(h) for h in (rollout.report or {}).get("hosts", []))
        traffic = ("%d requests, %d failed, p50 %s ms, p99 %s ms; " % (
            load["requests"], load["failed"], load["p50_ms"], load["p99_ms"])) if load else ""
        FIGURES.append("%s: exit %d in %.0f s; %s%s" % (label, rollout.rc, rollout.seconds, traffic, hosts))

    return record


@pytest.fixture(scope="session")
def note():
    """note(line): a figure a test measured, for the terminal summary."""
    return FIGURES.append


def pytest_configure(config):
    config.addinivalue_line("markers", "changes: the test or its fixture runs playbooks that change hosts, so it "
                            "runs after every test that only reads them")
    config.addinivalue_line("markers", "lane(name): changes hosts no other test changes; with pytest-xdist "
                            "(--dist loadgroup) it runs on a worker of its own, beside the other changes, once "
                            "every read-only test has run")


def _changes(item):
    return any(item.get_closest_marker(name) for name in ("changes", "lane"))


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items):
    """Check what converge made before anything changes it: the tests that only read hosts run first, then
    those that change them, rollouts under load last (each module in its own order). With pytest-xdist, a
    lane's tests form one xdist group, all other tests the group "main" (marked before xdist reads the
    marks)."""
    items.sort(key=lambda item: (_changes(item), item.module.__name__ == "test_rollout_under_load"))
    for item in items:
        lane = item.get_closest_marker("lane")
        item.add_marker(pytest.mark.xdist_group(lane.args[0] if lane else "main"))
    return (yield)


# The lanes under pytest-xdist: the main worker opens the barrier when it has
# run every read-only test (it starts its first change, or it ends); a lane's
# worker waits for it before its first test.
LANE_WAIT_SECONDS = 900


def _barrier():
    return os.path.join(tempfile.gettempdir(), "pyfleet-readers-done-%s" % os.environ["PYTEST_XDIST_TESTRUNUID"])


def _open_barrier():
    with open(_barrier(), "a", encoding="utf-8"):
        pass


def pytest_runtest_setup(item):
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    if not item.get_closest_marker("lane"):
        if _changes(item):
            _open_barrier()
        return
    deadline = time.monotonic() + LANE_WAIT_SECONDS
    while not os.path.exists(_barrier()):
        if time.monotonic() > deadline:
            pytest.fail("lane %s: the read-only tests of the main worker did not finish within %d s"
                        % (item.get_closest_marker("lane").args[0], LANE_WAIT_SECONDS))
        time.sleep(0.5)


def pytest_sessionfinish(session):
    """A worker hands its figures to the controller, which prints them (pytest_testnodedown)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        _open_barrier()
        output["pyfleet_figures"] = list(FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    FIGURES.extend(getattr(node, "workeroutput", {}).get("pyfleet_figures", []))


@pytest.fixture(scope="session")
def inventory():
    """The scenario's inventory directory, as Molecule wrote it."""
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")


@pytest.fixture(scope="session")
def ca_file(inventory):
    """The internal CA that signed the test hosts' certificates (tls_mode: selfsigned)."""
    return os.path.join(inventory, ".pyfleet-ca", "ca.crt")


@pytest.fixture(scope="session")
def work():
    return tempfile.mkdtemp(prefix="pyfleet-verify-")


@pytest.fixture(scope="session")
def hosts(inventory):
    """testinfra hosts by inventory name, over the inventory's own connection, with sudo unless told.

    sudo logs each command line to the journal: a test whose command names a
    secret it searches for asks for sudo=False (a host reached as root).
    """
    cache = {}

    def get(name, sudo=True):
        if (name, sudo) not in cache:
            cache[(name, sudo)] = testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, inventory), sudo=sudo)
        return cache[(name, sudo)]

    return get


class Rollout:
    """The outcome of one ansible-playbook run: exit code, output and the rollout summary."""

    def __init__(self, rc, output, report, seconds):
        self.rc, self.output, self.report, self.seconds = rc, output, report, seconds

    @property
    def results(self):
        return [host["result"] for host in (self.report or {}).get("hosts", [])]

    @property
    def methods(self):
        return sorted({host["method"] for host in (self.report or {}).get("hosts", [])})


class Playbooks:
    """Runs pyfleet.deploy.<playbook> by FQCN against the scenario's inventory."""

    def __init__(self, inventory, work):
        self.inventory, self.work = inventory, work

    def start(self, name, source, lockfile, extra_vars=None, args=(), load=None):
        """Start the playbook; ``load``, a held load (load(..., held=True)), opens when the run reaches its
        go-live window (GO_LIVE) and stops when the window closes."""
        # A run may name its own report directory (rollout_report_dir), shared by several runs.
        reports = (extra_vars or {}).get("rollout_report_dir") or os.path.join(
            self.work, "reports-%s-%d" % (name, time.monotonic_ns()))
        variables = {"app_source": {"type": "dir", "path": source}, "app_requirements": lockfile,
                     "rollout_report_dir": reports, **(extra_vars or {})}
        log = open(reports + ".log", "w+", encoding="utf-8")
        argv = playbook_argv(self.inventory, name, variables) + list(args)
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        window = None
        if load is not None:
            window = threading.Thread(target=_go_live_window, args=(process, reports + ".log", load, GO_LIVE[name]),
                                      daemon=True)
            window.start()
        return process, log, reports, time.monotonic(), window

    @staticmethod
    def finish(started):
        process, log, reports, began, window = started
        rc = process.wait()
        if window is not None:
            window.join()
        seconds = time.monotonic() - began
        log.seek(0)
        output = log.read()
        log.close()
        report = None
        found = sorted(glob.glob(os.path.join(reports, "*.json")))
        if found:
            with open(found[-1], encoding="utf-8") as handle:
                report = json.load(handle)
        return Rollout(rc, output, report, seconds)

    def run(self, name, source, lockfile, extra_vars=None, args=(), load=None):
        return self.finish(self.start(name, source, lockfile, extra_vars, args, load))


# The plays of a rollout during which requests can fail: from the end of the
# preflight (the migration, then each batch's switch, reload, verification,
# soak and any switch back) to the report. Before it, the preflight stages
# files beside the live ones; the cases that stop there (a release that cannot
# import) load the whole run instead. bench/ loads whole rollouts.
GO_LIVE = {"rolling_reload": ("PLAY [Migrate once, before any host switches]", "PLAY [Unlock and report]")}


def _go_live_window(process, log_path, load, markers):
    """Open ``load`` when the run's output shows the first marker, stop it at the second."""
    opening, closing = markers
    seen, opened = "", False
    with open(log_path, encoding="utf-8") as log:
        while True:
            ended = process.poll() is not None
            seen += log.read()
            if not opened and opening in seen:
                load.go()
                opened = True
            if opened and closing in seen:
                load.stop()
                return
            if ended:
                return
            time.sleep(0.05)


@pytest.fixture(scope="session")
def playbooks(inventory, work):
    return Playbooks(inventory, work)


@pytest.fixture(scope="session")
def load(work, ca_file):
    """Start load through a published port: load(url, server_name, clients=..., pause=..., path=...); a tenth
    of the clients hold /slow?seconds=1 requests. With held=True it sends nothing until go(), which
    Playbooks.run(..., load=...) calls when the rollout reaches its go-live plays."""

    def start(url, server_name, clients=100, pause=0.25, label="load", ca_file=ca_file, path="/health", held=False):
        # The fresh clients resume their TLS sessions, as browsers do: still a new connection per request,
        # for 22 % less of the load generator's CPU (measured on the fleet; bench/ keeps full handshakes).
        background = BackgroundLoad(work, label, url, ca_file, clients, max(1, clients // 10), pause=pause,
                                    path=path, host_header=server_name, requests=2000000, held=held,
                                    tls_resume=True)
        if not held:
            time.sleep(1)  # the clients are connected before the playbook starts; a held load waits for go()
        return background

    return start


@pytest.fixture(scope="session")
def stream_load(work, ca_file):
    """Hold long-lived connections through a published port: stream_load(port, server_name, websockets=...,
    event_streams=...), connected before it returns (bench/streamload.py)."""

    def start(port, server_name, websockets=200, event_streams=20, label="streams"):
        streams = BackgroundStreams(work, label, port, server_name, ca_file, websockets, event_streams)
        assert streams.wait_connected(), "only %s of %d WebSockets and %d event streams connected" % (
            streams.opened(), websockets, event_streams)
        return streams

    return start


@pytest.fixture(scope="session")
def release():
    """Release variants of an example app, the code part of the id the app role computes for them
    (id), and the code part of a full id (code)."""

    class Releases:
        variant = staticmethod(variant)
        id = staticmethod(release_id)
        code = staticmethod(code_of)
        unhealthy_fastapi = UNHEALTHY_FASTAPI

    return Releases


class Answer:
    """An HTTP answer as curl on the host saw it: status, headers (lower-case names) and body."""

    def __init__(self, raw):
        head, self.body = raw.split("\r\n\r\n", 1)
        while self.body.startswith("HTTP/") and "\r\n\r\n" in self.body:  # a 100 Continue or a redirect chain
            head, self.body = self.body.split("\r\n\r\n", 1)
        lines = head.split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        return values[0] if len(values) == 1 else values or None

    def json(self):
        return json.loads(self.body)


@pytest.fixture(scope="session")
def https(ca_file):
    """GET a URL through a host's own nginx, by the site's name, verified against the internal CA.

    https(host, "/health", name) -> Answer; scheme "http" for plain HTTP. The
    name need not resolve on the host: curl is told it is 127.0.0.1.
    """
    given = set()

    def get(host, path, name, scheme="https", ca=ca_file):
        """ca: the trust anchor on the controller (the internal CA unless told)."""
        remote = "/tmp/pyfleet-trust-" + os.path.basename(ca)
        if (host, ca) not in given:
            with open(ca, encoding="utf-8") as handle:
                host.run("printf '%%s' %s > " + remote, handle.read())
            given.add((host, ca))
        port = 443 if scheme == "https" else 80
        out = host.run("curl --silent --show-error --include --max-time 10 --cacert %s "
                       "--resolve %s:%d:127.0.0.1 %s://%s%s" % (remote, name, port, scheme, name, path))
        assert out.rc == 0, "curl %s://%s%s on %s: %s" % (scheme, name, path, getattr(host.backend, "hostname", host), out.stderr)
        return Answer(out.stdout)

    return get


def _load(name, *path):
    """A module of this checkout, loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(PROJECT, *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def worker_count():
    """pyfleet.deploy.worker_count, the filter that sizes the workers, loaded from this checkout."""
    return _load("pyfleet_worker_count", "plugins", "filter", "worker_count.py").worker_count


@pytest.fixture(scope="session")
def release_env(work):
    """release_env(host): the variables of the env file of the release `current` names on the host, read as
    the server's config reads them (roles/gunicorn/files/pyfleet_env.py)."""
    read = _load("pyfleet_env", "roles", "gunicorn", "files", "pyfleet_env.py").read

    def variables(host):
        path = os.path.join(work, "env-%d" % time.monotonic_ns())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(host.file("/srv/demo/current/.pyfleet/env").content_string)
        return read(path)

    return variables


@pytest.fixture(scope="session")
def children():
    """The service's main PID and its children's lines of `ps -o pid= -o args=`."""

    def of(host, unit):
        master = host.check_output("systemctl show --value --property=MainPID %s" % unit)
        return master, host.check_output("ps -o pid= -o args= --ppid %s" % master).splitlines()

    return of


class _NamedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a published port on 127.0.0.1, with the site's name as SNI, as a browser sends it."""

    def __init__(self, port, name, context, timeout=15):
        super().__init__("127.0.0.1", port, timeout=timeout, context=context)
        self.site_name = name

    def connect(self):
        self.sock = self._context.wrap_socket(socket.create_connection((self.host, self.port), self.timeout),
                                              server_hostname=self.site_name)


@pytest.fixture(scope="session")
def named_https(ca_file):
    """named_https(port, name): an HTTPS connection to 127.0.0.1:port with the site's name as SNI,
    verified against the internal CA, as a browser reaches the site by its name."""

    def connection(port, name, timeout=15):
        return _NamedHTTPS(port, name, ssl.create_default_context(cafile=ca_file), timeout)

    return connection


@pytest.fixture(scope="session")
def streams(ca_file, named_https):
    """Long-lived connections to a site through a published port, verified against the internal CA.

    * ``streams.websocket(port, name, path, messages)``: the first message the server sends (JSON),
      then the echo of each of ``messages``, and the close code;
    * ``streams.events(port, name, path)``: each server-sent event's data (JSON) with the seconds
      after the request at which it arrived, and the response headers.
    """

    class Streams:
        @staticmethod
        def context():
            return ssl.create_default_context(cafile=ca_file)

        @classmethod
        def websocket(cls, port, name, path="/ws", messages=("ping",)):
            # websockets' asyncio client, not its threaded sync one: the sync client reads the TLS
            # socket in a thread while it writes the handshake in another, and Python's ssl sockets
            # are not safe for that. Against trixie's nginx, about 1 handshake in 80 then never left
            # the client (nginx logged no request): a fault of the test client, not of the site.
            async def exchange():
                async with websocket_connect("wss://%s%s" % (name, path), host="127.0.0.1", port=port,
                                             ssl=cls.context(), server_hostname=name, open_timeout=15,
                                             close_timeout=5) as client:
                    hello = json.loads(await asyncio.wait_for(client.recv(), 15))
                    echoes = []
                    for message in messages:
                        await client.send(message)
                        echoes.append(await asyncio.wait_for(client.recv(), 15))
                return {"hello": hello, "echoes": echoes, "close_code": client.close_code}

            return asyncio.run(exchange())

        @classmethod
        def events(cls, port, name, path):
            connection = named_https(port, name)
            started = time.monotonic()
            try:
                connection.request("GET", path, headers={"Host": name, "Accept": "text/event-stream"})
                answer = connection.getresponse()
                received = []
                while True:
                    line = answer.readline()
                    if not line:
                        break
                    if line.startswith(b"data: "):
                        received.append((round(time.monotonic() - started, 2), json.loads(line[6:])))
                return {"status": answer.status, "headers": answer.headers, "events": received}
            finally:
                connection.close()

        @staticmethod
        def spread(answer):
            """How an event stream's events arrived: the seconds from the first to the last, and the
            shortest gap between two. Buffered, they arrive together at the end (both near 0)."""
            arrivals = [at for at, _event in answer["events"]]
            return arrivals[-1] - arrivals[0], min(later - earlier for earlier, later in zip(arrivals, arrivals[1:]))

    return Streams
