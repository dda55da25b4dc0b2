#!/usr/bin/env bash
# Run make targets side by side, each with its output in <logs>/<target>.log.
# A line is printed as each one ends, then each log in the order given (but
# the followed one's, already shown), and the time each took goes to
# <logs>/phases.txt. The first failure stops the others (their process groups
# are killed) and the script exits 1, naming it.
#
#   scripts/run-phases.sh <logs dir> [--follow <target>] [--low] <target>...
#
# --follow: that target's output is also shown as it runs.
# --low: the targets after it run at the lowest CPU and I/O priority, so that
#   they only take what the others leave idle. The Molecule scenarios wait on
#   hosts, networks and health checks for about a quarter of their time; the
#   checks that only read the tree fit in those gaps without slowing them.
# The targets must not share state: lint, integration, ansible-test and build only
# read the tree (ansible-test works on a copy outside it).
set -uo pipefail
set -m # each target in a process group of its own, so that a failure can stop all of it
logs=$1
shift
mkdir -p "$logs"
declare -A pids starts names low
targets=() follow="" lowering=0
while (($#)); do
  case $1 in
    --follow) follow=$2; targets+=("$2"); shift 2 ;;
    --low) lowering=1; shift ;;
    *) targets+=("$1"); low[$1]=$lowering; shift ;;
  esac
done

run() { # run <target>: one make target, its log and its exit code
  local target=$1
  local cmd=(make --no-print-directory "$target")
  if ((${low[$target]:-0})); then
    cmd=(setsid --wait "$(dirname "$0")/low-priority.sh" "$logs/$target.sid" "${cmd[@]}")
  fi
  if [[ $target == "$follow" ]]; then
    "${cmd[@]}" 2>&1 | tee "$logs/$target.log"
  else
    "${cmd[@]}" >"$logs/$target.log" 2>&1
  fi
  echo "$? $(date +%s)" >"$logs/$target.rc"
}

for target in "${targets[@]}"; do
  rm -f "$logs/$target.rc" "$logs/$target.sid"
  starts[$target]=$(date +%s)
  run "$target" &
  pids[$target]=$!
  names[$!]=$target
done

failed=()
running=${#targets[@]}
while ((running > 0)); do
  done_pid=""
  wait -n -p done_pid
  # Jobs the shell reaped itself (after a kill) are not waited again: stop here.
  [[ -n ${done_pid:-} ]] || break
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
    for other in "${targets[@]}"; do
      [[ -e "$logs/$other.rc" ]] && continue
      kill -TERM -- "-${pids[$other]}" 2>/dev/null
      [[ -e "$logs/$other.sid" ]] && pkill -TERM -s "$(<"$logs/$other.sid")" 2>/dev/null
    done
  fi
done

for target in "${targets[@]}"; do
  [[ $target == "$follow" ]] && continue
  echo "=== make $target (log: $logs/$target.log)"
  cat "$logs/$target.log"
done
if ((${#failed[@]})); then
  echo "=== failed: ${failed[*]}; the others were stopped (logs in $logs)" >&2
  exit 1
fi
