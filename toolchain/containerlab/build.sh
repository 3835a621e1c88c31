#!/usr/bin/env bash
# Build containerlab from the Go module proxy, once: a finished build is reused.
#
# usage: build.sh [VERSION [OUT_DIR]]
#   VERSION  a release of github.com/srl-labs/containerlab; default v0.60.0 (the proxy refuses the
#            version list and the newest releases but serves older ones by name)
#   OUT_DIR  default ~/.cache/bgpflat/containerlab/VERSION-GOVERSION; holds containerlab and the
#            wrapper's go.mod and go.sum it was built from
# Prints the binary's path on stdout; the steps go to stderr.
#
# `go install github.com/srl-labs/containerlab@v0.60.0` refuses: its go.mod has replace directives
# (forks of ignite and libgitops), which Go ignores outside the main module. A wrapper module takes
# containerlab's own go.mod and go.sum (served by the proxy, never hand-copied), renamed, plus a
# requirement on containerlab itself, so every dependency keeps the version and hash its release
# pinned, and Go's lazy loading never walks the old, unpruned module graphs behind ignite (one of
# them needs vbom.ml/util, whose go.mod the proxy no longer serves). One more replace is ours:
# inet.af/netaddr (used by gomplate) is refused by the proxy, and the same code is published as
# github.com/inetaf/netaddr. containerlab.sum pins the hashes that containerlab's go.sum lacks.
#
# One change to containerlab's code, made at build time (on a copy of the released module in the
# work directory, edited by the lines below; no copy is kept here): before deploying, containerlab reads
# /proc/modules to load ip_tables, and stops with "open /proc/modules: no such file or directory"
# on a kernel built without module support (some VMs and CI runners). There a missing
# /proc/modules means "not loaded"; containerlab then fails to load the module, warns and goes on.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CLAB=github.com/srl-labs/containerlab
VERSION="${1:-v0.60.0}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
case "$GOPROXY" in *direct*) export GOPROXY=https://proxy.golang.org ;; esac
command -v go >/dev/null || { echo "build.sh: Go is needed to build containerlab" >&2; exit 2; }
CACHE="${BGPFLAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bgpflat}"
# The build recipe (this script and the pinned hashes) is part of the cache key.
RECIPE="$(cat "$0" "$HERE/containerlab.sum" | sha256sum | cut -c1-8)"
OUT="${2:-$CACHE/containerlab/$VERSION-$RECIPE-$(go env GOVERSION)}"
step() { printf '[build] %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

if [ -x "$OUT/containerlab" ]; then
  step "containerlab $VERSION: cached in $OUT"
  echo "$OUT/containerlab"; exit 0
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bgpflat-clab-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
step "containerlab $VERSION: preparing wrapper module"
INFO="$(go mod download -json "$CLAB@$VERSION" || true)"
field() { python3 -c 'import json, sys
try:
    value = json.loads(sys.argv[2])
    for key in sys.argv[1].split("."):
        value = value.get(key) or {}
    print(value or "")
except ValueError:
    print("")' "$1" "$INFO"; }
ERR="$(field Error)"; [ -z "$ERR" ] || die "cannot download $CLAB@$VERSION: $ERR"
DIR="$(field Dir)"; MOD="$(field GoMod)"; COMMIT="$(field Origin.Hash)"
[ -s "$MOD" ] && [ -s "$DIR/go.sum" ] || die "no go.mod or go.sum for $CLAB@$VERSION"

cp "$MOD" go.mod; chmod u+w go.mod
go mod edit -module bgpflat.local/containerlab-build -require "$CLAB@$VERSION" \
  -replace inet.af/netaddr=github.com/inetaf/netaddr@v0.0.0-20230525184311-b8eac61e914a
{ cat "$DIR/go.sum"; grep -v '^#' "$HERE/containerlab.sum"; } > go.sum
# The pinned hash of containerlab itself must be the one the proxy served.
grep -qxF "$CLAB $VERSION $(field Sum)" go.sum \
  || die "$CLAB@$VERSION: no pinned hash for this version in $HERE/containerlab.sum (served: $(field Sum))"

# The /proc/modules change (see the header): containerlab is built from a copy of the released
# module (verified above) in the work directory, with that file edited.
cp -r "$DIR" "$WORK/containerlab"; chmod -R u+w "$WORK/containerlab"
python3 - "$WORK/containerlab/utils/kernel_module.go" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
anchor = '\tf, err := os.Open("/proc/modules")\n'
if text.count(anchor) != 1:
    sys.exit(f"{path}: the /proc/modules read is not where this build expects it")
guard = "\tif os.IsNotExist(err) {\n\t\treturn false, nil // a kernel without module support\n\t}\n"
open(path, "w").write(text.replace(anchor, anchor + guard))
PY
go mod edit -replace "$CLAB=./containerlab"

step "containerlab $VERSION (commit ${COMMIT:0:12}): compiling (minutes on a cold cache)"
mkdir -p "$OUT.partial"
go build -o "$OUT.partial/containerlab" \
  -ldflags "-s -w -X $CLAB/cmd.version=${VERSION#v} -X $CLAB/cmd.commit=${COMMIT:0:8} -X $CLAB/cmd.date=release" \
  "$CLAB"
cp go.mod go.sum "$OUT.partial/"
rm -rf "$OUT"; mv "$OUT.partial" "$OUT"
step "done: $OUT/containerlab"
echo "$OUT/containerlab"
