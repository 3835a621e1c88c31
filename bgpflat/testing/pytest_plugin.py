"""bgpflat's pytest plugin: fixtures and assertions for route checks in CI.

Registered through the ``pytest11`` entry point, so installing bgpflat is enough::

    def test_switch_sees_every_block(bgpflat_expected, bgpflat_learned):
        expected = bgpflat_expected("cluster.yaml", peer="10.200.20.254")
        assert_routes(expected=expected, learned=bgpflat_learned("learned.json"))

* ``assert_routes(expected=…, learned=…, strict=False, soft=False)`` fails with the readable route
  diff as the message (its own frames hidden from the traceback); ``soft=True`` warns instead.
* ``route_check`` collects several soft checks and fails the test once, at the end, with all of them.
* ``RouteTable == RouteTable`` failures in a plain ``assert`` show the route diff too.

Heavy imports stay inside the fixtures: the plugin loads in every pytest run where bgpflat is
installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bgpflat.testing.assertions import RouteAssertionError, RouteAssertionWarning, as_table, cannot_verify
from bgpflat.testing.assertions import assert_routes as _assert_routes

if TYPE_CHECKING:
    from bgpflat.core.routes.cluster import ClusterState
    from bgpflat.core.routes.diff import RouteDiff
    from bgpflat.core.routes.expected import ExpectedRoutes
    from bgpflat.core.routes.table import RouteTable

__all__ = ["RouteAssertionError", "RouteAssertionWarning", "RouteCheck", "assert_routes"]

Routes = Any  # ExpectedRoutes | RouteTable | Iterable[Route | Mapping]


def assert_routes(
    *, expected: Routes, learned: Routes, strict: bool = False, soft: bool = False, limit: int = 50
) -> RouteDiff:
    """Fail unless ``learned`` complies with ``expected``; the failure message is the route diff."""
    __tracebackhide__ = True
    return _assert_routes(expected=expected, learned=learned, strict=strict, soft=soft, limit=limit, stacklevel=3)


class RouteCheck:
    """Soft checks collected during one test; the test fails at teardown if any did not comply."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def routes(self, *, expected: Routes, learned: Routes, strict: bool = False, label: str = "") -> RouteDiff:
        from bgpflat.core.routes.diff import diff_routes
        from bgpflat.core.routes.expected import ExpectedRoutes
        from bgpflat.views.reports import diff_text

        wanted = expected if isinstance(expected, ExpectedRoutes) else as_table(expected)
        table = as_table(learned)
        diff = diff_routes(expected=wanted, learned=table, strict=strict)
        text = cannot_verify(wanted, table)
        if text is not None or not diff.complies:
            self.failures.append((f"{label}: " if label else "") + (text or diff_text(diff)))
        return diff

    def check(self) -> None:
        __tracebackhide__ = True
        if self.failures:
            raise RouteAssertionError("\n\n".join(self.failures), None)


@pytest.fixture
def route_check() -> Iterator[RouteCheck]:
    """Collect route checks; fail once at the end with every diff."""
    checker = RouteCheck()
    yield checker
    __tracebackhide__ = True
    checker.check()


@pytest.fixture
def bgpflat_cluster() -> Callable[[str | Path | Iterable[Mapping[str, Any]]], ClusterState]:
    """``load(path_or_objects) -> ClusterState`` from a snapshot file or already-loaded objects."""
    from bgpflat.core.routes.cluster import ClusterState

    def load(source: str | Path | Iterable[Mapping[str, Any]]) -> ClusterState:
        if isinstance(source, (str, Path)):
            from bgpflat.adapters.files import load_snapshot

            return ClusterState.from_objects(load_snapshot(source).objects)
        return ClusterState.from_objects(source)

    return load


@pytest.fixture
def bgpflat_expected(
    bgpflat_cluster: Callable[[Any], ClusterState],
) -> Callable[..., ExpectedRoutes]:
    """``expect(cluster_or_path, peer=IP, peer_as=None, **ModelOptions) -> ExpectedRoutes``."""
    from bgpflat.core.routes.advertise import expected_routes
    from bgpflat.core.routes.cluster import ClusterState
    from bgpflat.core.routes.expected import ModelOptions, OutsidePeer

    def expect(cluster: Any, *, peer: str, peer_as: int | None = None, **options: Any) -> ExpectedRoutes:
        state = cluster if isinstance(cluster, ClusterState) else bgpflat_cluster(cluster)
        return expected_routes(
            cluster=state, peer=OutsidePeer(address=peer, as_number=peer_as), options=ModelOptions(**options)
        )

    return expect


@pytest.fixture
def bgpflat_learned() -> Callable[[str | Path | Any], RouteTable]:
    """``load(path_or_data) -> RouteTable``: a peer snapshot / ``peer routes -o json`` file or data."""
    from bgpflat.core.routes.verdict import learned_from_json

    def load(source: str | Path | Any) -> RouteTable:
        if isinstance(source, (str, Path)):
            from bgpflat.adapters.files import read_json

            return learned_from_json(read_json(source), source=str(source)).routes
        return learned_from_json(source, source="data").routes

    return load


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """``assert learned == expected`` on two RouteTables explains the difference route by route."""
    from bgpflat.core.routes.table import RouteTable

    if op != "==" or not isinstance(left, RouteTable) or not isinstance(right, RouteTable):
        return None
    from bgpflat.core.routes.diff import diff_routes
    from bgpflat.views.reports import diff_text

    diff = diff_routes(expected=right, learned=left, strict=True)
    return ["route tables differ (left: learned, right: expected)", *diff_text(diff).splitlines()]
