"""The IPv6 and dual-stack cells of the conformance matrix, pinned on the model alone.

What ``bgpflat lab conformance`` saw from confd v3.31.0 + bird6 in these cells, checked here
without a daemon (``test_conformance_quirks`` builds the cells' objects as the API server holds
them); ``tests/integration/test_conformance.py`` runs the real thing.
"""

from __future__ import annotations

from test_conformance_quirks import cluster_objects, expect, service_ip

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.advertise import expected_routes_for_peers
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import OutsidePeer, merge_expected
from bgpflat.lab.conformance import cases, situations, situations_v6

V6 = situations_v6.SITUATIONS_V6
ADDRESS6 = {node.name: node.address6 for node in cases.NODES}


def sent(name: str, *, family: int = 6) -> dict[str, set[str]]:
    """Prefixes of ``family`` each node sends to the peer in cell ``name``."""
    result = expect(name)
    out: dict[str, set[str]] = {}
    for route in result.table:
        if route.prefix.version == family:
            out.setdefault(result.node_of(route.session), set()).add(str(route.prefix))
    return out


def test_the_matrix_has_the_ipv6_cells_and_they_cover_what_they_must() -> None:
    assert len(V6) >= 12
    assert {s.name for s in V6} <= {s.name for s in situations.SITUATIONS}
    objects = [o for s in V6 for o in s.objects]
    assert any(cases.PEER_ADDRESS in s.peer_addresses and cases.PEER_ADDRESS6 in s.peer_addresses for s in V6)
    assert {s.mesh for s in V6} == {True, False}
    assert {s.session_type for s in V6} >= {"iBGP", "eBGP"}
    assert any(":" in w.address and w.block != situations_v6.BLOCKS6[w.node] for s in V6 for w in s.workloads)
    assert any("serviceLoadBalancerIPs" in s.bgp_config for s in V6)
    assert any(o["kind"] == "Service" and o["spec"].get("externalTrafficPolicy") == "Local" for o in objects)
    assert any(o["kind"] == "BGPFilter" and o["spec"].get("exportV6") for o in objects)
    assert any("prefixAdvertisements" in s.bgp_config for s in V6)
    assert any("projectcalico.org/RouteReflectorClusterID" in a for s in V6 for a in s.node_annotations.values())


def test_mesh_ebgp_over_ipv6_sends_every_block_from_every_node_with_itself_as_next_hop() -> None:
    blocks = set(situations_v6.BLOCKS6.values())
    assert sent("v6-mesh-ebgp") == {node: blocks for node in ADDRESS6}
    result = expect("v6-mesh-ebgp")
    assert {route.next_hop for route in result.table} == set(ADDRESS6.values())


def test_a_node_without_an_ipv6_address_runs_no_bird6_session_and_its_block_reaches_no_one() -> None:
    v6 = sent("v6-partial-dual-stack")
    assert "node-d" not in v6
    assert all(situations_v6.BLOCKS6["node-d"] not in prefixes for prefixes in v6.values())
    assert {node: len(prefixes) for node, prefixes in sent("v6-partial-dual-stack", family=4).items()} == {
        node: 4 for node in ADDRESS6
    }


def test_ipv6_etp_local_host_routes_need_an_endpoint_of_the_cluster_ips_family() -> None:
    v6 = sent("v6-services-etp-local")
    host_routes = {node: {p for p in prefixes if p.endswith("/128")} for node, prefixes in v6.items()}
    singles = {"fd00:79:1::1/128", "fd00:79::8/128"}
    assert host_routes == {
        "node-a": {"fd00:79::7/128", *singles},
        "node-b": {"fd00:78::5/128", *singles},
        "node-c": singles,  # its only endpoint of v6-slice-only is in an IPv6 slice: ignored
        "node-d": {"fd00:78::5/128", *singles},  # not ready, counted by v3.31.0
    }


def test_an_ipv6_only_service_cluster_range_still_advertises_the_ipv4_cluster_ip_of_a_matched_service() -> None:
    cluster_ip = Prefix.host(service_ip("v6-services-ebgp", "single6"))
    v4 = sent("v6-services-ebgp", family=4)
    assert all(str(cluster_ip) in prefixes for prefixes in v4.values())
    assert len(v4) == len(cases.NODES)


def test_communities_on_ipv6_routes_and_node_b_replacing_them() -> None:
    result = expect("v6-communities")
    by_node = {
        (result.node_of(r.session), str(r.prefix)): (r.communities, r.large_communities)
        for r in result.table
        if r.prefix.version == 6
    }
    block_a, block_b, block_c = (situations_v6.BLOCKS6[n] for n in ("node-a", "node-b", "node-c"))
    assert by_node["node-a", block_a] == (((65000, 600),), ((65000, 6, 6),))
    assert by_node["node-a", block_c] == (((65000, 600), (65000, 603)), ((65000, 6, 6),))
    assert by_node["node-b", block_b] == (((65000, 622),), ())
    # The IPv4 entry of the same list is bird's: no IPv6 route carries 65000:400.
    assert all((65000, 400) not in communities for communities, _ in by_node.values())


def test_export_v6_rules_first_match_wins_and_an_export_v4_filter_is_never_called() -> None:
    v6 = sent("v6-bgpfilter")
    blocks, pods = situations_v6.BLOCKS6, situations_v6.WORKLOADS6
    assert v6 == {
        "node-a": {f"{pods['node-a']}/128", blocks["node-d"]},
        "node-b": {blocks["node-b"], f"{pods['node-b']}/128", blocks["node-d"]},
        "node-c": {blocks["node-c"], blocks["node-d"]},
        "node-d": {blocks["node-d"]},
    }


def test_the_ipv6_route_reflector_reflects_its_clients_blocks_with_their_next_hops() -> None:
    result = expect("v6-route-reflector")
    assert set(result.sessions) == {ADDRESS6["node-a"]}
    owners = {situations_v6.BLOCKS6[node]: address for node, address in ADDRESS6.items()}
    assert {str(r.prefix): r.next_hop for r in result.table} == owners


def test_calico_nodes_with_spec_bgp_ipv6_address_expect_what_the_annotated_cell_showed() -> None:
    # A calicoctl snapshot holds projectcalico.org/v3 Nodes (spec.bgp.ipv4Address/ipv6Address)
    # where the API server holds annotated Nodes: the same cluster, the same expectation.
    name = "dual-stack-peer"
    objects = []
    for obj in cluster_objects(name):
        if obj["kind"] == "Node":
            annotations = obj["metadata"]["annotations"]
            obj = {
                "apiVersion": "projectcalico.org/v3",
                "kind": "Node",
                "metadata": {"name": obj["metadata"]["name"], "labels": obj["metadata"]["labels"]},
                "spec": {
                    "bgp": {
                        "ipv4Address": annotations["projectcalico.org/IPv4Address"],
                        "ipv6Address": annotations["projectcalico.org/IPv6Address"],
                    }
                },
            }
        objects.append(obj)
    situation = situations.situation(name)
    from_calico_nodes = merge_expected(
        expected_routes_for_peers(
            cluster=ClusterState.from_objects(objects),
            peers=[OutsidePeer(address=address) for address in situation.peer_addresses],
        )
    )
    assert from_calico_nodes.table == expect(name).table
    assert set(from_calico_nodes.sessions) == {n.address for n in cases.NODES} | set(ADDRESS6.values())
