# SPDX-License-Identifier: GPL-3.0-or-later
"""Behaviour of the http_probe module_utils against real local servers."""

from __future__ import annotations

import datetime
import json
import socket
import socketserver
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.pyfleet.deploy.plugins.module_utils.http_probe import (
    _MISSING,
    BODY_LIMIT,
    HttpProbe,
    ProbeConfigError,
    ProbeResult,
    check,
    failure_message,
    json_text,
    lookup_path,
)

FAST = dict(deadline=5.0, interval=0.01)


# --------------------------------------------------------------------------
# Scriptable local servers
# --------------------------------------------------------------------------


def healthy(release="r2", **extra):
    payload = {
        "status": "ok",
        "release": release,
        "checks": {"db": "ok", "workers": 4},
        "items": [{"name": "a"}, {"name": "b"}],
    }
    payload.update(extra)
    return (200, payload, {"X-Release": release})


def failing(status=502):
    return (status, "<html>bad gateway</html>", {"Content-Type": "text/html"})


class Backend:
    """Answers requests from a script of (status, body, headers[, delay]) steps.

    The last step repeats forever, unless ``cycle`` is set, in which case the
    whole script repeats.
    """

    def __init__(self, *script, cycle=False, protocol="HTTP/1.1"):
        self.script = list(script) or [healthy()]
        self.cycle = cycle
        self.protocol = protocol
        self.requests = []
        self.sni = []
        self.lock = threading.Lock()

    def take(self, request):
        with self.lock:
            index = len(self.requests)
            self.requests.append(request)
        if self.cycle:
            return self.script[index % len(self.script)]
        return self.script[min(index, len(self.script) - 1)]


def make_handler(backend):
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps connections open: a probe that reused one would show
        # the same client port twice. HTTP/1.0 closes after each response.
        protocol_version = backend.protocol

        def log_message(self, *args):  # unix sockets have no client address
            pass

        def _respond(self):
            length = int(self.headers.get("Content-Length") or 0)
            step = backend.take(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length) if length else b"",
                    "client": self.client_address,
                }
            )
            status, payload, headers = step[:3]
            if len(step) > 3:
                time.sleep(step[3])
            if isinstance(payload, (dict, list)):
                data = json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", **headers}
            else:
                data = payload.encode() if isinstance(payload, str) else payload
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _respond

    return Handler


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _serve(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def tcp_server():
    """Factory: start a TCP server for a Backend, return its base URL."""
    servers = []

    def start(backend, tls_context=None):
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(backend))
        if tls_context is not None:
            server.socket = tls_context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        _serve(server)
        scheme = "https" if tls_context is not None else "http"
        return "%s://127.0.0.1:%d" % (scheme, server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def unix_server(tmp_path):
    """Factory: start a unix-socket server for a Backend, return the socket path."""
    servers = []

    def start(backend, name="gunicorn.sock"):
        path = str(tmp_path / name)
        server = UnixHTTPServer(path, make_handler(backend))
        servers.append(server)
        _serve(server)
        return path

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------
# TCP and unix socket
# --------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/1.0"])
def test_success_over_tcp(tcp_server, protocol):
    backend = Backend(healthy(), protocol=protocol)
    base = tcp_server(backend)
    probe = HttpProbe(
        base + "/health?full=1",
        expect_json={"status": "ok", "release": "r2"},
        expect_headers={"X-Release": "r2"},
    )
    result = check(probe.once, **FAST)

    assert result.ok, result.reason
    assert result.attempts == 1
    assert result.status == 200
    last = result.last
    assert last.json["release"] == "r2"
    assert last.headers["x-release"] == "r2"
    assert last.headers["content-type"] == "application/json"
    assert json.loads(last.body) == last.json
    assert last.latency_ms > 0
    assert result.latencies_ms == [last.latency_ms]
    request = backend.requests[0]
    assert request["method"] == "GET"
    assert request["path"] == "/health?full=1"
    assert request["headers"]["host"] == base.split("//")[1]


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/1.0"])
def test_success_over_unix_socket(unix_server, protocol):
    backend = Backend(healthy(), protocol=protocol)
    path = unix_server(backend)
    probe = HttpProbe("http://app.internal/health", unix_socket=path, expect_json={"release": "r2"})
    result = check(probe.once, **FAST)

    assert result.ok, result.reason
    assert result.last.json["status"] == "ok"
    assert backend.requests[0]["headers"]["host"] == "app.internal"
    assert backend.requests[0]["path"] == "/health"
    assert probe.describe() == "http://app.internal/health (via unix socket %s)" % path


def test_retries_until_healthy_on_new_connections(tcp_server):
    backend = Backend(failing(), failing(), failing(), healthy())
    probe = HttpProbe(tcp_server(backend) + "/health", expect_json={"release": "r2"})
    result = check(probe.once, **FAST)

    assert result.ok, result.reason
    assert result.attempts == 4
    assert len(backend.requests) == 4
    ports = [request["client"][1] for request in backend.requests]
    assert len(set(ports)) == 4, "every attempt must open a new connection"


def test_deadline_exceeded_reports_last_reason(tcp_server):
    backend = Backend(failing(503), failing(502))
    probe = HttpProbe(tcp_server(backend) + "/health")
    started = time.monotonic()
    # Room for several attempts on a busy machine (make test runs the unit tests beside the scenarios).
    result = check(probe.once, deadline=1.5, interval=0.05)

    assert not result.ok
    assert time.monotonic() - started >= 1.5
    assert result.elapsed >= 1.5
    assert result.reason == "status 502 not in [200]"
    assert result.status == 502
    assert result.attempts == len(backend.requests) >= 3
    message = failure_message(probe, result)
    assert probe.url in message
    assert "after %d attempts" % result.attempts in message
    assert message.endswith(": status 502 not in [200]")


def test_deadline_zero_is_one_attempt(tcp_server):
    backend = Backend(failing())
    result = check(HttpProbe(tcp_server(backend) + "/").once, deadline=0, interval=0.01)
    assert (result.ok, result.attempts, len(backend.requests)) == (False, 1, 1)


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------


def _once(url, **kwargs):
    return HttpProbe(url, **kwargs).once()


def test_json_field_mismatch_reason(tcp_server):
    url = tcp_server(Backend(healthy("def456"))) + "/health"
    result = _once(url, expect_json={"status": "ok", "release": "abc123"})
    assert not result.ok
    assert result.reason == "expected release='abc123' in JSON, got 'def456'"
    assert result.status == 200
    assert result.json["release"] == "def456"


def test_json_dotted_paths_and_string_comparison(tcp_server):
    url = tcp_server(Backend(healthy(**{"ready": True, "a.b": "literal"}))) + "/health"
    ok = _once(
        url,
        expect_json={"checks.db": "ok", "checks.workers": "4", "items.1.name": "b", "ready": "true", "a.b": "literal"},
    )
    assert ok.ok, ok.reason
    assert _once(url, expect_json={"checks.workers": 4}).ok

    wrong = _once(url, expect_json={"checks.db": "down"})
    assert wrong.reason == "expected checks.db='down' in JSON, got 'ok'"
    missing = _once(url, expect_json={"checks.cache": "ok"})
    assert missing.reason == "expected checks.cache='ok' in JSON, key not found"
    out_of_range = _once(url, expect_json={"items.5.name": "b"})
    assert "key not found" in out_of_range.reason


def test_expect_json_requires_json_body(tcp_server):
    url = tcp_server(Backend((200, "plain text", {}))) + "/"
    result = _once(url, expect_json={"status": "ok"})
    assert not result.ok
    assert result.reason.startswith("response body is not valid JSON")
    assert result.json is None
    assert _once(url).ok  # without expect_json a non-JSON body is fine


def test_header_expectation(tcp_server):
    url = tcp_server(Backend(healthy("r2"))) + "/health"
    assert _once(url, expect_headers={"x-RELEASE": "r2"}).ok
    assert _once(url, expect_headers={"X-Release": "r3"}).reason == "expected header X-Release='r3', got 'r2'"
    assert _once(url, expect_headers={"X-Missing": "1"}).reason == "expected header X-Missing='1', header missing"


def test_status_code_list(tcp_server):
    url = tcp_server(Backend((204, "", {}))) + "/ready"
    result = _once(url, status_code=[200, 204])
    assert result.ok, result.reason
    assert result.status == 204
    assert result.json is None
    assert _once(url).reason == "status 204 not in [200]"
    assert _once(url, status_code=[200, 201]).reason == "status 204 not in [200, 201]"


def test_body_contains_checks_full_body_but_result_is_truncated(tcp_server):
    big = "x" * (BODY_LIMIT + 1000) + "MARKER"
    url = tcp_server(Backend((200, big, {"Content-Type": "text/plain; charset=utf-8"}))) + "/"
    result = _once(url, body_contains="MARKER")
    assert result.ok, result.reason
    assert len(result.body) == BODY_LIMIT
    assert _once(url, body_contains="nope").reason == "body does not contain 'nope'"


def test_sends_method_body_and_headers(tcp_server):
    backend = Backend((201, {"accepted": True}, {}))
    url = tcp_server(backend) + "/internal/ready"
    result = _once(
        url,
        method="post",
        headers={"Authorization": "Bearer t0k", "Content-Type": "application/json", "Host": "shop.example.com"},
        body='{"probe": "deploy"}',
        status_code=[201],
        expect_json={"accepted": True},
    )
    assert result.ok, result.reason
    request = backend.requests[0]
    assert request["method"] == "POST"
    assert request["body"] == b'{"probe": "deploy"}'
    assert request["headers"]["authorization"] == "Bearer t0k"
    assert request["headers"]["host"] == "shop.example.com"


# --------------------------------------------------------------------------
# Connection errors
# --------------------------------------------------------------------------


def test_missing_unix_socket_is_connection_refused(tmp_path):
    path = str(tmp_path / "absent.sock")
    result = check(HttpProbe("http://localhost/health", unix_socket=path).once, deadline=0, interval=0)
    assert not result.ok
    assert result.status is None
    assert result.reason == "connection refused on unix socket %s: socket file does not exist" % path


def test_unix_socket_without_listener_is_connection_refused(tmp_path):
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: ECONNREFUSED
    result = HttpProbe("http://localhost/health", unix_socket=path).once()
    assert result.reason == "connection refused on unix socket %s" % path


def test_tcp_connection_refused():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = HttpProbe("http://127.0.0.1:%d/health" % port).once()
    assert result.reason == "connection refused on 127.0.0.1:%d" % port


def test_read_timeout(tcp_server):
    url = tcp_server(Backend(healthy() + (1.0,))) + "/slow"
    started = time.monotonic()
    result = HttpProbe(url, timeout=0.2).once()
    assert time.monotonic() - started < 0.9
    assert result.reason == "timed out after 0.2s waiting for the response from %s" % url.split("//")[1].split("/")[0]


def test_server_closing_without_response(tmp_path):
    path = str(tmp_path / "rude.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def rude():
        conn, _peer = listener.accept()
        conn.recv(65536)
        conn.close()

    thread = threading.Thread(target=rude, daemon=True)
    thread.start()
    try:
        result = HttpProbe("http://localhost/", unix_socket=path, timeout=2).once()
    finally:
        thread.join(2)
        listener.close()
    assert result.reason == "connection closed by unix socket %s without a response" % path


# --------------------------------------------------------------------------
# consecutive
# --------------------------------------------------------------------------


def test_consecutive_resets_on_failure(tcp_server):
    backend = Backend(healthy(), healthy(), failing(), healthy(), healthy(), healthy())
    probe = HttpProbe(tcp_server(backend) + "/health")
    result = check(probe.once, consecutive=3, **FAST)

    assert result.ok, result.reason
    assert result.attempts == 6
    assert len(result.latencies_ms) == 3
    assert all(latency > 0 for latency in result.latencies_ms)


def test_flapping_server_never_reaches_consecutive(tcp_server):
    backend = Backend(healthy(), failing(), cycle=True)
    probe = HttpProbe(tcp_server(backend) + "/health")
    result = check(probe.once, consecutive=2, deadline=1.5, interval=0.02)

    assert not result.ok
    assert result.attempts >= 4
    assert "status 502 not in [200]" in result.reason
    if result.last.ok:
        assert result.reason.startswith("only 1 of 2 required consecutive successful attempts")


# --------------------------------------------------------------------------
# Retry loop with an injected clock
# --------------------------------------------------------------------------


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


def _scripted(*oks):
    results = iter(oks)

    def probe():
        ok = next(results)
        return ProbeResult(ok, reason=None if ok else "nope", status=200 if ok else 503, latency_ms=1.0)

    return probe


def test_check_spaces_attempts_and_shortens_the_last_pause():
    fake = FakeTime()
    result = check(_scripted(*[False] * 10), deadline=1.2, interval=0.5, clock=fake.clock, sleep=fake.sleep)
    assert not result.ok
    assert fake.sleeps == [0.5, 0.5, 0.2]
    assert result.attempts == 4
    assert result.elapsed == pytest.approx(1.2)
    assert (result.reason, result.status) == ("nope", 503)


def test_check_deadline_zero_makes_one_attempt_without_sleeping():
    fake = FakeTime()
    result = check(_scripted(False), deadline=0, interval=0.5, clock=fake.clock, sleep=fake.sleep)
    assert (result.ok, result.attempts, fake.sleeps) == (False, 1, [])


def test_check_reports_an_incomplete_streak():
    fake = FakeTime()
    result = check(
        _scripted(False, True, True), deadline=1.0, interval=0.5, consecutive=3, clock=fake.clock, sleep=fake.sleep
    )
    assert not result.ok
    assert (
        result.reason == "only 2 of 3 required consecutive successful attempts before the deadline (last failure: nope)"
    )
    assert result.status == 200


def test_check_rejects_bad_settings():
    with pytest.raises(ProbeConfigError):
        check(_scripted(True), consecutive=0)
    with pytest.raises(ProbeConfigError):
        check(_scripted(True), deadline=-1)


# --------------------------------------------------------------------------
# Configuration errors and helpers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"url": "https://localhost/health", "unix_socket": "/run/app/gunicorn.sock"},
            "https is not supported with unix_socket",
        ),
        ({"url": "ftp://localhost/"}, "http:// or https://"),
        ({"url": "http:///health"}, "has no host"),
        ({"url": "http://user:pw@localhost/"}, "credentials"),
        ({"url": "http://localhost/", "headers": {"X-Bad": "a\r\nInjected: 1"}}, "invalid request header"),
        ({"url": "http://localhost/", "timeout": 0}, "timeout"),
        ({"url": "https://localhost/", "ca_path": "/nonexistent/ca.pem"}, "cannot load CA bundle"),
    ],
)
def test_configuration_errors(kwargs, match):
    with pytest.raises(ProbeConfigError, match=match):
        HttpProbe(**kwargs)


def test_json_text_and_lookup_path():
    assert json_text(1) == json_text("1")
    assert json_text(True) == json_text("true") != json_text("True")
    assert json_text(None) == "null"
    assert json_text({"b": 1, "a": [1]}) == '{"a":[1],"b":1}'
    document = {"a": {"b": [10, {"c": "x"}]}, "a.b": "literal"}
    assert lookup_path(document, "a.b") == "literal"
    assert lookup_path(document, "a.b.1.c") == "x"
    assert lookup_path(document, "a.b.0") == 10
    assert lookup_path(document, "a.z") is _MISSING
    assert lookup_path(document, "a.b.2") is _MISSING
    assert lookup_path({"n": None}, "n") is None


def test_server_name_defaults():
    assert HttpProbe("https://127.0.0.1/health").server_name == "127.0.0.1"
    assert (
        HttpProbe("https://127.0.0.1/health", headers={"host": "Shop.Example.com:8443"}).server_name
        == "shop.example.com"
    )
    assert (
        HttpProbe("https://127.0.0.1/", headers={"Host": "a.example"}, tls_server_name="b.example").server_name
        == "b.example"
    )


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA and a server certificate for app.example.test."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common_name):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("pyfleet test CA"))
        .issuer_name(name("pyfleet test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("app.example.test"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("app.example.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = directory / "server.pem"
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {"ca": str(ca_path), "server": str(cert_path)}


@pytest.fixture
def tls_backend(pki, tcp_server):
    backend = Backend(healthy())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"])
    context.sni_callback = lambda sslobj, server_name, ctx: backend.sni.append(server_name)
    return backend, tcp_server(backend, tls_context=context)


def test_tls_verifies_with_private_ca_and_server_name(pki, tls_backend):
    backend, base = tls_backend
    probe = HttpProbe(
        base + "/health", ca_path=pki["ca"], tls_server_name="app.example.test", expect_json={"release": "r2"}
    )
    result = check(probe.once, **FAST)
    assert result.ok, result.reason
    assert backend.sni == ["app.example.test"]
    assert backend.requests[0]["headers"]["host"] == base.split("//")[1]


def test_tls_server_name_from_host_header(pki, tls_backend):
    backend, base = tls_backend
    result = HttpProbe(base + "/health", ca_path=pki["ca"], headers={"Host": "app.example.test"}).once()
    assert result.ok, result.reason
    assert backend.sni == ["app.example.test"]
    assert backend.requests[0]["headers"]["host"] == "app.example.test"


def test_tls_fails_without_the_ca(tls_backend):
    backend, base = tls_backend
    result = check(HttpProbe(base + "/health", tls_server_name="app.example.test").once, deadline=0, interval=0)
    assert not result.ok
    assert result.status is None
    assert result.reason.startswith("TLS certificate verify failed: ")
    assert "certificate" in result.reason.split(": ", 1)[1]
    assert backend.requests == []


def test_tls_fails_on_wrong_server_name(pki, tls_backend):
    backend, base = tls_backend
    result = HttpProbe(base + "/health", ca_path=pki["ca"], tls_server_name="other.example.test").once()
    assert result.reason.startswith("TLS certificate verify failed: ")
    assert "other.example.test" in result.reason
    assert backend.requests == []


def test_tls_without_validation(tls_backend):
    backend, base = tls_backend
    result = HttpProbe(base + "/health", validate_certs=False).once()
    assert result.ok, result.reason
    assert len(backend.requests) == 1
