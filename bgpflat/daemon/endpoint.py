"""A service's read-only local endpoint: HTTP/JSON on a unix socket or a loopback TCP port.

The verification peer and the BMP station serve the same three paths; ``role`` ("peer",
"bmp station") only changes the words of messages.

Routes:  ``GET /status`` (sessions, counters, ExaBGP process), ``GET /routes`` (the learned
table), ``GET /snapshot`` (both). Anything else is 404; any other method is 405: nothing can be
changed through it. Only loopback addresses are accepted for TCP, because the RIB of a network's
routing is not something to publish on the network by accident.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import ipaddress
import json
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bgpflat.daemon.state import StateDir, encode
from bgpflat.errors import PeerError

Provider = Callable[[str], dict[str, Any] | None]
PATHS = ("/status", "/routes", "/snapshot")


def parse_endpoint(text: str, *, role: str = "peer") -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` on loopback; raises ``PeerError`` otherwise."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise PeerError(f"endpoint {text!r} is not HOST:PORT")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise PeerError(f"endpoint {text!r} is not on loopback; the {role}'s endpoint is local only")
    return host, int(port_text)


def _handler(provider: Provider, role: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "bgpflat-" + role.replace(" ", "-")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            data = provider(path) if path in PATHS else None
            if data is None:
                self._send(404, {"error": f"unknown path {path}", "paths": list(PATHS)})
            else:
                self._send(200, data)

        def _refuse(self) -> None:
            self._send(405, {"error": f"the {role} endpoint is read-only"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def _send(self, status: int, data: dict[str, Any]) -> None:
            body = encode(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Unix-socket clients have no address, and access logs would only be noise here.
            return

    return Handler


class QuietDisconnects:
    """A socketserver mixin: a client that goes away mid-request (a reset, a timeout) is its own
    business, no traceback in the service's log for it. Anything else is reported as
    socketserver reports it."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[misc]


class _UnixHTTPServer(QuietDisconnects, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TCPHTTPServer(QuietDisconnects, http.server.ThreadingHTTPServer):
    daemon_threads = True


class _TCP6HTTPServer(_TCPHTTPServer):
    address_family = socket.AF_INET6


class Endpoint:
    """Serves ``provider`` in a background thread until ``close``."""

    def __init__(
        self,
        provider: Provider,
        *,
        unix_path: Path | None = None,
        tcp: tuple[str, int] | None = None,
        role: str = "peer",
    ) -> None:
        handler = _handler(provider, role)
        self.server: socketserver.BaseServer
        try:
            if tcp is not None:
                server_class = _TCP6HTTPServer if ":" in tcp[0] else _TCPHTTPServer
                self.server = server_class(tcp, handler)
                self.address = f"{tcp[0]}:{self.server.server_address[1]}"
            elif unix_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    unix_path.unlink()
                self.server = _UnixHTTPServer(str(unix_path), handler)
                unix_path.chmod(0o600)
                self.address = f"unix:{unix_path}"
            else:
                raise PeerError("an endpoint needs a unix socket path or a loopback address")
        except OSError as exc:
            raise PeerError(f"cannot open the {role} endpoint: {exc.strerror or exc}") from None
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"{role}-endpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class EndpointUnavailable(PeerError):
    """Nothing answers at the endpoint (the service is not running)."""


def fetch(address: str, path: str, *, timeout: float = 10.0, role: str = "peer") -> dict[str, Any]:
    """GET ``path`` from an endpoint address (``unix:/path`` or ``host:port``)."""
    connection: http.client.HTTPConnection
    if address.startswith("unix:"):
        connection = _UnixConnection(address[5:], timeout)
    else:
        host, port = parse_endpoint(address, role=role)
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        raise EndpointUnavailable(f"no {role} answers at {address}: {exc.strerror}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise PeerError(f"reading {path} from the {role} at {address} failed: {exc}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise PeerError(f"the {role} at {address} answered {response.status} for {path}")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise PeerError(f"the {role} at {address} sent invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PeerError(f"the {role} at {address} sent an unexpected answer")
    return data


def fetch_running(state: StateDir, endpoint: str | None, path: str) -> tuple[str, dict[str, Any]] | None:
    """GET ``path`` from the service running on ``state``: at ``endpoint`` if given, else at its
    socket in the state directory (DIR/peer.sock for the peer).

    None when nothing answers at the socket (read the snapshot instead); with an explicit
    ``endpoint`` a service that does not answer is an error. Returns the address that answered.
    """
    address = endpoint or f"unix:{state.endpoint_sock}"
    if endpoint or state.endpoint_sock.exists():
        try:
            return address, fetch(address, path, role=state.role)
        except EndpointUnavailable:
            if endpoint:
                raise
    return None
