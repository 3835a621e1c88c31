"""Calico's own confd: build it once, then let it render BIRD configuration from a real API server.

confd is the part of calico-node that turns the datastore (Nodes, IPPools, block affinities,
BGPConfiguration, BGPPeers…) into ``bird.cfg``, ``bird_aggr.cfg`` and ``bird_ipam.cfg`` (plus the
``bird6*`` files). Running the real thing against a kube-apiserver shows what Calico would
configure for a cluster state, which is what bgpflat's expectations are checked against.

The binary is built from the Go module proxy by ``toolchain/confd/build.sh`` and cached::

    <cache>/confd/v0.0.0-20251021213802-b1f3c43f8437-go1.26.8/
        confd
        confd.go.mod.used    the wrapper module it was built from
        build-info.json      what was built, with which Go, how long it took
        build.log            the full output of the build

``BGPFLAT_CONFD`` points at a ready binary and bypasses the cache.

Rendering (``render_bird_config``) runs confd as calico-node does (watching the datastore, not
``-onetime``; see ``render_bird_config`` for why) until its output settles, with a copy of Calico's
templates whose ``dest`` paths point into the output directory, without ``reload_cmd``
(calico-node's is ``sv hup bird``) and, by default, without ``check_cmd`` (``bird -p -c`` on
``bird.cfg``/``bird6.cfg``): on a fresh directory confd checks ``bird.cfg`` before the files it
includes exist, so that check fails and confd writes the file anyway; once the file exists, a
changed ``bird.cfg`` that fails the check (e.g. on ``krt_tunnel``, below) is not written and the
old file stays. ``check_with_bird`` runs the parse check afterwards, on the finished set.

Stock BIRD 1.6 and Calico's fork differ in one statement that matters here: up to Calico v3.31,
``bird_ipam.cfg`` assigns ``krt_tunnel`` (a fork-only route attribute) for every non-VXLAN pool, and
stock BIRD rejects the file ("You may set only variables"). ``without_krt_tunnel`` makes a copy that
stock BIRD can parse and run (routes into an IP-in-IP pool are then programmed without the tunnel
device, which the lab, having no tunnels, does not need).

The lab runs confd per node as a daemon instead (``bgpflat.lab.fabric.node_confd``), from the same
``ConfdRun``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab import go_build
from bgpflat.lab.controlplane.crds import module_dir
from bgpflat.lab.processes import find_program, log_tail
from bgpflat.lab.versions import ModulePin

CALICO_CONFD = ModulePin(
    path="github.com/projectcalico/calico",
    version="v0.0.0-20251021213802-b1f3c43f8437",
    sum="h1:PbLe6D0Yis8ce4F+o/Dmlrv4Her2ZN6ns8rmlZoFoEY=",
    note=(
        "projectcalico/calico v3.31.0 (commit b1f3c43f8437), the release whose crd.projectcalico.org/v1 "
        "CRDs the control plane installs. The module proxy serves it only by this pseudo-version; "
        "sum.golang.org does not list it, hence the pinned hash."
    ),
)
"""The Calico release confd is built from and whose templates it renders."""

TEMPLATES_SUBDIR = "confd/etc/calico/confd"
"""Where ``conf.d/`` and ``templates/`` live inside the calico module."""

BUILD_SCRIPT_ENV = "BGPFLAT_CONFD_BUILD_SCRIPT"
BINARY_ENV = "BGPFLAT_CONFD"
RENDER_TIMEOUT = 120.0
SETTLE_SECONDS = 1.0  # confd's output unchanged this long counts as rendered (see render_bird_config)
POLL_SECONDS = 0.05
STOP_TIMEOUT = 10.0

_DEST = re.compile(r'^(\s*dest\s*=\s*)"([^"]*)"\s*$')
_CMD = re.compile(r"^\s*(check_cmd|reload_cmd)\s*=")
_KRT_TUNNEL = re.compile(r'\bkrt_tunnel\s*=\s*"[^"]*"\s*;')


# --- building -------------------------------------------------------------------------------------


def build_key(*, calico: str, go: str) -> str:
    return f"{calico}-{go}"


def _complete(directory: Path) -> bool:
    return os.access(directory / "confd", os.X_OK) and (directory / "build-info.json").is_file()


def build_script() -> Path:
    """``toolchain/confd/build.sh`` of the source checkout this package runs from."""
    return go_build.checkout_script("toolchain/confd/build.sh", env=BUILD_SCRIPT_ENV, what="confd")


def find_confd(cache_dir: Path | None = None, *, calico: ModulePin = CALICO_CONFD) -> Path | None:
    """A finished confd build of this Calico version, preferring the one made with the local Go."""
    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise LabError(f"{BINARY_ENV}={explicit} is not an executable confd")
        return Path(explicit)
    found = go_build.find_build((cache_dir or go_build.cache_root()) / "confd", calico.version, complete=_complete)
    return None if found is None else found / "confd"


def ensure_confd(
    cache_dir: Path | None = None, *, calico: ModulePin = CALICO_CONFD, progress: go_build.Progress | None = None
) -> Path:
    """Path of a confd binary, building it into ``<cache_dir>/confd/`` first if there is none.

    A cold build takes several minutes (about 6 on two busy cores); progress lines go to stderr
    unless ``progress`` is given. ``cache_dir`` defaults to bgpflat's cache (``BGPFLAT_CACHE_DIR``).
    """
    found = find_confd(cache_dir, calico=calico)
    if found is not None:
        return found
    go = go_build.go_version()
    if go is None:
        raise LabError(f"no confd for {calico.path}@{calico.version} in the cache and no Go toolchain to build it")
    target = (cache_dir or go_build.cache_root()) / "confd" / build_key(calico=calico.version, go=go)
    go_build.build_once(
        target, complete=_complete, build=lambda: _run_build(target=target, calico=calico, go=go, progress=progress)
    )
    return target / "confd"


def _run_build(*, target: Path, calico: ModulePin, go: str, progress: go_build.Progress | None) -> None:
    say = progress or go_build.say_on_stderr
    script = build_script()
    say(f"building confd from {calico.path}@{calico.version} with {go} into {target} (first run only)")
    staging, elapsed = go_build.run_build_script(
        script, [calico.version], target=target, failure="building confd failed", say=say
    )
    info = {
        "calico": f"{calico.path}@{calico.version}",
        "go": go,
        "build_seconds": round(elapsed, 1),
        "binary_bytes": (staging / "confd").stat().st_size,
        "built_at": go_build.utc_timestamp(),
    }
    go_build.publish_build(staging, target, info)
    say(f"built confd in {elapsed:.0f} s: {target / 'confd'}")


def default_templates_dir(calico: ModulePin = CALICO_CONFD) -> Path:
    """Calico's confd templates (``conf.d/`` and ``templates/``) from the pinned calico module."""
    directory = module_dir(calico) / TEMPLATES_SUBDIR
    if not (directory / "conf.d").is_dir() or not (directory / "templates").is_dir():
        raise LabError(f"{calico.path}@{calico.version} has no confd templates in {TEMPLATES_SUBDIR}")
    return directory


# --- running confd ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfdRun:
    """How to run confd for one node: its argv, environment and the files it will write.

    ``prepare`` lays out ``confdir`` (a copy of Calico's ``conf.d/`` and ``templates/`` whose
    ``dest`` paths point into ``out_dir``) and an explicit, empty config file; conformance
    (``render_bird_config``) and the lab (``start_node_confd``) both run confd from it.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    dests: tuple[Path, ...]

    @classmethod
    def prepare(
        cls,
        *,
        binary: Path,
        kubeconfig: Path,
        node_name: str,
        templates_dir: Path,
        work_dir: Path,
        out_dir: Path,
        keep_check_cmd: bool = False,
        reload_cmd: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ConfdRun:
        """confd's files go under ``work_dir`` (created fresh), its output into ``out_dir``.

        confd sees only the environment it needs (``DATASTORE_TYPE=kubernetes``, ``KUBECONFIG``,
        ``NODENAME``, ``PATH``) plus ``extra_env`` (e.g. ``CALICO_ROUTER_ID``,
        ``BGP_LOGSEVERITYSCREEN``), never the caller's Calico or Typha settings.
        """
        out_dir.mkdir(parents=True, exist_ok=True)
        confdir = work_dir / "confd"
        shutil.rmtree(confdir, ignore_errors=True)
        confdir.mkdir(parents=True)
        dests = _prepare_confdir(templates_dir, confdir, out_dir, keep_check_cmd, reload_cmd)
        # An explicit, empty config file: otherwise confd reads /etc/confd/confd.toml when present.
        config_file = work_dir / "confd.toml"
        config_file.write_text("")
        env = {
            "PATH": os.pathsep.join((os.environ.get("PATH", "/usr/bin:/bin"), "/usr/sbin", "/sbin")),
            "DATASTORE_TYPE": "kubernetes",
            "KUBECONFIG": str(kubeconfig),
            "NODENAME": node_name,
            **(extra_env or {}),
        }
        argv = (str(binary), "-confdir", str(confdir), "-config-file", str(config_file))
        return cls(argv=argv, env=env, dests=tuple(dests))


def _prepare_confdir(
    templates_dir: Path, confdir: Path, out_dir: Path, keep_check_cmd: bool, reload_cmd: str | None
) -> list[Path]:
    """Copy conf.d/ and templates/ into confdir, pointing every ``dest`` into out_dir.

    calico-node's ``reload_cmd`` (``sv hup bird``) is replaced by ``reload_cmd`` (or dropped).
    """
    for sub in ("conf.d", "templates"):
        if not (templates_dir / sub).is_dir():
            raise LabError(f"{templates_dir} has no {sub}/ (expected Calico's confd/etc/calico/confd)")
    shutil.copytree(templates_dir / "templates", confdir / "templates")
    (confdir / "conf.d").mkdir()
    dests: list[Path] = []
    for toml in sorted((templates_dir / "conf.d").glob("*.toml")):
        lines: list[str] = []
        for line in toml.read_text().splitlines():
            command = _CMD.match(line)
            if command and not (keep_check_cmd and command.group(1) == "check_cmd"):
                continue
            dest = _DEST.match(line)
            if dest:
                line = f'{dest.group(1)}"{out_dir / Path(dest.group(2)).name}"'
            lines.append(line)
        if reload_cmd is not None:
            lines.append(f"reload_cmd = {json.dumps(reload_cmd)}")  # a TOML basic string
        text = "\n".join(lines) + "\n"
        target = confdir / "conf.d" / toml.name
        target.write_text(text)
        written = Path(tomllib.loads(text)["template"]["dest"])
        if written.parent != out_dir:
            raise LabError(f"{toml.name}: could not redirect dest into {out_dir} (got {written})")
        dests.append(written)
    if not dests:
        raise LabError(f"{templates_dir / 'conf.d'} holds no .toml files")
    return dests


def render_bird_config(
    *,
    kubeconfig: Path,
    node_name: str,
    out_dir: Path,
    templates_dir: Path,
    confd: Path | None = None,
    keep_check_cmd: bool = False,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = RENDER_TIMEOUT,
) -> Path:
    """Run confd for ``node_name`` against the API server of ``kubeconfig`` until its output
    settles, then stop it; return ``out_dir``.

    ``out_dir`` receives the rendered files (``bird.cfg``, ``bird_aggr.cfg``, ``bird_ipam.cfg``,
    ``bird6*.cfg``) and ``confd.log``. ``keep_check_cmd`` keeps Calico's own ``check_cmd``
    (``bird -p -c`` / ``bird6 -p -c``, found on ``PATH`` plus ``/usr/sbin``); see the module
    docstring for what it does on reruns. The environment is ``ConfdRun``'s.
    """
    binary = confd or ensure_confd()
    out_dir = out_dir.resolve()
    # Not ``-onetime``: that renders as soon as every source reports in sync, but confd's Service
    # route generator decides with the BGPConfiguration it had when its informers synced; when the
    # syncer delivers the real one (``serviceLoadBalancerAggregation: Disabled``, say) it re-decides
    # asynchronously, after that render. Measured: 2 onetime renders in 40 of one node lacked every
    # Service /32. calico-node keeps confd running and re-renders a moment later; so does this,
    # until all files exist and none has changed for ``SETTLE_SECONDS``.
    log_path = out_dir / "confd.log"
    with tempfile.TemporaryDirectory(prefix="bgpflat-confd-") as tmp:
        run = ConfdRun.prepare(
            binary=binary,
            kubeconfig=kubeconfig,
            node_name=node_name,
            templates_dir=templates_dir,
            work_dir=Path(tmp),
            out_dir=out_dir,
            keep_check_cmd=keep_check_cmd,
            extra_env=extra_env,
        )
        with open(log_path, "w") as log:
            proc = subprocess.Popen(run.argv, stdout=log, stderr=subprocess.STDOUT, env=dict(run.env), cwd=out_dir)

            def alive() -> None:
                code = proc.poll()
                if code is not None:
                    raise LabError(f"confd exited with {code}; log: {log_path}\n" + log_tail(log_path, 15, missing=""))

            try:
                wait_settled(run.dests, alive=alive, timeout=timeout, what=f"confd (pid {proc.pid})", log_path=log_path)
            finally:
                _stop(proc)
    return out_dir


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return (info.st_mtime_ns, info.st_size)


def wait_settled(
    dests: Sequence[Path], *, alive: Callable[[], None], timeout: float, what: str, log_path: Path
) -> None:
    """Until every file in ``dests`` exists and none has changed for ``SETTLE_SECONDS``.

    ``alive`` raises when confd has exited (its exit status and log say why).
    """
    deadline = time.monotonic() + timeout
    last: list[tuple[int, int] | None] | None = None
    changed_at = time.monotonic()
    while True:
        alive()
        now = time.monotonic()
        state = [_file_state(d) for d in dests]
        if state != last:
            last, changed_at = state, now
        elif None not in state and now - changed_at >= SETTLE_SECONDS:
            return
        if now > deadline:
            missing = [d.name for d, s in zip(dests, state, strict=True) if s is None]
            did = f"did not write {', '.join(missing)}" if missing else "kept rewriting its output"
            raise LabError(
                f"{what} {did} within {timeout:.0f} s; log: {log_path}\n" + log_tail(log_path, 15, missing="")
            )
        time.sleep(POLL_SECONDS)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop confd by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


# --- checking with stock BIRD ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BirdCheck:
    """The outcome of ``bird -p -c``: parse only, nothing is started."""

    ok: bool
    output: str
    command: tuple[str, ...]


def check_with_bird(config: Path, *, bird: str = "bird", timeout: float = 60.0) -> BirdCheck:
    """Parse ``config`` (and what it includes, relative to its directory) with ``bird -p -c``."""
    found = find_program(bird)
    if found is None:
        raise LabError(f"{bird} not found; install BIRD 1.6 (Debian: apt-get install bird)")
    command = (found, "-p", "-c", config.name)
    try:
        proc = subprocess.run(command, cwd=config.parent, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"{' '.join(command)} failed to run: {exc}") from exc
    return BirdCheck(ok=proc.returncode == 0, output=(proc.stdout + proc.stderr).strip(), command=command)


def without_krt_tunnel(src_dir: Path, dst_dir: Path) -> int:
    """Copy the rendered ``*.cfg`` files, replacing each ``krt_tunnel = "…";`` with ``print "";``.

    ``krt_tunnel`` exists only in Calico's BIRD fork (IP-in-IP). The replacement keeps every
    ``if … then … else …`` well-formed, so stock BIRD parses and runs the copy (the route is then
    programmed without the tunnel device). Returns how many assignments were replaced.
    """
    dst_dir.mkdir(parents=True, exist_ok=True)
    replaced = 0
    for cfg in sorted(src_dir.glob("*.cfg")):
        text, n = _KRT_TUNNEL.subn('print "";', cfg.read_text())
        replaced += n
        # Written aside and renamed: a BIRD reading the directory sees the old file or the new one.
        tmp = dst_dir / f".{cfg.name}.tmp"
        tmp.write_text(text)
        tmp.rename(dst_dir / cfg.name)
    return replaced
