# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Apply a release's environment file to the server's master process.

systemd reads ``.pyfleet/env`` (EnvironmentFile=) only when the service
starts. The server config calls ``apply`` each time it is loaded, that is at
start and on every HUP, with the env file of the release ``current`` points to
then: workers forked afterwards see the new values, and a variable the new
file no longer has is removed. So an environment change goes live with a HUP,
like a code change.

The file is the one the app role writes: ``NAME="value"`` lines, with
backslash and double quote escaped by a backslash.
"""

from __future__ import annotations

import os
import re

APPLIED = "PYFLEET_ENV_KEYS"  # the names the last apply set, so that the next can remove the ones dropped


def read(path):
    """The variables of an env file, as a dict."""
    found = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            name, value = line.split("=", 1)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            found[name.strip()] = value
    return found


def apply(path, environ=None):
    """Make ``environ`` (this process's by default) hold exactly the file's variables among those applied;
    return their names."""
    environ = os.environ if environ is None else environ
    wanted = read(path)
    for name in environ.get(APPLIED, "").split(","):
        if name and name not in wanted:
            environ.pop(name, None)
    environ.update(wanted)
    environ[APPLIED] = ",".join(sorted(wanted))
    return sorted(wanted)
