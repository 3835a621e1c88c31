"""Calico's confd beside each lab node's BIRD, watching the API server as calico-node runs it.

calico-node runs confd as a daemon: it watches the datastore, re-renders ``bird.cfg``,
``bird_aggr.cfg`` and ``bird_ipam.cfg`` when something the node's BGP depends on changes, and
runs its ``reload_cmd`` (``sv hup bird``) after each rewrite. The lab does the same with the real
binary, per node, in the host's network namespace (the API server listens on the host's loopback),
with two differences, both in the ``reload_cmd``:

* confd writes into a staging directory (``<bird dir>/rendered/``), not where BIRD reads. Its
  ``reload_cmd`` is ``python -m bgpflat.lab.fabric.node_confd STAGING BIRD_DIR``, which copies
  the staged files next to ``bird.cfg`` with the fork-only ``krt_tunnel`` assignments neutralised
  (``confd.without_krt_tunnel``: stock BIRD 1.6 refuses them), so BIRD never reads an unstripped
  file, then runs ``birdc configure`` on the node's control socket.
* confd processes each template in its own goroutine, so two reloads can run at once: the copy
  and the configure happen under a lock file in the BIRD directory.

A reload before BIRD runs (confd's first render, while ``lab up`` is still starting things) only
copies the files; ``install`` runs once more after BIRD's control socket exists, so a render that
fell between the first copy and BIRD's start is not lost.

Layout per node (``<fabric state>/bird/<node>/``)::

    confd/ confd.toml   confd's templates (dest → rendered/) and its empty config file
    rendered/           what confd writes
    bird*.cfg           what BIRD reads: rendered/ without krt_tunnel
    bird.ctl            BIRD's control socket
"""

from __future__ import annotations

import fcntl
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import bgpflat
from bgpflat.errors import LabError
from bgpflat.lab.confd import ConfdRun, default_templates_dir, ensure_confd, wait_settled, without_krt_tunnel
from bgpflat.lab.fabric.bird_control import birdc
from bgpflat.lab.fabric.netns import NetnsLab
from bgpflat.lab.go_build import Progress

RENDERED = "rendered"
CONTROL_SOCKET = "bird.ctl"
LOCK_FILE = ".install.lock"
FIRST_RENDER_TIMEOUT = 120.0
BIRDC_TIMEOUT = 30.0


def process_name(node: str) -> str:
    return f"confd:{node}"


def package_root() -> str:
    """The directory ``bgpflat`` is imported from: a child process's ``PYTHONPATH``."""
    return str(Path(bgpflat.__file__).resolve().parents[1])


def reload_command(bird_dir: Path) -> str:
    """The ``reload_cmd`` confd runs (with ``sh -c``) after writing a file for this node."""
    argv = [sys.executable, "-m", "bgpflat.lab.fabric.node_confd", str(bird_dir / RENDERED), str(bird_dir)]
    return f"PYTHONPATH={shlex.quote(package_root())} " + " ".join(shlex.quote(a) for a in argv)


def start(
    lab: NetnsLab, *, node: str, bird_dir: Path, kubeconfig: Path, progress: Progress | None = None
) -> tuple[Path, ...]:
    """Start confd for ``node`` (building it first on a cold cache); return the files it will write."""
    run = ConfdRun.prepare(
        binary=ensure_confd(progress=progress),
        kubeconfig=kubeconfig,
        node_name=node,
        templates_dir=default_templates_dir(),
        work_dir=bird_dir,
        out_dir=bird_dir / RENDERED,
        reload_cmd=reload_command(bird_dir),
    )
    lab.start(process_name(node), "", run.argv, log=lab.state_dir / "logs" / f"confd-{node}.log", env=run.env)
    return run.dests


def wait_first_render(
    lab: NetnsLab, *, node: str, dests: Sequence[Path], timeout: float = FIRST_RENDER_TIMEOUT
) -> None:
    """Until confd has written every file for ``node`` and stopped rewriting them."""
    name = process_name(node)
    wait_settled(
        dests,
        alive=lambda: lab.check_alive(name),
        timeout=timeout,
        what=f"confd for {node}",
        log_path=lab.state_dir / "logs" / f"confd-{node}.log",
    )


def install(staging: Path, bird_dir: Path) -> str | None:
    """Copy confd's files for BIRD (without ``krt_tunnel``) and reload BIRD when it runs.

    Returns BIRD's answer to ``configure`` (None when BIRD has no control socket yet); raises
    ``LabError`` when BIRD refuses the new files (it then keeps running the previous ones).
    """
    with open(bird_dir / LOCK_FILE, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        without_krt_tunnel(staging, bird_dir)
        socket = bird_dir / CONTROL_SOCKET
        if not socket.exists():
            return None
        try:
            answer = birdc(socket, "configure", timeout=BIRDC_TIMEOUT).strip()
        except LabError as exc:
            raise LabError(f"BIRD did not take confd's files in {bird_dir}: {exc}") from None
        if "Reconfigur" not in answer:
            raise LabError(f"BIRD did not take confd's files in {bird_dir}: {answer}")
        return answer


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bgpflat.lab.fabric.node_confd STAGING BIRD_DIR``: confd's ``reload_cmd``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bgpflat.lab.fabric.node_confd STAGING BIRD_DIR", file=sys.stderr)
        return 2
    try:
        answer = install(Path(args[0]), Path(args[1]))
    except (LabError, OSError) as exc:
        # confd logs a failed reload_cmd's output; the previous configuration stays in BIRD.
        print(exc, file=sys.stderr)
        return 1
    print(answer or "installed; BIRD not running yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
