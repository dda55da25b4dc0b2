#!/usr/bin/env bash
# Run make targets side by side, each with its output in <logs>/<target>.log.
# A line is printed as each one ends, then each log in the order given (but
# the followed one's, already shown), and the time each took goes to
# <logs>/phases.txt, with the CPU each used on the controller (its processes
# and their children; not the containers') and how busy the machine's cores
# were over the whole run. The first failure stops the others (their process groups
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
  local rc=$? user sys
  # The CPU of the processes this target waited for: the second line of
  # `times`, which must run in this shell, not in a pipeline's subshell.
  times >"$logs/$target.cpu"
  read -r user sys < <(tail -1 "$logs/$target.cpu")
  core_seconds "$user" "$sys" >"$logs/$target.cpu"
  echo "$rc $(date +%s)" >"$logs/$target.rc"
}

core_seconds() { # core_seconds <user> <sys>, as `times` prints them (1m2.500s): their sum in seconds
  awk -v user="$1" -v sys="$2" 'function s(t) { split(t, p, "m"); sub("s", "", p[2]); return p[1] * 60 + p[2] }
    BEGIN { printf "%.0f\n", s(user) + s(sys) }'
}

cpu_busy() { # the jiffies the machine's CPUs spent busy and in all, from /proc/stat: "<busy> <total>"
  local _cpu user nice system idle iowait irq softirq steal _rest
  read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

read -r busy_before all_before < <(cpu_busy)
for target in "${targets[@]}"; do
  rm -f "$logs/$target.rc" "$logs/$target.sid" "$logs/$target.cpu"
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
  echo "  $target: $((end - ${starts[$target]})) s (side by side), $(cat "$logs/$target.cpu" 2>/dev/null || echo ?) core-s on the controller" >>"$logs/phases.txt"
  if [[ $rc != 0 ]]; then
    [[ $rc == stopped ]] || failed+=("$target")
    for other in "${targets[@]}"; do
      [[ -e "$logs/$other.rc" ]] && continue
      kill -TERM -- "-${pids[$other]}" 2>/dev/null
      [[ -e "$logs/$other.sid" ]] && pkill -TERM -s "$(<"$logs/$other.sid")" 2>/dev/null
    done
  fi
done

read -r busy_after all_after < <(cpu_busy)
ticks=$(getconf CLK_TCK)
echo "  the cores: $(((busy_after - busy_before) / ticks)) of $(((all_after - all_before) / ticks)) core-s busy" >>"$logs/phases.txt"

for target in "${targets[@]}"; do
  [[ $target == "$follow" ]] && continue
  echo "=== make $target (log: $logs/$target.log)"
  cat "$logs/$target.log"
done
if ((${#failed[@]})); then
  echo "=== failed: ${failed[*]}; the others were stopped (logs in $logs)" >&2
  exit 1
fi
