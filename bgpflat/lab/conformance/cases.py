"""What a conformance situation is made of: a small base cluster, the types, and the object builders.

The base cluster is four Calico nodes on one subnet (``10.77.0.11``–``14``/24, AS 64512), one
no-encapsulation pool ``10.244.0.0/16`` with one confirmed /26 block per node, and one workload
per node inside its own block (so the kernel /32s that ``calico_aggr`` must hide are there). The
outside peer sits at ``10.77.0.250``; a situation says which AS it runs (64512: iBGP, 65000: eBGP)
and which BGPPeer points at it. Everything is plain Kubernetes/Calico objects, so the same list is
what the API server stores, what confd renders from and what the model reads back.

The subnet is dual-stack: every node also holds an address in ``fd77::/64`` and the peer
``fd77::250``; a node gets its ``projectcalico.org/IPv6Address`` (and with it bird6 sessions)
only where a situation gives it one (``situations_v6``).

Calico objects are written as ``projectcalico.org/v3`` manifests (the seeder translates them to the
server's flavour); IPAM objects as ``crd.projectcalico.org/v1`` with the labels Calico's IPAM puts
on block affinities, because confd v3.31+ selects a node's affinities by those labels.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bgpflat.lab.controlplane.seed import block_affinity_labels

JsonObject = dict[str, Any]

V3 = "projectcalico.org/v3"
IPAM = "crd.projectcalico.org/v1"

SUBNET = "10.77.0.0/24"
SUBNET_LENGTH = 24
PEER_ADDRESS = "10.77.0.250"
SUBNET6 = "fd77::/64"
SUBNET6_LENGTH = 64
PEER_ADDRESS6 = "fd77::250"
CLUSTER_AS = 64512
EXTERNAL_AS = 65000
CALICO_VERSION = "v3.31.0"
POOL = "10.244.0.0/16"
LB_RANGE = "10.78.0.0/24"
EXTERNAL_RANGE = "10.79.0.0/24"
RR_LABEL = "route-reflector"
AS_ANNOTATION = "projectcalico.org/ASNumber"  # a node's own AS in Kubernetes-datastore mode
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseNode:
    name: str
    address: str
    block: str = ""  # its confirmed /26 in POOL (the base cluster's nodes only)
    workload: str = ""  # one pod's address inside that block (the base cluster's nodes only)
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def address6(self) -> str:
        """Its IPv6 address (same host part): on its interface always, Calico's only with a
        situation's IPv6Address annotation."""
        return "fd77::" + self.address.rsplit(".", 1)[1]


NODES: tuple[BaseNode, ...] = (
    BaseNode(name="node-a", address="10.77.0.11", block="10.244.1.0/26", workload="10.244.1.2", labels={"rack": "r1"}),
    BaseNode(name="node-b", address="10.77.0.12", block="10.244.2.0/26", workload="10.244.2.2", labels={"rack": "r1"}),
    BaseNode(name="node-c", address="10.77.0.13", block="10.244.3.0/26", workload="10.244.3.2", labels={"rack": "r2"}),
    BaseNode(name="node-d", address="10.77.0.14", block="10.244.4.0/26", workload="10.244.4.2", labels={"rack": "r2"}),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A pod address held by ``node`` (Felix's kernel /32 there), allocated from ``block``."""

    node: str
    address: str
    block: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Situation:
    """One cell of the matrix: the base cluster plus these changes.

    ``behaviour`` says, in a line, what Calico does in this cell (seen in the lab, modelled by bgpflat).
    """

    name: str
    description: str
    peer_as: int
    # The outside peer's addresses, one per family at most; each gets a BGPPeer like ``outside-peer``
    # (``outside-peer-v6`` for the IPv6 one) and the verification peer listens on all of them.
    peer_addresses: tuple[str, ...] = (PEER_ADDRESS,)
    mesh: bool = True
    peer_spec: Mapping[str, Any] = field(default_factory=dict)
    bgp_config: Mapping[str, Any] = field(default_factory=dict)
    node_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    node_annotations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    workloads: tuple[Workload, ...] = ()
    blocks: tuple[tuple[str, str | None], ...] = ()  # extra (cidr, affine node or None)
    objects: tuple[Mapping[str, Any], ...] = ()
    pool_spec: Mapping[str, Any] = field(default_factory=dict)  # changes to the base pool
    cluster_as_seen: int = CLUSTER_AS  # the AS the peer sees the nodes in (localASNumber changes it)
    add_path: bool = True  # the peer offers ADD-PATH receive (BIRD then sends every path it holds)
    tunnel_addresses: Mapping[str, str] = field(default_factory=dict)  # node -> its tunl0 address
    # The peer picks its neighbors from the cluster's objects (``peer run --from-snapshot``), each
    # with its node's own AS, as a user runs it; needed when the nodes are not all in one AS.
    peer_from_snapshot: bool = False
    behaviour: str = ""
    # The cluster's nodes (their namespaces and BIRDs); the base cluster's four unless generated.
    nodes: tuple[BaseNode, ...] = NODES
    # False: ``objects`` and ``workloads`` are the whole cluster (generated situations), and
    # nothing of the base cluster (pool, blocks, BGPConfiguration, outside BGPPeer) is added.
    base_cluster: bool = True

    @property
    def session_type(self) -> str:
        """iBGP or eBGP as the nodes see the outside peer; both when the nodes' AS differ."""
        seen = {
            int(annotations.get(AS_ANNOTATION, self.cluster_as_seen))
            for annotations in (self.node_annotations.get(node.name, {}) for node in self.nodes)
        }
        kinds = sorted({"iBGP" if self.peer_as == asn else "eBGP" for asn in seen})
        return "+".join(kinds)


# -- building the objects -------------------------------------------------------------------------


def _cidr_name(cidr: str) -> str:
    return cidr.replace(".", "-").replace(":", "-").replace("/", "-")


def calico_object(kind: str, name: str, spec: JsonObject) -> JsonObject:
    """A cluster-scoped ``projectcalico.org/v3`` object."""
    return {"apiVersion": V3, "kind": kind, "metadata": {"name": name}, "spec": spec}


def ip_pool(name: str, cidr: str, **flags: Any) -> JsonObject:
    """A /26-block IPPool on every node, unencapsulated unless ``flags`` say otherwise (ipipMode, natOutgoing…)."""
    spec = {"cidr": cidr, "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Never", "nodeSelector": "all()"}
    return calico_object("IPPool", name, {**spec, **flags})


def affinity(node: str, cidr: str, *, state: str = "confirmed") -> JsonObject:
    return {
        "apiVersion": IPAM,
        "kind": "BlockAffinity",
        "metadata": {"name": f"{node}-{_cidr_name(cidr)}", "labels": block_affinity_labels(node, cidr)},
        "spec": {"cidr": cidr, "node": node, "state": state, "deleted": "false", "type": "host"},
    }


def ipam_block(cidr: str, affinity: str | None, holders: Sequence[Workload]) -> JsonObject:
    """An IPAMBlock whose allocations point at the workloads' attributes (node, namespace, pod)."""
    base_text, _, length_text = cidr.partition("/")
    base_address = ipaddress.ip_address(base_text)
    size = 2 ** (base_address.max_prefixlen - int(length_text))
    base = int(base_address)
    allocations: list[int | None] = [None] * size
    attributes: list[JsonObject] = []
    for workload in holders:
        offset = int(ipaddress.ip_address(workload.address)) - base
        if not 0 <= offset < size:
            raise ValueError(f"{workload.address} is not inside {cidr}")
        allocations[offset] = len(attributes)
        attributes.append(
            {
                "handle_id": f"k8s-pod-network.{workload.name}",
                "secondary": {
                    "namespace": "default",
                    "node": workload.node,
                    "pod": workload.name,
                    "timestamp": "2026-01-01 00:00:00 +0000 UTC",
                },
            }
        )
    return {
        "apiVersion": IPAM,
        "kind": "IPAMBlock",
        "metadata": {"name": _cidr_name(cidr)},
        "spec": {
            "cidr": cidr,
            **({"affinity": f"host:{affinity}"} if affinity else {}),
            "allocations": allocations,
            "unallocated": [i for i, a in enumerate(allocations) if a is None],
            "attributes": attributes,
            "deleted": False,
            "strictAffinity": False,
        },
    }


def workloads_of(situation: Situation) -> tuple[Workload, ...]:
    """Every pod address in the cell: one per node in its own block, plus the situation's."""
    if not situation.base_cluster:
        return situation.workloads
    own = tuple(Workload(node=n.name, address=n.workload, block=n.block, name=f"pod-{n.name}") for n in NODES)
    return own + situation.workloads


def build_objects(
    situation: Situation, *, service_range: str, calico_version: str = CALICO_VERSION
) -> list[JsonObject]:
    """The whole cluster of one cell, as the objects to create in the API server."""
    information = calico_object(
        "ClusterInformation", "default", {"calicoVersion": calico_version, "datastoreReady": True}
    )
    if not situation.base_cluster:
        drawn = [information, *(_with_service_range(o, service_range) for o in situation.objects)]
        return drawn + endpoints_beside(drawn)
    objects: list[JsonObject] = [
        information,
        ip_pool("pods", POOL, **{"natOutgoing": True, **copy.deepcopy(dict(situation.pool_spec))}),
    ]
    config_spec: JsonObject = {"asNumber": CLUSTER_AS, "nodeToNodeMeshEnabled": situation.mesh, "listenPort": 179}
    config_spec.update(copy.deepcopy(dict(situation.bgp_config)))
    if config_spec.get("serviceClusterIPs") == "@services":  # the server's own range, whatever it is
        config_spec["serviceClusterIPs"] = [{"cidr": service_range}]
    objects.append(calico_object("BGPConfiguration", "default", config_spec))
    for address in situation.peer_addresses:
        objects.append(
            calico_object(
                "BGPPeer",
                "outside-peer" if address == PEER_ADDRESS else "outside-peer-v6",
                {"peerIP": address, "asNumber": situation.peer_as, **copy.deepcopy(dict(situation.peer_spec))},
            )
        )
    for node in NODES:
        labels = {
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            **node.labels,
            **situation.node_labels.get(node.name, {}),
        }
        annotations = {
            "projectcalico.org/IPv4Address": f"{node.address}/{SUBNET_LENGTH}",
            **situation.node_annotations.get(node.name, {}),
        }
        if node.name in situation.tunnel_addresses:
            annotations["projectcalico.org/IPv4IPIPTunnelAddr"] = situation.tunnel_addresses[node.name]
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node.name, "labels": labels, "annotations": annotations},
            }
        )
        objects.append(affinity(node.name, node.block))
    workloads = workloads_of(situation)
    blocks: list[tuple[str, str | None]] = [(n.block, n.name) for n in NODES]
    for cidr, owner in situation.blocks:
        if owner is not None:
            objects.append(affinity(owner, cidr))
        blocks.append((cidr, owner))
    for cidr, owner in blocks:
        objects.append(ipam_block(cidr, owner, [w for w in workloads if w.block == cidr]))
    objects.extend(copy.deepcopy(dict(o)) for o in situation.objects)
    return objects + endpoints_beside(objects)


def endpoints_beside(objects: Sequence[Mapping[str, Any]]) -> list[JsonObject]:
    """The v1 Endpoints a cluster's endpoints controller keeps beside each EndpointSlice.

    The lab runs no kube-controller-manager, so nothing else writes them, and confd up to v3.30
    reads Endpoints (ready addresses only), not EndpointSlices.
    """
    out: list[JsonObject] = []
    for obj in objects:
        if obj.get("kind") != "EndpointSlice":
            continue
        meta = obj["metadata"]
        ready: list[JsonObject] = []
        not_ready: list[JsonObject] = []
        for endpoint in obj.get("endpoints") or ():
            ready_now = (endpoint.get("conditions") or {}).get("ready") is not False
            for address in endpoint.get("addresses") or ():
                entry = {"ip": address, **({"nodeName": endpoint["nodeName"]} if endpoint.get("nodeName") else {})}
                (ready if ready_now else not_ready).append(entry)
        subset: JsonObject = {"ports": [{"port": p["port"], "protocol": p["protocol"]} for p in obj.get("ports") or ()]}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        service = meta["labels"]["kubernetes.io/service-name"]
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": service, "namespace": meta["namespace"]},
                "subsets": [subset] if ready or not_ready else [],
            }
        )
    return out


def _with_service_range(obj: Mapping[str, Any], service_range: str) -> JsonObject:
    """A copy of ``obj``; a BGPConfiguration's ``serviceClusterIPs: "@services"`` becomes the server's range."""
    copied = copy.deepcopy(dict(obj))
    spec = copied.get("spec")
    if (
        copied.get("kind") == "BGPConfiguration"
        and isinstance(spec, dict)
        and spec.get("serviceClusterIPs") == "@services"
    ):
        spec["serviceClusterIPs"] = [{"cidr": service_range}]
    return copied


# -- the cells ------------------------------------------------------------------------------------
