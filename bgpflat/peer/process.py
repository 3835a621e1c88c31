"""ExaBGP as a supervised child process: start, stop in order, restart with backoff."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bgpflat.daemon.state import open_append
from bgpflat.errors import PeerError
from bgpflat.peer.state import iso_time


def exabgp_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment ExaBGP needs (exabgp-lab-notes §4), underscore form (valid in 4.2 and 5.0)."""
    env = dict(os.environ)
    env.update(
        {
            # Without it ExaBGP started as root drops to nobody and the collector cannot run.
            "exabgp_daemon_user": pwd.getpwuid(os.geteuid()).pw_name,
            "exabgp_daemon_daemonize": "false",
            "exabgp_api_cli": "false",
            "exabgp_api_ack": "false",
            "exabgp_log_statistics": "false",
            "exabgp_log_destination": "stdout",
        }
    )
    env.update(extra or {})
    return env


class ExabgpChild:
    """One ExaBGP process at a time, in its own process group, with its output in a log file."""

    def __init__(
        self,
        *,
        command: Sequence[str],
        log: Path,
        env: dict[str, str],
        backoff: Sequence[float],
        stable_after: float,
        log_max_bytes: int = 0,
    ) -> None:
        self.command = list(command)
        self.log = log
        self.log_max_bytes = log_max_bytes  # past this, a (re)start moves the log to <log>.1; 0: never
        self.env = env
        self.backoff = tuple(backoff)
        self.stable_after = stable_after
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.restart_at: float | None = None  # set while waiting to restart
        self.last_exit: dict[str, Any] | None = None
        self._backoff_index = 0
        self._planned = False
        self._reaped = True

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running() and self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> int:
        self.restart_at = None
        self._rotate_log()
        with open_append(self.log) as log:
            log.write(f"--- bgpflat: starting {' '.join(self.command)} at {iso_time(time.time())}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    # Its own process group: a terminal's Ctrl-C reaches bgpflat only, which then
                    # stops ExaBGP in order; and the group lets the collector be reaped with it.
                    start_new_session=True,
                )
            except OSError as exc:
                raise PeerError(f"cannot start ExaBGP ({self.command[0]}): {exc.strerror}") from None
        self.started_at = time.time()
        self._reaped = False
        return self.proc.pid

    def _rotate_log(self) -> None:
        """One old generation, checked at each (re)start: ExaBGP writes little between restarts
        (session changes, not routes), and a peer that flaps for weeks must not fill the disk."""
        if self.log_max_bytes <= 0:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.log.stat().st_size > self.log_max_bytes:
                os.replace(self.log, self.log.with_name(f"{self.log.name}.1"))

    def exited(self) -> int | None:
        """The exit code once the running process has ended (and no restart is pending yet)."""
        if self.proc is None or self.restart_at is not None:
            return None
        return self.proc.poll()

    def terminate(self, *, restart_now: bool = False) -> None:
        """SIGTERM to ExaBGP alone: it sends Cease, reports sessions down, then stops its collector."""
        self._planned = self._planned or restart_now
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.proc.pid, signal.SIGTERM)

    def kill_group(self) -> None:
        """SIGKILL whatever is left of ExaBGP's process group (the collector included).

        Done once per process: once the group is empty its id may be reused by someone else.
        """
        if self.proc is None or self._reaped:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reaped = True

    def schedule_restart(self, code: int, now: float) -> tuple[float, float]:
        """Record an exit and when to start again; returns (delay, seconds it ran)."""
        ran_for = now - self.started_at
        if self._planned:
            delay = 0.0
            self._planned = False
        else:
            if ran_for >= self.stable_after:
                self._backoff_index = 0
            delay = self.backoff[min(self._backoff_index, len(self.backoff) - 1)]
            self._backoff_index += 1
        self.restarts += 1
        self.restart_at = now + delay
        self.last_exit = {"code": code, "at": iso_time(now), "ran_for": round(ran_for, 3)}
        return delay, ran_for

    def restart_due(self, now: float) -> bool:
        return self.restart_at is not None and now >= self.restart_at

    def status(self, now: float) -> dict[str, Any]:
        running = self.running()
        return {
            "pid": self.pid,
            "running": running,
            "restarts": self.restarts,
            "started_at": iso_time(self.started_at) if running else None,
            "last_exit": self.last_exit,
            "next_restart_in": None if self.restart_at is None else max(0.0, self.restart_at - now),
        }

    def log_tail(self, lines: int = 5) -> list[str]:
        try:
            with self.log.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 4096))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]
