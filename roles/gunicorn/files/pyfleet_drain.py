# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
# Installed by the pyfleet.deploy.gunicorn role. Changes need a restart.
"""What pyfleet adds to Uvicorn, under Gunicorn (pyfleet_workers.py) and standalone
(pyfleet_uvicorn.py): a drain that never resets a pooled nginx connection, and
the release header.

Why the drain exists (measured, see the collection README): on SIGTERM, which
Gunicorn sends to every old worker on a HUP (and standalone Uvicorn to each
worker it replaces), Uvicorn closes each idle
keep-alive connection at once. nginx may have written a request on that pooled
connection a moment earlier. The kernel then answers with a reset (unread data
on close), nginx logs ``recv() failed (104: Connection reset by peer)`` or
``writev() failed (32: Broken pipe)``, and a client gets a 502 once nginx runs
out of retries. Connections the worker accepted just before it stopped are
lost the same way.

These workers change only how an old worker drains:

* an idle connection is not closed by the worker. The next request on it is
  served normally, with ``Connection: close``, so nginx drops it after the
  answer. If no request comes, the usual keep-alive timer closes it. nginx
  closes its idle upstream connections sooner (``keepalive_timeout`` of the
  upstream block is shorter than Gunicorn's ``keepalive``), so the close always
  comes from nginx's side and nothing is in flight when it happens;
* connections accepted while the worker stops are served the same way;
* the worker keeps its heartbeat while it drains, so the arbiter does not
  abort it, and ``graceful_timeout`` bounds the drain.

A HUP and a stop both send SIGTERM to the workers, but they need different
drains. After a HUP the new generation already accepts, so an old worker can
wait for nginx to close its idle connections. When the master stops (a
restart), nobody accepts until the next master runs: connections wait in the
systemd socket's backlog, so an old worker gives idle connections only
STOP_IDLE_GRACE seconds to carry a last request, then closes them. A close that
meets a request nginx just wrote on a pooled connection is retried by nginx on
a new connection, which the next master serves. Both masters start the new
generation before they TERM the old one, so a worker tells the two apart by
counting its master's children.

Long-lived connections, WebSockets and event streams (``text/event-stream``
responses), drain the same two ways:

* after a HUP, an old worker keeps them open for the stream drain
  (``PYFLEET_STREAM_DRAIN`` seconds, the role's ``gunicorn_stream_drain``),
  then closes each cleanly: a WebSocket with close code 1012 (service
  restart) and the closing handshake (the client's close frame is awaited
  before the socket closes), an event stream with the chunked response's
  last chunk. Clients
  reconnect to the new generation. Once an old worker holds nothing but such
  connections, it names itself ``drain:<count>`` (``/proc/<pid>/comm``), so
  the rollout's swap check (pyfleet.deploy.gunicorn_reload) need not wait out
  the drain, and reports the count;
* when the master stops, nobody would accept the reconnects until the next
  master runs, and every request would wait as long in the socket's backlog,
  so they close at once, the same clean way.

Other streamed responses (a download) are never cut: they finish, within
``graceful_timeout``, as before.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import weakref

from uvicorn.server import Server

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # httptools is optional; uvicorn falls back to h11 the same way
    from uvicorn.protocols.http.h11_impl import H11Protocol as _BaseProtocol


# Seconds an idle connection may still carry a request when the master stops.
STOP_IDLE_GRACE = 1.0
# Seconds a WebSocket's closing handshake may take before the worker closes the socket anyway.
CLOSE_HANDSHAKE_TIMEOUT = 5.0
# Name of the response header that carries the release id (empty: none).
RELEASE_HEADER_ENV = "PYFLEET_RELEASE_HEADER"
# Seconds an old worker keeps WebSockets and event streams open after a HUP.
STREAM_DRAIN_ENV = "PYFLEET_STREAM_DRAIN"
# What an old worker holding only long-lived connections calls itself (/proc/<pid>/comm).
DRAIN_NAME = "drain:%d"
EVENT_STREAM = b"text/event-stream"


def stream_drain(environ=None):
    """The stream drain in seconds, from ``PYFLEET_STREAM_DRAIN`` (0 when unset or not a number)."""
    try:
        return max(0.0, float((os.environ if environ is None else environ).get(STREAM_DRAIN_ENV, "0")))
    except ValueError:
        return 0.0


def is_event_stream(headers):
    """True when ASGI response ``headers`` declare ``text/event-stream``."""
    for name, value in headers or ():
        if name.lower() == b"content-type" and value.split(b";")[0].strip().lower() == EVENT_STREAM:
            return True
    return False


def name_process(name, comm="/proc/self/comm"):
    """Set this process's name as ps and /proc show it (best effort: False when it cannot)."""
    try:
        with open(comm, "w", encoding="ascii") as handle:
            handle.write(name[:15])
        return True
    except OSError:
        return False


def release_header(release_dir, environ=None):
    """``[(name, release id)]`` for the release in ``release_dir``, or ``[]`` when the header is off.

    The id comes from the release's ``.release.json``, else from the directory's
    name; ``release_dir`` may be the ``current`` symlink.
    """
    name = (os.environ if environ is None else environ).get(RELEASE_HEADER_ENV, "")
    if not name:
        return []
    release = os.path.basename(os.path.realpath(release_dir))
    try:
        with open(os.path.join(release_dir, ".release.json"), encoding="utf-8") as handle:
            release = str(json.load(handle).get("id") or release)
    except (OSError, ValueError, AttributeError):
        pass
    return [(name, release)]


def replacement_generation_running(workers, proc="/proc"):
    """True when the master has more children than one generation (a HUP is under way)."""
    master = os.getppid()
    children = 0
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat"), encoding="utf-8", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(master) and not is_helper(os.path.join(proc, entry)):
            children += 1
    return children > workers


def is_helper(proc_dir):
    """True for the resource tracker Python's multiprocessing starts beside Uvicorn's workers."""
    try:
        with open(os.path.join(proc_dir, "cmdline"), "rb") as handle:
            return b"multiprocessing.resource_tracker" in handle.read()
    except OSError:
        return False


class DrainingHttpProtocol(_BaseProtocol):
    """HTTP protocol whose graceful shutdown never closes a connection under a client."""

    _pyfleet_draining = False

    def _draining(self):
        return self._pyfleet_draining or getattr(self.server_state, "pyfleet_draining", False)

    def _close_after_this_request(self):
        if self._draining() and self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    # httptools calls this when a request's headers are parsed.
    def on_headers_complete(self):
        super().on_headers_complete()
        self._watch_response()
        self._close_after_this_request()

    # h11 parses requests here.
    def handle_events(self):
        super().handle_events()
        self._watch_response()
        self._close_after_this_request()

    def _watch_response(self):
        """Wrap the new request's ASGI send (before its task runs): note an event stream, and drop
        what the app sends after the drain ended the stream."""
        cycle = self.cycle
        if cycle is None or getattr(cycle, "pyfleet_send", None) is not None:
            return
        cycle.pyfleet_send, cycle.pyfleet_stream, cycle.pyfleet_ended = cycle.send, False, False

        async def send(message):
            if cycle.pyfleet_ended:
                return
            starts_stream = message["type"] == "http.response.start" and is_event_stream(message.get("headers"))
            if starts_stream:
                cycle.pyfleet_stream = True
            await cycle.pyfleet_send(message)
            if starts_stream and self._draining():
                # A stream that starts while the worker drains ends with the drain.
                self._end_stream_after_drain()

        cycle.send = send

    def is_stream(self):
        """True while this connection carries an event stream that has started."""
        cycle = self.cycle
        return (cycle is not None and getattr(cycle, "pyfleet_stream", False) and cycle.response_started
                and not cycle.response_complete)

    def _end_stream_after_drain(self):
        ends = getattr(self.server_state, "pyfleet_drain_ends", None)
        if ends is not None:
            self.loop.call_at(max(ends, self.loop.time()), self.end_stream)

    def end_stream(self):
        """End the event stream cleanly: its last chunk, then the connection closes (keep_alive is off)."""
        cycle = self.cycle
        if not self.is_stream() or cycle.pyfleet_ended:
            return
        cycle.pyfleet_ended = True
        cycle.keep_alive = False

        async def last_chunk():
            try:
                await cycle.pyfleet_send({"type": "http.response.body", "body": b"", "more_body": False})
            except RuntimeError:  # not chunked after all: nothing clean to send
                self.transport.close()

        self.loop.create_task(last_chunk())

    def _close_if_idle(self):
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self):
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            if self.is_stream():
                self._end_stream_after_drain()
            return
        # Idle: stay open for a last request; the keep-alive timer (or the
        # peer) closes it, or the stop grace when the master is stopping.
        self._pyfleet_draining = True
        grace = getattr(self.server_state, "pyfleet_idle_grace", None)
        if grace is not None:
            self.loop.call_later(grace, self._close_if_idle)
        elif self.timeout_keep_alive_task is None and not self.transport.is_closing():
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler)


def websocket_open(connection):
    """True when the WebSocket ``connection`` is open and this side has not started closing it.

    Only Uvicorn's sans-I/O implementations (``wsproto``, ``websockets-sansio``: what ``ws="auto"``,
    pyfleet's setting, picks) answer; the deprecated legacy ``websockets`` one never does.
    """
    return (getattr(connection, "handshake_complete", False) is True and not getattr(connection, "close_sent", True)
            and not connection.transport.is_closing())


def close_websocket(connection, code=1012):
    """Close a WebSocket with the closing handshake of RFC 6455, section 7: send the close frame, keep
    reading until the client's close frame arrives (or CLOSE_HANDSHAKE_TIMEOUT passes), then close.

    Uvicorn's own shutdown sends the close frame and closes the socket at once. A client message in
    flight then meets a closed socket: nginx's write fails (``Broken pipe``, ``Connection reset``) and
    it may drop the client's connection before it passes the close frame on, so the client sees an
    abnormal closure (1006). Closing the way the app itself would (``websocket.close``) waits for the
    client's answer; the app's ``receive`` gets the disconnect as with Uvicorn's shutdown.
    """
    if not websocket_open(connection):
        type(connection).shutdown(connection)  # mid-handshake, closing, or the legacy implementation: Uvicorn's way
        return
    if getattr(connection, "close_timeout", None) is not None:
        connection.close_timeout = min(connection.close_timeout, CLOSE_HANDSHAKE_TIMEOUT)

    async def close():
        try:
            await connection.send({"type": "websocket.close", "code": code, "reason": ""})
        except Exception:  # pylint: disable=broad-exception-caught  # gone meanwhile: nothing left to close
            connection.transport.close()

    asyncio.get_running_loop().create_task(close())


def _is_long_lived(connection):
    """A WebSocket (any protocol other than the HTTP one), or an HTTP connection carrying an event stream."""
    return connection.is_stream() if isinstance(connection, DrainingHttpProtocol) else True


class DrainingServer(Server):
    """Uvicorn server that marks itself draining, keeps the worker's heartbeat and drains long-lived
    connections (see the module's docstring)."""

    pyfleet_workers = 1
    pyfleet_stream_drain = 0.0

    async def _heartbeat(self):
        while True:
            if self.config.callback_notify is not None:
                await self.config.callback_notify()
            await asyncio.sleep(1.0)

    def _drain_later(self, connection):
        """Shut ``connection`` down the way its kind drains: an HTTP connection now (its protocol waits
        for what it carries), a WebSocket with the closing handshake (close_websocket) when the drain ends."""
        if isinstance(connection, DrainingHttpProtocol):
            connection.shutdown()
        else:
            loop = asyncio.get_running_loop()
            loop.call_at(max(self.server_state.pyfleet_drain_ends, loop.time()), close_websocket, connection)

    async def _watch_drain(self, handled):
        """Connections that appear while the worker drains (accepted just before it stopped listening, or
        upgraded to a WebSocket since) drain too; once only long-lived ones remain, say so, with their
        count, in the process name."""
        named = None
        while True:
            connections = list(self.server_state.connections)
            for connection in connections:
                if connection not in handled:
                    handled.add(connection)
                    self._drain_later(connection)
            if connections and all(_is_long_lived(c) for c in connections) and named != len(connections):
                named = len(connections) if name_process(DRAIN_NAME % len(connections)) else None
            await asyncio.sleep(0.2)

    async def shutdown(self, sockets=None):
        self.server_state.pyfleet_draining = True
        drain = 0.0
        if replacement_generation_running(self.pyfleet_workers):
            drain = self.pyfleet_stream_drain
        else:
            self.server_state.pyfleet_idle_grace = STOP_IDLE_GRACE
        self.server_state.pyfleet_drain_ends = asyncio.get_running_loop().time() + drain
        # Uvicorn's shutdown calls each connection's shutdown at once; a WebSocket's waits for the drain.
        handled = weakref.WeakSet(self.server_state.connections)
        for connection in handled:
            if not isinstance(connection, DrainingHttpProtocol):
                connection.shutdown = functools.partial(self._drain_later, connection)
        helpers = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._watch_drain(handled))]
        try:
            await super().shutdown(sockets=sockets)
        finally:
            for helper in helpers:
                helper.cancel()
