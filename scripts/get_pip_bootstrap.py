# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for the get-pip.py that ansible-test downloads from its CI file host.

ansible-test bootstraps pip in each virtualenv it creates by running a cached
get-pip script (~/.ansible/test/cache/get_pip_<version>.py), which it fetches
from a host this project's machines cannot reach. This stand-in does the same
job: it installs the requested packages (for example pip==24.2) from the
package index into the interpreter that runs it. With the tool venv's pinned
uv on PATH (every make target has it) uv installs them, in a fraction of a
second; without it, ensurepip, then that pip, as get-pip does. Either way the
virtualenv ends with the pip ansible-test asked for, which then installs the
test's requirements itself. scripts/ansible-test.sh installs it in that cache
on every run, so an older copy never stays.
"""

import shutil
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
packages = [arg for arg in args if not arg.startswith("-")]
uv = shutil.which("uv")
if uv:
    # --system-certs: the machine's trust store, as pip uses it (ansible-test
    # passes no SSL_CERT_FILE down here, and an egress proxy's CA is only there).
    subprocess.check_call([uv, "pip", "install", "--quiet", "--no-config", "--system-certs", "--python", sys.executable]
                          + packages)
else:
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
