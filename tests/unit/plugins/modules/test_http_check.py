# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end runs of the http_check module file, as Ansible would run it on a host."""

from __future__ import annotations

import json
import os
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MODULE = ROOT / "plugins" / "modules" / "http_check.py"
from collection import COLLECTIONS  # tests/collection.py


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def app_socket(tmp_path):
    """A unix-socket app answering /health with release r1; records request paths."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.path)
            data = json.dumps({"status": "ok", "release": "r1"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Release", "r1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    path = str(tmp_path / "app.sock")
    server = _UnixHTTPServer(path, Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield path, seen
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
        deadline=0.2,
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
