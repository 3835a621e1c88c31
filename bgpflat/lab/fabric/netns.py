"""Network namespaces, links and daemons for the lab, recorded in a state file so teardown is exact.

Everything the lab creates is written to ``<state_dir>/lab.json`` *before* it is created, so a
crash half-way through ``lab up`` still leaves a record ``lab down`` can clean up from:

* namespaces are named ``<lab>-<id>-<role>`` (the short random id keeps parallel labs apart);
* links live inside those namespaces and vanish with them (a veth pair dies with either end);
* daemons run in the foreground under ``ip netns exec`` (which execs, so the PID we get is the
  daemon's) and are recorded with their start time, so a recycled PID is never signalled;
* the few files outside the state directory (``/etc/netns/<ns>/`` for a namespace's
  ``resolv.conf``, FRR's runtime directory) are recorded too.

Processes are stopped by PID only (SIGTERM, then SIGKILL), and so is anything still running inside
the lab's own namespaces at teardown. Nothing is ever killed by name. Teardown is idempotent.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bgpflat.errors import LabError
from bgpflat.lab.processes import groups_alive, leads_group, log_tail, process_alive, process_start_time, signal_groups

STATE_FILE = "lab.json"
LOCK_FILE = "lab.lock"
NETNS_ETC = Path("/etc/netns")
STOP_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0


def default_state_dir(name: str) -> Path:
    """``$XDG_STATE_HOME/bgpflat/lab/<name>`` (``~/.local/state/...``)."""
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "bgpflat" / "lab" / name


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def netns_pids(name: str) -> list[int]:
    """PIDs running inside namespace ``name`` (empty when it does not exist)."""
    if not netns_exists(name):
        return []
    result = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def run(argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command, return its stdout; ``LabError`` with its stderr when it fails and ``check``."""
    try:
        result = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]} is not installed: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout:g} s") from exc
    if check and result.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Until ``condition()`` holds; ``LabError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def ns_argv(namespace: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


def ns_run(namespace: str, argv: Sequence[str], **kwargs: Any) -> str:
    """Run ``argv`` inside ``namespace``."""
    return run(ns_argv(namespace, argv), **kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessRecord:
    name: str
    namespace: str
    pid: int
    start_time: int
    argv: tuple[str, ...]
    log: str

    def alive(self) -> bool:
        return process_alive(self.pid, self.start_time)


@dataclass(slots=True, kw_only=True)
class LabState:
    """What one lab instance created; rewritten after every change (mutable on purpose)."""

    lab: str
    lab_id: str
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> LabState:
        data = json.loads(path.read_text())
        data["processes"] = [ProcessRecord(**{**p, "argv": tuple(p["argv"])}) for p in data.get("processes", [])]
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.rename(path)


class NetnsLab:
    """One lab instance: its namespaces, processes and files, and the state file recording them."""

    def __init__(self, state_dir: Path, state: LabState) -> None:
        self.state_dir = state_dir
        self.state = state
        # Popen objects of children started by this process, so they can be reaped (no zombies).
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._removed = False
        self._stamp = self._file_stamp()

    # -- life cycle -------------------------------------------------------------------------------
    @classmethod
    def create(cls, state_dir: Path, *, lab: str, lab_id: str | None = None) -> NetnsLab:
        """A new, empty lab recorded in ``state_dir`` (which must not hold another lab)."""
        if (state_dir / STATE_FILE).exists():
            raise LabError(f"a lab is already recorded in {state_dir}; run 'bgpflat lab down' first")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates network namespaces)")
        state_dir.mkdir(parents=True, exist_ok=True)
        state = LabState(lab=lab, lab_id=lab_id or secrets.token_hex(2))
        instance = cls(state_dir, state)
        instance.save()
        return instance

    @classmethod
    def attach(cls, state_dir: Path) -> NetnsLab:
        path = state_dir / STATE_FILE
        if not path.is_file():
            raise LabError(f"no lab recorded in {state_dir}")
        try:
            return cls(state_dir, LabState.load(path))
        except (ValueError, TypeError, KeyError) as exc:
            raise LabError(f"{path} is not a lab state file: {exc}") from exc

    def save(self) -> None:
        if not self._removed:  # after teardown there is nothing left to record
            self.state.save(self.state_dir / STATE_FILE)
            self._stamp = self._file_stamp()

    # Several processes record into one lab: ``lab check`` starts and stops the office resolver
    # while the follower restarts the cluster DNS. Each change of the records re-reads the file
    # when another process replaced it (save renames, so the inode tells) and happens under an
    # exclusive lock, so no process writes back a stale list and loses another's PID.
    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            info = (self.state_dir / STATE_FILE).stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns)

    def refresh(self) -> None:
        """Re-read the records when another process changed them since this one read or wrote them."""
        stamp = self._file_stamp()
        if stamp is not None and stamp != self._stamp and not self._removed:
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                self.state = LabState.load(self.state_dir / STATE_FILE)
                self._stamp = stamp

    @contextlib.contextmanager
    def _recording(self) -> Iterator[None]:
        if self._removed or not self.state_dir.is_dir():
            yield
            return
        with (self.state_dir / LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.refresh()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @property
    def prefix(self) -> str:
        return f"{self.state.lab}-{self.state.lab_id}"

    # -- namespaces, links, addresses -------------------------------------------------------------
    def namespace_name(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def add_netns(self, role: str, *, forwarding: bool = False) -> str:
        """Create namespace ``<lab>-<id>-<role>`` with loopback up and reverse-path filtering off.

        rp_filter is off because the lab's paths are asymmetric on purpose (office → ToR → any
        ingress node → owning node, replies straight from the owning node to the ToR), as they
        are with a Calico mesh behind an eBGP ToR. New namespaces inherit IPv4 sysctls from the
        host, so the value is set explicitly rather than assumed.
        """
        name = self.namespace_name(role)
        with self._recording():
            if name in self.state.namespaces:
                raise LabError(f"namespace {name} already exists in this lab")
            self.state.namespaces.append(name)
            self.save()
        run(["ip", "netns", "add", name])
        settings = {"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0"}
        if forwarding:
            settings["net.ipv4.ip_forward"] = "1"
        self.sysctl(name, settings)
        self.ip(name, ["link set lo up"])
        return name

    def ip(self, namespace: str, commands: Iterable[str]) -> None:
        """Run ``ip`` commands inside ``namespace`` in one ``ip -batch`` call."""
        script = "\n".join(commands) + "\n"
        if script.strip():
            run(["ip", "-n", namespace, "-batch", "-"], input=script)

    def sysctl(self, namespace: str, settings: Mapping[str, str]) -> None:
        if settings:
            ns_run(namespace, ["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in settings.items())])

    def veth(self, a_ns: str, a_if: str, b_ns: str, b_if: str) -> None:
        """A veth pair with one end in each namespace (created there directly, so names never clash)."""
        run(["ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns])

    def attach_host(
        self,
        role: str,
        *,
        bridge_ns: str,
        bridge: str,
        port: str,
        address: str | None,
        length: int,
        forwarding: bool = False,
        gateway: str | None = None,
    ) -> str:
        """A new namespace for ``role`` whose ``eth0`` (``address/length``) is plugged into ``bridge``
        of ``bridge_ns`` through port ``port``: a host on a switched segment. Without ``address``
        the link is only up, for a DHCP client to configure."""
        namespace = self.add_netns(role, forwarding=forwarding)
        self.veth(bridge_ns, port, namespace, "eth0")
        self.ip(bridge_ns, [f"link set {port} master {bridge}", f"link set {port} up"])
        self.ip(
            namespace,
            [
                *([f"addr add {address}/{length} dev eth0"] if address else []),
                "link set eth0 up",
                *([f"route add default via {gateway}"] if gateway else []),
            ],
        )
        return namespace

    def write_resolv_conf(self, namespace: str, text: str) -> Path:
        """``/etc/netns/<ns>/resolv.conf``: ``ip netns exec`` bind-mounts it over ``/etc/resolv.conf``."""
        directory = NETNS_ETC / namespace
        self.record_path(directory)
        for _attempt in range(3):
            try:
                directory.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                continue  # another lab's teardown removed an empty /etc/netns in between
        path = directory / "resolv.conf"
        path.write_text(text)
        return path

    def record_path(self, path: Path) -> None:
        """Remember a file or directory outside the state directory, to be removed at teardown."""
        with self._recording():
            if str(path) not in self.state.paths:
                self.state.paths.append(str(path))
                self.save()

    # -- processes --------------------------------------------------------------------------------
    def start(
        self,
        name: str,
        namespace: str,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcessRecord:
        """Start a foreground daemon inside ``namespace``, its output to ``log``; record its PID.

        ``namespace=""`` runs it in the caller's own network namespace: for a helper that must
        reach loopback services of the host (the lab's API server) and talks to the daemons only
        through their control sockets. It is recorded and stopped like every other process.
        """
        with self._recording():
            return self._start(name, namespace, argv, log=log, env=env, cwd=cwd)

    def _start(
        self,
        name: str,
        namespace: str,
        argv: Sequence[str],
        *,
        log: Path,
        env: Mapping[str, str] | None,
        cwd: Path | None,
    ) -> ProcessRecord:
        if any(p.name == name for p in self.state.processes):
            raise LabError(f"a process named {name!r} is already recorded in this lab")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            try:
                child = subprocess.Popen(
                    ns_argv(namespace, argv) if namespace else list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None,
                    cwd=cwd,
                    # Its own session: a Ctrl-C at the terminal that ran ``lab up`` must not reach it.
                    start_new_session=True,
                )
            except OSError as exc:
                raise LabError(f"cannot start {name}: {exc}") from exc
        start_time = process_start_time(child.pid)
        if start_time is None:
            code = child.wait()
            raise LabError(f"{name} exited at once ({code}); see {log}")
        record = ProcessRecord(
            name=name, namespace=namespace, pid=child.pid, start_time=start_time, argv=tuple(argv), log=str(log)
        )
        self._children[child.pid] = child
        self.state.processes.append(record)
        self.save()
        return record

    def process(self, name: str) -> ProcessRecord:
        self.refresh()
        for record in self.state.processes:
            if record.name == name:
                return record
        raise LabError(f"no process {name!r} in this lab")

    def check_alive(self, name: str) -> None:
        record = self.process(name)
        if not record.alive():
            raise LabError(
                f"{name} (pid {record.pid}) is not running; last lines of {record.log}:\n{log_tail(record.log, 15)}"
            )

    def signal(self, name: str, signum: int) -> None:
        record = self.process(name)
        if record.alive():
            os.kill(record.pid, signum)

    def stop(self, names: Iterable[str] | None = None) -> None:
        """Stop recorded processes (all when ``names`` is None) by PID: SIGTERM, wait, SIGKILL."""
        with self._recording():
            self._stop(names)

    def _stop(self, names: Iterable[str] | None) -> None:
        wanted = set(names) if names is not None else None
        records = [p for p in self.state.processes if wanted is None or p.name in wanted]
        self._terminate([(p.pid, p.start_time) for p in records])
        stopped = {p.name for p in records}
        self.state.processes = [p for p in self.state.processes if p.name not in stopped]
        self.save()

    def _terminate(self, targets: list[tuple[int, int | None]]) -> None:
        # Every process the lab starts leads its own process group (start_new_session), and what
        # it spawns stays in that group: confd's reload commands, for one, outlive a confd that is
        # stopped mid-reload. So the group gets the signal too, and the stop waits for all of it.
        groups = [pid for pid, start in targets if process_alive(pid, start) and leads_group(pid)]
        for pid, start in targets:
            if process_alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        signal_groups(groups, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            self._reap()
            if not any(process_alive(pid, start) for pid, start in targets) and not groups_alive(groups):
                break
            time.sleep(0.02)
        for pid, start in targets:
            if process_alive(pid, start):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        signal_groups(groups, signal.SIGKILL)
        for pid, _ in targets:
            child = self._children.pop(pid, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=STOP_TIMEOUT)

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    # -- teardown ---------------------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop every process, delete every namespace and recorded path, then the state directory.

        Safe to run again after a partial failure: whatever is already gone is skipped.
        """
        if self._removed:
            return
        self.stop()
        # Anything else still inside our namespaces was started there by us (e.g. a daemon's
        # helper); the namespaces are ours, so their PIDs are too.
        leftovers = [(pid, process_start_time(pid)) for ns in self.state.namespaces for pid in netns_pids(ns)]
        self._terminate([(pid, start) for pid, start in leftovers if start is not None])
        errors = []
        for name in reversed(self.state.namespaces):
            if netns_exists(name):
                try:
                    run(["ip", "netns", "delete", name])
                except LabError as exc:
                    errors.append(str(exc))
        for path_text in self.state.paths:
            path = Path(path_text)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            if path.parent == NETNS_ETC:
                # /etc/netns exists only for labs; leave it behind only while another lab uses it.
                with contextlib.suppress(OSError):
                    NETNS_ETC.rmdir()
        if errors:
            self.state.namespaces = [n for n in self.state.namespaces if netns_exists(n)]
            self.save()
            raise LabError("teardown incomplete: " + "; ".join(errors))
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self._removed = True

    def leftovers(self) -> dict[str, list[str]]:
        """What of this lab still exists (for status and for tests asserting a clean teardown)."""
        return {
            "namespaces": [n for n in self.state.namespaces if netns_exists(n)],
            "processes": [f"{p.name}:{p.pid}" for p in self.state.processes if p.alive()],
            "paths": [p for p in self.state.paths if Path(p).exists()],
        }


def sweep(prefix: str) -> list[str]:
    """Remove what a lab ``<lab>-<id>`` left behind when its state file is gone; returns what it removed.

    Recovery only (``lab down`` uses the state file): every namespace named ``<prefix>-…`` is the
    lab's by construction, so the processes inside them are stopped by PID, the namespaces deleted,
    and their ``/etc/netns`` entries and FRR runtime directories (``bgpflat-<prefix>-frr-*`` in
    the temp directory) removed. ``prefix`` must name one lab instance, ``<lab>-<id>``.
    """
    if prefix.count("-") < 1 or not prefix.strip("-"):
        raise LabError(f"{prefix!r} does not name a lab instance (<lab>-<id>)")
    run_netns = Path("/run/netns")
    names = sorted(p.name for p in run_netns.iterdir() if p.name.startswith(f"{prefix}-")) if run_netns.is_dir() else []
    removed: list[str] = []
    victims = [(pid, process_start_time(pid)) for name in names for pid in netns_pids(name)]
    for pid, start in victims:
        if start is not None and process_start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and any(s is not None and process_start_time(p) == s for p, s in victims):
        time.sleep(0.05)
    for pid, start in victims:
        if start is not None and process_start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    removed += [f"pid {pid}" for pid, _ in victims]
    for name in names:
        run(["ip", "netns", "delete", name], check=False)
        removed.append(f"netns {name}")
        if (NETNS_ETC / name).is_dir():
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
            removed.append(str(NETNS_ETC / name))
    for directory in Path(tempfile.gettempdir()).glob(f"bgpflat-{prefix}-frr-*"):
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(str(directory))
    with contextlib.suppress(OSError):
        NETNS_ETC.rmdir()
    return removed
