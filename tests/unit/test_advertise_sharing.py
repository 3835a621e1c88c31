"""The model's shared work gives the same answers as computing each peer alone.

Uses the small clusters of ``test_advertise``: nodes a, b, c (10.0.0.1-3) in AS 64512, one /26
block each, pool 10.244.0.0/16.
"""

from __future__ import annotations

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.advertise import AdvertisementModel, expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import BLOCK as BLOCK_RULE
from bgpflat.core.routes.expected import MESH, ModelOptions, OutsidePeer, Reasons, Why
from bgpflat.core.routes.table import Route
from tests.unit.test_advertise import ADDR, BLOCK, affinity, base, bgp_peer, ipam_block, seen

SECOND = "10.0.0.253"


def test_two_peers_of_the_same_nodes_get_what_each_gets_alone() -> None:
    objects = [*base(mesh=False), bgp_peer("tor-2", peerIP=SECOND), ipam_block(BLOCK["a"], "a", {5: ("b", "borrowed")})]
    cluster = ClusterState.from_objects(objects)
    model = AdvertisementModel(cluster, ModelOptions())
    for address in ("10.0.0.254", SECOND, "10.0.0.254", SECOND):  # the third and fourth reuse lists
        shared = model.expected_routes(OutsidePeer(address=address))
        alone = expected_routes(cluster=cluster, peer=OutsidePeer(address=address))
        assert list(shared.table) == list(alone.table)
        assert dict(shared.reasons) == dict(alone.reasons)
        assert [shared.explain(r) for r in shared.table] == [alone.explain(r) for r in alone.table]
    assert ("b", "10.244.0.5/32", "b") in seen(shared)


def test_a_block_affine_to_two_nodes_is_each_ones_own_block() -> None:
    objects = [
        *base(mesh=False),
        affinity("b", BLOCK["a"]),
        affinity("c", BLOCK["a"]),
        ipam_block(BLOCK["a"], "a", {1: ("b", "on-b"), 2: ("c", "on-c")}),
    ]
    result = expected_routes(cluster=ClusterState.from_objects(objects), peer=OutsidePeer(address="10.0.0.254"))
    assert {(n, p) for n, p, _ in seen(result)} == {
        ("a", BLOCK["a"]),
        ("b", BLOCK["a"]),
        ("c", BLOCK["a"]),
        ("b", BLOCK["b"]),
        ("c", BLOCK["c"]),
    }


def test_reasons_read_back_as_why_whether_stored_plain_or_not() -> None:
    route = Route(Prefix.parse("10.244.0.0/26"), ADDR["a"], ADDR["a"])
    other = route._replace(next_hop=ADDR["b"])
    third = route._replace(next_hop=ADDR["c"])
    plain = (BLOCK_RULE, "a", "local", "")
    why = Why(BLOCK_RULE, "b", MESH)
    reasons = Reasons({route: plain, other: (plain, why), third: why})
    assert reasons[route] == (Why(BLOCK_RULE, "a"),)
    assert all(type(w) is Why for w in reasons[route])
    assert reasons[other] == (Why(BLOCK_RULE, "a"), why)
    assert all(type(w) is Why for w in reasons[other])
    assert reasons[third] == (why,)
    assert reasons.get(route._replace(session="10.9.9.9")) is None
    assert len(reasons) == 3 and list(reasons) == [route, other, third] and other in reasons


def test_a_block_cidr_is_parsed_once_for_its_affinity_and_its_ipam_block() -> None:
    cluster = ClusterState.from_objects([affinity("a", BLOCK["a"]), ipam_block(BLOCK["a"], "a", {})])
    assert cluster.affinities[0].cidr is cluster.blocks[0].cidr
