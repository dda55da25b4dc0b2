#!/usr/bin/env bash
# Every Molecule scenario, pipelined:
#
#   scripts/molecule-pipeline.sh <logs dir> <scenario>...
#   scripts/molecule-pipeline.sh --build <logs dir> <scenario> <low: 0 or 1>   (one build stage; used by the above)
#
# A scenario runs Molecule's steps in two stages: "build" (destroy, create,
# converge with its prepare, idempotence) and "verify" (the testinfra
# verifiers, then destroy). While one scenario verifies, the next one builds
# at the lowest priority: its controller in a session of its own at autogroup
# nice 19 (low-priority.sh), its containers at the lowest CPU weight (docker
# update --cpu-shares 2), raised back to the default before its own verifiers
# run. The verifiers wait on rollouts, soaks, drains and health checks for
# about 40 % of their CPU time (measured on the fleet scenario: 456 of 733
# core-seconds busy); the next build takes that idle time and little else.
# The syntax check of `molecule test` is left to ansible-lint, which checks
# the same playbooks (make lint).
#
# Each scenario's output goes to <logs>/<scenario>.log. Its build's output is
# shown when its verifiers start, theirs as they run; the seconds of each stage
# and the verifiers' summary line go to <logs>/summary.txt. A failure stops the
# other stage, removes every scenario's hosts and exits 1, naming the scenario.
set -uo pipefail
set -m # each stage in a process group of its own, so that a failure can stop all of it
here=$(cd "$(dirname "$0")" && pwd)

containers() { # containers <scenario>: the names of its hosts
  python3 -c 'import sys, yaml; print(" ".join(p["name"] for p in yaml.safe_load(open(sys.argv[1]))["platforms"]))' \
    "molecule/$1/molecule.yml"
}

host_weight() { # host_weight <scenario> <cpu shares>: of every container of the scenario that exists
  local names
  names=$(containers "$1") || return 1
  # shellcheck disable=SC2086 # one word per container name
  docker update --cpu-shares "$2" $names >/dev/null
}

step() { # step <scenario> <molecule command>: run it; its seconds go to <logs>/<scenario>.steps
  local started=$SECONDS
  molecule "$2" -s "$1" || return
  printf '%s %d s, ' "$2" $((SECONDS - started)) >>"$logs/$1.steps"
}

build() { # build <scenario> <low: 0 or 1>
  local scenario=$1 low=$2
  : >"$logs/$scenario.steps"
  step "$scenario" destroy &&
    step "$scenario" create &&
    { ((low == 0)) || host_weight "$scenario" 2; } &&
    step "$scenario" converge &&
    step "$scenario" idempotence
}

# The build stage alone, as start_build runs it in its own session.
if [[ ${1:-} == --build ]]; then
  logs=$2
  build "$3" "$4"
  exit
fi

hosts_cpu() { # hosts_cpu <scenario>: the core-seconds its containers used since they started, or "?"
  local id total=0 ns
  # shellcheck disable=SC2046 # one word per container name
  for id in $(docker inspect -f '{{.Id}}' $(containers "$1") 2>/dev/null); do
    if [[ -r /sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage ]]; then # cgroup v1, cgroupfs driver
      ns=$(<"/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage")
    else # cgroup v2, the systemd or the cgroupfs driver
      ns=$(awk '$1 == "usage_usec" { printf "%.0f\n", $2 * 1000 }' "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat" \
        "/sys/fs/cgroup/docker/$id/cpu.stat" 2>/dev/null | head -1)
      [[ -n $ns ]] || { echo "?"; return; }
    fi
    total=$((total + ns))
  done
  echo $((total / 1000000000))
}

verify() { # verify <scenario>: at the default weight, then the hosts go
  host_weight "$1" 1024 && molecule verify -s "$1" &&
    echo "  $1 hosts: $(hosts_cpu "$1") core-s in the containers, build and verify" >>"$logs/summary.txt" &&
    molecule destroy -s "$1"
}

start_build() { # start_build <scenario> <low: 0 or 1>: in the background; pid in $build_pid
  local scenario=$1 low=$2
  local cmd=(bash "$here/molecule-pipeline.sh" --build "$logs" "$scenario" "$low")
  ((low)) && cmd=(setsid --wait "$here/low-priority.sh" "$logs/$scenario.sid" "${cmd[@]}")
  rm -f "$logs/$scenario.build.rc" "$logs/$scenario.sid"
  build_started=$(date +%s)
  ("${cmd[@]}" >"$logs/$scenario.log" 2>&1; echo $? >"$logs/$scenario.build.rc") &
  build_pid=$!
}

finish_build() { # finish_build <scenario>: wait for its build, show its output; 0 when it passed
  local scenario=$1 rc
  wait "$build_pid"
  rc=$(cat "$logs/$scenario.build.rc" 2>/dev/null || echo stopped)
  echo "=== molecule: $scenario built (destroy, create, converge, idempotence) in $(($(date +%s) - build_started)) s, exit $rc"
  cat "$logs/$scenario.log"
  echo "  $scenario build: $(($(date +%s) - build_started)) s ($(sed 's/, $//' "$logs/$scenario.steps" 2>/dev/null))" >>"$logs/summary.txt"
  [[ $rc == 0 ]]
}

stop_all() { # stop_all <failed scenario>: stop the other stage, remove every scenario's hosts
  echo "=== molecule: $1 FAILED (log: $logs/$1.log)" >&2
  if [[ -n ${build_pid:-} ]] && kill -0 "$build_pid" 2>/dev/null; then
    kill -TERM -- "-$build_pid" 2>/dev/null
    [[ -e "$logs/${next:-}.sid" ]] && pkill -TERM -s "$(<"$logs/$next.sid")" 2>/dev/null
    wait "$build_pid" 2>/dev/null
  fi
  for scenario in "${scenarios[@]}"; do
    molecule destroy -s "$scenario" >/dev/null 2>&1
  done
  exit 1
}

logs=$1
shift
scenarios=("$@")
mkdir -p "$logs"
rm -f "$logs/summary.txt"
build_pid="" next=""
start_build "${scenarios[0]}" 0
for index in "${!scenarios[@]}"; do
  scenario=${scenarios[$index]}
  finish_build "$scenario" || stop_all "$scenario"
  next=${scenarios[$((index + 1))]:-}
  build_pid=""
  [[ -n $next ]] && start_build "$next" 1
  echo "=== molecule verify -s $scenario${next:+ (beside it, $next builds at the lowest priority)}"
  verify_started=$(date +%s)
  verify "$scenario" 2>&1 | tee -a "$logs/$scenario.log"
  ((PIPESTATUS[0] == 0)) || stop_all "$scenario"
  { echo "  $scenario verify: $(($(date +%s) - verify_started)) s"
    grep -E '^=+ .*(passed|failed).* in [0-9.]+s.* =+$' "$logs/$scenario.log" | tail -1; } >>"$logs/summary.txt"
done
