# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
# Installed by the pyfleet.deploy.gunicorn role. Standard library only, so that
# gunicorn.conf.py can import it for any worker class.
"""JSON log lines for Gunicorn and Uvicorn."""

from __future__ import annotations

import json
import logging
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for the journal and log shippers."""

    def format(self, record):
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + ".%03dZ" % record.msecs,
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            client, method, path, version, status = args
            entry.update(client=client, method=method, path=path, http_version=version, status=status)
        elif record.name == "gunicorn.access" and isinstance(args, dict):
            entry.update(client=args.get("h"), method=args.get("m"), path=args.get("U"),
                         query=args.get("q"), status=args.get("s"),
                         bytes=args.get("B"), duration_us=args.get("D"))
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def log_config(loggers, level="info"):
    """A logging.config dict that writes JSON lines: access loggers to stdout, the rest to stderr."""
    handlers = {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
    }
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": handlers,
        "loggers": {},
        "root": {"level": "WARNING", "handlers": ["error_console"]},
    }
    for name in loggers:
        access = name.endswith(".access")
        config["loggers"][name] = {
            "level": "INFO" if access else level.upper(),
            "handlers": ["console" if access else "error_console"],
            "propagate": False,
        }
    return config
