"""The conformance matrix's catalogue: every situation, named, with what it adds to the base cluster.

The base cluster, the types and the object builders are in ``cases``; ``SITUATIONS`` is the matrix
in the order it runs, ``situation(name)`` one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bgpflat.lab.conformance.cases import (
    AS_ANNOTATION,
    CLUSTER_AS,
    EXCLUDE_LABEL,
    EXTERNAL_AS,
    EXTERNAL_RANGE,
    LB_RANGE,
    PEER_ADDRESS,
    POOL,
    RR_LABEL,
    SUBNET,
    JsonObject,
    Situation,
    Workload,
    affinity,
    calico_object,
    ip_pool,
)
from bgpflat.lab.conformance.situations_v6 import SITUATIONS_V6

_RR_ANNOTATION = {"projectcalico.org/RouteReflectorClusterID": "224.0.0.1"}
_RR_PEERING: JsonObject = calico_object(
    "BGPPeer", "peer-with-route-reflectors", {"nodeSelector": "all()", "peerSelector": f"{RR_LABEL} == 'true'"}
)
_SERVICES_CONFIG: dict[str, Any] = {
    "serviceClusterIPs": "@services",
    "serviceExternalIPs": [{"cidr": EXTERNAL_RANGE}],
    "serviceLoadBalancerIPs": [{"cidr": LB_RANGE}],
}


def service_object(
    name: str,
    *,
    etp: str | None,
    lb_ip: str | None = None,
    external_ip: str | None = None,
    spec_lb_ip: bool = False,
) -> JsonObject:
    """A Service; ``etp=None`` makes it type ClusterIP, otherwise LoadBalancer with that policy.

    ``lb_ip`` goes to status.loadBalancer.ingress (where a load-balancer controller puts it) and,
    with ``spec_lb_ip``, also to the deprecated spec.loadBalancerIP.
    """
    spec: JsonObject = {
        "type": "ClusterIP" if etp is None else "LoadBalancer",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "selector": {"app": name},
    }
    if etp is not None:
        spec["externalTrafficPolicy"] = etp
    if external_ip:
        spec["externalIPs"] = [external_ip]
    if lb_ip and spec_lb_ip:
        spec["loadBalancerIP"] = lb_ip
    service: JsonObject = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }
    if lb_ip:
        service["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    return service


def endpoint_slice(service: str, nodes: Sequence[tuple[str, str, bool]]) -> JsonObject:
    """An EndpointSlice of ``service`` with (address, node, ready) endpoints."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-lab",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [address], "nodeName": node, "conditions": {"ready": ready}} for address, node, ready in nodes
        ],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
    }


_SERVICE_OBJECTS: tuple[JsonObject, ...] = (
    # ETP Local LoadBalancer: /32 only from nodes with a ready local endpoint (node-b; node-d's is not ready).
    service_object("web-local", etp="Local", lb_ip="10.78.0.5"),
    endpoint_slice("web-local", [("10.244.2.2", "node-b", True), ("10.244.4.2", "node-d", False)]),
    # ETP Cluster: covered by the aggregated ranges, no /32.
    service_object("web-cluster", etp="Cluster", lb_ip="10.78.0.6", external_ip="10.79.0.6"),
    endpoint_slice("web-cluster", [("10.244.3.2", "node-c", True)]),
    # ETP Local with an external IP: /32 from node-a only.
    service_object("api-local", etp="Local", external_ip="10.79.0.7"),
    endpoint_slice("api-local", [("10.244.1.2", "node-a", True)]),
)

_SINGLE_ADDRESS_CONFIG: dict[str, Any] = {
    "serviceExternalIPs": [{"cidr": EXTERNAL_RANGE}, {"cidr": "10.79.1.1/32"}, {"cidr": "10.79.1.2/32"}],
    "serviceLoadBalancerIPs": [{"cidr": LB_RANGE}, {"cidr": "10.78.1.1/32"}, {"cidr": "10.78.1.2/32"}],
}
_SINGLE_ADDRESS_OBJECTS: tuple[JsonObject, ...] = (
    # ETP Cluster, LB IP matching a /32 entry, also in spec.loadBalancerIP: /32 from every node.
    service_object("lb-spec", etp="Cluster", lb_ip="10.78.1.1", spec_lb_ip=True),
    endpoint_slice("lb-spec", [("10.244.1.2", "node-a", True)]),
    # The same with the LB IP only in status.ingress (what Calico's own LB IPAM does).
    service_object("lb-status", etp="Cluster", lb_ip="10.78.1.2"),
    endpoint_slice("lb-status", [("10.244.1.2", "node-a", True)]),
    # ETP Cluster, external IP matching a /32 entry: /32 from every node.
    service_object("ext-cluster", etp="Cluster", external_ip="10.79.1.1"),
    endpoint_slice("ext-cluster", [("10.244.2.2", "node-b", True)]),
    # A ClusterIP-type Service (no ETP) whose external IP matches only a /32 entry.
    service_object("ext-clusterip", etp=None, external_ip="10.79.1.2"),
    endpoint_slice("ext-clusterip", [("10.244.2.2", "node-b", True)]),
)
_NO_AGGREGATION_CONFIG: dict[str, Any] = {
    "serviceClusterIPs": "@services",
    "serviceLoadBalancerIPs": [{"cidr": LB_RANGE}],
    "serviceLoadBalancerAggregation": "Disabled",
}
_NO_AGGREGATION_OBJECTS: tuple[JsonObject, ...] = (
    service_object("web-local", etp="Local", lb_ip="10.78.0.5"),
    endpoint_slice("web-local", [("10.244.2.2", "node-b", True)]),
    service_object("web-cluster", etp="Cluster", lb_ip="10.78.0.6"),
    endpoint_slice("web-cluster", [("10.244.3.2", "node-c", True)]),
    service_object("plain", etp=None),
    endpoint_slice("plain", [("10.244.4.2", "node-d", True)]),
    service_object("no-endpoints", etp="Cluster", lb_ip="10.78.0.8"),
)

_REJECT_REMOTE: JsonObject = calico_object(
    "BGPFilter", "only-own-routes", {"exportV4": [{"action": "Reject", "source": "RemotePeers"}]}
)
_ACCEPT_POOL: JsonObject = calico_object(
    "BGPFilter",
    "accept-pool-hosts",
    {
        "exportV4": [
            {"action": "Accept", "cidr": POOL, "matchOperator": "In", "prefixLength": {"min": 32, "max": 32}},
            {"action": "Reject", "cidr": "10.244.4.0/24", "matchOperator": "In"},
        ]
    },
)
# One filter whose every rule leaves a mark on what the peer sees (first match wins):
#   0 Equal drops node-a's block, though rule 4 would accept it;
#   1 In with prefixLength 30-32 leaks node-b's workload /32 but not its /26;
#   2 NotIn the pool leaks the node subnet's direct route from every node;
#   3 NotEqual with source RemotePeers drops every mesh-learned route but node-d's block;
#   4 In leaks node-a's workload /32.
_MATCH_OPERATORS: JsonObject = calico_object(
    "BGPFilter",
    "match-operators",
    {
        "exportV4": [
            {"action": "Reject", "cidr": "10.244.1.0/26", "matchOperator": "Equal"},
            {"action": "Accept", "cidr": "10.244.2.0/24", "matchOperator": "In", "prefixLength": {"min": 30}},
            {"action": "Accept", "cidr": POOL, "matchOperator": "NotIn"},
            {"action": "Reject", "cidr": "10.244.4.0/26", "matchOperator": "NotEqual", "source": "RemotePeers"},
            {"action": "Accept", "cidr": "10.244.1.0/24", "matchOperator": "In"},
        ]
    },
)
# Attached first, but with IPv6 rules only: BIRD's IPv4 export never calls it.
_V6_ONLY: JsonObject = calico_object("BGPFilter", "v6-only", {"exportV6": [{"action": "Reject"}]})
# Not attached to any peer: it changes nothing.
_UNATTACHED: JsonObject = calico_object("BGPFilter", "reject-everything", {"exportV4": [{"action": "Reject"}]})
# Interface rules: ``cali*`` picks the workload routes, ``*`` every route BIRD holds.
_BY_INTERFACE: JsonObject = calico_object(
    "BGPFilter",
    "by-interface",
    {
        "exportV4": [
            {"action": "Accept", "cidr": "10.244.3.0/24", "matchOperator": "In", "interface": "cali*"},
            {"action": "Reject", "interface": "*"},
        ]
    },
)
# Calico renders Equal/NotEqual with a prefixLength as ``net = [ cidr{min,max} ]`` (``!=``), a prefix
# compared with a prefix set, which BIRD never finds equal: rule 0 never drops node-b's block, and
# rule 1 drops every mesh-learned route, node-a's block included.
_EXACT_WITH_LENGTH: JsonObject = calico_object(
    "BGPFilter",
    "exact-with-length",
    {
        "exportV4": [
            {"action": "Reject", "cidr": "10.244.2.0/26", "matchOperator": "Equal", "prefixLength": {"min": 26}},
            {
                "action": "Reject",
                "cidr": "10.244.1.0/26",
                "matchOperator": "NotEqual",
                "prefixLength": {"min": 26},
                "source": "RemotePeers",
            },
        ]
    },
)
_COMMUNITIES: dict[str, Any] = {
    "communities": [{"name": "pods", "value": "65000:100"}, {"name": "pods-large", "value": "65000:1:2"}],
    "prefixAdvertisements": [
        {"cidr": POOL, "communities": ["pods", "pods-large"]},
        {"cidr": "10.244.3.0/26", "communities": ["65000:300"]},
    ],
}
_NODE_B_COMMUNITIES: JsonObject = calico_object(
    "BGPConfiguration", "node.node-b", {"prefixAdvertisements": [{"cidr": POOL, "communities": ["65000:222"]}]}
)

RACK_AS = {"node-a": 64601, "node-b": 64601, "node-c": 64602, "node-d": 64602}
_RACK_AS_ANNOTATIONS = {node: {AS_ANNOTATION: str(asn)} for node, asn in RACK_AS.items()}

# The run order keeps the mesh cells together and the mesh-off ones last: BIRD takes longest to
# settle when mesh sessions give way to route-reflector peerings, so that happens once.
SITUATIONS: tuple[Situation, ...] = (
    Situation(
        name="mesh-ebgp",
        description="full mesh, eBGP outside peer on every node",
        peer_as=EXTERNAL_AS,
        behaviour="mesh-learned blocks are re-exported to an eBGP peer with next hop self (calico#3810)",
    ),
    Situation(
        name="mesh-ibgp",
        description="full mesh, iBGP outside peer on every node",
        peer_as=CLUSTER_AS,
        behaviour="BIRD never passes iBGP-learned routes to an iBGP peer: each node sends only its own block",
    ),
    Situation(
        name="mesh-mixed-as",
        description="full mesh across two AS (one per rack), eBGP outside peer on every node",
        peer_as=EXTERNAL_AS,
        node_annotations=_RACK_AS_ANNOTATIONS,
        peer_from_snapshot=True,
        behaviour="the mesh is iBGP inside a rack and eBGP across; every node sends every block, "
        "the other rack's with its AS on the path",
    ),
    Situation(
        name="mixed-as-ibgp-rack",
        description="full mesh across two AS, outside peer in rack 1's AS (iBGP there, eBGP to rack 2)",
        peer_as=64601,
        node_annotations=_RACK_AS_ANNOTATIONS,
        peer_from_snapshot=True,
        behaviour="rack 1 nodes send their own block and rack 2's (learned over eBGP), never each "
        "other's; rack 2 nodes send every block",
    ),
    Situation(
        name="mesh-three-as",
        description="full mesh across three AS (node-c and node-d in AS of their own), eBGP, nextHopMode Keep",
        peer_as=EXTERNAL_AS,
        peer_spec={"nextHopMode": "Keep"},
        node_annotations={**_RACK_AS_ANNOTATIONS, "node-d": {AS_ANNOTATION: "64603"}},
        peer_from_snapshot=True,
        behaviour="mesh sessions run ADD-PATH: a block also arrives relayed through the third AS, "
        "a second AS path kept to the origin's next hop",
    ),
    Situation(
        name="mesh-relay-communities",
        description="full mesh across two AS, node.node-b prefixAdvertisements (rack 1), eBGP",
        peer_as=EXTERNAL_AS,
        node_annotations=_RACK_AS_ANNOTATIONS,
        objects=(_NODE_B_COMMUNITIES,),
        peer_from_snapshot=True,
        behaviour="node-b relays node-a's block to rack 2 with its own communities: a second copy there",
    ),
    Situation(
        name="next-hop-keep",
        description="full mesh, eBGP, nextHopMode Keep",
        peer_as=EXTERNAL_AS,
        peer_spec={"nextHopMode": "Keep"},
        behaviour="re-exported mesh routes keep the owning node as next hop",
    ),
    Situation(
        name="keep-original-next-hop",
        description="full mesh, eBGP, deprecated keepOriginalNextHop: true",
        peer_as=EXTERNAL_AS,
        peer_spec={"keepOriginalNextHop": True},
        behaviour="the deprecated flag renders next hop keep toward an eBGP peer, like nextHopMode Keep",
    ),
    Situation(
        name="disable-bgp-export",
        description="second pool with disableBGPExport (block on node-b), full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        blocks=(("10.245.2.0/26", "node-b"),),
        workloads=(Workload(node="node-b", address="10.245.2.9", block="10.245.2.0/26", name="pod-hidden"),),
        objects=(ip_pool("hidden", "10.245.0.0/16", disableBGPExport=True),),
        behaviour="nothing inside a disableBGPExport pool leaves any node, over the mesh neither",
    ),
    Situation(
        name="borrowed-addresses",
        description="pods on node-b and node-c with addresses from node-a's block and an unaffine block",
        peer_as=EXTERNAL_AS,
        blocks=(("10.244.9.0/26", None),),
        workloads=(
            Workload(node="node-b", address="10.244.1.10", block="10.244.1.0/26", name="pod-borrowed"),
            Workload(node="node-c", address="10.244.9.3", block="10.244.9.0/26", name="pod-orphan-block"),
        ),
        behaviour="node-a's calico_aggr drops the mesh copy of a /32 borrowed from its block",
    ),
    Situation(
        name="services-etp-local",
        description="service ranges + ETP Local/Cluster services, full mesh, iBGP",
        peer_as=CLUSTER_AS,
        bgp_config=_SERVICES_CONFIG,
        objects=_SERVICE_OBJECTS,
        behaviour="ETP Local /32s only from nodes with a local endpoint; v3.31.0 counts not-ready ones too",
    ),
    Situation(
        name="services-etp-local-ebgp",
        description="the same services, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        bgp_config=_SERVICES_CONFIG,
        objects=_SERVICE_OBJECTS,
        behaviour="every node re-exports ETP Local /32s learned over the mesh (calico#5235)",
    ),
    Situation(
        name="services-keep-no-add-path",
        description="services, full mesh, eBGP, nextHopMode Keep, peer without ADD-PATH (best path only)",
        peer_as=EXTERNAL_AS,
        bgp_config=_SERVICES_CONFIG,
        objects=_SERVICE_OBJECTS,
        peer_spec={"nextHopMode": "Keep"},
        add_path=False,
        behaviour="without ADD-PATH a node sends its own route if it has one, else the copy from the lowest router ID",
    ),
    Situation(
        name="excluded-node",
        description="node-c labelled exclude-from-external-load-balancers, service ranges, full mesh, iBGP",
        peer_as=CLUSTER_AS,
        bgp_config=_SERVICES_CONFIG,
        node_labels={"node-c": {EXCLUDE_LABEL: "true"}},
        objects=_SERVICE_OBJECTS,
        behaviour="the excluded node advertises no service route at all, range or /32",
    ),
    Situation(
        name="single-address-ranges",
        description="/32 serviceExternalIPs and serviceLoadBalancerIPs entries, ETP Cluster, iBGP",
        peer_as=CLUSTER_AS,
        bgp_config=_SINGLE_ADDRESS_CONFIG,
        objects=_SINGLE_ADDRESS_OBJECTS,
        behaviour="v3.31.0 matches a /32 LB entry on spec.loadBalancerIP only, not on status ingress (PR #11917)",
    ),
    Situation(
        name="single-address-all-routes",
        description="serviceClusterIPs and a /32 serviceExternalIPs entry; LoadBalancer ETP Cluster services, iBGP",
        peer_as=CLUSTER_AS,
        bgp_config={
            "serviceClusterIPs": "@services",
            "serviceExternalIPs": [{"cidr": EXTERNAL_RANGE}, {"cidr": "10.79.1.1/32"}],
        },
        objects=(
            # The /32 match advertises the Service: its cluster IP /32 goes out too.
            service_object("single-match", etp="Cluster", external_ip="10.79.1.1"),
            endpoint_slice("single-match", []),
            # The same without any EndpointSlice: confd never asks, nothing beyond the ranges.
            service_object("no-slice", etp="Cluster", external_ip="10.79.1.1"),
        ),
        behaviour="a single-address match sends every route of the Service (cluster IP included), "
        "and none without an EndpointSlice",
    ),
    Situation(
        name="lb-aggregation-disabled",
        description="serviceLoadBalancerAggregation Disabled with service ranges, iBGP",
        peer_as=CLUSTER_AS,
        bgp_config=_NO_AGGREGATION_CONFIG,
        objects=_NO_AGGREGATION_OBJECTS,
        behaviour="no LB range; a /32 from every node for each Service with any endpoint, default/kubernetes included",
    ),
    Situation(
        name="communities",
        description="prefixAdvertisements (global, and node.node-b replacing them), full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        bgp_config=_COMMUNITIES,
        objects=(_NODE_B_COMMUNITIES,),
        behaviour="node.node-b's prefixAdvertisements replace the global ones on node-b",
    ),
    Situation(
        name="bgpfilter-reject-remote",
        description="BGPFilter rejecting RemotePeers on the eBGP peer, full mesh",
        peer_as=EXTERNAL_AS,
        peer_spec={"filters": ["only-own-routes"]},
        objects=(_REJECT_REMOTE,),
        behaviour="source RemotePeers rejects everything learned over the mesh: each node sends its own block",
    ),
    Situation(
        name="bgpfilter-accept",
        description="BGPFilter accepting pool /32s (and rejecting 10.244.4.0/24), full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        peer_spec={"filters": ["accept-pool-hosts"]},
        bgp_config=_COMMUNITIES,
        objects=(_ACCEPT_POOL,),
        behaviour="an export Accept skips calico_aggr and apply_communities: own workload /32s leak, uncommunitied",
    ),
    Situation(
        name="bgpfilter-match-operators",
        description="BGPFilter rules with each matchOperator, prefixLength and source, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        peer_spec={"filters": ["v6-only", "match-operators"]},
        objects=(_MATCH_OPERATORS, _V6_ONLY, _UNATTACHED),
        behaviour="first matching rule wins; exportV6-only and unattached filters leave IPv4 exports alone",
    ),
    Situation(
        name="bgpfilter-interface",
        description="BGPFilter rules on interface (cali* and the * wildcard), full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        peer_spec={"filters": ["by-interface"]},
        objects=(_BY_INTERFACE,),
        behaviour="interface * matches every route, blackholed and mesh-learned too; cali* only workload routes",
    ),
    Situation(
        name="bgpfilter-equal-with-length",
        description="BGPFilter rules Equal and NotEqual with a prefixLength, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        peer_spec={"filters": ["exact-with-length"]},
        objects=(_EXACT_WITH_LENGTH,),
        behaviour="with a prefixLength, Equal never matches and NotEqual always does (a prefix set compared)",
    ),
    Situation(
        name="disabled-pool-covers-subnet",
        description="a disabled pool covering the node subnet: the direct route is exported, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        objects=(ip_pool("node-subnet", SUBNET, disabled=True),),
        behaviour="any route inside any pool is exported, disabled or not (calico#9572)",
    ),
    Situation(
        name="affinity-states",
        description="a pending affinity on node-b and a pendingDeletion one on node-c, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        objects=(
            affinity("node-b", "10.244.20.0/26", state="pending"),
            affinity("node-c", "10.244.30.0/26", state="pendingDeletion"),
        ),
        behaviour="a pendingDeletion block is still advertised, a pending one is not",
    ),
    Situation(
        name="global-and-node-peer",
        description="a global BGPPeer and a node-a BGPPeer (nextHopMode Keep) to the same address, eBGP",
        peer_as=EXTERNAL_AS,
        objects=(
            calico_object(
                "BGPPeer",
                "outside-peer-node-a",
                {"peerIP": PEER_ADDRESS, "asNumber": EXTERNAL_AS, "node": "node-a", "nextHopMode": "Keep"},
            ),
        ),
        behaviour="the global peer wins: the node-specific one to the same address is dropped",
    ),
    Situation(
        name="local-as-number",
        description="BGPPeer localASNumber 64600, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        cluster_as_seen=64600,
        peer_spec={"localASNumber": 64600},
        # The peer takes each node's AS from the model's sessions: before v3.31 confd ignores
        # localASNumber and the nodes connect from their own AS.
        peer_from_snapshot=True,
        behaviour="the peer sees, and the AS path carries, the BGPPeer's localASNumber",
    ),
    Situation(
        name="ipip-pool",
        description="the pod pool with ipipMode Always, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        pool_spec={"ipipMode": "Always"},
        behaviour="encapsulation changes only how learned routes are programmed, not what is exported",
    ),
    Situation(
        name="ipip-tunnel-address",
        description="ipipMode Always, node-b's tunl0 address outside its own block, full mesh, eBGP",
        peer_as=EXTERNAL_AS,
        pool_spec={"ipipMode": "Always"},
        blocks=(("10.244.9.0/26", None),),
        tunnel_addresses={"node-b": "10.244.9.1"},
        behaviour="the tunl0 /32 outside the node's blocks is exported and re-exported over the mesh",
    ),
    Situation(
        name="no-mesh-ebgp",
        description="mesh off, eBGP outside peer on every node",
        peer_as=EXTERNAL_AS,
        mesh=False,
        behaviour="without the mesh each node sends only its own block",
    ),
    Situation(
        name="no-mesh-ibgp",
        description="mesh off, iBGP outside peer on every node",
        peer_as=CLUSTER_AS,
        mesh=False,
        behaviour="without the mesh each node sends only its own block",
    ),
    Situation(
        name="node-selector-peer",
        description="BGPPeer with nodeSelector rack == 'r1', mesh off, eBGP",
        peer_as=EXTERNAL_AS,
        mesh=False,
        peer_spec={"nodeSelector": "rack == 'r1'"},
        behaviour="only the nodes the nodeSelector picks open a session",
    ),
    Situation(
        name="route-reflector",
        description="route reflector node-a (mesh off, peerSelector peerings), iBGP peer on node-a",
        peer_as=CLUSTER_AS,
        mesh=False,
        peer_spec={"node": "node-a"},
        node_labels={"node-a": {RR_LABEL: "true"}},
        node_annotations={"node-a": _RR_ANNOTATION},
        objects=(_RR_PEERING,),
        behaviour="a route reflector reflects its clients' blocks to a same-AS outside peer, next hops kept",
    ),
    Situation(
        name="next-hop-self-rr",
        description="route reflector node-a, iBGP peer on node-a with nextHopMode Self",
        peer_as=CLUSTER_AS,
        mesh=False,
        peer_spec={"node": "node-a", "nextHopMode": "Self"},
        node_labels={"node-a": {RR_LABEL: "true"}},
        node_annotations={"node-a": _RR_ANNOTATION},
        objects=(_RR_PEERING,),
        behaviour="next hop self rewrites reflected routes too",
    ),
)


def _run_order(item: Situation) -> tuple[bool, bool]:
    """Mesh cells first, then mesh-off ones, the route-reflector cells last and together: their
    peerings collide on setup (see ``matrix.CONVERGE_TIMEOUT``), so they come up once per family."""
    reflector = any(_RR_ANNOTATION.keys() & annotations.keys() for annotations in item.node_annotations.values())
    return (not item.mesh, reflector)


# The IPv6 and dual-stack cells join the same order.
SITUATIONS = tuple(sorted(SITUATIONS + SITUATIONS_V6, key=_run_order))


def situation(name: str) -> Situation:
    for item in SITUATIONS:
        if item.name == name:
            return item
    raise KeyError(name)
