"""A real Prometheus server for tests: config and data directory written here, loopback only.

    with Prometheus(tmp_path, targets=["127.0.0.1:9473"]) as prom:
        prom.wait_for_value('bgpflat_peer_sessions{state="up"}', 1)

Debian's ``prometheus`` (``/usr/bin/prometheus``) scrapes every second. ``prefix`` runs it (and
the ``curl`` that asks its HTTP API) inside a network namespace, for targets that listen there.
The server is stopped by its PID; ``close`` checks that it is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

PROMETHEUS = "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skip_unless_prometheus() -> None:
    if not os.path.exists(PROMETHEUS) or shutil.which("curl") is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's prometheus and curl are installed by .ci/run", pytrace=False)
        pytest.skip("needs Debian's prometheus (/usr/bin/prometheus) and curl")


class Prometheus:
    def __init__(
        self, directory: Path, *, targets: Sequence[str], port: int | None = None, prefix: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        self.prefix = list(prefix)
        self.port = port or free_port()
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "bgpflat", "static_configs": [{"targets": list(targets)}]}],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = (directory / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                PROMETHEUS,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _get(self, path: str) -> Any:
        result = subprocess.run(
            [*self.prefix, "curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{self.port}{path}"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if result.returncode != 0:
            return None
        try:
            return json.loads(result.stdout)
        except ValueError:
            return result.stdout

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited: {(self.directory / 'prometheus.log').read_text()[-2000:]}")
            if self._get("/-/ready") is not None:
                return
            time.sleep(0.2)
        pytest.fail("prometheus did not become ready in 30 s")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr``: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert isinstance(data, dict) and data.get("status") == "success", data
        return list(data["data"]["result"])

    def value(self, expr: str) -> float | None:
        """The one value of ``expr``, or None when it has no series (yet)."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_for_value(self, expr: str, expected: float, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.value(expr)
            if last == expected:
                return
            time.sleep(0.5)
        pytest.fail(f"Prometheus: {expr} stayed {last}, expected {expected} (waited {timeout:g} s)")

    def target_health(self) -> list[str]:
        data = self._get("/api/v1/targets")
        return [t["health"] for t in data["data"]["activeTargets"]] if isinstance(data, dict) else []

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()
        assert self.proc.poll() is not None
