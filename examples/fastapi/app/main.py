# SPDX-License-Identifier: GPL-3.0-or-later
"""Example ASGI app deployed by pyfleet.deploy's demo and tests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
from pathlib import Path

from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

APP_VERSION = "v1"
HERE = Path(__file__).resolve().parent


def _release() -> dict:
    """Read the metadata the app role writes next to the code."""
    try:
        return json.loads((HERE / ".release.json").read_text())
    except (OSError, ValueError):
        return {}


RELEASE = _release()
app = FastAPI(title="pyfleet example", version=APP_VERSION)


@app.get("/")
async def index() -> dict:
    return {"app": "pyfleet-example", "version": APP_VERSION}


@app.get("/health")
async def health() -> dict:
    return {
        "status": "ok",
        "release": RELEASE.get("id", "unknown"),
        "version": APP_VERSION,
        "pid": os.getpid(),
    }


@app.get("/config")
async def config() -> dict:
    """The settings this worker reads from its environment: the variables named EXAMPLE_*.

    Only that prefix is shown, never a secret: it lets a user (and the tests)
    see which environment a worker runs with after a rollout or a rollback.
    """
    return {name: value for name, value in sorted(os.environ.items()) if name.startswith("EXAMPLE_")}


@app.get("/migrations")
async def migrations() -> dict:
    """The migrations manage.py applied to the app's database (app_migrate), read-only."""
    path = os.environ.get("EXAMPLE_DATABASE") or str(HERE.parent.parent / "shared" / "data" / "example.sqlite3")
    try:
        with sqlite3.connect("file:%s?mode=ro" % path, uri=True) as db:
            rows = db.execute("SELECT name, release FROM applied ORDER BY name").fetchall()
    except sqlite3.Error as error:
        return {"applied": [], "error": str(error)}
    return {"applied": [{"name": name, "release": release} for name, release in rows]}


@app.get("/slow")
async def slow(seconds: float = Query(1.0, ge=0, le=30)) -> dict:
    await asyncio.sleep(seconds)
    return {"slept": seconds, "version": APP_VERSION}


@app.get("/client")
async def client(request: Request) -> dict:
    """Show the peer as the app sees it, after proxy headers are applied."""
    return {
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "host": request.headers.get("host"),
    }


def _sender() -> dict:
    """Who answers a long-lived connection: the release, the version and the host."""
    return {"release": RELEASE.get("id", "unknown"), "version": APP_VERSION, "host": socket.gethostname()}


@app.websocket("/ws")
async def echo(client: WebSocket) -> None:
    """A WebSocket echo: {"release", "version", "host"} first, then every text message back."""
    await client.accept()
    await client.send_json(_sender())
    try:
        while True:
            await client.send_text(await client.receive_text())
    except WebSocketDisconnect:
        return


@app.get("/events")
async def events(count: int = Query(5, ge=1, le=3600), every: float = Query(1.0, ge=0.05, le=60)) -> StreamingResponse:
    """Server-sent events: `count` events `every` seconds apart, each naming the release and host that sent it."""

    async def stream():
        for number in range(count):
            if number:
                await asyncio.sleep(every)
            yield "id: %d\ndata: %s\n\n" % (number, json.dumps(dict(_sender(), n=number)))

    # X-Accel-Buffering: no tells nginx, on the app server and at the load balancer, to pass each event on at once.
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
