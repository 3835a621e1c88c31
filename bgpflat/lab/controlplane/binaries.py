"""kube-apiserver and etcd binaries: find them in the cache, or build them into it once.

Cache layout (``BGPFLAT_CACHE_DIR`` overrides the root, default ``~/.cache/bgpflat``)::

    <root>/k8s/v1.35.4-etcd3.6.16-go1.26.8/
        kube-apiserver
        etcd
        build-info.json      what was built, with which Go, how long it took
        build.log            the full output of the build

The Go version is part of the key because the toolchain decides the code that is generated; a
machine without Go can still use any finished build of the pinned Kubernetes and etcd versions.
``BGPFLAT_K8S_BIN_DIR`` points at a directory with both binaries and bypasses the cache entirely.
Builds are serialised with a lock file so that parallel test runs do not compile twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab import go_build, versions

BUILD_SCRIPT_ENV = "BGPFLAT_K8S_BUILD_SCRIPT"
BIN_DIR_ENV = "BGPFLAT_K8S_BIN_DIR"


@dataclass(frozen=True, slots=True, kw_only=True)
class Binaries:
    """Paths of a usable kube-apiserver and etcd."""

    kube_apiserver: Path
    etcd: Path
    directory: Path


def _key_without_go(*, k8s: str, etcd: str) -> str:
    return f"v{k8s}-etcd{etcd}"


def build_key(*, k8s: str, etcd: str, go: str) -> str:
    return f"{_key_without_go(k8s=k8s, etcd=etcd)}-{go}"


def _complete(directory: Path) -> bool:
    return (
        all(os.access(directory / name, os.X_OK) for name in ("kube-apiserver", "etcd"))
        and (directory / "build-info.json").is_file()
    )


def _as_binaries(directory: Path) -> Binaries:
    return Binaries(kube_apiserver=directory / "kube-apiserver", etcd=directory / "etcd", directory=directory)


def find_cached(*, k8s: str = versions.KUBERNETES_VERSION, etcd: str = versions.ETCD_VERSION) -> Binaries | None:
    """A finished build of these versions, preferring the one made with the local Go."""
    explicit = os.environ.get(BIN_DIR_ENV)
    if explicit:
        directory = Path(explicit)
        if not all(os.access(directory / n, os.X_OK) for n in ("kube-apiserver", "etcd")):
            raise LabError(f"{BIN_DIR_ENV}={explicit} does not hold executable kube-apiserver and etcd")
        return _as_binaries(directory)
    found = go_build.find_build(go_build.cache_root() / "k8s", _key_without_go(k8s=k8s, etcd=etcd), complete=_complete)
    return None if found is None else _as_binaries(found)


def build_script() -> Path:
    """``toolchain/k8s/build.sh`` of the source checkout this package runs from."""
    return go_build.checkout_script("toolchain/k8s/build.sh", env=BUILD_SCRIPT_ENV, what="control-plane")


def ensure_binaries(
    *,
    k8s: str = versions.KUBERNETES_VERSION,
    etcd: str = versions.ETCD_VERSION,
    progress: go_build.Progress | None = None,
) -> Binaries:
    """Return cached binaries, building them first (minutes on a cold Go cache) when there are none."""
    found = find_cached(k8s=k8s, etcd=etcd)
    if found is not None:
        return found
    go = go_build.go_version()
    if go is None:
        raise LabError(
            f"no kube-apiserver v{k8s} / etcd v{etcd} in {go_build.cache_root() / 'k8s'} and no Go toolchain to "
            f"build them; install Go >= 1.25 or set {BIN_DIR_ENV}"
        )
    target = go_build.cache_root() / "k8s" / build_key(k8s=k8s, etcd=etcd, go=go)
    go_build.build_once(
        target,
        complete=_complete,
        build=lambda: _run_build(target=target, k8s=k8s, etcd=etcd, go=go, progress=progress),
    )
    return _as_binaries(target)


def _run_build(*, target: Path, k8s: str, etcd: str, go: str, progress: go_build.Progress | None) -> None:
    say = progress or go_build.say_on_stderr
    script = build_script()
    say(f"building kube-apiserver v{k8s} and etcd v{etcd} with {go} into {target} (first run only)")
    staging, elapsed = go_build.run_build_script(
        script, [k8s, etcd], target=target, failure="building the control plane failed", say=say
    )
    info = {
        "kubernetes": k8s,
        "etcd": etcd,
        "go": go,
        "build_seconds": round(elapsed, 1),
        "built_at": go_build.utc_timestamp(),
    }
    go_build.publish_build(staging, target, info)
    say(f"built in {elapsed:.0f} s: {target}")


# --- Calico's aggregated API server ----------------------------------------------------------------
#
# Built by toolchain/apiserver/build.sh from the same github.com/projectcalico/calico module version as
# confd, through the same wrapper module; cached as <root>/calico-apiserver/<pseudo-version>-<go>/.

CALICO_APISERVER = versions.CALICO_V3_31_0
CALICO_APISERVER_VERSION = "v3.31.0"
"""The Calico release ``CALICO_APISERVER`` is, as ClusterInformation reports it."""
APISERVER_BUILD_SCRIPT_ENV = "BGPFLAT_CALICO_APISERVER_BUILD_SCRIPT"
APISERVER_BINARY = "calico-apiserver"


def _apiserver_complete(directory: Path) -> bool:
    return os.access(directory / APISERVER_BINARY, os.X_OK) and (directory / "build-info.json").is_file()


def ensure_calico_apiserver(*, progress: go_build.Progress | None = None) -> Path:
    """Path of Calico's API server binary, building it first (minutes on a cold Go cache) when there is none."""
    pin = CALICO_APISERVER
    base = go_build.cache_root() / "calico-apiserver"
    found = go_build.find_build(base, pin.version, complete=_apiserver_complete)
    if found is not None:
        return found / APISERVER_BINARY
    go = go_build.go_version()
    if go is None:
        raise LabError(f"no Calico API server for {pin.path}@{pin.version} in {base} and no Go toolchain to build it")
    target = base / f"{pin.version}-{go}"

    def build() -> None:
        say = progress or go_build.say_on_stderr
        script = go_build.checkout_script(
            "toolchain/apiserver/build.sh", env=APISERVER_BUILD_SCRIPT_ENV, what="Calico API server"
        )
        say(f"building Calico's API server from {pin.path}@{pin.version} with {go} into {target} (first run only)")
        staging, elapsed = go_build.run_build_script(
            script, [pin.version], target=target, failure="building the Calico API server failed", say=say
        )
        info = {
            "calico": pin.version,
            "release": CALICO_APISERVER_VERSION,
            "go": go,
            "build_seconds": round(elapsed, 1),
            "built_at": go_build.utc_timestamp(),
        }
        go_build.publish_build(staging, target, info)
        say(f"built in {elapsed:.0f} s: {target}")

    go_build.build_once(target, complete=_apiserver_complete, build=build)
    return target / APISERVER_BINARY
