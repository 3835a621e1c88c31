"""The read-only endpoint the peer and the BMP station serve: a client that goes away leaves no trace."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from bgpflat.daemon.endpoint import Endpoint, fetch


def _reset(sock: socket.socket) -> None:
    # SO_LINGER 0: close() sends a RST instead of a FIN, as a client killed mid-request does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_a_client_reset_mid_request_prints_no_traceback_and_the_endpoint_keeps_serving(
    where: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    if where == "tcp":
        endpoint = Endpoint(lambda path: {"path": path}, tcp=("127.0.0.1", 0))
        host, port = endpoint.address.rsplit(":", 1)
        family, address = socket.AF_INET, (host, int(port))
    else:
        unix_path = tmp_path / "e.sock"
        endpoint = Endpoint(lambda path: {"path": path}, unix_path=unix_path)
        family, address = socket.AF_UNIX, str(unix_path)  # type: ignore[assignment]
    try:
        for _ in range(5):
            client = socket.socket(family, socket.SOCK_STREAM)
            client.connect(address)
            client.sendall(b"GET /sta")  # half a request line: the handler is reading when the reset lands
            if family == socket.AF_INET:
                _reset(client)
            else:
                client.shutdown(socket.SHUT_RDWR)
                client.close()
        time.sleep(0.3)  # the handler threads see the reset
        assert fetch(endpoint.address, "/status", timeout=5.0) == {"path": "/status"}
    finally:
        endpoint.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err
