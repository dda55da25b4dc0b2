#!/usr/bin/env bash
# Run make targets side by side, each with its output in <logs>/<target>.log.
# A line is printed as each one ends; then each log in the order given, and
# the time each took in <logs>/phases.txt. The first failure stops the others
# (their process groups are killed) and the script exits 1, naming it.
#
#   scripts/run-phases.sh <logs dir> <target>...
# The targets must not share state: lint, unit, ansible-test and build only
# read the tree (ansible-test works on a copy outside it), and each Molecule
# scenario has its own hosts, published ports and ephemeral directory.
set -uo pipefail
set -m # each target in a process group of its own, so that a failure can stop all of it
logs=$1
shift
mkdir -p "$logs"
declare -A pids starts names
for target in "$@"; do
  rm -f "$logs/$target.rc"
  starts[$target]=$(date +%s)
  { make --no-print-directory "$target" >"$logs/$target.log" 2>&1; echo "$? $(date +%s)" >"$logs/$target.rc"; } &
  pids[$target]=$!
  names[$!]=$target
done

failed=()
running=$#
while ((running > 0)); do
  wait -n -p done_pid
  ((running--))
  target=${names[$done_pid]}
  if [[ -e "$logs/$target.rc" ]]; then
    read -r rc end <"$logs/$target.rc"
  else
    rc=stopped end=$(date +%s)
  fi
  echo "=== make $target ended (exit $rc) after $((end - ${starts[$target]})) s"
  echo "  $target: $((end - ${starts[$target]})) s (side by side)" >>"$logs/phases.txt"
  if [[ $rc != 0 ]]; then
    [[ $rc == stopped ]] || failed+=("$target")
    for other in "$@"; do
      [[ -e "$logs/$other.rc" ]] || kill -TERM -- "-${pids[$other]}" 2>/dev/null
    done
  fi
done

for target in "$@"; do
  echo "=== make $target (log: $logs/$target.log)"
  cat "$logs/$target.log"
done
if ((${#failed[@]})); then
  echo "=== failed: ${failed[*]}; the others were stopped (logs in $logs)" >&2
  exit 1
fi
