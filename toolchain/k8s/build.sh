#!/usr/bin/env bash
# Build kube-apiserver and etcd from the Go module proxy into a versioned cache directory.
#
# usage: build.sh K8S_VERSION ETCD_VERSION OUT_DIR
#   K8S_VERSION   e.g. 1.35.4   (k8s.io/kubernetes v1.35.4; staging modules v0.35.4)
#   ETCD_VERSION  e.g. 3.6.16   (go.etcd.io/etcd/server/v3)
#   OUT_DIR       where kube-apiserver and etcd land (created), with the resolved wrapper go.mod files
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod requires every staging module at v0.0.0
# and replaces them with ./staging paths, which only work in the main module. A wrapper module
# requires k8s.io/kubernetes and replaces each staging module with its published v0.X.Y. The list of
# staging modules is read from the release's own go.mod (served by the proxy), never hand-copied,
# because it changes between releases.
set -euo pipefail

K="${1:?K8S_VERSION}"; E="${2:?ETCD_VERSION}"; OUT="${3:?OUT_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
# Module proxies only: drop "direct" (cloning from VCS hosts) and "off" from the list.
GOPROXY="$(printf '%s' "${GOPROXY:-}" | tr ',|' '\n\n' | grep -v -x -e direct -e off -e '' | paste -sd, -)" || true
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bgpflat-k8s-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
step() { printf '[build] %s\n' "$*" >&2; }

# --- kube-apiserver ---------------------------------------------------------------------------
V="0.${K#1.}"
step "kube-apiserver v$K: preparing wrapper module"
mkdir -p "$WORK/kas"
cp "$HERE/kube-apiserver.go.mod" "$WORK/kas/go.mod"
cd "$WORK/kas"
MOD="$(go mod download -json "k8s.io/kubernetes@v$K" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
[ -s "$MOD" ] || { echo "build.sh: could not download k8s.io/kubernetes@v$K's go.mod" >&2; exit 1; }
STAGING="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$MOD")"
[ -n "$STAGING" ] || { echo "build.sh: no staging replaces found in $MOD" >&2; exit 1; }
for m in $STAGING; do go mod edit -replace="$m=$m@v$V"; done
step "kube-apiserver: $(echo "$STAGING" | wc -l) staging modules replaced with v$V; resolving dependencies"
go get "k8s.io/kubernetes@v$K" >&2
go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K" >&2
step "kube-apiserver: compiling (several minutes on a cold cache)"
go build -o "$OUT/kube-apiserver.tmp" \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$K -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K" | cut -d. -f2)" \
  k8s.io/kubernetes/cmd/kube-apiserver
mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
# The resolved wrapper module records exactly which dependency versions went into the binary.
cp go.mod "$OUT/kube-apiserver.go.mod.resolved"

# --- etcd ---------------------------------------------------------------------------------------
# As a dependency, etcd's own replace directives are ignored and its requires name published
# sibling modules, so the wrapper needs no replaces.
step "etcd v$E: preparing wrapper module"
mkdir -p "$WORK/etcd"
cp "$HERE/etcd.go.mod" "$WORK/etcd/go.mod"
cd "$WORK/etcd"
go get -tool "go.etcd.io/etcd/server/v3@v$E" >&2
step "etcd: compiling"
go build -o "$OUT/etcd.tmp" -ldflags '-s -w' go.etcd.io/etcd/server/v3
mv "$OUT/etcd.tmp" "$OUT/etcd"
cp go.mod "$OUT/etcd.go.mod.resolved"
step "done: $OUT"
