#!/usr/bin/env bash
# Prepare a Debian controller for the test bed: apt packages, the Docker
# engine (from Debian's own packages) and a running dockerd.
# Idempotent: every step checks before it acts.
set -euo pipefail

log() { printf '[bootstrap] %s\n' "$*"; }

APT_PACKAGES=(docker.io debootstrap python3-venv curl openssl make git jq openssh-client testssl.sh)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "bootstrap: need root to install: ${missing[*]}" >&2; exit 1; }
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

docker_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! docker_up; then
  log "starting the Docker engine"
  if [[ -d /run/systemd/system ]]; then
    systemctl start docker
  else
    # No systemd on this controller (a CI sandbox): run dockerd detached.
    # Without the userland proxy, ports published on 127.0.0.1 are forwarded
    # by the kernel (DNAT) instead of a docker-proxy process copying every
    # byte: a fifth of the CPU of the test bed's loads (README, "Where the
    # time goes").
    setsid dockerd --userland-proxy=false >/var/log/pyfleet-dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do docker_up && break; sleep 1; done
  docker_up || { echo "bootstrap: dockerd did not start; see /var/log/pyfleet-dockerd.log" >&2; exit 1; }
fi
log "docker engine $(docker version --format '{{.Server.Version}}') is up"

# Each test host boots systemd, which takes inotify instances of the
# controller's kernel (they are per user, and every container's root is the
# same user). The default of 128 runs out at about 20 hosts: systemd's path
# units then fail and boot never finishes (`make bench-speed` runs 26).
if (($(sysctl -n fs.inotify.max_user_instances) < 1024)); then
  sysctl -q -w fs.inotify.max_user_instances=1024
  log "fs.inotify.max_user_instances raised to 1024 for the test hosts' systemd"
fi
