# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
# Installed by the pyfleet.deploy.gunicorn role (gunicorn_server: uvicorn).
"""Standalone ``uvicorn --workers`` under systemd, as pyfleet runs it.

    python pyfleet_uvicorn.py /srv/<app>/current/.pyfleet/uvicorn.json            serve
    python pyfleet_uvicorn.py --check /srv/<app>/releases/<id>/.pyfleet/uvicorn.json   import the app and exit

It is Uvicorn's own process supervisor (``uvicorn.supervisors.Multiprocess``),
with what a rolling deploy needs around it:

* the listening socket comes from systemd (``<app>.socket``, fd 3), so a
  restart queues connections instead of refusing them;
* systemd hears ``READY=1`` once every worker serves (``Type=notify``);
* SIGHUP re-reads the JSON configuration and the environment file beside it
  (pyfleet_env), from the release ``current`` points to then, and replaces the workers one by one,
  each new one serving before the old one is told to stop, as Uvicorn does;
  the old ones then drain side by side rather than one after the other. A new
  worker that cannot start aborts the replacement and the old workers keep
  serving, so a broken release is never an outage;
* each worker enters the release ``current`` points to *when it starts* (its
  working directory and import path), so a HUP after the link switched
  serves the new code. Uvicorn alone would import from the directory the
  master started in;
* workers drain with pyfleet_drain's protocol and send the release header;
* logs are JSON lines, as under Gunicorn.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from uvicorn.config import Config
from uvicorn.supervisors import multiprocess

import pyfleet_env
from pyfleet_drain import DrainingHttpProtocol, DrainingServer, release_header
from pyfleet_logging import log_config

SD_LISTEN_FDS_START = 3


def load_settings(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def make_config(settings):
    """A uvicorn Config from the JSON settings the role renders."""
    app = settings["app"]
    factory = app.endswith("()")
    config = Config(
        app[:-2] if factory else app,
        factory=factory,
        http=DrainingHttpProtocol,
        workers=settings["workers"],
        timeout_keep_alive=settings["timeout_keep_alive"],
        timeout_graceful_shutdown=settings["timeout_graceful_shutdown"],
        timeout_worker_healthcheck=settings["timeout_worker_healthcheck"],
        limit_max_requests=settings.get("limit_max_requests") or None,
        limit_max_requests_jitter=settings.get("limit_max_requests_jitter", 0),
        backlog=settings.get("backlog", 2048),
        proxy_headers=True,
        forwarded_allow_ips=settings.get("forwarded_allow_ips", "127.0.0.1"),
        server_header=False,
        log_level=settings.get("log_level", "info"),
        access_log=settings.get("access_log", True),
        log_config=log_config(["uvicorn", "uvicorn.error", "uvicorn.access"], settings.get("log_level", "info")),
    )
    # Read by DrainingProcess in each worker; pickled with the config.
    config.pyfleet_app_dir = settings["app_dir"]
    config.pyfleet_release_header = settings.get("release_header", "")
    config.pyfleet_stream_drain = float(settings.get("stream_drain", 0))
    return config


def enter_release(app_dir):
    """Work from, and import from, the release ``app_dir`` (the ``current`` link) points to now."""
    os.chdir(app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)


class DrainingProcess(multiprocess.Process):
    """A Uvicorn worker that enters the current release and drains safely."""

    @property
    def server(self):
        if self._server is None:
            server = DrainingServer(config=self.config)
            server.pyfleet_workers = self.config.workers
            server.pyfleet_stream_drain = self.config.pyfleet_stream_drain
            self._server = server
        return self._server

    def target(self, sockets=None):  # runs in the worker
        enter_release(self.config.pyfleet_app_dir)
        environ = {"PYFLEET_RELEASE_HEADER": self.config.pyfleet_release_header}
        self.config.headers = [*self.config.headers, *release_header(self.config.pyfleet_app_dir, environ)]
        super().target(sockets)


class Supervisor(multiprocess.Multiprocess):
    """Uvicorn's supervisor, with systemd notification and a HUP that re-reads the configuration."""

    def __init__(self, config, sockets, settings_path):
        super().__init__(config, sockets)
        self.settings_path = settings_path

    def init_processes(self):
        super().init_processes()
        for process in self.processes:
            if not process.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                return
        notify("READY=1\nSTATUS=%d workers serving" % len(self.processes))

    def restart_all(self):
        """Replace every worker, each new one serving before its predecessor stops.

        Unlike Uvicorn's own version, an old worker is not waited for before
        the next replacement starts: old workers drain (up to nginx's upstream
        keep-alive timeout) side by side, so a HUP takes one drain, not one per
        worker. A replacement that does not get ready stops the HUP there; the
        remaining old workers keep serving.
        """
        retired = []
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                break
            new = multiprocess.Process(self.config, self.sockets)
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    multiprocess.logger.error(
                        "New worker [%s] did not get ready; keeping worker [%s] and the rest, HUP aborted.",
                        new.pid, old.pid)
                break
            old.terminate()
            retired.append(old)
            self.processes[index] = new
        for old in retired:
            old.join()

    def handle_hup(self):
        try:
            settings = load_settings(self.settings_path)
            apply_env(self.settings_path)
            self.config = make_config(settings)
        except (OSError, ValueError, KeyError) as exc:
            multiprocess.logger.error("Keeping the running configuration: cannot read %s: %s", self.settings_path, exc)
        super().handle_hup()
        # Follow a changed worker count, as Gunicorn does on HUP.
        while len(self.processes) < self.config.workers:
            self.handle_ttin()
        while len(self.processes) > self.config.workers:
            self.handle_ttou()
        notify("READY=1\nSTATUS=%d workers serving" % len(self.processes))


def apply_env(settings_path):
    """The release's env file, beside its uvicorn.json, into this supervisor's environment (see pyfleet_env)."""
    pyfleet_env.apply(os.path.join(os.path.dirname(os.path.abspath(settings_path)), "env"))


def notify(message):
    """Send ``message`` to systemd's notification socket, if there is one."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(message.encode())


def systemd_socket():
    """The listening socket systemd passed (``<app>.socket``)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        raise SystemExit("pyfleet_uvicorn: no socket from systemd; start it through its .socket unit")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def require_supported_uvicorn():
    """Stop with a clear message on a Uvicorn whose supervisor lacks what this file builds on."""
    if not hasattr(multiprocess.Process, "wait_until_ready"):
        import uvicorn

        raise SystemExit("pyfleet_uvicorn: gunicorn_server: uvicorn needs uvicorn 0.54 or later in the lockfile "
                         "(found %s)" % uvicorn.__version__)


def check(settings):
    """Import the app of the release in PYFLEET_CHDIR (or app_dir), as a worker would; exit 0 or 1."""
    require_supported_uvicorn()
    app_dir = os.environ.get("PYFLEET_CHDIR", settings["app_dir"])
    enter_release(app_dir)
    config = make_config(settings)
    config.load()  # logs the error and exits 1 when the app cannot be imported
    print("pyfleet_uvicorn: %s imports from %s" % (settings["app"], os.path.realpath(app_dir)))


def main(argv):
    if argv[:1] == ["--check"] and len(argv) == 2:
        check(load_settings(argv[1]))
        return
    if len(argv) != 1:
        raise SystemExit("usage: pyfleet_uvicorn.py [--check] SETTINGS.json")
    require_supported_uvicorn()
    settings_path = argv[0]
    apply_env(settings_path)
    config = make_config(load_settings(settings_path))
    config.configure_logging()
    sockets = [systemd_socket()]
    # Uvicorn's supervisor creates its workers by this module-level name.
    multiprocess.Process = DrainingProcess
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the supervisor installs its handlers
    Supervisor(config, sockets, settings_path).run()


if __name__ == "__main__":
    # Import this file under its module name so that the classes the workers
    # unpickle are found as pyfleet_uvicorn.*, not __main__.*.
    import pyfleet_uvicorn

    pyfleet_uvicorn.main(sys.argv[1:])
