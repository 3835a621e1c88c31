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

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab import versions

Progress = Callable[[str], None]

BUILD_SCRIPT_ENV = "BGPFLAT_K8S_BUILD_SCRIPT"
BIN_DIR_ENV = "BGPFLAT_K8S_BIN_DIR"


@dataclass(frozen=True, slots=True, kw_only=True)
class Binaries:
    """Paths of a usable kube-apiserver and etcd."""

    kube_apiserver: Path
    etcd: Path
    directory: Path


def cache_root() -> Path:
    """bgpflat's cache directory (``BGPFLAT_CACHE_DIR``, else ``$XDG_CACHE_HOME/bgpflat``)."""
    explicit = os.environ.get("BGPFLAT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bgpflat"


def go_version() -> str | None:
    """The local Go toolchain's version (``go1.26.8``), or None without Go."""
    go = shutil.which("go")
    if go is None:
        return None
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env={**os.environ, "GOTOOLCHAIN": "local"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_key(*, k8s: str, etcd: str, go: str) -> str:
    return f"v{k8s}-etcd{etcd}-{go}"


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
    base = cache_root() / "k8s"
    go = go_version()
    if go is not None:
        exact = base / build_key(k8s=k8s, etcd=etcd, go=go)
        if _complete(exact):
            return _as_binaries(exact)
    # Without Go (or with a different one) any finished build of the pinned versions will do.
    for candidate in sorted(base.glob(f"v{k8s}-etcd{etcd}-go*"), reverse=True):
        if _complete(candidate):
            return _as_binaries(candidate)
    return None


def build_script() -> Path:
    """``build/k8s/build.sh`` of the source checkout this package runs from."""
    explicit = os.environ.get(BUILD_SCRIPT_ENV)
    script = Path(explicit) if explicit else Path(__file__).resolve().parents[2] / "build" / "k8s" / "build.sh"
    if not script.is_file():
        raise LabError(
            f"the control-plane build script {script} is missing; run from a source checkout of bgpflat "
            f"(pip install -e .) or set {BUILD_SCRIPT_ENV}"
        )
    return script


def ensure_binaries(
    *,
    k8s: str = versions.KUBERNETES_VERSION,
    etcd: str = versions.ETCD_VERSION,
    progress: Progress | None = None,
) -> Binaries:
    """Return cached binaries, building them first (minutes on a cold Go cache) when there are none."""
    found = find_cached(k8s=k8s, etcd=etcd)
    if found is not None:
        return found
    go = go_version()
    if go is None:
        raise LabError(
            f"no kube-apiserver v{k8s} / etcd v{etcd} in {cache_root() / 'k8s'} and no Go toolchain to "
            f"build them; install Go >= 1.25 or set {BIN_DIR_ENV}"
        )
    target = cache_root() / "k8s" / build_key(k8s=k8s, etcd=etcd, go=go)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # someone else may be building the same key right now
        if _complete(target):
            return _as_binaries(target)
        _run_build(target=target, k8s=k8s, etcd=etcd, go=go, progress=progress)
    return _as_binaries(target)


def _run_build(*, target: Path, k8s: str, etcd: str, go: str, progress: Progress | None) -> None:
    say = progress or (lambda line: print(line, file=sys.stderr))
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = staging / "build.log"
    script = build_script()
    say(f"building kube-apiserver v{k8s} and etcd v{etcd} with {go} into {target} (first run only)")
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", str(script), k8s, etcd, str(staging)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            # The script's own step lines are the progress; go's per-module chatter stays in the log.
            if line.startswith("[build]"):
                say(line.rstrip())
        code = proc.wait()
    elapsed = time.monotonic() - started
    if code != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise LabError(f"building the control plane failed (exit {code}); full log: {log_path}\n" + "\n".join(tail))
    info = {
        "kubernetes": k8s,
        "etcd": etcd,
        "go": go,
        "build_seconds": round(elapsed, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (staging / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    say(f"built in {elapsed:.0f} s: {target}")
