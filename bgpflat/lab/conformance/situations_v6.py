"""The IPv6 and dual-stack cells of the conformance matrix.

Every cell here runs on a dual-stack cluster: the base cluster (``cases``) plus an IPv6 pool
``fd10:244::/48`` with Calico's default /122 blocks, one confirmed block and one pod per node, and
each node's ``projectcalico.org/IPv6Address`` (what calico-node writes for a node with an IPv6
address; the Calico Node's ``spec.bgp.ipv6Address`` in Kubernetes datastore mode). confd then
renders ``bird6.cfg`` with the IPv6 mesh and the IPv6 BGPPeers, and bird6 runs beside bird.

The outside peer listens on ``fd77::250`` (``PEER_ADDRESS6``), and in the dual-stack cells on
``10.77.0.250`` too, one BGPPeer per address; the model's expectation is then the union of both
addresses' (``merge_expected``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bgpflat.core.calico.node import ANNOTATION_IPV6
from bgpflat.lab.conformance.cases import (
    AS_ANNOTATION,
    CLUSTER_AS,
    EXTERNAL_AS,
    NODES,
    PEER_ADDRESS,
    PEER_ADDRESS6,
    RR_LABEL,
    SUBNET6_LENGTH,
    JsonObject,
    Situation,
    Workload,
    calico_object,
    ip_pool,
)

POOL6 = "fd10:244::/48"
BLOCKS6 = {node.name: f"fd10:244:0:{index}::/122" for index, node in enumerate(NODES, start=1)}
WORKLOADS6 = {name: block.replace("::/122", "::2") for name, block in BLOCKS6.items()}
LB_RANGE6 = "fd00:78::/120"
EXTERNAL_RANGE6 = "fd00:79::/120"
CLUSTER_RANGE6 = "fd00:96::/112"
BOTH = (PEER_ADDRESS, PEER_ADDRESS6)
ONLY6 = (PEER_ADDRESS6,)

_POOL6 = ip_pool("pods-v6", POOL6, blockSize=122)
_RR_ANNOTATION = {"projectcalico.org/RouteReflectorClusterID": "224.0.0.1"}
_RR_PEERING: JsonObject = calico_object(
    "BGPPeer", "peer-with-route-reflectors", {"nodeSelector": "all()", "peerSelector": f"{RR_LABEL} == 'true'"}
)


def _ipv6_annotations(without: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    return {n.name: {ANNOTATION_IPV6: f"{n.address6}/{SUBNET6_LENGTH}"} for n in NODES if n.name not in without}


def dual_stack(
    *,
    name: str,
    description: str,
    peer_as: int,
    behaviour: str,
    peer_addresses: tuple[str, ...] = ONLY6,
    objects: tuple[Mapping[str, Any], ...] = (),
    blocks: tuple[tuple[str, str | None], ...] = (),
    workloads: tuple[Workload, ...] = (),
    node_annotations: Mapping[str, Mapping[str, str]] | None = None,
    without_ipv6: tuple[str, ...] = (),
    **changes: Any,
) -> Situation:
    """A cell on the dual-stack cluster: the IPv6 pool, blocks, pods and node addresses, plus ``changes``.

    ``without_ipv6`` names nodes that keep their IPv6 block and pod but get no IPv6Address.
    """
    annotations = _ipv6_annotations(without_ipv6)
    for node, extra in (node_annotations or {}).items():
        annotations[node] = {**annotations.get(node, {}), **extra}
    own = tuple(
        Workload(node=node, address=WORKLOADS6[node], block=BLOCKS6[node], name=f"pod6-{node}") for node in BLOCKS6
    )
    return Situation(
        name=name,
        description=description,
        peer_as=peer_as,
        peer_addresses=peer_addresses,
        behaviour=behaviour,
        objects=(_POOL6, *objects),
        blocks=(*((block, node) for node, block in BLOCKS6.items()), *blocks),
        workloads=own + workloads,
        node_annotations=annotations,
        **changes,
    )


# -- services -------------------------------------------------------------------------------------


def _service6(name: str, *, etp: str, lb_ip: str | None = None, external_ips: tuple[str, ...] = ()) -> JsonObject:
    """A LoadBalancer Service with IPv6 external/ingress addresses. The API server is IPv4-only:
    the cluster IP is IPv4, and that decides which endpoints confd counts (v3.31.0: those of the
    cluster IP's family)."""
    spec: JsonObject = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": etp,
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "selector": {"app": name},
    }
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    service: JsonObject = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }
    if lb_ip:
        service["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    return service


_POD4 = {node.name: node.workload for node in NODES}


def _slice(service: str, endpoints: tuple[tuple[str, bool], ...], *, family: str = "IPv4") -> JsonObject:
    """An EndpointSlice of ``service``: (node, ready) endpoints at the node's pod of ``family``."""
    pods = WORKLOADS6 if family == "IPv6" else _POD4
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{family.lower()}",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": family,
        "endpoints": [
            {"addresses": [pods[node]], "nodeName": node, "conditions": {"ready": ready}} for node, ready in endpoints
        ],
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
    }


_SERVICES6_CONFIG: dict[str, Any] = {
    "serviceClusterIPs": [{"cidr": CLUSTER_RANGE6}],
    "serviceExternalIPs": [{"cidr": EXTERNAL_RANGE6}, {"cidr": "fd00:79:1::1/128"}],
    "serviceLoadBalancerIPs": [{"cidr": LB_RANGE6}],
}
_SERVICES6: tuple[JsonObject, ...] = (
    # ETP Local: a /128 from node-b (ready) and node-d (not ready: v3.31.0 counts it too).
    _service6("web6-local", etp="Local", lb_ip="fd00:78::5"),
    _slice("web6-local", (("node-b", True), ("node-d", False))),
    # ETP Cluster inside the ranges: covered by them, no /128.
    _service6("web6-cluster", etp="Cluster", lb_ip="fd00:78::6", external_ips=("fd00:79::6",)),
    _slice("web6-cluster", (("node-c", True),)),
    # ETP Local with an external IP: a /128 from node-a only.
    _service6("api6-local", etp="Local", external_ips=("fd00:79::7",)),
    _slice("api6-local", (("node-a", True),)),
    # ETP Local whose only endpoint is in an IPv6 slice: not the cluster IP's family, no /128 at all.
    _service6("v6-slice-only", etp="Local", external_ips=("fd00:79::9",)),
    _slice("v6-slice-only", (("node-c", True),), family="IPv6"),
    # ETP Cluster on a /128 serviceExternalIPs entry: every node holds every address of the
    # Service, the other external IP and the (IPv4) cluster IP too.
    _service6("single6", etp="Cluster", external_ips=("fd00:79:1::1", "fd00:79::8")),
    _slice("single6", (("node-c", True),)),
)

# -- communities and filters ----------------------------------------------------------------------

_COMMUNITIES6: dict[str, Any] = {
    "communities": [{"name": "pods6", "value": "65000:600"}, {"name": "pods6-large", "value": "65000:6:6"}],
    "prefixAdvertisements": [
        {"cidr": POOL6, "communities": ["pods6", "pods6-large"]},
        {"cidr": BLOCKS6["node-c"], "communities": ["65000:603"]},
        # An IPv4 entry: bird.cfg's business, never bird6.cfg's.
        {"cidr": "10.244.0.0/16", "communities": ["65000:400"]},
    ],
}
_NODE_B_COMMUNITIES6: JsonObject = calico_object(
    "BGPConfiguration", "node.node-b", {"prefixAdvertisements": [{"cidr": POOL6, "communities": ["65000:622"]}]}
)
# First match wins, on IPv6 routes:
#   0 Equal drops node-a's block, though rule 3 would accept it;
#   1 In with prefixLength 128 leaks node-b's pod /128 but not its /122;
#   2 NotEqual with source RemotePeers drops every mesh-learned route but node-d's block;
#   3 In accepts node-a's pod /128 (Accept skips calico_aggr).
_MATCH_OPERATORS6: JsonObject = calico_object(
    "BGPFilter",
    "match-operators-v6",
    {
        "exportV6": [
            {"action": "Reject", "cidr": BLOCKS6["node-a"], "matchOperator": "Equal"},
            {"action": "Accept", "cidr": "fd10:244:0:2::/64", "matchOperator": "In", "prefixLength": {"min": 128}},
            {"action": "Reject", "cidr": BLOCKS6["node-d"], "matchOperator": "NotEqual", "source": "RemotePeers"},
            {"action": "Accept", "cidr": "fd10:244:0:1::/64", "matchOperator": "In"},
        ]
    },
)
# Attached first, with IPv4 rules only: bird6's export never calls it.
_V4_ONLY: JsonObject = calico_object("BGPFilter", "v4-only", {"exportV4": [{"action": "Reject"}]})

_RACK_AS = {"node-a": 64601, "node-b": 64601, "node-c": 64602, "node-d": 64602}

# -- the cells --------------------------------------------------------------------------------------

SITUATIONS_V6: tuple[Situation, ...] = (
    dual_stack(
        name="v6-mesh-ebgp",
        description="dual-stack nodes, IPv6 mesh, eBGP outside peer over IPv6",
        peer_as=EXTERNAL_AS,
        behaviour="bird6 re-exports mesh-learned /122 blocks to an eBGP peer with next hop self",
    ),
    dual_stack(
        name="v6-mesh-ibgp",
        description="dual-stack nodes, IPv6 mesh, iBGP outside peer over IPv6",
        peer_as=CLUSTER_AS,
        behaviour="bird6, like bird, never passes iBGP-learned routes to an iBGP peer: own block only",
    ),
    dual_stack(
        name="dual-stack-peer",
        description="dual-stack nodes and peer: one BGPPeer per family, eBGP",
        peer_as=EXTERNAL_AS,
        peer_addresses=BOTH,
        behaviour="IPv4 routes only on the bird sessions, IPv6 routes only on the bird6 ones",
    ),
    dual_stack(
        name="v6-partial-dual-stack",
        description="node-d without an IPv6 address (its IPv6 block and pod kept), IPv6 mesh, eBGP",
        peer_as=EXTERNAL_AS,
        peer_addresses=BOTH,
        without_ipv6=("node-d",),
        behaviour="a node without an IPv6 address runs no bird6 session: its IPv6 block reaches no one",
    ),
    dual_stack(
        name="v6-next-hop-keep",
        description="IPv6 mesh, eBGP over IPv6, nextHopMode Keep",
        peer_as=EXTERNAL_AS,
        peer_spec={"nextHopMode": "Keep"},
        behaviour="re-exported IPv6 mesh routes keep the owning node's IPv6 address as next hop",
    ),
    dual_stack(
        name="v6-mixed-as",
        description="IPv6 mesh across two AS (one per rack), eBGP over IPv6",
        peer_as=EXTERNAL_AS,
        node_annotations={node: {AS_ANNOTATION: str(asn)} for node, asn in _RACK_AS.items()},
        peer_from_snapshot=True,
        behaviour="the IPv6 mesh is iBGP inside a rack and eBGP across, as the IPv4 one",
    ),
    dual_stack(
        name="v6-local-as-number",
        description="BGPPeer localASNumber 64600 on the IPv6 peer, IPv6 mesh, eBGP",
        peer_as=EXTERNAL_AS,
        cluster_as_seen=64600,
        peer_spec={"localASNumber": 64600},
        # Before v3.31 confd ignores localASNumber: the peer takes each node's AS from the model.
        peer_from_snapshot=True,
        behaviour="bird6 speaks the localASNumber to the peer, and the AS path carries it",
    ),
    dual_stack(
        name="v6-disable-bgp-export",
        description="a second IPv6 pool with disableBGPExport (block on node-b), IPv6 mesh, eBGP",
        peer_as=EXTERNAL_AS,
        objects=(ip_pool("hidden-v6", "fd10:245::/48", blockSize=122, disableBGPExport=True),),
        blocks=(("fd10:245:0:2::/122", "node-b"),),
        workloads=(Workload(node="node-b", address="fd10:245:0:2::9", block="fd10:245:0:2::/122", name="pod6-hidden"),),
        behaviour="nothing inside an IPv6 disableBGPExport pool leaves any node, over the mesh neither",
    ),
    dual_stack(
        name="v6-borrowed-addresses",
        description="IPv6 pods on node-b and node-c from node-a's /122 and from an unaffine block, eBGP",
        peer_as=EXTERNAL_AS,
        blocks=(("fd10:244:0:9::/122", None),),
        workloads=(
            Workload(node="node-b", address="fd10:244:0:1::10", block=BLOCKS6["node-a"], name="pod6-borrowed"),
            Workload(node="node-c", address="fd10:244:0:9::3", block="fd10:244:0:9::/122", name="pod6-orphan"),
        ),
        behaviour="a borrowed /128 leaves its node; node-a's calico_aggr drops the mesh copy inside its block",
    ),
    dual_stack(
        name="v6-services-etp-local",
        description="IPv6 service ranges, ETP Local/Cluster services with IPv6 addresses, IPv6 mesh, iBGP",
        peer_as=CLUSTER_AS,
        bgp_config=_SERVICES6_CONFIG,
        objects=_SERVICES6,
        behaviour="ETP Local /128s only from nodes with a local endpoint of the cluster IP's family",
    ),
    dual_stack(
        name="v6-services-ebgp",
        description="the same IPv6 services, dual-stack peer, eBGP",
        peer_as=EXTERNAL_AS,
        peer_addresses=BOTH,
        bgp_config=_SERVICES6_CONFIG,
        objects=_SERVICES6,
        behaviour="every node re-exports ETP Local /128s over IPv6; an IPv6-only serviceClusterIPs "
        "still has bird send the IPv4 cluster IP /32s",
    ),
    dual_stack(
        name="v6-communities",
        description="prefixAdvertisements on the IPv6 pool and a /122 (node.node-b replacing them), eBGP",
        peer_as=EXTERNAL_AS,
        peer_addresses=BOTH,
        bgp_config=_COMMUNITIES6,
        objects=(_NODE_B_COMMUNITIES6,),
        behaviour="standard and large communities on IPv6 routes; node.node-b's entries replace the global ones",
    ),
    dual_stack(
        name="v6-bgpfilter",
        description="BGPFilter exportV6 rules (Equal, In with prefixLength, NotEqual RemotePeers), eBGP",
        peer_as=EXTERNAL_AS,
        peer_spec={"filters": ["v4-only", "match-operators-v6"]},
        objects=(_MATCH_OPERATORS6, _V4_ONLY),
        behaviour="first matching exportV6 rule wins; an exportV4-only filter leaves bird6 alone",
    ),
    dual_stack(
        name="v6-no-mesh-node-selector",
        description="mesh off, IPv6 BGPPeer with nodeSelector rack == 'r2', eBGP",
        peer_as=EXTERNAL_AS,
        mesh=False,
        peer_spec={"nodeSelector": "rack == 'r2'"},
        behaviour="only the selected nodes open a bird6 session, each with its own block",
    ),
    dual_stack(
        name="v6-route-reflector",
        description="route reflector node-a over IPv6 (mesh off, peerSelector peerings), iBGP peer on node-a",
        peer_as=CLUSTER_AS,
        mesh=False,
        peer_spec={"node": "node-a"},
        node_labels={"node-a": {RR_LABEL: "true"}},
        node_annotations={"node-a": _RR_ANNOTATION},
        objects=(_RR_PEERING,),
        behaviour="bird6 on the route reflector reflects its clients' /122s to a same-AS peer, next hops kept",
    ),
)
