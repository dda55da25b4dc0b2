# SPDX-License-Identifier: GPL-3.0-or-later
"""Example WSGI app (Flask) deployed by pyfleet.deploy's wsgi scenario."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flask import Flask, request

APP_VERSION = "v1"
HERE = Path(__file__).resolve().parent


def _release() -> dict:
    """Read the metadata the app role writes next to the code."""
    try:
        return json.loads((HERE / ".release.json").read_text())
    except (OSError, ValueError):
        return {}


RELEASE = _release()
app = Flask(__name__)


@app.get("/")
def index():
    return {"app": "pyfleet-flask-example", "version": APP_VERSION}


@app.get("/health")
def health():
    return {"status": "ok", "release": RELEASE.get("id", "unknown"), "version": APP_VERSION, "pid": os.getpid()}


@app.get("/slow")
def slow():
    seconds = min(max(float(request.args.get("seconds", 1.0)), 0.0), 30.0)
    time.sleep(seconds)
    return {"slept": seconds, "version": APP_VERSION}


@app.get("/client")
def client():
    """Show the peer as the app sees it, after proxy headers are applied."""
    return {"client": request.remote_addr, "scheme": request.scheme, "host": request.host}
