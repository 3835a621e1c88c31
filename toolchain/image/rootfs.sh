#!/usr/bin/env bash
# A local base image made from Debian packages, for machines that reach Debian's package mirror but
# no container registry: mmdebstrap makes the root filesystem (cached as a tarball), the engine
# imports it. Both steps are skipped when their result is already there.
#
# usage: rootfs.sh ENGINE NAME PACKAGE...
#   ENGINE   docker or podman
#   NAME     the image is NAME:<key>, where key is a hash of the suite, mirror and package list
# Prints the image reference on stdout; progress goes to stderr.
#   BGPFLAT_DEBIAN_SUITE   (bookworm)  BGPFLAT_DEBIAN_MIRROR (http://deb.debian.org/debian)
set -euo pipefail

ENGINE="${1:?ENGINE}"; NAME="${2:?NAME}"; shift 2
SUITE="${BGPFLAT_DEBIAN_SUITE:-bookworm}"
MIRROR="${BGPFLAT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${BGPFLAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bgpflat}/images"
PACKAGES="$(printf '%s\n' "$@" | sort -u | paste -sd, -)"
KEY="$(printf '%s %s %s\n' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-12)"
TARBALL="$CACHE/${NAME##*/}-$SUITE-$KEY.tar"
IMAGE="$NAME:$KEY"
step() { printf '[image] %s\n' "$*" >&2; }

if "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
  step "$IMAGE: present"; echo "$IMAGE"; exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  step "$IMAGE: root filesystem from Debian $SUITE ($PACKAGES)"
  # minbase: essential packages and apt; the documentation and apt lists are left out, they are
  # of no use inside a lab node. The policy-rc.d hook stops packages from starting their daemons
  # while the tree is built.
  rm -f "$TARBALL.partial"
  mmdebstrap --variant=minbase --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --format=tar "$SUITE" "$TARBALL.partial" "$MIRROR" >&2
  mv "$TARBALL.partial" "$TARBALL"
fi
step "$IMAGE: importing $TARBALL"
"$ENGINE" import --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >/dev/null
echo "$IMAGE"
