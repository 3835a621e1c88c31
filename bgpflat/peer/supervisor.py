"""``bgpflat peer run``: ExaBGP as a supervised child, the RIB, the state directory, the endpoint.

Process picture::

    bgpflat (this module) ──runs──> ExaBGP ──runs──> collector.py ──unix socket──> bgpflat

The collector forwards ExaBGP's JSON lines; this process parses them (core.exabgp_json), keeps the
RIB (core.rib), writes the event log and snapshots, and serves the local endpoint. It runs in the
foreground; SIGINT/SIGTERM stop ExaBGP cleanly (it sends Cease to its neighbors) and write a last
snapshot.

Supervision: if ExaBGP exits on its own it is restarted with exponential backoff, and every
session's routes are kept but marked stale until End-of-RIB arrives again. If the collector's
connection drops while ExaBGP lives, lines were lost, so ExaBGP is restarted at once to make its
neighbors re-send everything: with ``adj-rib-in false`` there is no other way to resync.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from bgpflat.core.exabgp import config as exabgp_conf
from bgpflat.core.exabgp.events import MalformedEvent, PathAttributes, UpdateEvent
from bgpflat.core.exabgp.nlri import PathKey, prefix_of
from bgpflat.core.exabgp.parser import parse_line
from bgpflat.core.exabgp.rib import Notice, Rib
from bgpflat.core.net.prefixes import parse_address
from bgpflat.core.routes.table import Route
from bgpflat.daemon.metrics import MetricsServer
from bgpflat.daemon.metrics import serve as serve_metrics
from bgpflat.errors import PeerError, SpecError
from bgpflat.peer import collector
from bgpflat.peer.endpoint import Endpoint, parse_endpoint
from bgpflat.peer.metrics import peer_families
from bgpflat.peer.process import ExabgpChild, exabgp_environment
from bgpflat.peer.state import EVENTS_MAX_BYTES, FORMAT_VERSION, StateDir, iso_time

NotifyFn = Callable[[Notice], None]
_HELLO = b'{"bgpflat-collector"'
_MAX_LOGGED_MALFORMED = 100
_SAMPLE = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    config: exabgp_conf.PeerConfig
    state_dir: Path
    endpoint: str | None = None  # loopback HOST:PORT; the default is DIR/peer.sock
    exabgp_command: tuple[str, ...] = (sys.executable, "-m", "exabgp", "server")
    python: str = sys.executable  # runs the collector; it needs only the standard library
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    stable_after: float = 60.0  # an ExaBGP that ran this long resets the backoff
    # Snapshots are written once the table is quiet; a table that never stops changing is
    # still saved every snapshot_interval seconds. Neither happens while a session's table dump
    # is under way (up, End-of-RIB not yet seen, for at most dump_wait seconds): a 1M-route dump
    # on a busy machine outlasts snapshot_interval and pauses for longer than snapshot_quiet, and
    # writing 500k routes costs seconds of CPU in one json.dumps call, which holds up the rest of
    # the dump and, holding the GIL, the endpoint's answers.
    snapshot_quiet: float = 0.5
    snapshot_interval: float = 30.0
    dump_wait: float = 300.0
    stop_timeout: float = 10.0
    extra_env: tuple[tuple[str, str], ...] = ()
    events_max_bytes: int = EVENTS_MAX_BYTES  # events.jsonl is rotated past this size; 0: never
    metrics_listen: str | None = None  # HOST:PORT for Prometheus's /metrics


def route_records(routes: Iterable[Route]) -> list[dict[str, Any]]:
    """Routes as ``RouteTable`` records, in a stable order (session, prefix, path-id).

    The running peer serves ``path_records`` of its RIB instead, which must stay equal to this.
    """
    session_key: dict[str, tuple[int, int]] = {}

    def key(route: Route) -> tuple[tuple[int, int], Any, int]:
        found = session_key.get(route.session)
        if found is None:
            found = session_key[route.session] = parse_address(route.session)
        return (found, route.prefix, route.path_id or 0)

    return [route.to_dict() for route in sorted(routes, key=key)]


def path_records(items: Iterable[tuple[PathKey, PathAttributes]]) -> list[dict[str, Any]]:
    """The RIB's stored paths as the same records, in the same order, as ``route_records``."""
    return list(iter_path_records(items))


def iter_path_records(items: Iterable[tuple[PathKey, PathAttributes]]) -> Iterator[dict[str, Any]]:
    """``path_records``, one at a time: a snapshot of 1M paths never holds 1M record dicts.

    Paths of one UPDATE share their attributes, so each attribute set is turned into a record
    once and copied per path: no ``Route`` per path, about half the time of ``route_records``.
    """
    session_key: dict[str, tuple[int, int]] = {}

    def key(item: tuple[PathKey, PathAttributes]) -> tuple[tuple[int, int], Any, int]:
        (text, path_id), attributes = item
        found = session_key.get(attributes.session)
        if found is None:
            found = session_key[attributes.session] = parse_address(attributes.session)
        return (found, prefix_of(text), path_id or 0)

    # Keyed by identity: hashing the attribute tuples would cost more than the copying saves.
    # ``ordered`` keeps every attribute set alive, so no id is reused meanwhile.
    templates: dict[int, dict[str, Any]] = {}
    ordered = sorted(items, key=key)
    for (text, path_id), attributes in ordered:
        template = templates.get(id(attributes))
        if template is None:
            template = templates[id(attributes)] = Route(prefix_of(text), *attributes).to_dict()
        record = template.copy()  # "prefix" stays the first key
        record["prefix"] = text
        if path_id is not None:
            record["path_id"] = path_id
        yield record


class _Connection:
    __slots__ = ("buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""


class PeerRuntime:
    """One running verification peer. ``run()`` blocks until stopped."""

    def __init__(self, options: RunOptions, *, notify: NotifyFn | None = None) -> None:
        self.options = options
        self.state = StateDir(options.state_dir, events_max_bytes=options.events_max_bytes)
        self.rib = Rib()
        self._notify = notify or (lambda notice: None)
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._connections: dict[int, _Connection] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._endpoint: Endpoint | None = None
        self._metrics: MetricsServer | None = None
        self.exabgp = ExabgpChild(
            command=[*options.exabgp_command, str(self.state.exabgp_conf)],
            log=self.state.exabgp_log,
            env=exabgp_environment(dict(options.extra_env)),
            backoff=options.backoff,
            stable_after=options.stable_after,
            log_max_bytes=options.events_max_bytes,
        )
        self._resync_at: float | None = None
        self._stopping = False
        self._started = time.time()
        self._dirty = True
        self._last_change = 0.0
        self._last_snapshot = 0.0
        self._malformed_logged = 0
        self._pending_log: list[dict[str, Any]] = []

    # -- public -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def status(self) -> dict[str, Any]:
        with self._lock:
            sessions = self.rib.sessions()
            counters = self.rib.counters()
        return {
            "format_version": FORMAT_VERSION,
            "running": not self._stopping,
            "pid": os.getpid(),
            "state_dir": str(self.state.path),
            "endpoint": self._endpoint.address if self._endpoint else None,
            "started_at": iso_time(self._started),
            "local_as": self.options.config.local_as,
            "router_id": self.options.config.router_id,
            "exabgp": self.exabgp.status(time.time()),
            "counters": counters.to_dict(),
            "sessions": [view.to_dict() for view in sessions],
        }

    def family_prefixes(self) -> dict[str, dict[str, int]]:
        """Session -> family -> distinct prefixes (for the metrics)."""
        with self._lock:
            return self.rib.family_prefixes()

    def routes(self) -> dict[str, Any]:
        with self._lock:
            items = self.rib.path_items()
        # Built outside the lock: ingest goes on while a reader gets its (consistent) copy.
        return {"format_version": FORMAT_VERSION, "routes": path_records(items)}

    def snapshot(self) -> dict[str, Any]:
        data = self.status()
        data["routes"] = self.routes()["routes"]
        data["written_at"] = iso_time(time.time())
        return data

    def run(self, *, tick: Callable[[], None] | None = None, tick_interval: float = 0.5) -> None:
        """Run until SIGINT/SIGTERM or ``request_stop``; raises ``PeerError`` if it cannot start."""
        self.state.acquire()
        restore = self._install_signals()
        # A table dump allocates two tuples per route, all long-lived: with the default thresholds
        # the cyclic GC keeps rescanning them and costs ~40 % of the ingest CPU. Routes form no
        # cycles, so collect far less often, and leave the startup objects out of it.
        thresholds = gc.get_threshold()
        gc.set_threshold(50_000, 20, 100)
        gc.freeze()
        try:
            self._prepare()
            self._event(
                Notice(
                    kind="peer-started", peer=None, detail={"pid": os.getpid(), "endpoint": self._endpoint_address()}
                )
            )
            self._write_snapshot(time.time())  # readers of the state dir find something at once
            self._start_exabgp()
            next_tick = 0.0
            while not self._stopping:
                self._poll(0.2)
                now = time.time()
                self._supervise(now)
                self._maybe_snapshot(now)
                if tick is not None and now >= next_tick:
                    tick()
                    next_tick = now + tick_interval
            self._shutdown()
        finally:
            self._cleanup()
            restore()
            gc.unfreeze()
            gc.set_threshold(*thresholds)

    # -- setup and teardown ---------------------------------------------------------------------

    def _endpoint_address(self) -> str | None:
        return self._endpoint.address if self._endpoint else None

    def _prepare(self) -> None:
        state = self.state
        sock_path = str(state.collector_sock)
        collector_path = str(Path(collector.__file__).resolve())
        for part in (self.options.python, collector_path, sock_path):
            if any(c.isspace() for c in part):
                raise PeerError(f"{part!r} contains whitespace, which ExaBGP's 'run' line cannot carry")
        try:
            text = exabgp_conf.render(
                self.options.config,
                collector_command=f"{self.options.python} {collector_path} {sock_path}",
            )
        except SpecError as exc:
            raise PeerError(f"invalid peer configuration: {exc}") from None
        state.write_private(state.exabgp_conf, text)
        with contextlib.suppress(FileNotFoundError):
            state.collector_sock.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(sock_path)
        os.chmod(sock_path, 0o600)
        listener.listen(4)
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ)
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        now = time.time()
        for item in self.options.config.neighbors:
            if not item.is_range:
                self.rib.expect(item.address, peer_as=item.peer_as, now=now)
        provider = {"/status": self.status, "/routes": self.routes, "/snapshot": self.snapshot}
        tcp = parse_endpoint(self.options.endpoint) if self.options.endpoint else None
        self._endpoint = Endpoint(lambda path: provider[path](), unix_path=state.endpoint_sock, tcp=tcp)
        self._metrics = serve_metrics(self.options.metrics_listen, lambda: peer_families(self))

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def _shutdown(self) -> None:
        self._event(Notice(kind="peer-stopping", peer=None))
        deadline = time.time() + self.options.stop_timeout
        if self.exabgp.running():
            self.exabgp.terminate()
            # ExaBGP sends Cease to its neighbors and reports each session down; keep reading
            # so that those reports reach the RIB and the last snapshot.
            while time.time() < deadline and (self.exabgp.running() or self._connections):
                self._poll(0.1)
        self._drain(1.0)
        self.exabgp.kill_group()
        with self._lock:
            notices = self.rib.all_down(now=time.time(), reason="bgpflat peer stopped")
        for notice in notices:
            self._event(notice)
        self._event(Notice(kind="peer-stopped", peer=None))
        self._write_snapshot(time.time())

    def _cleanup(self) -> None:
        self.exabgp.kill_group()
        if self._endpoint is not None:
            self._endpoint.close()
        if self._metrics is not None:
            self._metrics.close()
        for conn in list(self._connections.values()):
            self._close(conn)
        if self._listener is not None:
            self._listener.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._flush_log()
        self.state.remove_sockets()
        self.state.release()

    # -- ExaBGP ---------------------------------------------------------------------------------

    def _start_exabgp(self) -> None:
        self._resync_at = None
        pid = self.exabgp.start()
        self._event(Notice(kind="exabgp-started", peer=None, detail={"pid": pid}))

    def _supervise(self, now: float) -> None:
        code = self.exabgp.exited()
        if code is not None:
            self._on_exabgp_exit(code, now)
        elif self.exabgp.restart_due(now):
            self._start_exabgp()
        elif self._resync_at is not None and now >= self._resync_at and self.exabgp.running():
            self._resync_at = None
            self._event(
                Notice(
                    kind="collector-lost", peer=None, detail={"action": "restarting ExaBGP so that neighbors re-send"}
                )
            )
            self.exabgp.terminate(restart_now=True)

    def _on_exabgp_exit(self, code: int, now: float) -> None:
        # Lines ExaBGP wrote before it died are still in the collector's pipe: read them first,
        # so that nothing arrives after the sessions were marked stale.
        self._drain(1.0)
        self.exabgp.kill_group()
        self._resync_at = None
        delay, ran_for = self.exabgp.schedule_restart(code, now)
        detail: dict[str, Any] = {"code": code, "restart_in": delay, "ran_for": round(ran_for, 3)}
        if ran_for < 5:
            detail["log_tail"] = self.exabgp.log_tail()
        self._event(Notice(kind="exabgp-exited", peer=None, detail=detail))
        with self._lock:
            notices = self.rib.speaker_lost(now=now, reason=f"ExaBGP exited ({code}); restarting")
        for notice in notices:
            self._event(notice)
        self._mark_dirty(now)

    # -- collector connections -----------------------------------------------------------------

    def _poll(self, timeout: float) -> None:
        for key, _ in self._selector.select(timeout):
            sock = key.fileobj
            if sock is self._listener:
                self._accept()
            elif sock is self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    self._wake_r.recv(4096)
            else:
                self._read(self._connections[key.fd])

    def _drain(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while self._connections and time.time() < deadline:
            self._poll(0.05)

    def _accept(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(BlockingIOError):
            sock, _ = self._listener.accept()
            sock.setblocking(False)
            conn = _Connection(sock)
            self._connections[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ)

    def _close(self, conn: _Connection) -> None:
        self._connections.pop(conn.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if conn.buffer:
                self._ingest([conn.buffer])
            self._close(conn)
            if not self._stopping and self.exabgp.running():
                self._resync_at = time.time() + 1.0
            return
        lines = (conn.buffer + data).split(b"\n")
        conn.buffer = lines.pop()
        self._ingest(lines)

    def _ingest(self, lines: list[bytes]) -> None:
        now = time.time()
        stamp = iso_time(now)
        notices: list[Notice] = []
        log = self._pending_log
        apply = self.rib.apply
        # Parsing is pure and the costly part: do it before taking the lock the endpoint reads under.
        events = [parse_line(line) for line in lines if not line.startswith(_HELLO)]
        with self._lock:
            for event in events:
                notice = apply(event, now=now)
                if notice is not None:
                    notices.append(notice)
                    log.append({"time": stamp, **notice.to_dict()})
                elif isinstance(event, UpdateEvent):
                    log.append(_update_record(event, stamp))
                elif isinstance(event, MalformedEvent) and self._malformed_logged < _MAX_LOGGED_MALFORMED:
                    self._malformed_logged += 1
                    log.append({"time": stamp, "event": "malformed", "reason": event.reason, "line": event.line})
        self._flush_log()
        for notice in notices:
            self._notify(notice)
        self._mark_dirty(now)

    # -- state ----------------------------------------------------------------------------------

    def _event(self, notice: Notice) -> None:
        self._pending_log.append({"time": iso_time(time.time()), **notice.to_dict()})
        self._flush_log()
        self._notify(notice)

    def _flush_log(self) -> None:
        if self._pending_log:
            records, self._pending_log = self._pending_log, []
            self.state.log_events(records)

    def _mark_dirty(self, now: float) -> None:
        self._dirty = True
        self._last_change = now

    def _maybe_snapshot(self, now: float) -> None:
        self._flush_log()
        if not self._dirty:
            return
        quiet = now - self._last_change >= self.options.snapshot_quiet
        overdue = now - self._last_snapshot >= self.options.snapshot_interval
        if (quiet or overdue) and not self._receiving_table(now):
            self._write_snapshot(now)

    def _receiving_table(self, now: float) -> bool:
        with self._lock:
            return self.rib.receiving_table(now=now, within=self.options.dump_wait)

    def _write_snapshot(self, now: float) -> None:
        self._dirty = False
        self._last_snapshot = now
        # ``snapshot()``'s document, with the route records built as they are written.
        data = self.status()
        with self._lock:
            items = self.rib.path_items()
        data["routes"] = []  # holds the key's place; the records go there
        data["written_at"] = iso_time(time.time())
        try:
            self.state.write_snapshot(data, routes=iter_path_records(items))
        except OSError as exc:
            self._event(Notice(kind="snapshot-failed", peer=None, detail={"error": str(exc)}))


def _update_record(event: UpdateEvent, stamp: str) -> dict[str, Any]:
    announced = event.announced_count
    record: dict[str, Any] = {
        "time": stamp,
        "event": "update",
        "peer": event.peer,
        "announced": announced,
        "withdrawn": len(event.withdrawn_keys),
    }
    if announced:
        texts = itertools.chain.from_iterable(a.texts for a in event.announcements)
        record["announced_sample"] = list(itertools.islice(texts, _SAMPLE))
    if event.withdrawn_keys:
        record["withdrawn_sample"] = [text for text, _ in event.withdrawn_keys[:_SAMPLE]]
    return record
