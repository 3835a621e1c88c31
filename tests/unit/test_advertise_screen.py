"""The export model's shortcuts give exactly what the plain computation gives, on random clusters.

A node re-exporting the mesh screens each other node's routes once per list (``export_screen``)
instead of running Calico's export filter per node and route, and a route many nodes send alike
gathers its reasons in one list. Here the same clusters run through a model that asks the export
filter about every learned route on every node and grows each route's reasons one copy at a time;
the routes, their order and their reasons must be the same.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from bgpflat.core.routes.advertise import AdvertisementModel
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import ModelOptions, OutsidePeer, Why
from bgpflat.core.routes.mesh_routes import PASSES_OTHERS
from bgpflat.core.routes.node_routes import Candidate
from bgpflat.core.routes.table import Route
from bgpflat.lab.conformance import cases, generator

SEEDS = range(100, 140)
PER_SEED = 5
PEER = OutsidePeer(address=cases.PEER_ADDRESS)


class _EveryRouteAsked(AdvertisementModel):
    """Calico's export filter asked about every learned route on every node: no screen."""

    def export_screen(self, candidates: list[Candidate]) -> tuple[list[tuple[Candidate, int]], frozenset[str]]:
        return [(candidate, 0) for candidate in candidates], frozenset()


def _plain_reasons(model: AdvertisementModel) -> dict[Route, tuple[Why, ...]]:
    """Each session's paths in order, a route seen again getting one more reason."""
    sessions, notes = model.peerings.sessions(PEER)
    reasons: dict[Route, tuple[Why, ...]] = {}
    for session in sessions:
        _, parts = model._session_routes(session, 4, notes)
        for routes, whys in parts:
            for route, why in zip(routes, whys, strict=True):
                reasons[route] = (*reasons.get(route, ()), Why._make(why))
    return reasons


def _clusters() -> list[tuple[str, list[dict[str, Any]]]]:
    drawn = [s for seed in SEEDS for s in generator.generate(seed, PER_SEED)]
    return [(s.name, cases.build_objects(s, service_range="10.96.0.0/16")) for s in drawn]


@pytest.mark.parametrize("add_path", [True, False], ids=["add-path", "best-path"])
def test_screened_export_gives_the_routes_reasons_and_order_of_asking_every_node(add_path: bool) -> None:
    options = ModelOptions(add_path=add_path)
    seen: Counter[str] = Counter()
    for name, objects in _clusters():
        cluster = ClusterState.from_objects(objects)
        fast = AdvertisementModel(cluster, options)
        result = fast.expected_routes(PEER)
        plain = _EveryRouteAsked(cluster, options)
        expected = plain.expected_routes(PEER)
        assert list(result.table) == list(expected.table), name
        assert list(result.reasons) == list(expected.reasons), name
        assert [result.reasons[r] for r in result.reasons] == [expected.reasons[r] for r in expected.reasons], name
        reference = _plain_reasons(_EveryRouteAsked(cluster, options))
        assert list(result.reasons) == list(reference), name
        assert {r: result.reasons[r] for r in result.reasons} == reference, name
        assert result.sessions == expected.sessions and result.notes == expected.notes, name
        # What the draws exercised: candidates of each screen verdict, a node re-exporting routes from
        # inside its own blocks (borrowed addresses: it asks about each), routes with several reasons.
        nodes = [session.node for session in fast.peerings.sessions(PEER)[0]]
        for candidates, (screened, owners) in fast._screens.values():
            for _, passes in screened:
                seen[f"passes {passes}"] += 1
                if passes == PASSES_OTHERS:  # a static route on every node but the excluded ones
                    seen["excluded re-exports"] += sum(1 for n in nodes if n.excluded_from_load_balancers)
            origin = candidates[0].origin_address if candidates else None
            seen["owner re-exports"] += sum(1 for n in nodes if n.name in owners and n.bgp_address(4) != origin)
        seen["shared routes"] += sum(1 for r in result.reasons if len(result.reasons[r]) > 1)
    wanted = ["passes 2", "passes 3", "excluded re-exports", "owner re-exports"]
    if add_path:  # without ADD-PATH a prefix has one best path
        wanted.append("shared routes")
    assert all(seen[k] for k in wanted), seen
