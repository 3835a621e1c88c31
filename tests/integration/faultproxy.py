"""A small HTTP proxy in front of the real kube-apiserver that injects faults on chosen requests.

The client (bgpflat) talks plain HTTP to the proxy on loopback; the proxy talks TLS with the admin
client certificate to the real API server. Every request is forwarded untouched unless a rule
matches it, and a rule fires a fixed number of times:

* ``status``: answer with this HTTP status and a Kubernetes ``Status`` body (plus ``headers``,
  such as a 429's ``Retry-After``), forward nothing;
* ``drop_before``: close the connection without forwarding (the write never happened);
* ``drop_after``: forward, let the server act, then close without answering (the write happened,
  the client cannot know);
* ``before``: call a function, then forward (a concurrent edit made at the worst moment);
* ``delay``: wait this many seconds, then forward (a slow network: the client may give up first).

``skip`` lets the first matching requests through untouched (the fault hits the Nth one).

Faults come from here, never from patching the client: what bgpflat sees is what a real flaky
network or a failing API server would show it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from bgpflat.daemon.endpoint import QuietDisconnects

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Rule:
    method: str
    path_contains: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_before: bool = False
    drop_after: bool = False
    before: Callable[[], None] | None = None
    delay: float = 0.0
    times: int = 1
    skip: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.fired < self.times and method == self.method and self.path_contains in path


class _ProxyServer(QuietDisconnects, ThreadingHTTPServer):
    # A kube client dropping a pooled connection resets it under a handler thread waiting for the
    # next request; that is not a fault of the proxy, and a traceback for it would land in
    # whichever test's stderr runs at that moment.
    pass


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    ssl_context: ssl.SSLContext
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, int | str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        continue
                    rule.fired += 1
                    return rule
        return None

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                rule = proxy._take(self.command, self.path)
                if rule is not None and rule.before is not None:
                    rule.before()
                if rule is not None and rule.delay:
                    time.sleep(rule.delay)
                if rule is not None and rule.status is not None:
                    proxy.log.append((self.command, self.path, rule.status))
                    payload = json.dumps(
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "message": "injected fault",
                            "reason": "InternalError",
                            "code": rule.status,
                        }
                    ).encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/json")
                    for key, value in rule.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if rule is not None and rule.drop_before:
                    proxy.log.append((self.command, self.path, "dropped before forwarding"))
                    self._drop()
                    return
                upstream = http.client.HTTPSConnection(
                    proxy.upstream_host, proxy.upstream_port, context=proxy.ssl_context, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if rule is not None and rule.drop_after:
                    proxy.log.append((self.command, self.path, f"{response.status}, then dropped"))
                    self._drop()
                    return
                proxy.log.append((self.command, self.path, response.status))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _ProxyServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def write_kubeconfig(self, path: Path, *, context: str = "via-proxy") -> Path:
        """A kubeconfig that reaches the real server only through this proxy."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxied", "cluster": {"server": self.url}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": "proxied", "user": "anonymous"}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path


def proxy_for(*, server: str, ca_cert: Path, client_cert: Path, client_key: Path) -> FaultProxy:
    host, port = server.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca_cert))
    context.load_cert_chain(str(client_cert), str(client_key))
    return FaultProxy(upstream_host=host, upstream_port=int(port), ssl_context=context).start()
