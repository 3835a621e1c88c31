"""The state directory of a long-running bgpflat service (the verification peer, the BMP station).

Each service names itself (``role``: the words in its messages and the name of its socket) and
adds its own files in a subclass (``bgpflat.peer.state``, ``bgpflat.bmp.state``). The peer's
layout of ``--state-dir DIR``, as an example::

    events.jsonl     one JSON object per line: sessions, End-of-RIB, updates, ExaBGP lifecycle;
                     rotated by size to events.jsonl.1 .. .3 (see ``EVENTS_MAX_BYTES``)
    snapshot.json    sessions + learned routes, replaced atomically (readers never see half a file)
    exabgp.conf      the generated receive-only config (mode 0600: it may hold the MD5 password)
    exabgp.log       ExaBGP's own output (session changes, not routes); when ExaBGP is
                     (re)started and the log is past the events size limit, it becomes exabgp.log.1
    collector.sock   where the collector that ExaBGP runs connects
    peer.sock        the read-only local endpoint (unless --endpoint HOST:PORT is given)
    lock             held while a ``bgpflat peer run`` uses the directory
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

from bgpflat.errors import BgpflatError, PeerError

FORMAT_VERSION = 1
# One line per UPDATE: a busy neighbor would otherwise fill the disk over weeks of running.
EVENTS_MAX_BYTES = 64 * 1024 * 1024
EVENTS_GENERATIONS = 3


# Files in a state directory are opened without following a symlink (O_NOFOLLOW): run as root,
# a link planted there would otherwise have bgpflat write over whatever file it names.
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def open_append(path: Path, *, mode: int = 0o644) -> IO[bytes]:
    """``path`` opened for appending (created if missing), never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, mode)
    return os.fdopen(fd, "ab")


def iso_time(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ROUTES_PER_CALL = 20_000


def encode(data: dict[str, Any]) -> str:
    """Compact JSON of a status/snapshot document (``encode_parts``, joined)."""
    return "".join(encode_parts(data))


def encode_parts(data: dict[str, Any], routes: Iterable[dict[str, Any]] | None = None) -> Iterator[str]:
    """Compact JSON of a status/snapshot document in pieces, the routes a slice at a time.

    json.dumps, not json.dump: only the one-shot encoder is C; streaming 100k routes through the
    pure-Python one took ~0.7 s of CPU. But one C call holds the GIL throughout, which for 1M
    routes is seconds in which the endpoint's thread cannot answer a /status; between slices it
    can, and a writer of the pieces never holds the whole text. Joined, the pieces are the same
    text as json.dumps of the whole document. ``routes``, when given, are the records that go in
    the place of ``data["routes"]``, read as they are written (never all held at once).
    """
    if routes is None:
        listed = data.get("routes")
        if type(listed) is not list or len(listed) <= _ROUTES_PER_CALL:
            yield json.dumps(data, separators=(",", ":"))
            return
        routes = listed
    # A placeholder no value can contain by chance, where the routes' text goes.
    token = f"routes-{os.urandom(16).hex()}"
    before, _, after = json.dumps({**data, "routes": token}, separators=(",", ":")).partition(f'"{token}"')
    yield before + "["
    records = iter(routes)
    separator = ""
    while chunk := list(islice(records, _ROUTES_PER_CALL)):
        yield separator + json.dumps(chunk, separators=(",", ":"))[1:-1]
        separator = ","
    yield "]" + after


class StateDir:
    """Paths and file operations of one state directory."""

    role = "peer"  # "bgpflat peer": in messages, and DIR/peer.sock
    error: type[BgpflatError] = PeerError

    def __init__(
        self, path: Path, *, events_max_bytes: int = EVENTS_MAX_BYTES, events_generations: int = EVENTS_GENERATIONS
    ) -> None:
        self.path = path
        self.events_max_bytes = events_max_bytes  # 0: never rotate
        self.events_generations = events_generations
        self.events = path / "events.jsonl"
        self.snapshot = path / "snapshot.json"
        self.endpoint_sock = path / f"{self.role.split()[0]}.sock"
        self.lock = path / "lock"
        self._events_file: IO[bytes] | None = None
        self._events_size = 0
        self._lock_file: IO[str] | None = None

    def create(self) -> None:
        """Make the directory (mode 0700) or check the one that is there: it must be a directory of
        the user running bgpflat that nobody else can write to, so that nobody else can plant or
        swap the files bgpflat writes in it."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            found = os.stat(self.path)
        except OSError as exc:
            raise self.error(f"cannot create state directory {self.path}: {exc.strerror}") from None
        if not stat.S_ISDIR(found.st_mode):
            raise self.error(f"state directory {self.path} is not a directory; give a directory")
        if found.st_uid != os.geteuid():
            raise self.error(
                f"state directory {self.path} belongs to uid {found.st_uid}, not to this user (uid {os.geteuid()}); "
                "give a directory of your own with --state-dir"
            )
        if found.st_mode & stat.S_IWOTH:
            raise self.error(
                f"state directory {self.path} is writable by every user; "
                f"fix: chmod o-w {self.path}, or give a directory of your own with --state-dir"
            )

    def acquire(self) -> None:
        """Take the directory for one running service; a second one on it is refused."""
        self.create()
        try:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        except OSError as exc:
            raise self.error(f"cannot open {self.lock}: {exc.strerror} (a symlink is never followed there)") from None
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise self.error(f"another bgpflat {self.role} is running with state directory {self.path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def release(self) -> None:
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def write_private(self, path: Path, text: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o600)
        except OSError as exc:
            raise self.error(f"cannot write {path}: {exc.strerror} (a symlink is never followed there)") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(path, 0o600)

    def log_events(self, records: list[dict[str, Any]]) -> None:
        """Append records, one line each; a line never straddles two generations."""
        handle = self._open_events()
        limit = self.events_max_bytes
        for record in records:
            line = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
            # Rotate before a line that would pass the limit, so every line lands whole in one
            # file. A line longer than the limit still goes into a fresh (empty) file.
            if limit > 0 and self._events_size and self._events_size + len(line) > limit:
                handle = self._rotate_events()
            handle.write(line)
            self._events_size += len(line)
        handle.flush()

    def event_files(self) -> list[Path]:
        """The event log's generations that exist, oldest first (the current file last)."""
        names = [self._generation(n) for n in range(self.events_generations, 0, -1)]
        return [path for path in (*names, self.events) if path.exists()]

    def _generation(self, n: int) -> Path:
        """``events.jsonl.n``; generation 0 is the current file."""
        return self.events if n == 0 else self.events.with_name(f"{self.events.name}.{n}")

    def _open_events(self) -> IO[bytes]:
        if self._events_file is None:
            # Binary, so that the size counted is the size on disk; appending keeps what an
            # earlier run wrote, and counts it towards the limit.
            try:
                self._events_file = open_append(self.events)
            except OSError as exc:
                raise self.error(
                    f"cannot write {self.events}: {exc.strerror} (a symlink is never followed there)"
                ) from None
            self._events_size = self._events_file.tell()
        return self._events_file

    def _rotate_events(self) -> IO[bytes]:
        assert self._events_file is not None
        self._events_file.close()  # flushes: everything written so far is in the file renamed below
        self._events_file = None
        for n in range(self.events_generations, 0, -1):
            # os.replace over the oldest generation drops it; a missing one (early on) is skipped.
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._generation(n - 1), self._generation(n))
        if self.events_generations <= 0:
            with contextlib.suppress(FileNotFoundError):
                self.events.unlink()
        return self._open_events()

    def write_snapshot(self, data: dict[str, Any], *, routes: Iterable[dict[str, Any]] | None = None) -> None:
        """Write, fsync, then rename over the old snapshot: a reader sees the old or the new one.

        ``routes``: the records for ``data["routes"]``, built as they are written (``encode_parts``).
        """
        # A name nobody can guess, created exclusively (mkstemp): never a file someone put there.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.snapshot.name}.", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.writelines(encode_parts(data, routes))
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # readers of the state directory (peer status) as before
            os.replace(tmp, self.snapshot)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read_snapshot(self) -> dict[str, Any]:
        try:
            text = self.snapshot.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise self.error(f"no {self.role} state in {self.path}: no snapshot.json") from None
        except OSError as exc:
            raise self.error(f"cannot read {self.snapshot}: {exc.strerror}") from None
        from bgpflat.adapters.collector import collector_paused

        try:
            # A snapshot of a million routes is millions of dicts and lists, none of them garbage:
            # the collector's passes over them while they are made would be most of the time.
            with collector_paused():
                data = json.loads(text)
        except ValueError as exc:
            raise self.error(f"{self.snapshot} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            raise self.error(f"{self.snapshot} is not a bgpflat {self.role} snapshot (format_version {FORMAT_VERSION})")
        return data

    def sockets(self) -> tuple[Path, ...]:
        return (self.endpoint_sock,)

    def remove_sockets(self) -> None:
        for path in self.sockets():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
