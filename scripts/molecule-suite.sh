#!/usr/bin/env bash
# Every Molecule scenario, in the steps of `molecule test`, arranged for a
# 2-core machine:
#
# 1. side by side, each scenario: destroy, syntax, create, prepare, converge
#    and idempotence. These wait on package mirrors, pip, systemd and SSH
#    for a good part of their time, and no load runs yet;
# 2. one after another, each scenario's testinfra verifiers, which put load
#    on the hosts and time rollouts under it: alone, they do not stretch each
#    other's loaded windows;
# 3. destroy, always.
#
#   scripts/molecule-suite.sh <logs dir> <scenario>...
#
# Each scenario's output goes to <logs>/<scenario>.log (its verifiers' output
# is also shown as it runs); <logs>/summary.txt gets each scenario's seconds
# and its verifiers' summary line. The first failure stops the run, shows that
# scenario's log and exits 1.
set -uo pipefail
set -m # each scenario's first steps in a process group of its own
logs=$1
shift
scenarios=("$@")
mkdir -p "$logs"
rm -f "$logs/summary.txt"
declare -A pids seconds

destroy_all() {
  for scenario in "${scenarios[@]}"; do
    molecule destroy -s "$scenario" >>"$logs/$scenario.log" 2>&1 || echo "=== molecule destroy -s $scenario failed" >&2
  done
}

up() { # up <scenario>: the steps of `molecule test` before verify; its exit code goes to <logs>/<scenario>.up
  local scenario=$1 step rc=0
  for step in destroy syntax converge idempotence; do
    echo "=== molecule $step -s $scenario" >>"$logs/$scenario.log"
    molecule "$step" -s "$scenario" >>"$logs/$scenario.log" 2>&1 || { rc=1; break; }
  done
  echo "$rc $(date +%s)" >"$logs/$scenario.up"
}

started=$(date +%s)
for scenario in "${scenarios[@]}"; do
  : >"$logs/$scenario.log"
  rm -f "$logs/$scenario.up"
  up "$scenario" &
  pids[$scenario]=$!
done
echo "=== converging ${scenarios[*]} side by side (logs: $logs/<scenario>.log)"
failed="" pending=("${scenarios[@]}")
while ((${#pending[@]})) && [[ -z $failed ]]; do
  sleep 2
  still=()
  for scenario in "${pending[@]}"; do
    if [[ ! -e "$logs/$scenario.up" ]]; then still+=("$scenario"); continue; fi
    read -r rc end <"$logs/$scenario.up"
    seconds[$scenario]=$((end - started))
    if ((rc != 0)); then failed=$scenario; continue; fi
    echo "=== $scenario: created, converged and idempotent after ${seconds[$scenario]} s"
  done
  pending=("${still[@]}")
done
if [[ -n $failed ]]; then
  for other in "${pending[@]}"; do kill -TERM -- "-${pids[$other]}" 2>/dev/null; done
  wait
  echo "=== $failed FAILED before its verifiers; its log ($logs/$failed.log):"
  cat "$logs/$failed.log"
  destroy_all
  exit 1
fi

for scenario in "${scenarios[@]}"; do
  echo "=== molecule verify -s $scenario"
  start=$(date +%s)
  if ! molecule verify -s "$scenario" 2>&1 | tee -a "$logs/$scenario.log"; then
    echo "=== $scenario FAILED in its verifiers (log: $logs/$scenario.log)"
    destroy_all
    exit 1
  fi
  {
    echo "  $scenario: ${seconds[$scenario]} s to converge (side by side), $(($(date +%s) - start)) s to verify"
    grep -E '^=+ .*(passed|failed).* in [0-9.]+s.* =+$' "$logs/$scenario.log" | tail -1
  } >>"$logs/summary.txt"
done
destroy_all
