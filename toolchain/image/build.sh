#!/usr/bin/env bash
# Images for the containerlab topology containerlab/peer-lab.clab.yml, without a registry: each
# base is a root filesystem made from Debian packages (rootfs.sh, cached under
# ~/.cache/bgpflat/images/), and the peer image installs this checkout's wheel on its base through
# toolchain/image/Containerfile, the same file users build on the Python image.
#
# usage: build.sh [ENGINE]     ENGINE: docker (default when its daemon answers) or podman
# Prints "ROLE IMAGE" lines on stdout (peer, tor, node, office) and tags each IMAGE also as
# bgpflat/ROLE:lab, the names the topology uses. Everything is skipped that is already there.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ENGINE="${1:-}"
if [ -z "$ENGINE" ]; then
  if docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
PYTHON="${PYTHON:-python3}"     # runs pip; any Python 3.11+ with pip
IMAGE_PYTHON=3.11               # Debian bookworm's python3, and the Containerfile's default base
step() { printf '[image] %s\n' "$*" >&2; }

tag() {  # tag ROLE IMAGE: the stable name the topology uses
  "$ENGINE" tag "$2" "bgpflat/$1:lab"
  printf '%s %s\n' "$1" "$2"
}

# The two bases, made at the same time (mostly downloads): the lab nodes' (Debian's own FRR 8.4,
# BIRD 1.6 as in calico/node, ping and curl for the office host; one root filesystem serves the
# three roles) and the peer's (Python 3.11 with venv).
OUTPUT="$(mktemp -d "${TMPDIR:-/tmp}/bgpflat-bases.XXXXXX")"
trap 'rm -rf "$OUTPUT"' EXIT
bash "$HERE/rootfs.sh" "$ENGINE" bgpflat/lab-node frr bird iproute2 iputils-ping curl procps >"$OUTPUT/lab" &
LAB_PID=$!
bash "$HERE/rootfs.sh" "$ENGINE" bgpflat/debian-python python3 python3-venv ca-certificates iproute2 procps \
  >"$OUTPUT/python" &
PYTHON_PID=$!
wait "$LAB_PID" || { echo "build.sh: the lab nodes' base failed" >&2; exit 1; }
wait "$PYTHON_PID" || { echo "build.sh: the peer's base failed" >&2; exit 1; }
LAB="$(cat "$OUTPUT/lab")"; BASE="$(cat "$OUTPUT/python")"
tag tor "$LAB"
tag node "$LAB"
tag office "$LAB"

# The peer: this checkout's wheel and its dependencies' on the Debian Python base. The wheel is
# built from a copy of the sources, so that setuptools leaves no build/lib or egg-info behind.
CONTEXT="$OUTPUT/context"
mkdir -p "$CONTEXT/src" "$CONTEXT/wheels"
cp -r "$REPO/pyproject.toml" "$REPO/README.md" "$REPO/bgpflat" "$CONTEXT/src/"
step "peer: wheel of $REPO"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$CONTEXT/wheels" "$CONTEXT/src" >&2
# The tag names what the image is made of (the wheel's files, the Containerfile, the base), so an
# unchanged checkout reuses its image; the dependencies are the ones resolved when it was built.
KEY="$( (cat "$HERE/Containerfile"; echo "$BASE"; "$PYTHON" -c 'import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/bgpflat-*.whl")[0])
for entry in sorted(wheel.infolist(), key=lambda e: e.filename):
    print(entry.filename, entry.CRC)' "$CONTEXT/wheels") | sha256sum | cut -c1-12)"
PEER="bgpflat/peer:$KEY"
if "$ENGINE" image inspect "$PEER" >/dev/null 2>&1; then
  step "$PEER: present"
else
  step "$PEER: dependencies as wheels for Python $IMAGE_PYTHON"
  # Released wheels for the image's Python, whatever Python runs this script.
  "$PYTHON" -m pip download --quiet --only-binary=:all: --python-version "$IMAGE_PYTHON" \
    --dest "$CONTEXT/wheels" "$CONTEXT"/wheels/bgpflat-*.whl >&2
  step "$PEER: building on $BASE"
  # Docker's classic builder: Debian's docker.io has no buildx plugin.
  DOCKER_BUILDKIT=0 "$ENGINE" build --quiet --build-arg "BASE=$BASE" -t "$PEER" \
    -f "$HERE/Containerfile" "$CONTEXT" >&2
fi
tag peer "$PEER"
# Earlier peer images (of other checkouts) would pile up, 400 MB each: only the current one stays.
"$ENGINE" images bgpflat/peer --format '{{.Repository}}:{{.Tag}}' \
  | { grep -vxF -e "$PEER" -e bgpflat/peer:lab || true; } | xargs -r "$ENGINE" rmi >/dev/null
