"""Calico behaviour seen in the conformance lab (confd v3.31.0 + BIRD 1.6), pinned on the model alone.

Each test takes a situation of the conformance matrix (``bgpflat.lab.conformance.cases``), builds
its objects as the API server would hold them (cluster IPs allocated, the apiserver's own
``default/kubernetes`` Service present) and checks that ``expected_routes`` predicts what the
verification peer learned from confd-configured BIRD in ``bgpflat lab conformance``. No daemon
runs here; the integration test ``tests/integration/test_conformance.py`` runs the real thing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.advertise import expected_routes, expected_routes_for_peers
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.diff import diff_routes
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer, merge_expected
from bgpflat.core.routes.table import Route, RouteTable
from bgpflat.lab.conformance import cases, situations

SERVICE_RANGE = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
ADDRESS = {node.name: node.address for node in cases.NODES}


def cluster_objects(name: str) -> list[dict[str, Any]]:
    """A cell's objects as served: cluster IPs handed out, plus the apiserver's own Service."""
    objects = cases.build_objects(situations.situation(name), service_range=SERVICE_RANGE)
    hosts = ipaddress.ip_network(SERVICE_RANGE).hosts()
    next(hosts)  # the first address is the kubernetes Service's
    for obj in objects:
        if obj["kind"] == "Service":
            ip = str(next(hosts))
            obj["spec"]["clusterIP"] = ip
            obj["spec"]["clusterIPs"] = [ip]
    objects += [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": KUBERNETES_SERVICE_IP,
                "clusterIPs": [KUBERNETES_SERVICE_IP],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            },
        },
        {
            # What kube-apiserver's endpoint reconciler writes: its own address, no nodeName.
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["192.0.2.100"], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}],
        },
    ]
    return objects


def expect(name: str) -> ExpectedRoutes:
    situation = situations.situation(name)
    each = expected_routes_for_peers(
        cluster=ClusterState.from_objects(cluster_objects(name)),
        peers=[OutsidePeer(address=address) for address in situation.peer_addresses],
        options=ModelOptions(add_path=situation.add_path),
    )
    return merge_expected(each)


def service_ip(name: str, service: str) -> str:
    """The cluster IP ``cluster_objects`` gives ``service``."""
    for obj in cluster_objects(name):
        if obj["kind"] == "Service" and obj["metadata"]["name"] == service:
            return str(obj["spec"]["clusterIP"])
    raise KeyError(service)


def senders(result: ExpectedRoutes, prefix: str) -> set[str]:
    """Nodes (by name) that send ``prefix`` to the peer."""
    return {result.node_of(r.session) for r in result.table if str(r.prefix) == prefix}


def next_hops(result: ExpectedRoutes, prefix: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for route in result.table:
        if str(route.prefix) == prefix:
            out.setdefault(result.node_of(route.session), set()).add(route.next_hop)
    return out


ALL = {node.name for node in cases.NODES}


# -- the matrix itself ------------------------------------------------------------------------------


def test_matrix_covers_what_conformance_must_cover() -> None:
    matrix = situations.SITUATIONS
    assert len(matrix) >= 12
    assert len({s.name for s in matrix}) == len(matrix)
    assert {s.mesh for s in matrix} == {True, False}
    assert {s.session_type for s in matrix} == {"iBGP", "eBGP", "eBGP+iBGP"}
    modes = {s.peer_spec.get("nextHopMode") for s in matrix}
    assert {"Self", "Keep"} <= modes
    objects = [o for s in matrix for o in s.objects]
    assert any(o["kind"] == "IPPool" and o["spec"].get("disableBGPExport") for o in objects)
    own_block = {n.name: n.block for n in cases.NODES}
    assert any(w.block != own_block[w.node] for s in matrix for w in s.workloads)
    assert any(o["kind"] == "Service" and o["spec"].get("externalTrafficPolicy") == "Local" for o in objects)
    assert any("prefixAdvertisements" in s.bgp_config for s in matrix)
    assert any(o["kind"] == "BGPFilter" for o in objects)
    assert any(cases.EXCLUDE_LABEL in labels for s in matrix for labels in s.node_labels.values())
    rr = "projectcalico.org/RouteReflectorClusterID"
    assert any(rr in a for s in matrix for a in s.node_annotations.values())


@pytest.mark.parametrize("situation", situations.SITUATIONS, ids=lambda s: s.name)
def test_every_situation_gives_the_model_sessions_and_routes(situation: cases.Situation) -> None:
    result = expect(situation.name)
    assert result.sessions, "some node must peer with the outside peer"
    assert result.table, "some route must be expected"
    assert result.calico_version == cases.CALICO_VERSION


# -- quirks the lab showed ---------------------------------------------------------------------------


def test_aggregation_disabled_advertises_a_service_whose_endpoints_name_no_node() -> None:
    """Lab: with serviceLoadBalancerAggregation Disabled and serviceClusterIPs set, every node sends
    the /32 of ``default/kubernetes``, whose EndpointSlice (written by kube-apiserver) has no
    nodeName. confd's ``advertiseThisService`` counts any endpoint address of a non-Local Service,
    whatever its node (routes.go, v3.31.0). The model used to count only endpoints naming a node.
    """
    result = expect("lb-aggregation-disabled")
    assert senders(result, f"{KUBERNETES_SERVICE_IP}/32") == ALL


def test_aggregation_disabled_gives_cluster_ip_services_host_routes_from_every_node() -> None:
    """Lab (calico-facts §7, was UNCONFIRMED): a ClusterIP-type Service with an endpoint gets its
    cluster IP /32 from every node, and the LB range is no longer advertised as a whole."""
    result = expect("lb-aggregation-disabled")
    assert senders(result, f"{service_ip('lb-aggregation-disabled', 'plain')}/32") == ALL
    assert senders(result, "10.78.0.6/32") == ALL  # ETP Cluster, an endpoint exists
    assert senders(result, "10.78.0.5/32") == {"node-b"}  # ETP Local
    assert senders(result, "10.78.0.8/32") == set()  # no endpoints
    assert senders(result, cases.LB_RANGE) == set()


def test_v3_31_0_counts_not_ready_endpoints_for_etp_local() -> None:
    """Lab: node-d's endpoint of web-local is ready=false and node-d still sends 10.78.0.5/32."""
    result = expect("services-etp-local")
    assert senders(result, "10.78.0.5/32") == {"node-b", "node-d"}


def test_v3_31_0_single_address_entries() -> None:
    """Lab: a /32 serviceLoadBalancerIPs entry matches spec.loadBalancerIP only (status ingress from
    v3.31.5, PR #11917); a /32 serviceExternalIPs entry gives every node the /32 for a LoadBalancer
    Service, and nothing at all for a ClusterIP-type one (calico-facts §3.4 corner case, confirmed)."""
    result = expect("single-address-ranges")
    assert senders(result, "10.78.1.1/32") == ALL
    assert senders(result, "10.78.1.2/32") == set()
    assert senders(result, "10.79.1.1/32") == ALL
    assert senders(result, "10.79.1.2/32") == set()


def test_pending_deletion_block_is_still_advertised_and_pending_is_not() -> None:
    result = expect("affinity-states")
    assert senders(result, "10.244.30.0/26") == ALL  # node-c's own plus the mesh copies
    assert next_hops(result, "10.244.30.0/26")["node-c"] == {ADDRESS["node-c"]}
    assert senders(result, "10.244.20.0/26") == set()


def test_disabled_pool_over_the_node_subnet_exports_the_direct_route() -> None:
    result = expect("disabled-pool-covers-subnet")
    assert senders(result, cases.SUBNET) == ALL


def test_bgpfilter_accept_leaks_own_workloads_without_communities() -> None:
    """Lab: an export Accept runs before calico_aggr and apply_communities, so a node's own workload
    /32 (inside its block) is sent, bare; the blocks still carry the prefixAdvertisements."""
    result = expect("bgpfilter-accept")
    for node in cases.NODES:
        routes = [r for r in result.table if r.session == node.address and str(r.prefix) == f"{node.workload}/32"]
        assert len(routes) == 1 and routes[0].communities == () and routes[0].large_communities == ()
    block = next(r for r in result.table if r.session == ADDRESS["node-a"] and str(r.prefix) == "10.244.1.0/26")
    assert block.communities == ((65000, 100),) and block.large_communities == ((65000, 1, 2),)
    assert senders(result, "10.244.4.0/26") == set()  # rejected by the second rule on every node


def test_bgpfilter_rules_each_leave_their_mark_first_match_wins() -> None:
    """Lab: Equal drops node-a's block although a later In would accept it; prefixLength 30-32 leaks
    node-b's /32 but not its /26; NotIn the pool leaks the node subnet's direct route; NotEqual with
    source RemotePeers keeps only node-d's block of the mesh-learned ones. The exportV6-only filter
    attached first and the unattached reject-everything filter change nothing."""
    result = expect("bgpfilter-match-operators")
    by_node = {n.name: {str(r.prefix) for r in result.table if r.session == n.address} for n in cases.NODES}
    assert by_node == {
        "node-a": {cases.SUBNET, "10.244.1.2/32", "10.244.4.0/26"},
        "node-b": {cases.SUBNET, "10.244.2.2/32", "10.244.2.0/26", "10.244.4.0/26"},
        "node-c": {cases.SUBNET, "10.244.3.0/26", "10.244.4.0/26"},
        "node-d": {cases.SUBNET, "10.244.4.0/26"},
    }


def test_bgpfilter_interface_star_matches_blackholes_and_learned_routes() -> None:
    """Lab: ``ifname ~ "*"`` matches every route, a blackholed block (no device) and a mesh-learned
    one (the host interface) alike; only node-c's workload /32, accepted on ``cali*`` first, is sent."""
    result = expect("bgpfilter-interface")
    assert {(result.node_of(r.session), str(r.prefix)) for r in result.table} == {("node-c", "10.244.3.2/32")}


def test_bgpfilter_equal_with_prefix_length_never_matches_and_not_equal_always_does() -> None:
    """Lab: Calico renders ``net = [ cidr{26,32} ]`` (``!=``) for Equal (NotEqual) with a prefixLength;
    BIRD never finds a prefix equal to a prefix set. node-b's block survives the Equal reject, and
    the NotEqual reject on RemotePeers drops node-a's block too: each node sends its own block."""
    result = expect("bgpfilter-equal-with-length")
    assert {(result.node_of(r.session), str(r.prefix)) for r in result.table} == {
        (node.name, node.block) for node in cases.NODES
    }
    assert any("exact-with-length exportV4[0]: with a prefixLength" in note for note in result.notes)
    assert any("so NotEqual always matches" in note for note in result.notes)


def test_without_add_path_a_node_sends_the_copy_from_the_lowest_router_id() -> None:
    """Lab: node-c learns web-local's /32 from node-b and node-d and, with next hop keep and no
    ADD-PATH, sends the copy from node-b (lower router ID)."""
    result = expect("services-keep-no-add-path")
    assert next_hops(result, "10.78.0.5/32") == {
        "node-a": {ADDRESS["node-b"]},
        "node-b": {ADDRESS["node-b"]},
        "node-c": {ADDRESS["node-b"]},
        "node-d": {ADDRESS["node-d"]},
    }


def test_add_path_duplicates_from_mesh_copies_are_not_findings() -> None:
    """Lab: with ADD-PATH, BIRD sends one path per copy it holds — its own direct route and each
    mesh copy — all rewritten to next hop self, so the peer learns identical paths under several
    path IDs (calico-facts §7 open item: BIRD sends every path). The diff compares sets of paths."""
    result = expect("disabled-pool-covers-subnet")
    learned = RouteTable()
    for route in result.table:
        copies = 4 if route.prefix == Prefix.parse(cases.SUBNET) else 1
        for path_id in range(copies):
            learned.add(route._replace(path_id=path_id + 1))
    diff = diff_routes(expected=result, learned=learned, strict=True)
    assert diff.complies and not diff.findings
    assert len(learned) == len(result.table) + 3 * len(cases.NODES)


def test_route_reflector_with_next_hop_self_rewrites_reflected_routes() -> None:
    result = expect("next-hop-self-rr")
    assert {r.next_hop for r in result.table} == {ADDRESS["node-a"]}
    assert len(result.table) == len(cases.NODES)
    reflected = expect("route-reflector")
    assert {r.next_hop for r in reflected.table} == set(ADDRESS.values())


def _route(result: ExpectedRoutes, node: str, prefix: str) -> Route:
    return next(r for r in result.table if r.session == ADDRESS[node] and str(r.prefix) == prefix)


def test_local_as_number_is_the_as_the_peer_sees() -> None:
    result = expect("local-as-number")
    assert _route(result, "node-a", "10.244.2.0/26").as_path == (64600,)
    assert all(s.local_as == 64600 for s in result.sessions.values())


def test_tunnel_address_outside_the_own_block_is_exported_by_default() -> None:
    """Lab: node-b's tunl0 address 10.244.9.1/32 (outside its block, inside the pool) comes in from
    protocol direct, passes the export filter and the mesh: every node sends it to the eBGP peer
    (calico-facts §7 item, was UNCONFIRMED), so ``ModelOptions.tunnel_addresses`` is on by default."""
    result = expect("ipip-tunnel-address")
    assert senders(result, "10.244.9.1/32") == ALL
    assert next_hops(result, "10.244.9.1/32")["node-a"] == {ADDRESS["node-a"]}


# -- the report -------------------------------------------------------------------------------------


def test_cell_json_lists_situation_match_and_diff() -> None:
    from bgpflat.lab.conformance.results import CellResult, ConformanceReport

    situation = situations.situation("mesh-ibgp")
    expected = expect("mesh-ibgp")
    learned = RouteTable(r for r in expected.table if r.session != ADDRESS["node-d"])
    diff = diff_routes(expected=expected, learned=learned, strict=True)
    cell = CellResult(
        situation=situation,
        match=diff.complies,
        seconds=1.0,
        expected_routes=len(expected.table),
        learned_routes=len(learned),
        expected_sessions=tuple(expected.sessions),
        calico_sessions=tuple(a for a in expected.sessions if a != ADDRESS["node-d"]),
        diff=diff,
    )
    report = ConformanceReport(cells=(cell,), seconds=2.0, setup_seconds=1.0).to_dict()
    assert not report["all_match"] and report["total"] == 1
    data = report["cells"][0]
    assert data["situation"] == "mesh-ibgp" and data["match"] is False
    assert data["peer"] == {
        "address": cases.PEER_ADDRESS,
        "addresses": [cases.PEER_ADDRESS],
        "as_number": cases.CLUSTER_AS,
        "type": "iBGP",
    }
    findings = data["diff"]["findings"]
    assert findings[0] == f"sessions expected but not configured by confd: {ADDRESS['node-d']}"
    assert any("10.244.4.0/26 missing" in line for line in findings)
    assert data["diff"]["counts"]["missing"] == 1


def as_paths(result: ExpectedRoutes, prefix: str) -> dict[str, set[tuple[int, ...]]]:
    out: dict[str, set[tuple[int, ...]]] = {}
    for route in result.table:
        if str(route.prefix) == prefix:
            out.setdefault(result.node_of(route.session), set()).add(route.as_path)
    return out


def test_mixed_as_mesh_sends_every_block_with_the_other_racks_as_on_the_path() -> None:
    result = expect("mesh-mixed-as")
    rack1, rack2 = (64601,), (64602,)
    a_block, c_block = cases.NODES[0].block, cases.NODES[2].block
    assert senders(result, a_block) == ALL and senders(result, c_block) == ALL
    # Inside a rack the mesh is iBGP (the path is the rack's AS alone); across it is eBGP.
    assert as_paths(result, a_block) == {
        "node-a": {rack1},
        "node-b": {rack1},
        "node-c": {rack2 + rack1},
        "node-d": {rack2 + rack1},
    }
    assert as_paths(result, c_block)["node-a"] == {rack1 + rack2}


def test_single_address_match_sends_the_cluster_ip_and_needs_an_endpoint_slice() -> None:
    name = "single-address-all-routes"
    result = expect(name)
    assert senders(result, "10.79.1.1/32") == ALL
    assert senders(result, f"{service_ip(name, 'single-match')}/32") == ALL
    assert senders(result, f"{service_ip(name, 'no-slice')}/32") == set()


def test_three_as_mesh_relays_blocks_through_the_third_as() -> None:
    """Lab (seed 982665367, situation 18): with one AS per rack and three racks, the peer learned
    every block from a node of another AS twice: ``[A B]`` straight from B's node and ``[A C B]``
    relayed by C's. Calico's mesh sessions say ``add paths on`` and export learned routes too, so
    each node passes on every path it holds; BIRD drops only a path carrying its own AS. Every node
    shares the subnet, so the relayed path keeps the origin's next hop."""
    result = expect("mesh-three-as")
    a_block, c_block, d_block = cases.NODES[0].block, cases.NODES[2].block, cases.NODES[3].block
    assert as_paths(result, d_block)["node-a"] == {(64601, 64603), (64601, 64602, 64603)}
    assert as_paths(result, a_block)["node-c"] == {(64602, 64601), (64602, 64603, 64601)}
    # node-b holds node-a's block over iBGP only: nothing relayed comes back into rack 1.
    assert as_paths(result, a_block)["node-b"] == {(64601,)}
    assert next_hops(result, c_block)["node-a"] == {cases.NODES[2].address}


def test_a_relay_adds_its_own_communities_to_a_second_copy() -> None:
    """Lab (seed 912313666, situation 9): node-b passes node-a's block (iBGP-learned) on to rack 2
    over eBGP, adding its ``node.node-b`` communities; node-c holds and sends both copies."""
    result = expect("mesh-relay-communities")
    a_block = cases.NODES[0].block
    sent = {r.communities for r in result.table if str(r.prefix) == a_block and result.node_of(r.session) == "node-c"}
    assert sent == {(), ((65000, 222),)}
    # node-a's own copy carries no community: only the global prefixAdvertisements would add one.
    own = {r.communities for r in result.table if str(r.prefix) == a_block and result.node_of(r.session) == "node-a"}
    assert own == {()}


def test_without_add_path_a_three_as_mesh_sends_only_the_direct_path() -> None:
    situation = dataclasses.replace(situations.situation("mesh-three-as"), add_path=False)
    result = expected_routes(
        cluster=ClusterState.from_objects(cluster_objects(situation.name)),
        peer=OutsidePeer(address=cases.PEER_ADDRESS),
        options=ModelOptions(add_path=situation.add_path),
    )
    assert as_paths(result, cases.NODES[3].block)["node-a"] == {(64601, 64603)}


def test_outside_peer_in_one_racks_as_gets_no_ibgp_learned_blocks_from_that_rack() -> None:
    result = expect("mixed-as-ibgp-rack")
    a_block, b_block, c_block = (cases.NODES[i].block for i in range(3))
    # node-b learned node-a's block over iBGP and the peer is iBGP to node-b: not passed on.
    assert senders(result, a_block) == {"node-a", "node-c", "node-d"}
    assert senders(result, b_block) == {"node-b", "node-c", "node-d"}
    assert senders(result, c_block) == ALL
    assert len(result.table) == 14
