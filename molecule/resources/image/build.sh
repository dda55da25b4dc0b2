#!/usr/bin/env bash
# Build a systemd-enabled Debian image for the local test hosts with
# debootstrap + `docker import`. No registry is involved.
#
#   build.sh [SUITE]      SUITE: bookworm (default) or trixie
#
# The image is tagged pyfleet/debian:<suite> and labelled with a hash of this
# recipe and of the CA certificates it carries, so it is rebuilt only when
# one of those changes.
set -euo pipefail

SUITE=${1:-bookworm}
case "$SUITE" in
  bookworm) VERSION=12 ;;
  trixie) VERSION=13 ;;
  *) echo "build.sh: unknown suite '$SUITE' (bookworm|trixie)" >&2; exit 2 ;;
esac
IMAGE="pyfleet/debian:${VERSION}"
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
