"""The API process ExaBGP runs for bgpflat: forwards ExaBGP's JSON lines to the bgpflat process.

Usage (written into the ExaBGP config by ``bgpflat peer run``)::

    python3 collector.py /path/to/state-dir/collector.sock

It must import only the standard library: ExaBGP starts it with whatever interpreter the config
names, possibly outside bgpflat's environment. It does no parsing at all. Bytes are forwarded as
read, so the collector costs almost nothing per route and cannot be crashed by an odd line; the
bgpflat process parses, counts malformed lines and keeps the RIB.

It never writes to its stdout: anything written there would be a command to ExaBGP, and the
verification peer must never announce anything.

Exit codes: 0 when ExaBGP closes stdin (ExaBGP is stopping); 1 when the bgpflat process cannot be
reached or goes away. An ExaBGP whose bgpflat process is gone serves no one (and, in its own
process group, would outlive a bgpflat that was SIGKILLed), so the collector then asks it to stop.

On SIGTERM (ExaBGP stopping, right after it wrote the sessions' final ``down`` lines) it forwards
whatever is still waiting on stdin, then exits: those last lines must reach the RIB.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time

CONNECT_TIMEOUT = 5.0
CHUNK = 1 << 20


def connect(path: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
        else:
            return sock


_stopping = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _stopping
    _stopping = True


class LostBgpflat(OSError):
    """The bgpflat process closed its end."""


def forward(source_fd: int, sock: socket.socket) -> None:
    # One hello line so the bgpflat process can tell a fresh collector from a reconnect.
    sock.sendall(b'{"bgpflat-collector": {"pid": %d}}\n' % os.getpid())
    sock_fd = sock.fileno()
    while True:
        # The socket is watched too: bgpflat never writes, so it turning readable means bgpflat
        # is gone, which an idle session would otherwise never reveal.
        readable, _, _ = select.select([source_fd, sock_fd], [], [], 0.2)
        if sock_fd in readable and not sock.recv(1):
            raise LostBgpflat("the bgpflat process closed the connection")
        if source_fd not in readable:
            if _stopping:
                return
            continue
        data = os.read(source_fd, CHUNK)
        if not data:
            return
        sock.sendall(data)


def stop_exabgp() -> None:
    parent = os.getppid()
    if parent > 1:
        with contextlib.suppress(OSError):
            os.kill(parent, signal.SIGTERM)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: collector.py SOCKET", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sock = connect(argv[1])
    except OSError as exc:
        print(f"bgpflat collector: cannot reach {argv[1]}: {exc}; stopping ExaBGP", file=sys.stderr)
        stop_exabgp()
        return 1
    try:
        forward(sys.stdin.fileno(), sock)
    except OSError as exc:
        print(f"bgpflat collector: lost the bgpflat process: {exc}; stopping ExaBGP", file=sys.stderr)
        stop_exabgp()
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
