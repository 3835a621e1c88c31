"""Binaries built once from Go modules by a script of the source checkout, then cached by build key.

A build directory is named by its key, and the key ends with the Go version (``…-go1.26.8``): the
toolchain decides the code that is generated, yet a machine without Go can still use any finished
build of the pinned sources. A build runs into ``<key>.partial`` next to its target and is renamed
into place only when it is finished and described by ``build-info.json``, so a directory named by
its key is always a complete build. Builds of one key are serialised with a lock file so that
parallel test runs do not compile twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bgpflat.errors import LabError

Progress = Callable[[str], None]


def say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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


# Where the lab's data lives: labs/ and toolchain/ beside the package in a source checkout, or
# <prefix>/share/bgpflat/ where the wheel installs them ([tool.setuptools.data-files]).
SHARE = Path("share") / "bgpflat"


def shipped_path(relative: str) -> Path:
    """``relative`` (``labs``, ``toolchain/k8s/build.sh``) in the source checkout this package runs
    from, else where the wheel installed it; the checkout's path when neither has it (for messages)."""
    checkout = Path(__file__).resolve().parents[2] / relative
    if checkout.exists():
        return checkout
    installed = Path(sys.prefix) / SHARE / relative
    return installed if installed.exists() else checkout


def checkout_script(relative: str, *, env: str, what: str) -> Path:
    """The build script at ``relative`` (``shipped_path``), or ``$env``."""
    explicit = os.environ.get(env)
    script = Path(explicit) if explicit else shipped_path(relative)
    if not script.is_file():
        raise LabError(
            f"the {what} build script {relative} is neither in a source checkout nor in "
            f"{Path(sys.prefix) / SHARE} (where the bgpflat wheel installs it); reinstall bgpflat, run from a "
            f"checkout (pip install -e .), or set {env}"
        )
    return script


def find_build(base: Path, key: str, *, complete: Callable[[Path], bool]) -> Path | None:
    """The finished build ``<base>/<key>-<go>``, preferring the local Go's, else any Go's."""
    go = go_version()
    if go is not None and complete(base / f"{key}-{go}"):
        return base / f"{key}-{go}"
    for candidate in sorted(base.glob(f"{key}-go*"), reverse=True):
        if complete(candidate):
            return candidate
    return None


def build_once(target: Path, *, complete: Callable[[Path], bool], build: Callable[[], None]) -> None:
    """Run ``build`` unless ``target`` is complete, under the key's lock file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a parallel run may be building the same key right now
        if not complete(target):
            build()


def run_build_script(
    script: Path, arguments: Sequence[str], *, target: Path, failure: str, say: Progress
) -> tuple[Path, float]:
    """Run ``bash script arguments… <staging>``; return the staging directory and the seconds taken.

    The whole output goes to ``build.log`` in the staging directory; the script's own ``[build]``
    step lines are the progress, Go's per-module chatter stays in the log. A failed build raises
    ``LabError`` starting with ``failure`` and ending with the log's last lines.
    """
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log_path = staging / "build.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["bash", str(script), *arguments, str(staging)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.startswith("[build]"):
                say(line.rstrip())
        code = proc.wait()
    elapsed = time.monotonic() - started
    if code != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise LabError(f"{failure} (exit {code}); full log: {log_path}\n" + "\n".join(tail))
    return staging, elapsed


def publish_build(staging: Path, target: Path, info: Mapping[str, object]) -> None:
    """Describe the finished build in ``build-info.json`` and move it into place."""
    (staging / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def utc_timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
