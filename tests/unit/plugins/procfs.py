# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared by the tests that fake /proc for gunicorn_proc and gunicorn_reload."""

from __future__ import annotations


def stat_line(pid, comm, state, ppid, starttime):
    """A /proc/<pid>/stat line as Linux 6.x writes it (52 fields)."""
    return (
        "%d (%s) %s %d %d %d 0 -1 4194560 2915 0 0 0 31 7 0 0 20 0 1 0 %d "
        "118263808 9871 18446744073709551615 94113 94114 140726 0 0 0 0 16781312 "
        "16386 0 0 0 17 1 0 0 0 0 0 94115 94116 94117 140727 140728 140728 140729 0\n"
        % (pid, comm, state, ppid, ppid, ppid, starttime)
    )
