"""``bgpflat bmp run``: the BMP monitoring station (RFC 7854, RFC 9069), in the foreground.

One thread and a selector: listening sockets (``--listen``) accept routers that connect
(``bmp connect`` on FRR, Junos ``station-address``); ``--connect`` targets are routers that listen
(FRR's ``bmp listener``), dialled again with backoff when the connection ends. The station never
writes a byte to a router: BMP is one-way, and a monitoring tool must not be able to disturb one.

Every router connection has its own ``Framer`` and ``RouterRib`` (``bgpflat.core.bmp``). A message
that does not decode ends that router's session, with the reason in the event log and on stderr;
the other routers go on. A router that connects again starts from empty tables, as RFC 7854 has it
re-send everything. The tables, events, snapshot and read-only endpoint work as the verification
peer's do (``bgpflat.daemon``).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from bgpflat.bmp.metrics import bmp_families
from bgpflat.bmp.records import route_records
from bgpflat.bmp.state import StateDir
from bgpflat.core.bmp.messages import Framer
from bgpflat.core.bmp.rib import RouterRib
from bgpflat.core.bmp.update import BmpError
from bgpflat.daemon.endpoint import Endpoint, parse_endpoint
from bgpflat.daemon.metrics import MetricsServer
from bgpflat.daemon.metrics import serve as serve_metrics
from bgpflat.daemon.state import EVENTS_MAX_BYTES, FORMAT_VERSION, iso_time
from bgpflat.errors import StationError

Address = tuple[str, int]
NotifyFn = Callable[[dict[str, Any]], None]
_RECV = 1 << 18


@dataclass(frozen=True, slots=True, kw_only=True)
class StationOptions:
    state_dir: Any  # pathlib.Path
    listen: tuple[Address, ...] = ()
    connect: tuple[Address, ...] = ()
    endpoint: str | None = None  # loopback HOST:PORT; the default is DIR/bmp.sock
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    snapshot_quiet: float = 0.5
    snapshot_interval: float = 30.0
    events_max_bytes: int = EVENTS_MAX_BYTES
    metrics_listen: str | None = None  # HOST:PORT for Prometheus's /metrics


def parse_address_port(text: str, *, flag: str) -> Address:
    """``IP:PORT`` or ``[v6]:PORT``; raises ``StationError`` naming the flag."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise StationError(f"{flag} {text!r} is not IP:PORT (an IPv6 address goes in brackets: [fd00::1]:5000)")
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        raise StationError(f"{flag} {text!r}: {host!r} is not an IP address") from None
    return host, int(port)


class _Router:
    """One router's BMP session: the socket, the framer and what it built."""

    __slots__ = ("address", "framer", "rib", "since", "sock", "target")

    def __init__(self, sock: socket.socket, address: str, target: Address | None) -> None:
        self.sock = sock
        self.address = address
        self.target = target
        self.framer = Framer()
        self.rib = RouterRib(address=address)
        self.since = time.time()


class _Target:
    """A router that listens: where to dial, and when next."""

    __slots__ = ("address", "attempts", "next_at", "sock")

    def __init__(self, address: Address) -> None:
        self.address = address
        self.attempts = 0
        self.next_at = 0.0
        self.sock: socket.socket | None = None


class Station:
    """One running BMP station. ``run()`` blocks until stopped."""

    def __init__(self, options: StationOptions, *, notify: NotifyFn | None = None) -> None:
        self.options = options
        self.state = StateDir(options.state_dir, events_max_bytes=options.events_max_bytes)
        self._notify = notify or (lambda record: None)
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        self._routers: dict[int, _Router] = {}  # by socket fd
        self._gone: dict[str, dict[str, Any]] = {}  # routers whose session ended: state, reason
        self._targets = [_Target(address) for address in options.connect]
        self._wake_r, self._wake_w = socket.socketpair()
        self._endpoint: Endpoint | None = None
        self._metrics: MetricsServer | None = None
        # Messages that did not decode, per router, across its sessions (the metrics' counter).
        self.malformed: dict[str, int] = {}
        self._stopping = False
        self._started = time.time()
        self._dirty = True
        self._last_change = 0.0
        self._last_snapshot = 0.0

    # -- reading (endpoint thread and snapshots) ----------------------------------------------

    def request_stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _ribs(self) -> list[RouterRib]:
        return [router.rib for router in self._routers.values()]

    def status(self) -> dict[str, Any]:
        with self._lock:
            routers = [
                {**router.rib.to_dict(), "state": "up", "since": iso_time(router.since)}
                for router in self._routers.values()
            ]
            routers += [dict(record) for record in self._gone.values()]
        routers.sort(key=lambda r: r["router"])
        return {
            "format_version": FORMAT_VERSION,
            "running": not self._stopping,
            "pid": os.getpid(),
            "state_dir": str(self.state.path),
            "endpoint": self._endpoint.address if self._endpoint else None,
            "started_at": iso_time(self._started),
            "listen": [f"{h}:{p}" for h, p in self._listen_addresses()],
            "connect": [f"{h}:{p}" for h, p in self.options.connect],
            "routers": routers,
        }

    def routes(self) -> dict[str, Any]:
        with self._lock:
            records = route_records(self._ribs())
        return {"format_version": FORMAT_VERSION, "routes": records}

    def snapshot(self) -> dict[str, Any]:
        data = self.status()
        data["routes"] = self.routes()["routes"]
        data["written_at"] = iso_time(time.time())
        return data

    def metrics_view(self) -> dict[str, Any]:
        """Routers (live and gone), their peers' table sizes and message counts, for the metrics."""
        with self._lock:
            live: list[dict[str, Any]] = [
                {
                    "router": router.address,
                    "state": "up",
                    "by_type": dict(router.rib.by_type),
                    "peers": [
                        {
                            "peer": peer.header.address,
                            "state": peer.state,
                            "tables": {policy: len(paths) for policy, paths in peer.tables.items()},
                        }
                        for peer in router.rib.peers.values()
                    ],
                }
                for router in self._routers.values()
            ]
            gone = [
                {"router": r["router"], "state": r["state"], "by_type": {}, "peers": []} for r in self._gone.values()
            ]
            malformed = dict(self.malformed)
        return {"routers": sorted(live + gone, key=lambda r: r["router"]), "malformed": malformed}

    def _listen_addresses(self) -> list[Address]:
        out = []
        for sock in self._listeners:
            with contextlib.suppress(OSError):
                host, port = sock.getsockname()[:2]
                out.append((host, port))
        return out

    # -- running ------------------------------------------------------------------------------

    def run(self, *, tick: Callable[[], None] | None = None, tick_interval: float = 0.5) -> None:
        """Run until SIGINT/SIGTERM or ``request_stop``; raises ``StationError`` if it cannot start."""
        if not self.options.listen and not self.options.connect:
            raise StationError("nothing to do: give --listen IP:PORT and/or --connect IP:PORT")
        self.state.acquire()
        previous: dict[signal.Signals, Any] = {}
        try:
            for address in self.options.listen:
                self._listen(address)
            endpoint = self.options.endpoint
            if endpoint:
                tcp = parse_endpoint(endpoint, role=self.state.role)
                self._endpoint = Endpoint(self._provide, tcp=tcp, role=self.state.role)
            else:
                self._endpoint = Endpoint(self._provide, unix_path=self.state.endpoint_sock, role=self.state.role)
            self._metrics = serve_metrics(self.options.metrics_listen, lambda: bmp_families(self.metrics_view()))
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    previous[sig] = signal.signal(sig, self._on_signal)
            self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            self._event(
                {"event": "station-started", "pid": os.getpid(), "endpoint": self._endpoint.address}, router=None
            )
            self._loop(tick, tick_interval)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop()

    def _listen(self, address: Address) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
            sock.listen(16)
        except OSError as exc:
            sock.close()
            raise StationError(f"cannot listen on {address[0]}:{address[1]}: {exc.strerror}") from None
        sock.setblocking(False)
        self._listeners.append(sock)
        self._selector.register(sock, selectors.EVENT_READ, "listen")

    def _loop(self, tick: Callable[[], None] | None, tick_interval: float) -> None:
        next_tick = time.monotonic()
        while not self._stopping:
            now = time.time()
            self._dial(now)
            timeout = min(tick_interval, self._next_dial(now), self.options.snapshot_quiet)
            for key, _ in self._selector.select(timeout=max(0.0, timeout)):
                kind = key.data
                if kind == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                elif kind == "listen":
                    self._accept(key.fileobj)  # type: ignore[arg-type]
                elif isinstance(kind, _Target):
                    self._connected(kind)
                else:
                    self._read(kind)
            self._maybe_snapshot()
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + tick_interval

    # -- routers that connect -----------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, remote = listener.accept()
        except OSError:
            return
        self._add_router(sock, remote[0], None)

    def _add_router(self, sock: socket.socket, address: str, target: Address | None) -> None:
        sock.setblocking(False)
        # A router connecting again replaces its earlier session: its tables start from nothing.
        for fd, old in list(self._routers.items()):
            if old.address == address:
                self._close(fd, state="replaced", reason="the router connected again")
        router = _Router(sock, address, target)
        with self._lock:
            self._routers[sock.fileno()] = router
            self._gone.pop(address, None)
        self._selector.register(sock, selectors.EVENT_READ, router)
        self._event({"event": "router-connected"}, router=address)

    # -- routers that listen ------------------------------------------------------------------

    def _next_dial(self, now: float) -> float:
        waits = [t.next_at - now for t in self._targets if t.sock is None and not self._target_up(t)]
        return max(0.0, min(waits)) if waits else 3600.0

    def _target_up(self, target: _Target) -> bool:
        return any(r.target == target.address for r in self._routers.values())

    def _dial(self, now: float) -> None:
        for target in self._targets:
            if target.sock is not None or now < target.next_at or self._target_up(target):
                continue
            family = socket.AF_INET6 if ":" in target.address[0] else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                sock.connect(target.address)
            except BlockingIOError:
                pass
            except OSError as exc:
                sock.close()
                self._dial_failed(target, exc.strerror or str(exc))
                continue
            target.sock = sock
            self._selector.register(sock, selectors.EVENT_WRITE, target)

    def _connected(self, target: _Target) -> None:
        sock = target.sock
        assert sock is not None
        self._selector.unregister(sock)
        target.sock = None
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            sock.close()
            self._dial_failed(target, os.strerror(error))
            return
        target.attempts = 0
        self._add_router(sock, target.address[0], target.address)

    def _dial_failed(self, target: _Target, reason: str) -> None:
        backoff = self.options.backoff
        wait = backoff[min(target.attempts, len(backoff) - 1)]
        target.attempts += 1
        target.next_at = time.time() + wait
        if target.attempts == 1 or target.attempts % 10 == 0:
            self._event(
                {"event": "connect-failed", "reason": reason, "attempts": target.attempts, "retry_in": wait},
                router=target.address[0],
            )

    def _schedule_redial(self, address: Address) -> None:
        for target in self._targets:
            if target.address == address:
                target.next_at = time.time() + self.options.backoff[0]

    # -- reading a router ---------------------------------------------------------------------

    def _read(self, router: _Router) -> None:
        fd = router.sock.fileno()
        try:
            data = router.sock.recv(_RECV)
        except BlockingIOError:
            return
        except OSError as exc:
            self._close(fd, state="disconnected", reason=exc.strerror or str(exc))
            return
        if not data:
            reason = f"the router ended the session ({router.rib.terminated})" if router.rib.terminated else ""
            self._close(fd, state="disconnected", reason=reason or "the router closed the connection")
            return
        records: list[dict[str, Any]] = []
        try:
            with self._lock:
                for message in router.framer.feed(data):
                    records.extend(router.rib.ingest(message))
        except BmpError as exc:
            self.malformed[router.address] = self.malformed.get(router.address, 0) + 1
            self._log_all(records, router.address)
            self._close(fd, state="dropped", reason=f"malformed BMP message: {exc}")
            return
        except Exception as exc:  # one router's bytes must never stop the station
            self._log_all(records, router.address)
            self._close(fd, state="dropped", reason=f"could not process a message: {type(exc).__name__}: {exc}")
            return
        self._log_all(records, router.address)
        self._dirty = True
        self._last_change = time.monotonic()

    def _log_all(self, records: list[dict[str, Any]], address: str) -> None:
        for record in records:
            self._event(record, router=address)

    def _close(self, fd: int, *, state: str, reason: str) -> None:
        router = self._routers.get(fd)
        if router is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(router.sock)
        router.sock.close()
        paths = sum(len(t) for p in router.rib.peers.values() for t in p.tables.values())
        with self._lock:
            del self._routers[fd]
            if state != "replaced":
                # What the session built goes with it: tables from a session that ended are not
                # what the router holds now, and one that misbehaved may be wrong.
                self._gone[router.address] = {
                    "router": router.address,
                    "sys_name": router.rib.sys_name,
                    "sys_descr": router.rib.sys_descr,
                    "state": state,
                    "since": iso_time(time.time()),
                    "reason": reason,
                    "peers": [],
                }
        if router.target is not None:
            self._schedule_redial(router.target)
        self._dirty = True
        self._last_change = time.monotonic()
        self._event({"event": f"router-{state}", "reason": reason, "paths_dropped": paths}, router=router.address)

    # -- events, snapshots, shutdown ----------------------------------------------------------

    def _event(self, record: dict[str, Any], *, router: str | None) -> None:
        full = {"time": iso_time(time.time()), **({"router": router} if router else {}), **record}
        self.state.log_events([full])
        self._notify(full)

    def _provide(self, path: str) -> dict[str, Any] | None:
        if path == "/status":
            return self.status()
        if path == "/routes":
            return self.routes()
        if path == "/snapshot":
            return self.snapshot()
        return None

    def _maybe_snapshot(self, *, force: bool = False) -> None:
        now = time.monotonic()
        quiet = now - self._last_change >= self.options.snapshot_quiet
        overdue = now - self._last_snapshot >= self.options.snapshot_interval
        if force or (self._dirty and (quiet or overdue)):
            self.state.write_snapshot(self.snapshot())
            self._dirty = False
            self._last_snapshot = now

    def _shutdown(self) -> None:
        self._stopping = True
        if self._endpoint is not None:
            self._endpoint.close()
        if self._metrics is not None:
            self._metrics.close()
        # The last snapshot holds the tables as the routers last reported them (marked not
        # running), so that `bmp status|routes` and verify can still read them afterwards.
        with contextlib.suppress(OSError):
            if self.state.lock.exists():
                self._maybe_snapshot(force=True)
        for fd in list(self._routers):
            self._close(fd, state="disconnected", reason="the station stopped")
        for target in self._targets:
            if target.sock is not None:
                target.sock.close()
        for sock in self._listeners:
            sock.close()
        self._event({"event": "station-stopped"}, router=None)
        self.state.remove_sockets()
        self.state.release()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
