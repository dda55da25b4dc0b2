#!/usr/bin/env bash
# Build a systemd-enabled Debian image for the local test hosts with
# debootstrap + `docker import`. No registry is involved.
#
#   build.sh [SUITE]      SUITE: bookworm (default), trixie or services
#
# The image is tagged pyfleet/debian:<version> and labelled with a hash of
# this recipe and of the CA certificates it carries, so it is rebuilt only
# when one of those changes. "services" is pyfleet/services:12: the Debian 12
# image with the packages the test bed's services host runs (PostgreSQL,
# Redis, pebble, openssl, testssl.sh) installed from Debian, not configured;
# the scenario's prepare configures them, as on a fresh server. Installing
# them there took about 50 s of every acme run.
set -euo pipefail

SUITE=${1:-bookworm}
case "$SUITE" in
  bookworm) VERSION=12 ;;
  trixie) VERSION=13 ;;
  services) VERSION=12 ;;
  *) echo "build.sh: unknown suite '$SUITE' (bookworm|trixie|services)" >&2; exit 2 ;;
esac
IMAGE="pyfleet/debian:${VERSION}"
SERVICE_PACKAGES="postgresql redis-server pebble openssl testssl.sh"
MIRROR=${PYFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "$0")" && pwd)
# Extra trust anchors of the controller (a TLS-inspecting egress proxy, a
# corporate CA): the hosts need them to reach the package index over HTTPS.
CA_DIR=${PYFLEET_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}

recipe_hash() {
  {
    cat "$HERE/build.sh"
    echo "$SUITE $MIRROR"
    find "$CA_DIR" -maxdepth 1 -name '*.crt' -type f -print0 2>/dev/null | sort -z | xargs -0 -r cat
  } | sha256sum | cut -c1-16
}

if [[ $SUITE == services ]]; then
  BASE=$IMAGE
  IMAGE=pyfleet/services:12
  bash "$0" bookworm
  WANT=$({ recipe_hash; docker image inspect -f '{{.Id}}' "$BASE"; } | sha256sum | cut -c1-16)
  HAVE=$(docker image inspect -f '{{ index .Config.Labels "pyfleet.recipe" }}' "$IMAGE" 2>/dev/null || true)
  if [[ "$WANT" == "$HAVE" && -z "${PYFLEET_REBUILD:-}" ]]; then
    echo "[image] $IMAGE is current (recipe $WANT)"
    exit 0
  fi
  echo "[image] building $IMAGE from $BASE (recipe $WANT)"
  NAME=pyfleet-image-services-$$
  trap 'docker rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
  # policy-rc.d: the packages' scripts must not try to start their services here.
  docker run --name "$NAME" "$BASE" /bin/sh -euc "
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $SERVICE_PACKAGES >/dev/null
    rm -f /usr/sbin/policy-rc.d; apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin" \
    || { echo "[image] installing $SERVICE_PACKAGES failed" >&2; exit 1; }
  docker commit --change "LABEL pyfleet.recipe=$WANT" --change 'CMD ["/lib/systemd/systemd"]' "$NAME" "$IMAGE" >/dev/null
  echo "[image] built $IMAGE"
  exit 0
fi

WANT=$(recipe_hash)
HAVE=$(docker image inspect -f '{{ index .Config.Labels "pyfleet.recipe" }}' "$IMAGE" 2>/dev/null || true)
if [[ "$WANT" == "$HAVE" && -z "${PYFLEET_REBUILD:-}" ]]; then
  echo "[image] $IMAGE is current (recipe $WANT)"
  exit 0
fi

echo "[image] building $IMAGE from $SUITE (recipe $WANT)"
ROOT=$(mktemp -d /var/tmp/pyfleet-rootfs.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

# What a minimal Debian VPS has: systemd, python3 for Ansible, apt over HTTPS.
# sshd, because a VPS is reached over SSH (the fleet scenario connects with it).
INCLUDE=systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,iproute2,procps,sudo,locales,curl,gnupg,openssh-server
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 \
  || { tail -30 "$ROOT.log" >&2; exit 1; }
rm -f "$ROOT.log"

cat >"$ROOT/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SRC

if compgen -G "$CA_DIR/*.crt" >/dev/null; then
  cp "$CA_DIR"/*.crt "$ROOT/usr/local/share/ca-certificates/"
  chroot "$ROOT" update-ca-certificates >/dev/null
fi

# A container has no consoles, no hardware clock and no udev; these units
# only fail there. Everything a VPS runs for a web app is left in place.
for unit in getty.target console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-remount-fs.service sys-kernel-debug.mount \
  sys-kernel-tracing.mount dev-hugepages.mount systemd-modules-load.service \
  systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$ROOT/etc/systemd/system/$unit"
done
: >"$ROOT/etc/machine-id"
# Every host made from the image gets its own SSH host keys, at first boot.
rm -f "$ROOT"/etc/ssh/ssh_host_*
mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' >"$ROOT/etc/systemd/system/ssh.service.d/pyfleet-hostkeys.conf"
echo "en_US.UTF-8 UTF-8" >"$ROOT/etc/locale.gen"
chroot "$ROOT" locale-gen >/dev/null 2>&1 || true
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin

tar -C "$ROOT" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change "LABEL pyfleet.recipe=$WANT" \
  - "$IMAGE" >/dev/null
echo "[image] built $IMAGE"
