#!/usr/bin/env bash
# Run a command at the lowest CPU and I/O priority, in a session of its own:
#
#   setsid --wait scripts/low-priority.sh <sid file> <command>...
#
# Linux shares the CPUs between sessions first ("autogroups") and applies nice
# only within one; each container's services, and each command run on a host,
# are sessions of their own. Plain nice would yield only to processes of the
# caller's session: a session of its own at autogroup nice 19 yields to the
# hosts as well (nice 19 stays for a kernel without autogroups, where it is
# what counts). The session's id goes to <sid file>, so that the caller can
# stop all of it (pkill -s).
set -euo pipefail
echo $$ >"$1"
shift
echo 19 >/proc/self/autogroup 2>/dev/null || true
exec nice -n 19 ionice -c 2 -n 7 "$@"
