"""Random conformance situations: whole clusters drawn from a seed, for combinations no one wrote down.

``generate(seed, count)`` draws ``count`` situations; situation ``i`` of seed ``S`` depends on ``S``
and ``i`` only (its own ``random.Random``), so any one of them can be drawn again alone. Each is a
whole cluster (``Situation.base_cluster`` False): 3-8 nodes in one or more racks, one AS or one per
rack, the node-to-node mesh on or off (off: sometimes with route reflectors), IPv4 pools with
random block sizes, encapsulation, ``disabled`` and ``disableBGPExport``, blocks whose affinities
are in every state (or that have none), workloads on their block's node or borrowing from another,
Services of every type with endpoints on random nodes, BGPPeers to the outside peer (global, per
node, by selector, with ``localASNumber``, ``nextHopMode``, BGPFilters), communities with
``prefixAdvertisements``. Every draw stays inside what Calico accepts: each Calico object passes
bgpflat's own validation (checked by the unit tests), and every BGPPeer pointing at the outside
peer names the one AS that peer runs.

``snapshot``/``from_snapshot`` write and read a situation as JSON, so a mismatch found by a random
run can be replayed (``bgpflat lab conformance --situation-file FILE``) and kept as a fixed one.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bgpflat.lab.conformance.cases import (
    AS_ANNOTATION,
    CLUSTER_AS,
    EXCLUDE_LABEL,
    EXTERNAL_AS,
    EXTERNAL_RANGE,
    LB_RANGE,
    PEER_ADDRESS,
    RR_LABEL,
    SUBNET_LENGTH,
    BaseNode,
    JsonObject,
    Situation,
    Workload,
    affinity,
    calico_object,
    ipam_block,
)
from bgpflat.lab.conformance.situations import endpoint_slice

SNAPSHOT_KIND = "ConformanceSituation"
SNAPSHOT_VERSION = 1
NAMES = "abcdefgh"
ROSTER: tuple[BaseNode, ...] = tuple(
    BaseNode(name=f"node-{c}", address=f"10.77.0.{11 + i}") for i, c in enumerate(NAMES)
)
"""Every node a generated situation may use (3-8 of them, always from the first)."""
POOL_CIDRS = ("10.244.0.0/16", "10.245.0.0/16", "10.246.0.0/16")
BLOCK_SIZES = (24, 26, 28, 29)
RACK_AS_BASE = 64600
LOCAL_AS_CHOICES = (64700, 64701)
AFFINITY_STATES = ("confirmed", "confirmed", "pending", "pendingDeletion")
# (ipipMode, vxlanMode): Calico refuses both at once.
ENCAPSULATIONS = (
    ("Never", "Never"),
    ("Always", "Never"),
    ("CrossSubnet", "Never"),
    ("Never", "Always"),
    ("Never", "CrossSubnet"),
)
RR_CLUSTER_ID = "224.0.0.1"


def situation_name(seed: int, index: int) -> str:
    return f"random-{seed}-{index}"


def generate(seed: int, count: int) -> list[Situation]:
    """``count`` situations drawn from ``seed``."""
    return [draw(seed, index) for index in range(count)]


def draw(seed: int, index: int) -> Situation:
    """Situation ``index`` of ``seed`` (string-seeded ``random.Random``: stable across runs and hosts)."""
    return _Draw(random.Random(f"bgpflat-conformance-{seed}-{index}"), situation_name(seed, index)).situation()


@dataclass(slots=True)
class _Block:
    cidr: str
    pool: int
    owner: str | None
    holders: list[Workload] = field(default_factory=list)


class _Draw:
    """One situation's draw; the methods run in a fixed order, so a seed always gives the same cluster."""

    def __init__(self, rng: random.Random, name: str) -> None:
        self.rng = rng
        self.name = name
        self.objects: list[JsonObject] = []
        self.notes: list[str] = []

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def situation(self) -> Situation:
        rng = self.rng
        nodes = ROSTER[: rng.randint(3, 8)]
        racks = rng.randint(1, min(3, len(nodes)))
        rack_of = {n.name: f"r{1 + (i % racks if i < racks else rng.randrange(racks))}" for i, n in enumerate(nodes)}
        per_rack_as = racks > 1 and self.chance(0.35)
        as_of = {n.name: RACK_AS_BASE + int(rack_of[n.name][1:]) if per_rack_as else CLUSTER_AS for n in nodes}
        mesh = self.chance(0.6)
        reflectors: list[str] = []
        if not mesh and not per_rack_as and self.chance(0.5):
            reflectors = sorted(rng.sample([n.name for n in nodes], rng.randint(1, 2)))
        excluded = {n.name for n in nodes if self.chance(0.1)}
        peer_as = rng.choice(sorted({CLUSTER_AS, EXTERNAL_AS, *as_of.values()}))

        for node in nodes:
            self.objects.append(
                self._node(
                    node,
                    rack_of[node.name],
                    as_of[node.name] if per_rack_as else None,
                    reflector=node.name in reflectors,
                    excluded=node.name in excluded,
                )
            )
        blocks = self._pools_and_blocks(nodes)
        workloads = self._workloads(nodes, blocks)
        for block in blocks:
            self.objects.append(ipam_block(block.cidr, block.owner, block.holders))
        self.objects.append(calico_object("BGPConfiguration", "default", self._bgp_config(blocks, mesh)))
        if self.chance(0.1):
            owner = rng.choice(nodes).name
            self.objects.append(
                calico_object(
                    "BGPConfiguration",
                    f"node.{owner}",
                    {"prefixAdvertisements": [{"cidr": POOL_CIDRS[0], "communities": ["65000:222"]}]},
                )
            )
        filters = self._filters(blocks)
        peers = self._outside_peers(nodes, rack_of, peer_as, filters)
        if reflectors:
            self.objects.append(
                calico_object(
                    "BGPPeer",
                    "peer-with-route-reflectors",
                    {"nodeSelector": "all()", "peerSelector": f"{RR_LABEL} == 'true'"},
                )
            )
        services = self._services(nodes, workloads)
        summary = [
            f"{len(nodes)} nodes in {racks} rack(s)" + (" (an AS each)" if per_rack_as else ""),
            "mesh" if mesh else ("no mesh, route reflector(s) " + ", ".join(reflectors) if reflectors else "no mesh"),
            f"{len(blocks)} block(s) in {len({b.pool for b in blocks})} pool(s), {len(workloads)} workload(s)",
            f"{services} service(s)",
            f"{peers} outside BGPPeer(s), {len(filters)} BGPFilter(s), peer AS {peer_as}",
        ]
        return Situation(
            name=self.name,
            description="; ".join(summary + self.notes),
            peer_as=peer_as,
            peer_from_snapshot=True,
            # Without ADD-PATH and with several AS the model does not yet rank the relayed copies
            # BIRD picks from (README, seed 912313666): such draws keep ADD-PATH. The draw is
            # still made, so every other choice of a seed stays what it was.
            add_path=self.chance(0.8) or per_rack_as,
            nodes=nodes,
            node_annotations={n: {AS_ANNOTATION: str(a)} for n, a in as_of.items()},
            workloads=tuple(workloads),
            objects=tuple(self.objects),
            base_cluster=False,
            mesh=mesh,
            behaviour="generated",
        )

    # -- the parts, in draw order -----------------------------------------------------------------
    def _node(self, node: BaseNode, rack: str, asn: int | None, *, reflector: bool, excluded: bool) -> JsonObject:
        labels = {"kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "rack": rack}
        annotations = {"projectcalico.org/IPv4Address": f"{node.address}/{SUBNET_LENGTH}"}
        if asn is not None:
            annotations[AS_ANNOTATION] = str(asn)
        if reflector:
            labels[RR_LABEL] = "true"
            annotations["projectcalico.org/RouteReflectorClusterID"] = RR_CLUSTER_ID
        if excluded:
            labels[EXCLUDE_LABEL] = "true"
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name, "labels": labels, "annotations": annotations},
        }

    def _pools_and_blocks(self, nodes: Sequence[BaseNode]) -> list[_Block]:
        rng = self.rng
        blocks: list[_Block] = []
        for index, cidr in enumerate(POOL_CIDRS[: rng.randint(1, 3)]):
            size = rng.choice(BLOCK_SIZES)
            ipip, vxlan = rng.choice(ENCAPSULATIONS)
            spec: JsonObject = {
                "cidr": cidr,
                "blockSize": size,
                "ipipMode": ipip,
                "vxlanMode": vxlan,
                "natOutgoing": self.chance(0.5),
                "nodeSelector": "all()",
            }
            if self.chance(0.15):
                spec["disabled"] = True
            if self.chance(0.2):
                spec["disableBGPExport"] = True
            self.objects.append(calico_object("IPPool", f"pool-{index}", spec))
            network = ipaddress.ip_network(cidr)
            starts = rng.sample(range(64), rng.randint(1, len(nodes) + 2))
            for start in starts:
                # Blocks spread over the first /18 of the pool whatever their size.
                base = int(network.network_address) + start * 256
                block = f"{ipaddress.IPv4Address(base)}/{size}"
                owner = None if self.chance(0.15) else rng.choice(nodes).name
                blocks.append(_Block(cidr=block, pool=index, owner=owner))
                if owner is not None:
                    self.objects.append(affinity(owner, block, state=rng.choice(AFFINITY_STATES)))
        if self.chance(0.1):  # an affinity whose block was never written (IPAM crashed in between)
            owner = rng.choice(nodes).name
            self.objects.append(affinity(owner, "10.244.250.0/26", state=rng.choice(AFFINITY_STATES)))
            self.notes.append(f"affinity without block on {owner}")
        return blocks

    def _workloads(self, nodes: Sequence[BaseNode], blocks: Sequence[_Block]) -> list[Workload]:
        rng = self.rng
        workloads: list[Workload] = []
        for block in blocks:
            network = ipaddress.ip_network(block.cidr)
            for offset in sorted(rng.sample(range(1, network.num_addresses - 1), rng.randint(0, 3))):
                holder = block.owner if block.owner is not None and self.chance(0.75) else rng.choice(nodes).name
                workload = Workload(
                    node=holder,
                    address=str(network.network_address + offset),
                    block=block.cidr,
                    name=f"pod-{len(workloads)}",
                )
                block.holders.append(workload)
                workloads.append(workload)
        return workloads

    def _bgp_config(self, blocks: Sequence[_Block], mesh: bool) -> JsonObject:
        rng = self.rng
        spec: JsonObject = {"asNumber": CLUSTER_AS, "nodeToNodeMeshEnabled": mesh, "listenPort": 179}
        if self.chance(0.6):
            if self.chance(0.7):
                spec["serviceClusterIPs"] = "@services"
            if self.chance(0.7):
                spec["serviceExternalIPs"] = [{"cidr": EXTERNAL_RANGE}] + (
                    [{"cidr": "10.79.1.1/32"}] if self.chance(0.3) else []
                )
            if self.chance(0.7):
                spec["serviceLoadBalancerIPs"] = [{"cidr": LB_RANGE}] + (
                    [{"cidr": "10.78.1.1/32"}] if self.chance(0.3) else []
                )
            if self.chance(0.2):
                spec["serviceLoadBalancerAggregation"] = "Disabled"
        if self.chance(0.3):
            spec["communities"] = [{"name": "pods", "value": "65000:100"}, {"name": "big", "value": "65000:1:2"}]
            targets = [POOL_CIDRS[0]] + [b.cidr for b in blocks]
            spec["prefixAdvertisements"] = [
                {"cidr": cidr, "communities": rng.sample(["pods", "big", "65000:300"], rng.randint(1, 2))}
                for cidr in rng.sample(targets, rng.randint(1, min(2, len(targets))))
            ]
        return spec

    def _filters(self, blocks: Sequence[_Block]) -> list[str]:
        rng = self.rng
        names: list[str] = []
        for index in range(rng.choice((0, 0, 1, 2))):
            rules = [self._rule(blocks) for _ in range(rng.randint(1, 4))]
            spec: JsonObject = {"exportV4": rules}
            if self.chance(0.1):
                spec = {"exportV6": [{"action": "Reject"}]}
            name = f"filter-{index}"
            self.objects.append(calico_object("BGPFilter", name, spec))
            names.append(name)
        return names

    def _rule(self, blocks: Sequence[_Block]) -> JsonObject:
        rng = self.rng
        rule: JsonObject = {"action": rng.choice(("Accept", "Reject"))}
        if self.chance(0.7):
            cidr = rng.choice([*POOL_CIDRS, "10.244.0.0/20", "10.77.0.0/24", LB_RANGE, *(b.cidr for b in blocks)])
            rule["cidr"] = cidr
            rule["matchOperator"] = rng.choice(("In", "In", "NotIn", "Equal", "NotEqual"))
            if self.chance(0.3):
                length = int(cidr.split("/")[1])
                low = rng.randint(length, 32)
                rule["prefixLength"] = {"min": low, "max": rng.randint(low, 32)} if self.chance(0.5) else {"min": low}
        if self.chance(0.2):
            rule["source"] = "RemotePeers"
        if self.chance(0.15):
            rule["interface"] = rng.choice(("cali*", "*"))
        return rule

    def _outside_peers(
        self, nodes: Sequence[BaseNode], rack_of: Mapping[str, str], peer_as: int, filters: Sequence[str]
    ) -> int:
        """BGPPeers to the outside peer, all with its one AS.

        confd keeps one BGPPeer per node and address: a global one over a node-specific one, and
        between two of the same kind whichever its map iteration meets first (no fixed order). So
        there is at most one global BGPPeer, and a node-specific one that selects a node an earlier
        node-specific one selects takes that one's settings: whichever Calico keeps, it renders the same.
        """
        rng = self.rng
        count = rng.choice((1, 1, 1, 2))
        racks = sorted(set(rack_of.values()))
        earlier: list[tuple[set[str], JsonObject]] = []  # node-specific BGPPeers drawn so far
        has_global = False
        for index in range(count):
            spec: JsonObject = {"peerIP": PEER_ADDRESS, "asNumber": peer_as}
            scope = rng.choice(("global", "global", "node", "selector"))
            if scope == "global" and has_global:
                scope = "node"
            selected = {n.name for n in nodes}
            if scope == "node":
                spec["node"] = rng.choice(nodes).name
                selected = {spec["node"]}
            elif scope == "selector":
                rack = rng.choice(racks)
                selector, selected = rng.choice(
                    (
                        (f"rack == '{rack}'", {n for n, r in rack_of.items() if r == rack}),
                        ("all()", selected),
                        ("has(rack)", selected),
                        (f"rack != '{rack}'", {n for n, r in rack_of.items() if r != rack}),
                    )
                )
                spec["nodeSelector"] = selector
            has_global = has_global or scope == "global"
            if self.chance(0.15):
                spec["localASNumber"] = rng.choice(LOCAL_AS_CHOICES)
            if self.chance(0.3):
                spec["nextHopMode"] = rng.choice(("Auto", "Self", "Keep"))
            elif self.chance(0.05):
                spec["keepOriginalNextHop"] = True
            if filters and self.chance(0.6):
                spec["filters"] = rng.sample(list(filters), rng.randint(1, len(filters)))
            if scope != "global":
                for other_nodes, other in earlier:
                    if other_nodes & selected:
                        scoped: JsonObject = {k: spec[k] for k in ("node", "nodeSelector") if k in spec}
                        spec = {**{k: v for k, v in other.items() if k not in ("node", "nodeSelector")}, **scoped}
                        self.notes.append(f"outside-{index} overlaps an earlier node-specific BGPPeer")
                earlier.append((selected, spec))
            self.objects.append(calico_object("BGPPeer", f"outside-{index}", spec))
        return count

    def _services(self, nodes: Sequence[BaseNode], workloads: Sequence[Workload]) -> int:
        rng = self.rng
        count = rng.choice((0, 1, 2, 3, 4))
        for index in range(count):
            name = f"svc-{index}"
            kind = rng.choice(("ClusterIP", "NodePort", "LoadBalancer", "LoadBalancer"))
            spec: JsonObject = {
                "type": kind,
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"app": name},
            }
            if kind != "ClusterIP":
                spec["externalTrafficPolicy"] = rng.choice(("Local", "Cluster"))
            if self.chance(0.4):
                spec["externalIPs"] = [rng.choice((f"10.79.0.{10 + index}", "10.79.1.1"))]
            service: JsonObject = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": spec,
            }
            if kind == "LoadBalancer" and self.chance(0.8):
                address = rng.choice((f"10.78.0.{10 + index}", "10.78.1.1"))
                service["status"] = {"loadBalancer": {"ingress": [{"ip": address}]}}
                if self.chance(0.3):
                    spec["loadBalancerIP"] = address
            self.objects.append(service)
            if self.chance(0.85):
                endpoints: list[tuple[str, str, bool]] = []
                for node in rng.sample(list(nodes), rng.randint(0, min(3, len(nodes)))):
                    held = [w.address for w in workloads if w.node == node.name]
                    address = rng.choice(held) if held else f"10.250.0.{len(endpoints) + 10 * index + 1}"
                    endpoints.append((address, node.name, self.chance(0.8)))
                self.objects.append(endpoint_slice(name, endpoints))
        return count


# -- snapshots ------------------------------------------------------------------------------------


def snapshot(situation: Situation, *, seed: int | None = None, index: int | None = None) -> JsonObject:
    """A generated situation as JSON, for ``from_snapshot`` (and for a reader: the objects are plain)."""
    if situation.base_cluster:
        raise ValueError(f"{situation.name} is a fixed situation; only generated ones are written as snapshots")
    return {
        "kind": SNAPSHOT_KIND,
        "format_version": SNAPSHOT_VERSION,
        "seed": seed,
        "index": index,
        "name": situation.name,
        "description": situation.description,
        "peer_as": situation.peer_as,
        "add_path": situation.add_path,
        "mesh": situation.mesh,
        "nodes": [{"name": n.name, "address": n.address} for n in situation.nodes],
        "node_annotations": {k: dict(v) for k, v in situation.node_annotations.items()},
        "workloads": [
            {"node": w.node, "address": w.address, "block": w.block, "name": w.name} for w in situation.workloads
        ],
        "tunnel_addresses": dict(situation.tunnel_addresses),
        "objects": [dict(o) for o in situation.objects],
    }


def from_snapshot(data: Mapping[str, Any], *, source: str) -> Situation:
    """The situation ``snapshot`` wrote; ``ValueError`` names ``source`` and the field that is wrong."""
    if data.get("kind") != SNAPSHOT_KIND or data.get("format_version") != SNAPSHOT_VERSION:
        raise ValueError(
            f"{source}: kind/format_version: not a conformance situation snapshot "
            f"(want kind {SNAPSHOT_KIND}, format_version {SNAPSHOT_VERSION}; write one with --random)"
        )
    try:
        return Situation(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            peer_as=int(data["peer_as"]),
            add_path=bool(data.get("add_path", True)),
            mesh=bool(data.get("mesh", True)),
            nodes=tuple(BaseNode(name=str(n["name"]), address=str(n["address"])) for n in data["nodes"]),
            node_annotations={
                str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.get("node_annotations", {}).items()
            },
            workloads=tuple(
                Workload(node=str(w["node"]), address=str(w["address"]), block=str(w["block"]), name=str(w["name"]))
                for w in data.get("workloads", ())
            ),
            tunnel_addresses={str(k): str(v) for k, v in data.get("tunnel_addresses", {}).items()},
            objects=tuple(dict(o) for o in data["objects"]),
            peer_from_snapshot=True,
            base_cluster=False,
            behaviour="replayed from a snapshot",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{source}: {exc}: the snapshot is incomplete; write it again with --random") from exc
