# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Print, as JSON, what selects wheels for this interpreter on this host.

Run by the pyfleet.deploy.app role with the interpreter that builds the
virtualenvs (app_python); the controller's pyfleet.deploy.wheelhouse module
reads the output. Standard library only: the host may have nothing else.
"""

import json
import os
import platform
import sys
import sysconfig

# manylinux names from before PEP 600, with the glibc minor version they mean.
LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
LEGACY_ARCHES = {17: ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"),
                 12: ("x86_64", "i686"), 5: ("x86_64", "i686")}


def version(info):
    text = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        text += info.releaselevel[0] + str(info.serial)
    return text


def platforms(machine):
    """Platform tags this host accepts, newest glibc first."""
    libc = (os.confstr("CS_GNU_LIBC_VERSION") or "") if hasattr(os, "confstr") else ""
    name, number = (libc.split(" ", 1) + [""])[:2]
    if name != "glibc" or "." not in number:
        return ["linux_" + machine]
    major, minor = (int(part) for part in number.split(".")[:2])
    tags = []
    for glibc_minor in range(minor, 4, -1):
        tags.append("manylinux_%d_%d_%s" % (major, glibc_minor, machine))
        if machine in LEGACY_ARCHES.get(glibc_minor, ()):
            tags.append("%s_%s" % (LEGACY[glibc_minor], machine))
    return tags


def main():
    machine = platform.machine()
    implementation = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
    nodot = "%d%d" % sys.version_info[:2]
    abi = (sysconfig.get_config_var("SOABI") or "").split("-")[1:2]
    environment = {
        "implementation_name": sys.implementation.name,
        "implementation_version": version(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": machine,
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": "%d.%d" % sys.version_info[:2],
        "sys_platform": sys.platform,
    }
    print(json.dumps({
        "python_version": "%d.%d" % sys.version_info[:2],
        "implementation": implementation,
        "abi": implementation + nodot + getattr(sys, "abiflags", "") if implementation == "cp" or not abi else abi[0],
        "platforms": platforms(machine),
        "environment": environment,
    }))


if __name__ == "__main__":
    main()
