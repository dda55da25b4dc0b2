# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Bounded HTTP/1.1 load generator for zero-downtime measurements.

Stdlib only, so it runs from the tool venv or any python3. It drives a mix of
clients against one URL base:

* keep-alive clients reuse one connection for many requests;
* fresh clients open a new connection (and TLS handshake) per request; with
  ``--tls-resume`` each one offers the TLS session its last connection got, as
  a browser does, so the server resumes it instead of a full handshake;
* slow clients ask for ``/slow?seconds=S`` so requests are in flight when a
  reload or restart happens.

Every request is a sample: wall-clock start, latency, status (0 for a
transport error) and the ``version`` field of a JSON answer when present. The
run stops after ``--duration`` seconds or ``--requests`` requests, whichever
comes first, or when the file named by ``--stop-file`` appears. With
``--start-file``, the process starts idle and sends nothing until that file
appears: a driver starts it early and opens the load at the moment it wants
(the verifiers, when a rollout reaches its go-live plays). The result is
one JSON document: totals, failures by reason, latency percentiles, versions
seen, and (with ``--samples``) the raw samples for windowed analysis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import signal
import ssl
import sys
import time
from collections import Counter
from urllib.parse import urlsplit


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(round(fraction * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


def summarize(samples, start=None, end=None):
    """Totals and latency percentiles of samples whose start lies in [start, end)."""
    chosen = [s for s in samples
              if (start is None or s[0] >= start) and (end is None or s[0] < end)]
    latencies = sorted(s[1] for s in chosen if s[2] == 200)
    failed = [s for s in chosen if s[2] != 200]
    return {
        "requests": len(chosen),
        "failed": len(failed),
        "p50_ms": _round(percentile(latencies, 0.50)),
        "p99_ms": _round(percentile(latencies, 0.99)),
        "max_ms": _round(latencies[-1] if latencies else None),
    }


def _round(value):
    return None if value is None else round(value, 2)


# The TLS session a client's next connection offers (--tls-resume). asyncio wraps the socket in a callback
# that runs in the connecting task's context, so each client task offers its own session.
OFFERED_SESSION = contextvars.ContextVar("offered_session", default=None)


class ResumingContext(ssl.SSLContext):
    """A client context whose connections offer the calling task's OFFERED_SESSION."""

    def wrap_bio(self, incoming, outgoing, server_side=False, server_hostname=None, session=None):
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname,
                                session=session or OFFERED_SESSION.get())


class Target:
    def __init__(self, base, host_header, ca_file, insecure, timeout, tls_resume=False):
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https"):
            raise SystemExit(f"unsupported URL scheme in {base!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.host_header = host_header or parts.netloc
        self.timeout = timeout
        self.ssl = None
        if self.tls:
            # ssl.create_default_context()'s context (as of Python 3.11), in the class that can offer a session.
            self.ssl = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
            if ca_file:
                self.ssl.load_verify_locations(cafile=ca_file)
            else:
                self.ssl.load_default_certs()
            if insecure:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
        self.tls_resume = tls_resume
        self.server_name = self.host_header.split(":")[0] if self.tls else None

    async def connect(self):
        return await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl,
                                    server_hostname=self.server_name),
            self.timeout)

    def request_bytes(self, path, keep_alive):
        connection = "keep-alive" if keep_alive else "close"
        return (f"GET {self.prefix}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                f"User-Agent: pyfleet-loadgen\r\nAccept: application/json\r\n"
                f"Connection: {connection}\r\n\r\n").encode()


async def read_response(reader):
    """Return (status, headers, body) of one HTTP/1.1 response."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ConnectionError(f"bad status line {status_line[:60]!r}")
    status = int(parts[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _colon, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    else:
        body = await reader.read()
    return status, headers, body


class Run:
    def __init__(self, args):
        self.args = args
        self.target = Target(args.url, args.host_header, args.ca_file, args.insecure, args.timeout, args.tls_resume)
        self.resumed = 0  # fresh connections that resumed a TLS session
        self.samples = []
        self.errors = Counter()
        self.versions = Counter()
        self.deadline = time.monotonic() + args.duration
        self.stopped = False
        self.began = time.time()

    def should_stop(self):
        if self.stopped or time.monotonic() >= self.deadline:
            return True
        if self.args.requests and len(self.samples) >= self.args.requests:
            return True
        if self.args.stop_file and os.path.exists(self.args.stop_file):
            return True
        return False

    def record(self, started, latency, status, body, reason=None):
        version = None
        if status == 200 and body[:1] == b"{":
            try:
                version = json.loads(body).get("version")
            except ValueError:
                version = None
        if version:
            self.versions[version] += 1
        if status != 200:
            self.errors[reason or f"HTTP {status}"] += 1
        self.samples.append((started, latency * 1000.0, status, version))

    async def client(self, path, keep_alive):
        reader = writer = None
        while not self.should_stop():
            started_wall, started = time.time(), time.monotonic()
            try:
                if writer is None:
                    reader, writer = await self.target.connect()
                writer.write(self.target.request_bytes(path, keep_alive))
                status, headers, body = await asyncio.wait_for(
                    read_response(reader), self.args.timeout + self.args.slow_seconds)
                self.record(started_wall, time.monotonic() - started, status, body)
                if not keep_alive or headers.get("connection", "").lower() == "close":
                    tls = writer.get_extra_info("ssl_object")
                    if self.target.tls_resume and tls is not None and tls.session is not None:
                        OFFERED_SESSION.set(tls.session)
                        self.resumed += tls.session_reused
                    writer.close()
                    reader = writer = None
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    ssl.SSLError, ValueError) as exc:
                self.record(started_wall, time.monotonic() - started, 0, b"",
                            reason=f"{type(exc).__name__}: {exc}"[:120])
                if writer is not None:
                    writer.close()
                reader = writer = None
            if self.args.pause:
                await asyncio.sleep(self.args.pause)
        if writer is not None:
            writer.close()

    async def progress(self):
        """Write the number of requests so far, once a second, for a driver to read."""
        while not self.should_stop():
            with open(self.args.progress_file + ".tmp", "w", encoding="utf-8") as handle:
                handle.write("%d %d\n" % (len(self.samples), sum(self.errors.values())))
            os.replace(self.args.progress_file + ".tmp", self.args.progress_file)
            await asyncio.sleep(1.0)

    async def main(self):
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: setattr(self, "stopped", True))
        args = self.args
        slow_path = f"/slow?seconds={args.slow_seconds:g}"
        tasks = []
        if args.progress_file:
            tasks.append(asyncio.create_task(self.progress()))
        while args.start_file and not os.path.exists(args.start_file) and not self.should_stop():
            await asyncio.sleep(0.02)
        # The time bounds count from the first request.
        self.began, self.deadline = time.time(), time.monotonic() + args.duration
        for index in range(args.clients):
            if index < args.slow_clients:
                path, keep_alive = slow_path, index % 2 == 0
            else:
                path, keep_alive = args.path, index % 100 < args.keepalive_percent
            tasks.append(asyncio.create_task(self.client(path, keep_alive)))
        await asyncio.gather(*tasks)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL, e.g. https://127.0.0.1:8443")
    parser.add_argument("--host-header", help="Host header and TLS server name")
    parser.add_argument("--ca-file", help="CA bundle to verify the server")
    parser.add_argument("--insecure", action="store_true", help="skip TLS verification")
    parser.add_argument("--path", default="/", help="path the fast clients request")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--keepalive-percent", type=int, default=50,
                        help="share of fast clients that reuse their connection")
    parser.add_argument("--slow-clients", type=int, default=10)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=60.0, help="upper bound in seconds")
    parser.add_argument("--requests", type=int, default=0, help="upper bound on requests")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=0.0, help="pause between requests")
    parser.add_argument("--stop-file", help="stop as soon as this file exists")
    parser.add_argument("--progress-file", help="rewrite 'requests failed' here every second")
    parser.add_argument("--start-file", help="send nothing until this file exists")
    parser.add_argument("--tls-resume", action="store_true",
                        help="each fresh client resumes its last TLS session, as browsers do")
    parser.add_argument("--samples", action="store_true", help="include raw samples")
    parser.add_argument("--output", help="write the JSON result here instead of stdout")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run = Run(args)
    asyncio.run(run.main())
    began, ended = run.began, time.time()
    result = {
        "url": args.url,
        "clients": args.clients,
        "slow_clients": args.slow_clients,
        "started": began,
        "ended": ended,
        "seconds": round(ended - began, 3),
        "throughput_rps": round(len(run.samples) / max(ended - began, 1e-9), 1),
        "errors": dict(run.errors),
        "versions": dict(run.versions),
        "tls_resumed": run.resumed,
        **summarize(run.samples),
    }
    if args.samples:
        result["samples"] = run.samples
    text = json.dumps(result)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
