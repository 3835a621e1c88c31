"""One small cluster per rule of calico-facts §3: what a node advertises to an outside peer, and why.

The base cluster: three nodes a, b, c (10.0.0.1-3) in AS 64512 with the full mesh, pool
10.244.0.0/16 (/26 blocks), one block per node, and a global BGPPeer to 10.0.0.254 in AS 65000
(eBGP). Each test changes one thing and checks the table the peer would learn.
"""

from __future__ import annotations

from typing import Any

import pytest

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.advertise import AdvertisementModel, expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer
from bgpflat.errors import SpecError

V3 = "projectcalico.org/v3"
V1 = "crd.projectcalico.org/v1"
PEER = "10.0.0.254"
ADDR = {"a": "10.0.0.1", "b": "10.0.0.2", "c": "10.0.0.3"}
BLOCK = {"a": "10.244.0.0/26", "b": "10.244.0.64/26", "c": "10.244.0.128/26"}


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    asn: int | None = None,
    rr: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    annotations = {"projectcalico.org/IPv4Address": f"{address or ADDR[name]}/24"}
    if asn is not None:
        annotations["projectcalico.org/ASNumber"] = str(asn)
    if rr is not None:
        annotations["projectcalico.org/RouteReflectorClusterID"] = rr
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations},
    }


def pool(name: str, cidr: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": V3,
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"cidr": cidr, "blockSize": 26, "nodeSelector": "all()", **spec},
    }


def affinity(node_name: str, cidr: str, state: str = "confirmed", kind: str = "host") -> dict[str, Any]:
    return {
        "apiVersion": V1,
        "kind": "BlockAffinity",
        "metadata": {"name": f"{node_name}-{cidr.replace('/', '-')}"},
        "spec": {"cidr": cidr, "node": node_name, "state": state, "deleted": "false", "type": kind},
    }


def ipam_block(cidr: str, owner: str | None, allocations: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """``allocations``: offset -> (node, pod) of a workload holding that address."""
    size = 1 << (32 - int(cidr.split("/")[1]))
    slots: list[int | None] = [None] * size
    attributes = []
    for offset, (holder, pod) in sorted(allocations.items()):
        slots[offset] = len(attributes)
        attributes.append(
            {"handle_id": f"k8s-pod-network.{pod}", "secondary": {"namespace": "default", "node": holder, "pod": pod}}
        )
    return {
        "apiVersion": V1,
        "kind": "IPAMBlock",
        "metadata": {"name": cidr.replace("/", "-")},
        "spec": {
            "cidr": cidr,
            "affinity": f"host:{owner}" if owner else None,
            "allocations": slots,
            "attributes": attributes,
        },
    }


def bgp_configuration(name: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": V3, "kind": "BGPConfiguration", "metadata": {"name": name}, "spec": spec}


def bgp_peer(name: str = "tor", **spec: Any) -> dict[str, Any]:
    spec.setdefault("peerIP", PEER)
    spec.setdefault("asNumber", 65000)
    return {"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}


def bgp_filter(name: str, export_v4: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": V3, "kind": "BGPFilter", "metadata": {"name": name}, "spec": {"exportV4": export_v4}}


def version(text: str) -> dict[str, Any]:
    return {
        "apiVersion": V1,
        "kind": "ClusterInformation",
        "metadata": {"name": "default"},
        "spec": {"calicoVersion": text},
    }


def base(
    *,
    mesh: bool = True,
    peer: dict[str, Any] | None = None,
    calico: str = "v3.30.7",
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    return [
        version(calico),
        node("a"),
        node("b"),
        node("c"),
        pool("pods", "10.244.0.0/16"),
        *(affinity(n, BLOCK[n]) for n in "abc"),
        bgp_configuration(asNumber=64512, nodeToNodeMeshEnabled=mesh, **(config or {})),
        peer if peer is not None else bgp_peer(),
    ]


def expect(objects: list[dict[str, Any]], *, peer: str = PEER, **options: Any) -> ExpectedRoutes:
    return expected_routes(
        cluster=ClusterState.from_objects(objects), peer=OutsidePeer(address=peer), options=ModelOptions(**options)
    )


def seen(result: ExpectedRoutes) -> set[tuple[str, str, str]]:
    """(advertising node, prefix, next hop) for every expected route."""
    names = {address: name for name, address in ADDR.items()}
    return {(names[r.session], str(r.prefix), names.get(r.next_hop, r.next_hop)) for r in result.table}


def from_node(result: ExpectedRoutes, name: str) -> set[str]:
    return {str(r.prefix) for r in result.table if r.session == ADDR[name]}


# --- §3.1.1 blocks --------------------------------------------------------------------------------


def test_confirmed_block_is_advertised_by_its_node_with_the_node_as_next_hop() -> None:
    result = expect(base(mesh=False))
    assert seen(result) == {("a", BLOCK["a"], "a"), ("b", BLOCK["b"], "b"), ("c", BLOCK["c"], "c")}
    route = next(r for r in result.table if r.session == ADDR["a"])
    assert route.as_path == (64512,)
    assert result.explain(route) == "block of a, originated by the node itself (eBGP peer, next hop self)"


def test_pending_affinity_gives_no_route_but_pending_deletion_does_until_removed() -> None:
    objects = [
        *base(mesh=False),
        affinity("a", "10.244.1.0/26", "pending"),
        affinity("a", "10.244.2.0/26", "pendingDeletion"),
    ]
    assert from_node(expect(objects), "a") == {BLOCK["a"], "10.244.2.0/26"}
    assert from_node(expect(objects, pending_deletion_blocks=False), "a") == {BLOCK["a"]}


def test_deleted_and_virtual_affinities_give_no_route() -> None:
    objects = [
        *base(mesh=False),
        pool("lb", "192.0.2.0/24", allowedUses=["LoadBalancer"]),
        affinity("a", "192.0.2.0/26", kind="virtual"),
    ]
    deleted = affinity("a", "10.244.3.0/26")
    deleted["spec"]["deleted"] = "true"
    objects.append(deleted)
    assert from_node(expect(objects), "a") == {BLOCK["a"]}


# --- §3.1.3 / §3.2 borrowed addresses and calico_aggr ------------------------------------------------


def test_borrowed_address_is_a_host_route_from_the_node_running_the_workload() -> None:
    # b runs a pod with 10.244.0.5, an address from a's block: b exports the /32, a the block.
    objects = [*base(mesh=False), ipam_block(BLOCK["a"], "a", {5: ("b", "web-1"), 6: ("a", "web-2")})]
    result = expect(objects)
    assert from_node(result, "b") == {BLOCK["b"], "10.244.0.5/32"}
    assert from_node(result, "a") == {BLOCK["a"]}  # a's own pod stays inside its block
    borrowed = next(r for r in result.table if r.prefix == Prefix.parse("10.244.0.5/32"))
    assert "borrowed address on b (workload default/web-1)" in result.explain(borrowed)


def test_mesh_reexport_skips_host_routes_inside_the_reexporting_nodes_own_block() -> None:
    objects = [*base(), ipam_block(BLOCK["a"], "a", {5: ("b", "web-1")})]
    result = expect(objects)
    assert "10.244.0.5/32" not in from_node(result, "a")  # a's calico_aggr rejects it
    assert "10.244.0.5/32" in from_node(result, "c")  # c re-exports it (next hop self)
    assert ("c", "10.244.0.5/32", "c") in seen(result)


def test_workload_outside_every_pool_is_not_exported() -> None:
    objects = [*base(mesh=False), ipam_block("172.16.0.0/26", None, {1: ("a", "stray")})]
    assert from_node(expect(objects), "a") == {BLOCK["a"]}


# --- §3.1.4 / §3.2 steps 8-9: pools, disabled pools, disableBGPExport ------------------------------


def test_disabled_pool_is_still_exported_even_a_direct_node_subnet_inside_it() -> None:
    objects = [*base(mesh=False), pool("nodes-no-nat", "10.0.0.0/24", disabled=True)]
    result = expect(objects)
    assert "10.0.0.0/24" in from_node(result, "a")
    route = next(r for r in result.table if str(r.prefix) == "10.0.0.0/24" and r.session == ADDR["a"])
    assert "node subnet" in result.explain(route)


def test_node_subnet_outside_pools_is_not_exported() -> None:
    assert "10.0.0.0/24" not in from_node(expect(base(mesh=False)), "a")


def test_disable_bgp_export_removes_the_pool_everywhere_mesh_included() -> None:
    objects = [*base(), pool("hidden", "10.245.0.0/16", disableBGPExport=True), affinity("b", "10.245.0.0/26")]
    result = expect(objects)
    assert all(not Prefix.parse("10.245.0.0/16").contains(r.prefix) for r in result.table)
    assert from_node(result, "a") == set(BLOCK.values())


def test_encapsulated_pools_are_exported_like_plain_pools() -> None:
    objects = [
        *base(mesh=False),
        pool("ipip", "10.246.0.0/16", ipipMode="Always"),
        affinity("a", "10.246.0.0/26"),
        pool("vxlan", "10.247.0.0/16", vxlanMode="Always"),
        affinity("a", "10.247.0.0/26"),
    ]
    assert from_node(expect(objects), "a") == {BLOCK["a"], "10.246.0.0/26", "10.247.0.0/26"}


# --- §3.3 next hop, AS path, re-export -----------------------------------------------------------


def test_mesh_with_ebgp_peer_every_node_advertises_every_block_with_itself_as_next_hop() -> None:
    result = expect(base())
    assert seen(result) == {(n, BLOCK[m], n) for n in "abc" for m in "abc"}
    route = next(r for r in result.table if r.session == ADDR["a"] and str(r.prefix) == BLOCK["c"])
    assert result.explain(route) == "block of c, expected through mesh re-export (eBGP peer, next hop self)"
    assert route.as_path == (64512,)


def test_keep_original_next_hop_keeps_the_owner_as_next_hop_toward_ebgp() -> None:
    result = expect(base(peer=bgp_peer(keepOriginalNextHop=True)))
    assert seen(result) == {(n, BLOCK[m], m) for n in "abc" for m in "abc"}


def test_keep_original_next_hop_is_ignored_toward_ibgp_and_mesh_routes_are_not_sent() -> None:
    result = expect(base(peer=bgp_peer(asNumber=64512, keepOriginalNextHop=True)))
    assert seen(result) == {(n, BLOCK[n], n) for n in "abc"}
    assert all(r.as_path == () for r in result.table)


def test_next_hop_mode_keep_needs_v3_31() -> None:
    keep = bgp_peer(nextHopMode="Keep")
    assert ("a", BLOCK["b"], "b") in seen(expect(base(peer=keep, calico="v3.31.0")))
    old = expect(base(peer=keep, calico="v3.30.7"))
    assert ("a", BLOCK["b"], "a") in seen(old)
    assert any("nextHopMode is ignored" in note for note in old.notes)


def test_route_reflector_reflects_everything_to_an_ibgp_peer_with_original_next_hops() -> None:
    objects = base(peer=bgp_peer(asNumber=64512, node="a"))
    objects[1] = node("a", rr="1.0.0.1")
    result = expect(objects)
    assert seen(result) == {("a", BLOCK["a"], "a"), ("a", BLOCK["b"], "b"), ("a", BLOCK["c"], "c")}
    route = next(r for r in result.table if str(r.prefix) == BLOCK["b"])
    assert "reflected by route reflector a" in result.explain(route)


def test_next_hop_mode_self_on_a_route_reflector_rewrites_reflected_routes() -> None:
    objects = base(peer=bgp_peer(asNumber=64512, node="a", nextHopMode="Self"), calico="v3.31.0")
    objects[1] = node("a", rr="1.0.0.1")
    assert ("a", BLOCK["b"], "a") in seen(expect(objects))


def test_node_as_annotation_and_local_as_number_set_the_as_path() -> None:
    objects = base(mesh=False)
    objects[1] = node("a", asn=65101)
    result = expect(objects)
    assert {r.as_path for r in result.table if r.session == ADDR["a"]} == {(65101,)}
    assert {r.as_path for r in result.table if r.session == ADDR["b"]} == {(64512,)}
    local = expect(base(mesh=False, peer=bgp_peer(localASNumber=65333), calico="v3.31.0"))
    assert {r.as_path for r in local.table} == {(65333,)}


def test_mesh_between_different_as_nodes_keeps_the_owner_as_in_the_path() -> None:
    objects = base()
    objects[2] = node("b", asn=65102)
    result = expect(objects)
    route = next(r for r in result.table if r.session == ADDR["a"] and str(r.prefix) == BLOCK["b"])
    assert route.as_path == (64512, 65102)


def test_mesh_off_without_reflectors_each_node_sends_only_its_own_routes() -> None:
    assert seen(expect(base(mesh=False))) == {(n, BLOCK[n], n) for n in "abc"}


def test_peer_selection_node_and_node_selector() -> None:
    objects = base(peer=bgp_peer(nodeSelector="rack == 'r1'"), mesh=False)
    objects[2] = node("b", labels={"rack": "r1"})
    assert {r.session for r in expect(objects).table} == {ADDR["b"]}
    pinned = expect(base(peer=bgp_peer(node="c"), mesh=False))
    assert {r.session for r in pinned.table} == {ADDR["c"]}


def test_a_node_does_not_peer_with_its_own_address() -> None:
    result = expect(base(peer=bgp_peer(peerIP=ADDR["a"]), mesh=False), peer=ADDR["a"])
    assert ADDR["a"] not in result.sessions
    assert set(result.sessions) == {ADDR["b"], ADDR["c"]}


def test_global_peer_wins_over_a_node_specific_peer_to_the_same_address() -> None:
    objects = [*base(mesh=False), bgp_peer("pinned", node="a", asNumber=65009)]
    result = expect(objects)
    assert result.sessions[ADDR["a"]].bgp_peer == "tor"
    assert result.sessions[ADDR["a"]].peer_as == 65000


def test_no_bgp_peer_for_the_address_means_no_session_unless_an_as_is_given() -> None:
    objects = base(peer=bgp_peer(peerIP="10.9.9.9"))
    result = expect(objects)
    assert not result.table
    assert any("no BGPPeer has peerIP 10.0.0.254" in note for note in result.notes)
    assumed = expected_routes(
        cluster=ClusterState.from_objects(objects), peer=OutsidePeer(address=PEER, as_number=65000)
    )
    assert len(assumed.sessions) == 3


def test_peer_without_as_number_asks_for_one() -> None:
    objects = base(peer={"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": "tor"}, "spec": {"peerIP": PEER}})
    with pytest.raises(SpecError, match=r"AS number of peer 10\.0\.0\.254 is unknown"):
        expect(objects)


def test_without_add_path_only_the_best_path_is_expected() -> None:
    # Keep mode: with ADD-PATH a sees the service range from a (own static), b and c (mesh).
    objects = base(peer=bgp_peer(keepOriginalNextHop=True), config={"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]})
    with_add_path = {
        r.next_hop for r in expect(objects).table if r.session == ADDR["a"] and str(r.prefix) == "10.96.0.0/12"
    }
    assert with_add_path == {ADDR["a"], ADDR["b"], ADDR["c"]}
    best = {
        r.next_hop
        for r in expect(objects, add_path=False).table
        if r.session == ADDR["a"] and str(r.prefix) == "10.96.0.0/12"
    }
    assert best == {ADDR["a"]}


def test_identical_paths_collapse_into_one_route_with_every_reason() -> None:
    objects = base(config={"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]})
    result = expect(objects)
    routes = [r for r in result.table if r.session == ADDR["a"] and str(r.prefix) == "10.96.0.0/12"]
    assert len(routes) == 1
    assert {why.owner for why in result.why(routes[0])} == {"a", "b", "c"}


# --- §3.5 communities -----------------------------------------------------------------------------


def test_prefix_advertisement_communities_and_per_node_override() -> None:
    config = {
        "communities": [{"name": "pods", "value": "64512:100"}],
        "prefixAdvertisements": [{"cidr": "10.244.0.0/16", "communities": ["pods", "64512:1:2"]}],
    }
    objects = [
        *base(mesh=False, config=config),
        bgp_configuration("node.b", prefixAdvertisements=[{"cidr": "10.244.0.0/16", "communities": ["65000:7"]}]),
    ]
    result = expect(objects)
    by_node = {r.session: (r.communities, r.large_communities) for r in result.table}
    assert by_node[ADDR["a"]] == (((64512, 100),), ((64512, 1, 2),))
    assert by_node[ADDR["b"]] == (((65000, 7),), ())


def test_reexported_route_carries_the_owner_and_the_reexporting_node_communities() -> None:
    objects = [
        *base(config={"prefixAdvertisements": [{"cidr": BLOCK["b"], "communities": ["64512:200"]}]}),
        bgp_configuration("node.a", prefixAdvertisements=[{"cidr": "10.244.0.0/16", "communities": ["64512:300"]}]),
    ]
    route = next(r for r in expect(objects).table if r.session == ADDR["a"] and str(r.prefix) == BLOCK["b"])
    assert route.communities == ((64512, 200), (64512, 300))


# --- §3.6 BGPFilter -------------------------------------------------------------------------------


def test_filter_rejecting_remote_peers_stops_mesh_reexport() -> None:
    objects = [
        *base(peer=bgp_peer(filters=["no-remote"])),
        bgp_filter("no-remote", [{"action": "Reject", "source": "RemotePeers"}]),
    ]
    assert seen(expect(objects)) == {(n, BLOCK[n], n) for n in "abc"}


def test_filter_source_field_is_unknown_before_v3_27_so_the_rule_rejects_everything() -> None:
    objects = [
        *base(peer=bgp_peer(filters=["no-remote"]), calico="v3.26.4"),
        bgp_filter("no-remote", [{"action": "Reject", "source": "RemotePeers"}]),
    ]
    assert not expect(objects).table


def test_filter_first_match_wins_and_accept_leaks_without_communities() -> None:
    config = {"prefixAdvertisements": [{"cidr": "10.244.0.0/16", "communities": ["64512:100"]}]}
    rules = [
        {"action": "Accept", "cidr": "10.244.0.0/26", "matchOperator": "In", "prefixLength": {"min": 32, "max": 32}},
        {"action": "Reject", "cidr": "10.244.0.0/16", "matchOperator": "In"},
    ]
    objects = [
        *base(mesh=False, peer=bgp_peer(filters=["leak"]), config=config),
        bgp_filter("leak", rules),
        ipam_block(BLOCK["a"], "a", {9: ("a", "api-0")}),
    ]
    result = expect(objects)
    # The /32 inside a's own block leaks (Calico's calico_aggr would reject it); blocks are rejected.
    assert seen(result) == {("a", "10.244.0.9/32", "a")}
    leaked = next(iter(result.table))
    assert leaked.communities == ()
    assert "accepted by BGPFilter leak exportV4[0]" in result.explain(leaked)


def test_filter_equal_and_not_in_operators() -> None:
    rules = [
        {"action": "Reject", "cidr": BLOCK["b"], "matchOperator": "Equal"},
        {"action": "Reject", "cidr": "10.244.0.0/25", "matchOperator": "NotIn"},
    ]
    objects = [*base(peer=bgp_peer(filters=["f"])), bgp_filter("f", rules)]
    # b's block is rejected by Equal; c's (10.244.0.128/26) by NotIn 10.244.0.0/25.
    assert seen(expect(objects)) == {(n, BLOCK["a"], n) for n in "abc"}


def test_filter_interface_star_matches_every_route_and_cali_only_workloads() -> None:
    # As BIRD's ifname: "" for a blackholed block, the host interface for a mesh-learned route.
    rules = [
        {"action": "Accept", "cidr": "10.244.0.0/16", "matchOperator": "In", "interface": "cali*"},
        {"action": "Reject", "interface": "*"},
    ]
    objects = [
        *base(peer=bgp_peer(filters=["f"])),
        bgp_filter("f", rules),
        ipam_block(BLOCK["a"], "a", {9: ("a", "api-0")}),
    ]
    # a's workload /32 leaks through cali*; '*' rejects every block, own or mesh-learned.
    assert seen(expect(objects)) == {("a", "10.244.0.9/32", "a")}


def test_filter_interface_that_may_name_a_host_interface_is_an_error() -> None:
    objects = [*base(peer=bgp_peer(filters=["f"])), bgp_filter("f", [{"action": "Reject", "interface": "eth*"}])]
    with pytest.raises(SpecError) as caught:
        expect(objects)
    assert caught.value.path == "spec.exportV4[0].interface"
    assert "BGPFilter f exportV4[0] has interface 'eth*'" in caught.value.message


def test_missing_filter_is_noted() -> None:
    result = expect(base(peer=bgp_peer(filters=["nope"]), mesh=False))
    assert any("BGPFilter 'nope', which does not exist" in note for note in result.notes)
    assert len(result.table) == 3


# --- versions and options -------------------------------------------------------------------------


def test_calico_version_flag_overrides_cluster_information() -> None:
    objects = base()
    assert expect(objects).calico_version == "v3.30.7"
    assert expect(objects, calico_version="v3.31.2").calico_version == "v3.31.2"
    del objects[0]
    unknown = expect(objects)
    assert unknown.calico_version == "v3.32.0"
    assert any("Calico version unknown" in note for note in unknown.notes)


def test_tunnel_address_outside_own_block_is_exported_unless_the_option_is_off() -> None:
    objects = base(mesh=False)
    objects[1]["metadata"]["annotations"]["projectcalico.org/IPv4IPIPTunnelAddr"] = "10.244.9.1"
    objects[2]["metadata"]["annotations"]["projectcalico.org/IPv4IPIPTunnelAddr"] = "10.244.0.65"  # own block
    result = expect(objects)
    assert "10.244.9.1/32" in from_node(result, "a")
    assert from_node(result, "b") == {BLOCK["b"]}
    assert "10.244.9.1/32" not in from_node(expect(objects, tunnel_addresses=False), "a")


def test_model_serves_many_peers_from_one_index() -> None:
    objects = [*base(mesh=False), bgp_peer("tor2", peerIP="10.0.0.253", asNumber=65001, node="b")]
    model = AdvertisementModel(ClusterState.from_objects(objects), ModelOptions())
    first = model.expected_routes(PEER)
    second = model.expected_routes("10.0.0.253")
    assert len(first.sessions) == 3
    assert set(second.sessions) == {ADDR["b"]}
    assert {r.as_path for r in second.table} == {(64512,)}


def test_ipv6_peer_sees_ipv6_blocks_from_the_nodes_ipv6_address() -> None:
    objects = base(mesh=False)
    objects[1]["metadata"]["annotations"]["projectcalico.org/IPv6Address"] = "fd00::1/64"
    objects += [
        pool("pods6", "fd10::/48", blockSize=122),
        affinity("a", "fd10::/122"),
        bgp_peer("tor6", peerIP="fd00::fe"),
    ]
    result = expect(objects, peer="fd00::fe")
    assert {(r.session, str(r.prefix), r.next_hop) for r in result.table} == {("fd00::1", "fd10::/122", "fd00::1")}
    assert any("b has no IPv6 BGP address" in note for note in result.notes)
    # and the IPv4 peer sees no IPv6 route
    assert all(r.prefix.version == 4 for r in expect(objects).table)
