#!/usr/bin/env bash
# Build Calico's confd (or another command of the calico module) from the Go module proxy.
#
# usage: build.sh CALICO_REF OUT_DIR [API_VERSION]
#   CALICO_REF   a commit of projectcalico/calico (40 hex digits) or a pseudo-version of
#                github.com/projectcalico/calico, e.g. v0.0.0-20251021213802-b1f3c43f8437 (v3.31.0);
#                v3 tags do not resolve for this v0/v1 module path
#   OUT_DIR      where confd lands (created), with confd.go.mod.used (the wrapper it was built from)
#   API_VERSION  version of github.com/projectcalico/api to build with; default: the entry for
#                the calico commit in api-versions.txt next to this script
#
# BGPFLAT_CALICO_PACKAGE (default confd) picks the command inside the calico module and
# BGPFLAT_CALICO_BINARY (default: the package's last element) the file it lands in;
# toolchain/apiserver/build.sh builds Calico's API server this way, through the same wrapper module.
#
# github.com/projectcalico/calico cannot be `go install`ed: its go.mod replaces its nested modules
# (lib/std, lib/httpmachinery, api) with ./ paths, which only work in the main module, and pins the
# k8s.io staging modules with replace directives, which are ignored in a dependency. A wrapper module
# requires calico and turns every replace in calico's own go.mod (served by the proxy, never
# hand-copied) into one of its own:
#   - github.com/projectcalico/calico/<dir> => ./<dir>   becomes the same module at the same commit;
#   - github.com/projectcalico/api => ./api              becomes API_VERSION of the standalone repo;
#   - X => Y vN                                          is copied as is (k8s.io/*, lumberjack, ...).
set -euo pipefail

REF="${1:?CALICO_REF}"; OUT="${2:?OUT_DIR}"; API="${3:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
CALICO=github.com/projectcalico/calico
PKG="${BGPFLAT_CALICO_PACKAGE:-confd}"
BIN="${BGPFLAT_CALICO_BINARY:-${PKG##*/}}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"
case "$GOPROXY" in *direct*) export GOPROXY=https://proxy.golang.org ;; esac
# The checksum database does not list calico's commits; projectcalico.sum pins them instead.
UNLISTED="github.com/projectcalico/calico,github.com/projectcalico/api"
export GONOSUMDB="$UNLISTED${GONOSUMDB:+,$GONOSUMDB}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bgpflat-confd-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
step() { printf '[build] %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }
json() {  # one field of a JSON object on stdin; empty when absent or not JSON
  python3 -c '
import json, sys
try:
    print(json.load(sys.stdin).get(sys.argv[1]) or "")
except ValueError:
    print("")' "$1"
}

step "$PKG from $CALICO@$REF: preparing wrapper module"
cp "$HERE/confd.go.mod" "$WORK/go.mod"
grep -v '^#' "$HERE/projectcalico.sum" > "$WORK/go.sum"
cd "$WORK"

INFO="$(go mod download -json "$CALICO@$REF" || true)"
ERR="$(json Error <<<"$INFO")"
[ -z "$ERR" ] || die "cannot download $CALICO@$REF: $ERR"
V="$(json Version <<<"$INFO")"; MOD="$(json GoMod <<<"$INFO")"
[ -s "$MOD" ] || die "no go.mod for $CALICO@$REF"
# Every pseudo-version of a commit ends in <14-digit UTC commit time>-<12-digit hash>.
STAMP="$(printf '%s\n' "$V" | sed -n 's/.*[.-]\([0-9]\{14\}-[0-9a-f]\{12\}\)$/\1/p')"
[ -n "$STAMP" ] || die "$CALICO@$REF resolved to $V, which is not a pseudo-version of a commit"
HASH="${STAMP#*-}"
if [ -z "$API" ]; then
  API="$(awk -v h="$HASH" '$1 == h { print $2 }' "$HERE/api-versions.txt")"
fi
step "calico $V (commit $HASH); projectcalico/api ${API:-<none>}"

# Turn calico's replace directives into the wrapper's (see the header).
REPLACES="$(go mod edit -json "$MOD" | python3 -c '
import json, sys
calico, stamp, api = sys.argv[1:4]
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    if new.get("Version"):
        print(lhs + "=" + new["Path"] + "@" + new["Version"])
    elif old["Path"].startswith(calico + "/") and new["Path"] == "./" + old["Path"][len(calico) + 1:]:
        print(lhs + "=" + old["Path"] + "@v0.0.0-" + stamp)
    elif old["Path"] == "github.com/projectcalico/api" and new["Path"] == "./api":
        if not api:
            sys.exit("calico replaces github.com/projectcalico/api with ./api; give API_VERSION "
                     "(or add the commit to api-versions.txt)")
        print(lhs + "=" + old["Path"] + "@" + api)
    else:
        sys.exit("do not know how to carry over: replace " + lhs + " => " + new["Path"])
' "$CALICO" "$STAMP" "$API")" || die "cannot derive the replaces from $CALICO@$V's go.mod"
for r in $REPLACES; do go mod edit -replace="$r"; done
step "$(wc -w <<<"$REPLACES") replaces taken from calico's go.mod" \
  "($(grep -c '^k8s.io/' <<<"$REPLACES") of them k8s.io); resolving dependencies"
go mod edit -require="$CALICO@$V"
go get -tool "$CALICO/$PKG@$V" >&2

# Anything outside the checksum database that projectcalico.sum does not pin was trusted on first use.
UNPINNED="$(grep -E '^github.com/projectcalico/(calico|api)[ /]' go.sum \
  | grep -vxFf <(grep -v '^#' "$HERE/projectcalico.sum") || true)"
if [ -n "$UNPINNED" ]; then
  if [ "${BGPFLAT_CONFD_ALLOW_UNPINNED:-}" = 1 ]; then
    step "WARNING: not pinned in projectcalico.sum (trusted on first use):"; printf '%s\n' "$UNPINNED" >&2
  else
    printf '%s\n' "$UNPINNED" >&2
    die "the go.sum lines above are not in $HERE/projectcalico.sum;" \
      "check them and add them (or set BGPFLAT_CONFD_ALLOW_UNPINNED=1)"
  fi
fi

step "$BIN: compiling (minutes on a cold cache)"
go build -o "$OUT/$BIN.tmp" \
  -ldflags "-s -w -X $CALICO/pkg/buildinfo.Version=$V -X $CALICO/pkg/buildinfo.GitRevision=$HASH" \
  "$CALICO/$PKG"
mv "$OUT/$BIN.tmp" "$OUT/$BIN"
cp go.mod "$OUT/$BIN.go.mod.used"
step "done: $OUT/$BIN"
