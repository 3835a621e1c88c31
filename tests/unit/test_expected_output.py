"""``routes expected -o json`` at the speed of the data says what the per-route explanation says.

``ExpectedRoutes.to_dict`` makes each distinct reason's record and sentence once and shares them;
every record must still read exactly as the route's own ``why`` and ``explain`` give it, and the
JSON written from shared records must be ``json.dumps(..., indent=2)`` byte for byte.
"""

from __future__ import annotations

import io
import json
from typing import Any

from bgpflat.cli.output import write_json
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import (
    BLOCK as BLOCK_RULE,
)
from bgpflat.core.routes.expected import (
    FILTER_ACCEPT,
    MESH,
    REFLECTED,
    ExpectedRoutes,
    OutsidePeer,
    Reasons,
    SessionExpectation,
    Why,
)
from bgpflat.core.routes.table import Route, RouteTable
from tests.unit.test_advertise import ADDR, BLOCK, base, bgp_peer, ipam_block


def one_by_one(result: ExpectedRoutes) -> list[dict[str, Any]]:
    """Each route's record made on its own from the per-route API (what a reader of one route sees)."""
    records = []
    for route in result.table.sorted():
        record = route.to_dict()
        record["node"] = result.node_of(route.session)
        record["reasons"] = [w._asdict() for w in result.why(route)]
        record["explanation"] = result.explain(route)
        records.append(record)
    return records


def assert_same_output(result: ExpectedRoutes) -> None:
    data = result.to_dict()
    assert data["routes"] == one_by_one(result)
    buffer = io.StringIO()
    write_json(data, buffer)
    assert buffer.getvalue() == json.dumps(data, indent=2) + "\n"


def test_a_mesh_re_exported_to_an_ebgp_peer_reads_as_each_route_alone() -> None:
    objects = [
        *base(mesh=True, peer=bgp_peer(asNumber=65100)),
        ipam_block(BLOCK["a"], "a", {5: ("b", "borrowed"), 6: ("c", "other")}),
    ]
    result = expected_routes(cluster=ClusterState.from_objects(objects), peer=OutsidePeer(address="10.0.0.254"))
    assert len(result.table) > 6
    assert_same_output(result)


def test_several_reasons_path_ids_and_routes_without_a_reason_read_as_each_route_alone() -> None:
    prefix = Prefix.parse("10.244.0.0/26")
    sessions = {
        address: SessionExpectation(
            session=address,
            node=name,
            bgp_peer="tor",
            local_as=64512,
            peer_as=64512 if name != "c" else 65100,
            ebgp=name == "c",
            next_hop_keep=name == "b",
            route_reflector=name == "b",
        )
        for name, address in ADDR.items()
    }
    local = (BLOCK_RULE, "a", "local", "")
    routes = {
        Route(prefix, ADDR["a"], ADDR["a"]): local,
        Route(prefix, ADDR["a"], ADDR["b"]): (Why(BLOCK_RULE, "a", REFLECTED), Why(FILTER_ACCEPT, "b", MESH, "f")),
        Route(prefix, ADDR["a"], ADDR["c"]): Why(BLOCK_RULE, "a", MESH, "detail"),
        Route(Prefix.parse("10.96.0.0/12"), ADDR["c"], ADDR["c"]): ("service-range", "c", "local", "64512:100"),
        Route(Prefix.parse("10.0.0.0/8"), ADDR["c"], "10.9.9.9"): ("unknown-rule", "x", "local", ""),
    }
    table = RouteTable(
        [
            *routes,
            Route(prefix, ADDR["a"], ADDR["a"], path_id=7),  # reasons are kept without the path id
            Route(Prefix.parse("192.168.0.0/24"), ADDR["b"], ADDR["b"]),  # none: not from the cluster
        ]
    )
    result = ExpectedRoutes(
        peer=OutsidePeer(address="10.0.0.254"),
        table=table,
        reasons=Reasons(routes),
        sessions=sessions,
        calico_version="v3.30.7",
    )
    assert_same_output(result)
    # The same through a plain mapping of Why tuples (what a caller may build).
    plain = {route: result.why(route) for route in routes}
    assert_same_output(
        ExpectedRoutes(peer=result.peer, table=table, reasons=plain, sessions=sessions, calico_version="v3.30.7")
    )


def test_json_of_a_list_shared_between_records_and_depths_is_json_dumps() -> None:
    shared = [{"rule": "block", "owner": "a"}, {"x": [1, 2]}]
    data = {"routes": [{"reasons": shared}, {"reasons": shared, "again": {"deeper": shared}}, shared], "top": shared}
    buffer = io.StringIO()
    write_json(data, buffer)
    assert buffer.getvalue() == json.dumps(data, indent=2) + "\n"
