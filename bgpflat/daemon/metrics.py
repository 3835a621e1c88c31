"""Prometheus metrics of a long-running bgpflat command, served over HTTP (``--metrics-listen``).

The peer, the BMP station and ``verify --watch`` each describe what they hold as metric families
(``Family``), built afresh on every scrape from the same state their ``status`` shows: no second
set of counters that could drift from it. This module turns those into ``prometheus_client``
families and serves them on ``/metrics``.

Unlike the read-only endpoint, the metrics port may listen on any address: a Prometheus server
elsewhere, or in the cluster, has to reach it. It carries counts and states, never routes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bgpflat.errors import SpecError

GAUGE = "gauge"
COUNTER = "counter"

Labels = tuple[str, ...]


@dataclass(slots=True)
class Family:
    """One metric family: a name (``bgpflat_…``; counters without their ``_total``), help text,
    label names and the samples (label values -> value)."""

    name: str
    kind: str
    help: str
    labels: Labels = ()
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, *labels: str) -> None:
        self.samples.append((labels, value))


FamilySource = Callable[[], Iterable[Family]]


def parse_listen(text: str, *, flag: str = "--metrics-listen") -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT`` (port 0: any free port); a bad value is one line naming the flag."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SpecError(f"{text!r} is not HOST:PORT", path=flag, fix="e.g. 127.0.0.1:9473, or 0.0.0.0:9473 in a pod")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise SpecError(
                f"{host!r} is not an IP address", path=flag, fix="give an IP address to listen on"
            ) from None
    return host, int(port)


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise SpecError(
            "serving metrics needs the prometheus_client package, which is not installed",
            path="--metrics-listen",
            fix="pip install prometheus_client (a dependency of bgpflat; reinstall bgpflat)",
        ) from None
    return prometheus_client


class MetricsServer:
    """``/metrics`` on ``HOST:PORT`` in a background thread, until ``close``."""

    def __init__(self, listen: str, source: FamilySource) -> None:
        host, port = parse_listen(listen)
        client = _client()
        registry = client.CollectorRegistry(auto_describe=False)
        registry.register(_Collector(source))
        try:
            self._server, self._thread = client.start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise SpecError(f"cannot listen on {listen}: {exc.strerror}", path="--metrics-listen") from None

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Collector:
    """A ``prometheus_client`` collector over a ``FamilySource``."""

    def __init__(self, source: FamilySource) -> None:
        self._source = source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for family in self._source():
            kind = CounterMetricFamily if family.kind == COUNTER else GaugeMetricFamily
            metric = kind(family.name, family.help, labels=list(family.labels))
            for labels, value in family.samples:
                metric.add_metric(list(labels), value)
            yield metric


def serve(listen: str | None, source: FamilySource) -> MetricsServer | None:
    """A running metrics server, or None when ``listen`` is not given."""
    return MetricsServer(listen, source) if listen else None


def check_available(listen: str | None) -> None:
    """Fail before anything starts when metrics are asked for and cannot be served."""
    if listen:
        parse_listen(listen)
        _client()


def single(name: str, kind: str, help_text: str, value: float) -> Family:
    """A family of one unlabelled sample."""
    family = Family(name, kind, help_text)
    family.add(float(value))
    return family
