# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

"""HTTP health probing with retries, over TCP, TLS or a unix socket.

Pure standard library, so it runs on any managed host. The module
``pyfleet.deploy.http_check`` is a thin wrapper around :class:`HttpProbe`
(one attempt) and :func:`check` (the retry loop).
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
import time
from urllib.parse import urlsplit

BODY_LIMIT = 64 * 1024
"""Bytes of the response body kept in results."""

_READ_CHUNK = 64 * 1024
_MISSING = object()


class ProbeConfigError(ValueError):
    """The probe is misconfigured; retrying cannot help."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP over a unix stream socket."""

    def __init__(self, socket_path, host="localhost", timeout=socket._GLOBAL_DEFAULT_TIMEOUT):
        super().__init__(host, timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if self.timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class TLSHTTPConnection(http.client.HTTPConnection):
    """HTTPS to ``host:port`` with an independent SNI / verified server name.

    ``http.client.HTTPSConnection`` always uses the connected host for SNI and
    hostname verification; a health check of ``https://127.0.0.1/health``
    behind nginx needs the real server name instead.
    """

    default_port = http.client.HTTPS_PORT

    def __init__(self, host, port=None, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, context=None, server_name=None):
        super().__init__(host, port, timeout=timeout)
        self.context = context if context is not None else ssl.create_default_context()
        self.server_name = server_name or host
        self.handshaking = False

    def connect(self):
        super().connect()
        self.handshaking = True
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.server_name)
        self.handshaking = False


def build_ssl_context(validate_certs=True, ca_path=None):
    """Return a client SSL context.

    With ``ca_path`` only that bundle is trusted (not the system store).
    """
    if not validate_certs:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_path)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeConfigError("cannot load CA bundle %s: %s" % (ca_path, getattr(exc, "strerror", None) or exc))


def json_text(value):
    """Text form used to compare JSON values: ``1`` == ``"1"``, ``True`` == ``"true"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def lookup_path(document, path):
    """Resolve ``path`` in a parsed JSON document.

    A top-level key equal to the whole path wins; otherwise the path is split
    on dots, and numeric parts index into lists (``items.0.name``).
    Returns the module-private ``_MISSING`` sentinel when absent.
    """
    if isinstance(document, dict) and path in document:
        return document[path]
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _host_of(host_header):
    """Hostname part of a Host header value (``name:8443`` -> ``name``, ``[::1]:443`` -> ``::1``)."""
    try:
        return urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return None


def _decode(raw, content_type_charset):
    try:
        return raw.decode(content_type_charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


class ProbeResult:
    """Outcome of one attempt."""

    def __init__(self, ok, reason=None, status=None, headers=None, body=None, json_body=None, latency_ms=None):
        self.ok = ok
        self.reason = reason
        self.status = status
        self.headers = headers if headers is not None else {}
        self.body = body
        self.json = json_body
        self.latency_ms = latency_ms

    def __repr__(self):
        return "ProbeResult(ok=%r, status=%r, reason=%r, latency_ms=%r)" % (
            self.ok,
            self.status,
            self.reason,
            self.latency_ms,
        )


class HttpProbe:
    """One configured HTTP health probe; :meth:`once` runs a single attempt."""

    def __init__(
        self,
        url,
        unix_socket=None,
        method="GET",
        headers=None,
        body=None,
        validate_certs=True,
        ca_path=None,
        tls_server_name=None,
        status_code=(200,),
        expect_json=None,
        expect_headers=None,
        body_contains=None,
        timeout=5.0,
        clock=time.monotonic,
    ):
        parts = urlsplit(url)
        self.url = url
        self.scheme = parts.scheme.lower()
        if self.scheme not in ("http", "https"):
            raise ProbeConfigError("url must start with http:// or https://, got %r" % url)
        try:
            self.host = parts.hostname
            self.port = parts.port or (443 if self.scheme == "https" else 80)
        except ValueError as exc:
            raise ProbeConfigError("invalid url %r: %s" % (url, exc))
        if not self.host:
            raise ProbeConfigError("url %r has no host" % url)
        if parts.username is not None or parts.password is not None:
            raise ProbeConfigError("credentials in the url are not supported; pass an Authorization header instead")
        self.unix_socket = unix_socket or None
        if self.unix_socket and self.scheme == "https":
            raise ProbeConfigError(
                "https is not supported with unix_socket (the probe speaks plain HTTP over the socket); use an http:// url"
            )
        self.path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        self.method = (method or "GET").upper()
        self.body = body.encode("utf-8") if isinstance(body, str) else body

        self.headers = {}
        for name, value in (headers or {}).items():
            name = str(name)
            value = "" if value is None else str(value)
            if not name or any(c in name for c in ":\r\n \t") or any(c in value for c in "\r\n"):
                raise ProbeConfigError("invalid request header %r" % name)
            self.headers[name] = value
        host_header = next((v for k, v in self.headers.items() if k.lower() == "host"), None)
        if host_header is None:
            self.headers["Host"] = parts.netloc
            host_header = parts.netloc

        self.server_name = tls_server_name or _host_of(host_header) or self.host
        self.ssl_context = build_ssl_context(validate_certs, ca_path) if self.scheme == "https" else None

        self.status_code = [int(code) for code in (status_code or [200])]
        self.expect_json = dict(expect_json or {})
        self.expect_headers = dict(expect_headers or {})
        self.body_contains = body_contains
        self.timeout = float(timeout)
        if self.timeout <= 0:
            raise ProbeConfigError("timeout must be greater than 0")
        self.clock = clock

    # -- description -------------------------------------------------------

    @property
    def target(self):
        if self.unix_socket:
            return "unix socket %s" % self.unix_socket
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (host, self.port)

    def describe(self):
        if self.unix_socket:
            return "%s (via unix socket %s)" % (self.url, self.unix_socket)
        return self.url

    # -- one attempt -------------------------------------------------------

    def _connection(self):
        if self.unix_socket:
            return UnixHTTPConnection(self.unix_socket, timeout=self.timeout)
        if self.scheme == "https":
            return TLSHTTPConnection(
                self.host, self.port, timeout=self.timeout, context=self.ssl_context, server_name=self.server_name
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def once(self):
        """Run one attempt on a new connection and return a :class:`ProbeResult`."""
        start = self.clock()
        conn = self._connection()
        phase = "connect"

        def remaining():
            left = self.timeout - (self.clock() - start)
            if left <= 0:
                raise socket.timeout("per-attempt timeout reached")
            return left

        try:
            try:
                conn.connect()
            except BaseException:
                if getattr(conn, "handshaking", False):
                    phase = "tls"
                raise
            sock = conn.sock
            phase = "request"
            sock.settimeout(remaining())
            conn.request(self.method, self.path, body=self.body, headers=self.headers)
            phase = "response"
            sock.settimeout(remaining())
            response = conn.getresponse()
            chunks = []
            while True:
                # A fully read response closes itself (and, if the server
                # closes the connection, the socket with it).
                if not response.isclosed():
                    sock.settimeout(remaining())
                chunk = response.read(_READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
            latency_ms = round((self.clock() - start) * 1000.0, 2)
        except (OSError, http.client.HTTPException) as exc:
            return ProbeResult(False, reason=self._error_reason(exc, phase))
        finally:
            conn.close()

        raw = b"".join(chunks)
        headers = {}
        for name, value in response.getheaders():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        charset = response.msg.get_content_charset()
        text = _decode(raw, charset)
        try:
            document = json.loads(raw) if raw.strip() else None
            json_error = None if raw.strip() else "empty body"
        except ValueError as exc:
            document, json_error = None, str(exc)

        reason = self._evaluate(response, text, document, json_error)
        return ProbeResult(
            reason is None,
            reason=reason,
            status=response.status,
            headers=headers,
            body=_decode(raw[:BODY_LIMIT], charset),
            json_body=document,
            latency_ms=latency_ms,
        )

    def _evaluate(self, response, text, document, json_error):
        """Return the first unmet expectation as a reason string, or None."""
        if response.status not in self.status_code:
            return "status %d not in %s" % (response.status, self.status_code)
        for name, expected in self.expect_headers.items():
            expected = str(expected)
            values = response.msg.get_all(name) or []
            if not values:
                return "expected header %s=%r, header missing" % (name, expected)
            if expected not in values and expected != ", ".join(values):
                return "expected header %s=%r, got %r" % (name, expected, ", ".join(values))
        if self.body_contains is not None and self.body_contains not in text:
            return "body does not contain %r" % self.body_contains
        if self.expect_json:
            if json_error is not None:
                return "response body is not valid JSON (%s): %r" % (json_error, text[:200])
            for key, expected in self.expect_json.items():
                actual = lookup_path(document, key)
                if actual is _MISSING:
                    return "expected %s=%r in JSON, key not found" % (key, json_text(expected))
                if json_text(actual) != json_text(expected):
                    return "expected %s=%r in JSON, got %r" % (key, json_text(expected), json_text(actual))
        return None

    def _error_reason(self, exc, phase):
        target = self.target
        if isinstance(exc, socket.timeout):
            where = {
                "connect": "connecting to %s" % target,
                "tls": "during the TLS handshake with %s" % target,
            }.get(phase, "waiting for the response from %s" % target)
            return "timed out after %gs %s" % (self.timeout, where)
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = exc.verify_message or exc.reason or str(exc)
            return "TLS certificate verify failed: %s (server name %r on %s)" % (detail, self.server_name, target)
        if isinstance(exc, ssl.SSLError):
            return "TLS error with %s: %s" % (target, exc.reason or exc)
        if isinstance(exc, ConnectionRefusedError):
            return "connection refused on %s" % target
        if phase == "connect" and self.unix_socket and isinstance(exc, FileNotFoundError):
            return "connection refused on %s: socket file does not exist" % target
        if isinstance(exc, PermissionError):
            return "permission denied on %s" % target
        if isinstance(exc, socket.gaierror):
            return "cannot resolve host %r: %s" % (self.host, exc.strerror or exc)
        if isinstance(exc, http.client.RemoteDisconnected):
            return "connection closed by %s without a response" % target
        if isinstance(exc, http.client.IncompleteRead):
            return "incomplete response body from %s (%d bytes read)" % (target, len(exc.partial))
        if isinstance(exc, http.client.HTTPException):
            return "invalid HTTP response from %s: %s" % (
                target,
                type(exc).__name__ + (": %s" % exc if str(exc) else ""),
            )
        if isinstance(exc, (ConnectionResetError, BrokenPipeError)) or getattr(exc, "errno", None) == errno.ECONNRESET:
            return "connection reset by %s" % target
        return "connection error on %s: %s" % (target, getattr(exc, "strerror", None) or exc)


class CheckResult:
    """Outcome of the retry loop."""

    def __init__(self, ok, attempts, elapsed, last, successes, reason=None):
        self.ok = ok
        self.attempts = attempts
        self.elapsed = elapsed
        self.last = last
        self.successes = successes
        self.reason = reason

    @property
    def status(self):
        return self.last.status if self.last is not None else None

    @property
    def latencies_ms(self):
        return [result.latency_ms for result in self.successes]

    def __repr__(self):
        return "CheckResult(ok=%r, attempts=%r, elapsed=%r, reason=%r)" % (
            self.ok,
            self.attempts,
            self.elapsed,
            self.reason,
        )


def check(probe, deadline=30.0, interval=0.5, consecutive=1, clock=time.monotonic, sleep=time.sleep):
    """Call ``probe()`` until ``consecutive`` attempts in a row succeed.

    ``probe`` is a callable returning a :class:`ProbeResult` (e.g.
    ``HttpProbe(...).once``). Attempts are spaced by ``interval`` seconds; after
    an attempt ends at or past ``deadline`` seconds from the start, the loop
    gives up. ``deadline=0`` means exactly one attempt. The last pause is
    shortened so that one attempt happens right at the deadline.
    """
    if consecutive < 1:
        raise ProbeConfigError("consecutive must be at least 1")
    if deadline < 0 or interval < 0:
        raise ProbeConfigError("deadline and interval must not be negative")
    start = clock()
    attempts = 0
    streak = []
    last_failure = None
    result = None
    while True:
        attempts += 1
        result = probe()
        if result.ok:
            streak.append(result)
            if len(streak) >= consecutive:
                return CheckResult(True, attempts, clock() - start, result, streak)
        else:
            streak = []
            last_failure = result
        left = deadline - (clock() - start)
        if left <= 0:
            break
        sleep(min(interval, left))

    if result.ok:
        reason = "only %d of %d required consecutive successful attempts before the deadline" % (
            len(streak),
            consecutive,
        )
        if last_failure is not None:
            reason += " (last failure: %s)" % last_failure.reason
    else:
        reason = result.reason
    return CheckResult(False, attempts, clock() - start, result, streak, reason=reason)


def failure_message(probe, result):
    """Human-readable summary of a failed :func:`check`."""
    return "%s did not pass the health check after %d attempt%s in %.2fs: %s" % (
        probe.describe(),
        result.attempts,
        "" if result.attempts == 1 else "s",
        result.elapsed,
        result.reason,
    )
