"""A lab pod's HTTP server: answers every GET with the pod's name and IP, like ``traefik/whoami``.

Run inside the pod's namespace as a script (``python3 httpd.py --name P --ip A --port 80``); it
imports only the standard library so it starts fast and needs nothing installed. The answer names
the pod, so a check through a Service can tell which endpoint served it. SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


def make_handler(*, name: str, namespace: str, ip: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bgpflat-lab-pod/1"

        def do_GET(self) -> None:
            client = self.client_address[0]
            if self.path.startswith("/json"):
                body = json.dumps({"pod": name, "namespace": namespace, "ip": ip, "client": client}) + "\n"
                kind = "application/json"
            else:
                body = f"Hostname: {name}\nNamespace: {namespace}\nIP: {ip}\nRemoteAddr: {client}\n"
                kind = "text/plain; charset=utf-8"
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            # One short line per request on stderr, which the lab sends to the pod's log file.
            sys.stderr.write(f"{self.client_address[0]} {format % args}\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    handler = make_handler(name=args.name, namespace=args.namespace, ip=args.ip)
    servers = [ThreadingHTTPServer(("0.0.0.0", port), handler) for port in (args.port or [80])]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stderr.write(f"serving {args.name} ({args.ip}) on port(s) {', '.join(map(str, args.port or [80]))}\n")
    sys.stderr.flush()
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
