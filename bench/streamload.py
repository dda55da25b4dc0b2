# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Long-lived connections held through rollouts: WebSocket and event-stream clients.

Beside bench/loadgen.py's HTTP requests, this keeps connections open the way
browsers do, against the FastAPI example's ``/ws`` (an echo that first sends
``{"release", "version", "host"}``) and ``/events`` (server-sent events, each
naming the release and host that sent it):

* each WebSocket client connects, reads the hello, then sends a message every
  ``--ping-every`` seconds and waits for its echo;
* each event-stream client reads events until the stream ends.

When the server closes a connection (a WebSocket close frame, or the last
chunk of an event stream) the client notes the code, the time and the host and
release that served it, and connects again, as browsers' EventSource and most
WebSocket clients do. A connection that breaks without a close (a reset, an
end of stream without its last chunk, a missing echo) is *abnormal*: it is
noted the same way (WebSocket code 1006) and the client connects again.

The run stops when ``--stop-file`` appears (or after ``--duration`` seconds);
the clients then close their connections themselves (code 1000), which is not
counted. The result is one JSON document: per kind, the connections opened,
the server's closes by code with their times and hosts, the abnormal ends,
and the release and host of every reconnection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import time

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ABNORMAL = 1006


class Tally:
    """What one kind of client saw."""

    def __init__(self, clients):
        self.clients = clients
        self.opened = 0
        self.closes = []  # server closes: {"code", "at", "host", "release", "age"}
        self.abnormal = []  # {"at", "host", "release", "error"}
        self.reconnected = []  # {"host", "release"} of each connection after the first
        self.last = {}  # client number: {"host", "release"} of its last connection
        self.failed_connects = 0

    def as_dict(self):
        codes = {}
        for close in self.closes:
            codes[str(close["code"])] = codes.get(str(close["code"]), 0) + 1
        return {"clients": self.clients, "opened": self.opened, "close_codes": codes, "closes": self.closes,
                "abnormal": self.abnormal, "reconnected": self.reconnected, "failed_connects": self.failed_connects,
                "last": [self.last[number] for number in sorted(self.last)]}

    def served_by(self, number, served, first):
        """Note a new connection of client ``number`` and who serves it."""
        self.opened += 1
        who = {"host": served.get("host"), "release": served.get("release")}
        self.last[number] = who
        if not first:
            self.reconnected.append(who)


class Streams:
    def __init__(self, args):
        self.args = args
        self.stopping = asyncio.Event()
        self.context = ssl.create_default_context(cafile=args.ca_file)
        self.websockets = Tally(args.websockets)
        self.events = Tally(args.event_streams)

    async def watch_stop(self):
        """Stop at the stop file or the duration; meanwhile write the connections opened to the progress file."""
        deadline = time.monotonic() + self.args.duration
        while time.monotonic() < deadline and not os.path.exists(self.args.stop_file or ""):
            if self.args.progress_file:
                with open(self.args.progress_file + ".new", "w", encoding="utf-8") as handle:
                    handle.write("%d %d\n" % (self.websockets.opened, self.events.opened))
                os.replace(self.args.progress_file + ".new", self.args.progress_file)
            await asyncio.sleep(0.2)
        self.stopping.set()

    def ended(self, tally, served, started, code=None, error=None):
        """Note a connection the server ended: cleanly with ``code``, or abnormally with ``error``."""
        if self.stopping.is_set() and code in (None, 1000):
            return
        entry = {"at": round(time.time(), 3), "host": served.get("host"), "release": served.get("release"),
                 "age": round(time.monotonic() - started, 2)}
        if error is None:
            tally.closes.append(dict(entry, code=code))
        else:
            tally.abnormal.append(dict(entry, error=error[:200]))

    async def pause_before_retry(self):
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass

    async def websocket_client(self, number):
        first = True
        while not self.stopping.is_set():
            served, started = {}, time.monotonic()
            try:
                async with connect("wss://%s%s" % (self.args.server_name, self.args.ws_path), ssl=self.context,
                                   host=self.args.host, port=self.args.port, server_hostname=self.args.server_name,
                                   open_timeout=15, close_timeout=5, ping_interval=None) as client:
                    served = json.loads(await asyncio.wait_for(client.recv(), timeout=15))
                    self.websockets.served_by(number, served, first)
                    first = False
                    while not self.stopping.is_set():
                        message = "ping %d" % number
                        await client.send(message)
                        echo = await asyncio.wait_for(client.recv(), timeout=15)
                        if echo != message:
                            raise ValueError("echo %r for %r" % (echo[:40], message))
                        try:
                            await asyncio.wait_for(self.stopping.wait(), timeout=self.args.ping_every)
                        except asyncio.TimeoutError:
                            pass
            except ConnectionClosed as closed:
                frame = closed.rcvd
                if frame is None:
                    self.ended(self.websockets, served, started, error="closed without a close frame: %s" % closed)
                else:
                    self.ended(self.websockets, served, started, code=frame.code)
            except (OSError, asyncio.TimeoutError, InvalidHandshake, ValueError) as exc:
                if not served:
                    self.websockets.failed_connects += 1
                self.ended(self.websockets, served, started, error="%s: %s" % (type(exc).__name__, exc))
                await self.pause_before_retry()

    async def event_client(self, number):
        first = True
        while not self.stopping.is_set():
            served, started, writer = {}, time.monotonic(), None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    self.args.host, self.args.port, ssl=self.context, server_hostname=self.args.server_name),
                    timeout=15)
                writer.write(("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n"
                              % (self.args.events_path, self.args.server_name)).encode())
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=15)).decode("latin-1")
                if not head.startswith("HTTP/1.1 200") or "chunked" not in head.lower():
                    raise ValueError("not a chunked 200 answer: %r" % head[:120])
                ended_cleanly = await self.read_events(reader, number, served, first)
                first = False
                if ended_cleanly:
                    self.ended(self.events, served, started, code="end")
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                if self.stopping.is_set():
                    break
                if not served:
                    self.events.failed_connects += 1
                self.ended(self.events, served, started, error="%s: %s" % (type(exc).__name__, exc))
                await self.pause_before_retry()
            finally:
                if writer is not None:
                    writer.close()

    async def read_events(self, reader, number, served, first):
        """Read chunks until the last one (True) or the stop (False); note the first event's sender."""
        while True:
            read = asyncio.ensure_future(reader.readline())
            stop = asyncio.ensure_future(self.stopping.wait())
            done, _pending = await asyncio.wait({read, stop}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if read not in done:
                read.cancel()
                stop.cancel()
                if stop in done:
                    return False
                raise asyncio.TimeoutError("no event for 30 s")
            stop.cancel()
            size_line = read.result()
            if not size_line:
                raise asyncio.IncompleteReadError(b"", None)
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout=15)
            if size == 0:
                return True
            for line in chunk.decode("utf-8", "replace").splitlines():
                if line.startswith("data: ") and not served:
                    served.update(json.loads(line[6:]))
                    self.events.served_by(number, served, first)

    async def run(self):
        watcher = asyncio.ensure_future(self.watch_stop())
        clients = [self.websocket_client(number) for number in range(self.args.websockets)]
        clients += [self.event_client(number) for number in range(self.args.event_streams)]
        await asyncio.gather(*clients)
        await watcher
        return {"websockets": self.websockets.as_dict(), "events": self.events.as_dict()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-name", required=True, help="the site's name: SNI and Host header")
    parser.add_argument("--ca-file", required=True)
    parser.add_argument("--websockets", type=int, default=200)
    parser.add_argument("--event-streams", type=int, default=20)
    parser.add_argument("--ws-path", default="/ws")
    parser.add_argument("--events-path", default="/events?count=3600&every=1")
    parser.add_argument("--ping-every", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--stop-file")
    parser.add_argument("--progress-file", help="rewritten while running: WebSockets and event streams opened")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    result = asyncio.run(Streams(args).run())
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
