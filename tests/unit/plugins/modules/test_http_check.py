# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end runs of the http_check module file, as Ansible would run it on a host."""

from __future__ import annotations

import json
import os
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MODULE = ROOT / "plugins" / "modules" / "http_check.py"
from collection import COLLECTIONS  # tests/collection.py


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _serve(path, release="r1", delay=0.0):
    """A unix-socket app answering /health with ``release`` after ``delay`` s; returns (server, seen).

    ``seen`` lists each request's path, with its start and end times in ``seen.times``.
    """
    seen = _Seen()
    seen.times = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            began = time.monotonic()
            seen.append(self.path)
            time.sleep(delay)
            data = json.dumps({"status": "ok", "release": release}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Release", release)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            seen.times.append((began, time.monotonic()))

    server = _UnixHTTPServer(path, Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, seen


class _Seen(list):
    pass


@pytest.fixture
def app_socket(tmp_path):
    """A unix-socket app answering /health with release r1; records request paths."""
    path = str(tmp_path / "app.sock")
    server, seen = _serve(path)
    yield path, seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def apps(tmp_path):
    """apps(name, release=..., delay=...): more unix-socket apps, stopped after the test."""
    servers = []

    def start(name, release="r1", delay=0.0):
        path = str(tmp_path / (name + ".sock"))
        server, seen = _serve(path, release, delay)
        servers.append(server)
        return path, seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def run_module(tmp_path, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(COLLECTIONS), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        [sys.executable, str(MODULE), str(args_file)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        pytest.fail("module output is not JSON (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))


def test_module_success_in_check_mode(tmp_path, app_socket):
    path, seen = app_socket
    rc, out = run_module(
        tmp_path,
        url="http://app.internal/health",
        unix_socket=path,
        expect_json={"status": "ok", "release": "r1"},
        expect_headers={"x-release": "r1"},
        consecutive=2,
        interval=0.01,
        deadline=5,
        _ansible_check_mode=True,
    )
    assert rc == 0, out
    assert out.get("failed") is not True
    assert out["changed"] is False
    assert out["status"] == 200
    assert out["json"] == {"status": "ok", "release": "r1"}
    assert out["headers"]["x-release"] == "r1"
    assert out["attempts"] == 2
    assert len(out["latencies_ms"]) == 2
    assert out["latency_ms"] == out["latencies_ms"][-1] > 0
    assert out["unix_socket"] == path
    assert out["url"] == "http://app.internal/health"
    assert seen == ["/health", "/health"]  # probes in check mode too


def test_module_failure_names_the_reason(tmp_path, app_socket):
    path, seen = app_socket
    rc, out = run_module(
        tmp_path,
        url="http://app.internal/health",
        unix_socket=path,
        expect_json={"release": "r2"},
        # A check that never passes runs to its deadline; 1 s leaves room for two attempts on a busy machine.
        deadline=1.0,
        interval=0.05,
    )
    assert rc == 1
    assert out["failed"] is True
    assert out["changed"] is False
    assert out["reason"] == "expected release='r2' in JSON, got 'r1'"
    assert out["msg"].startswith("http://app.internal/health (via unix socket %s) did not pass" % path)
    assert out["msg"].endswith(out["reason"])
    assert out["attempts"] == len(seen) >= 2
    assert "after %d attempts" % out["attempts"] in out["msg"]
    assert out["status"] == 200
    assert out["elapsed"] >= 0.2


def test_module_rejects_https_over_unix_socket(tmp_path):
    rc, out = run_module(tmp_path, url="https://app.internal/health", unix_socket=str(tmp_path / "x.sock"))
    assert rc == 1
    assert out["failed"] is True
    assert "https is not supported with unix_socket" in out["msg"]


def test_also_probes_every_target_side_by_side_and_reports_each(tmp_path, apps):
    socket_path, socket_seen = apps("socket", delay=0.2)
    proxy_path, proxy_seen = apps("proxy", delay=0.2)
    rc, out = run_module(tmp_path, url="http://app.internal/health", unix_socket=socket_path,
                         also=[{"url": "http://proxy.internal/health", "unix_socket": proxy_path}],
                         expect_json={"release": "r1"}, consecutive=3, interval=0.01, deadline=5)
    assert rc == 0, out
    assert (len(socket_seen), len(proxy_seen)) == (3, 3)
    assert [(entry["url"], entry["unix_socket"], entry["status"], entry["attempts"]) for entry in out["also"]] == [
        ("http://proxy.internal/health", proxy_path, 200, 3)]
    # Side by side: the proxy's first request began before the socket's last one ended.
    assert proxy_seen.times[0][0] < socket_seen.times[-1][1]
    assert socket_seen.times[0][0] < proxy_seen.times[-1][1]


def test_also_fails_naming_only_the_target_that_failed(tmp_path, apps):
    socket_path, _seen = apps("socket")
    proxy_path, _seen = apps("proxy", release="r0")
    rc, out = run_module(tmp_path, url="http://app.internal/health", unix_socket=socket_path,
                         also=[{"url": "http://proxy.internal/health", "unix_socket": proxy_path}],
                         expect_json={"release": "r1"}, consecutive=2, interval=0.01, deadline=2)
    assert rc == 1 and out["failed"] is True
    assert out["msg"].startswith("http://proxy.internal/health (via unix socket %s) did not pass" % proxy_path)
    assert socket_path not in out["msg"]
    assert out["reason"] == "expected release='r1' in JSON, got 'r0'"
