"""Processes and ports of the local control plane, identified by PID and start time only.

A PID alone is not an identity: after a process exits the kernel may hand its number to another
one. Every record therefore keeps the start time from ``/proc/<pid>/stat`` as well, and a process
counts as ours only while both match. Nothing here looks processes up by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def find_program(name: str) -> str | None:
    """``name`` on PATH or in the sbin directories, where Debian puts BIRD and iproute2's ``ss``
    (not on every user's PATH); None when it is in neither."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def program(name: str) -> str:
    """``find_program``, else ``name`` itself: running it then fails saying it is not installed."""
    return find_program(name) or name


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_caller(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that the kernel kills it (SIGKILL) when the process that started it dies.

    For processes that belong to one run (a test session, a private control plane): if that run is
    killed before its teardown, nothing is left listening. ``setpriv`` (util-linux) sets the
    parent-death signal and then execs ``argv``, so the PID stays the program's own. Without
    ``setpriv`` the command runs unwrapped and teardown alone stops it.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else list(argv)


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks (``/proc/<pid>/stat`` field 22); None when gone, a zombie or dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses; fields restart after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited; only the parent's wait (or the kernel's cleanup) is missing
        return None
    return int(fields[19])


def process_alive(pid: int, start_time: int | None) -> bool:
    """Whether ``pid`` runs and, when ``start_time`` is given, is still the process that started then."""
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


def log_tail(path: str | Path, lines: int, *, missing: str = "(no log)") -> str:
    """The last ``lines`` lines of a process log for an error message; ``missing`` when unreadable."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return missing


def rss_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` from /proc, None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def default_route_exists() -> bool:
    """Whether the host has an IPv4 default route (kube-apiserver derives its advertise address from it)."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return True
    return any(line.split()[1] == "00000000" for line in lines if len(line.split()) > 1)


@dataclass(slots=True, kw_only=True)
class ProcessRecord:
    """One started process as recorded in the state file."""

    name: str
    pid: int
    start_time: int
    binary: str
    log: str

    def alive(self) -> bool:
        return process_alive(self.pid, self.start_time)


def stop_process(record: ProcessRecord, child: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; only while PID and start time still match."""
    if record.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while record.alive() and time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                break
            time.sleep(0.05)
        if record.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
    if child is not None:
        # Only the starting process holds a Popen; reaping it leaves no zombie behind.
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=timeout)


def leads_group(pid: int) -> bool:
    """Whether ``pid`` leads its own process group (as every process the labs start with a new session)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def signal_groups(groups: Iterable[int], signum: int) -> None:
    """Signal every member of these process groups, the leader's children included."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def groups_alive(groups: Iterable[int]) -> bool:
    """Whether any member of these process groups still runs (zombies awaiting their parent aside)."""
    alive = False
    for group in groups:
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            continue
        alive = alive or _group_has_live_member(group)
    return alive


def _group_has_live_member(group: int) -> bool:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state, ppid, pgrp, ...
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False
