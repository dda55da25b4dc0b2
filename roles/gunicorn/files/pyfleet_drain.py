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
"""

from __future__ import annotations

import asyncio
import json
import os

from uvicorn.server import Server

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _BaseProtocol
except ImportError:  # httptools is optional; uvicorn falls back to h11 the same way
    from uvicorn.protocols.http.h11_impl import H11Protocol as _BaseProtocol


# Seconds an idle connection may still carry a request when the master stops.
STOP_IDLE_GRACE = 1.0
# Name of the response header that carries the release id (empty: none).
RELEASE_HEADER_ENV = "PYFLEET_RELEASE_HEADER"


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
        self._close_after_this_request()

    # h11 parses requests here.
    def handle_events(self):
        super().handle_events()
        self._close_after_this_request()

    def _close_if_idle(self):
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def shutdown(self):
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
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


class DrainingServer(Server):
    """Uvicorn server that marks itself draining and keeps the worker's heartbeat."""

    async def _heartbeat(self):
        while True:
            if self.config.callback_notify is not None:
                await self.config.callback_notify()
            await asyncio.sleep(1.0)

    pyfleet_workers = 1

    async def shutdown(self, sockets=None):
        self.server_state.pyfleet_draining = True
        if not replacement_generation_running(self.pyfleet_workers):
            self.server_state.pyfleet_idle_grace = STOP_IDLE_GRACE
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await super().shutdown(sockets=sockets)
        finally:
            heartbeat.cancel()
