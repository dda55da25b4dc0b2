# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
# Installed by the pyfleet.deploy.gunicorn role. Changes need a restart.
"""``uvicorn_worker.UvicornWorker`` for Gunicorn with pyfleet's drain and release
header (see pyfleet_drain.py for why)."""

from __future__ import annotations

import os
import sys

from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker as _BaseWorker

from pyfleet_drain import DrainingHttpProtocol, DrainingServer, release_header, stream_drain


class UvicornWorker(_BaseWorker):
    """``uvicorn_worker.UvicornWorker`` with the draining protocol and server."""

    CONFIG_KWARGS = {"loop": "auto", "http": DrainingHttpProtocol}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Bound the drain: in-flight requests and idle connections get this long.
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout

    async def _serve(self):
        self.config.app = self.wsgi
        # A HUP re-applies chdir before the new workers fork, so cfg.chdir (the
        # `current` link) leads to the release this worker imported.
        self.config.headers = [*self.config.headers, *release_header(self.cfg.chdir or os.getcwd())]
        server = DrainingServer(config=self.config)
        server.pyfleet_workers = self.cfg.workers
        server.pyfleet_stream_drain = stream_drain()
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
