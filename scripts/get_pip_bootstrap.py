# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for the get-pip.py that ansible-test downloads from its CI file host.

ansible-test bootstraps pip in each virtualenv it creates by running a cached
get-pip script (~/.ansible/test/cache/get_pip_<version>.py), which it fetches
from a host this project's machines cannot reach. This stand-in does the same
job with what every CPython has: ensurepip, then pip installs the requested
packages (for example pip==24.2) from the package index. Installed by
scripts/ansible-test.sh when the cache holds no script.
"""

import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)
