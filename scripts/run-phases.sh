#!/usr/bin/env bash
# Run make targets side by side, each with its output in <logs>/<target>.log,
# then print each log in the order given and the time each took. Exits 1 if
# any failed, naming it.
#
#   scripts/run-phases.sh <logs dir> <target>...
# The targets must not share state: here lint, unit, ansible-test and build,
# which only read the tree (ansible-test works on a copy outside it).
set -uo pipefail
logs=$1
shift
mkdir -p "$logs"
declare -A pids starts
for target in "$@"; do
  starts[$target]=$(date +%s)
  { make --no-print-directory "$target" >"$logs/$target.log" 2>&1; echo "$? $(date +%s)" >"$logs/$target.rc"; } &
  pids[$target]=$!
done
failed=()
for target in "$@"; do
  wait "${pids[$target]}"
  read -r rc end <"$logs/$target.rc"
  echo "=== make $target (exit $rc)"
  cat "$logs/$target.log"
  echo "  $target: $((end - ${starts[$target]})) s (side by side)" >>"$logs/phases.txt"
  ((rc == 0)) || failed+=("$target")
done
if ((${#failed[@]})); then
  echo "=== failed: ${failed[*]} (logs in $logs)" >&2
  exit 1
fi
