#!/usr/bin/env bash
# Build Calico's aggregated API server (apiserver/cmd/apiserver) from the Go module proxy.
#
# usage: build.sh CALICO_REF OUT_DIR [API_VERSION]   (the arguments of toolchain/confd/build.sh)
#
# The API server is a command of the same github.com/projectcalico/calico module as confd, so it is
# built by the same wrapper-module script, with the same pinned hashes (toolchain/confd/projectcalico.sum)
# and the same projectcalico/api versions (toolchain/confd/api-versions.txt); only the package differs.
# Go builds run at the lowest CPU priority: the compile takes minutes and the machine is shared.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
export BGPFLAT_CALICO_PACKAGE=apiserver/cmd/apiserver BGPFLAT_CALICO_BINARY=calico-apiserver
exec nice -n 19 bash "$HERE/../confd/build.sh" "$@"
