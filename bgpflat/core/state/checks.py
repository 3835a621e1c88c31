"""Address-plan conflicts and risk findings: what bgpflat checks before it changes anything.

``check_address_plan`` enforces the loudest lesson of every flat-network setup: office LAN, node
network, pod pools, service ranges and any VPN range must be disjoint. ``risk_findings`` flags the
configurations calico-facts §3–§5 show breaking traffic (encapsulation off across subnets with no
router learning the pod routes, disableBGPExport on a pod pool, an eBGP peer beside the mesh with
no next-hop handling, the mesh turned off with nothing to replace it).

A ``Finding`` is a value, not an exception; severity ``error`` blocks ``apply``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bgpflat.core.calico import BGPConfiguration, BGPFilter, BGPPeer, IPPool
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.net.selector import parse_selector
from bgpflat.core.state.model import ObservedNode
from bgpflat.errors import SpecError

SEVERITIES = ("error", "warning", "info")

# Finding codes (stable: CI and docs refer to them).
ADDRESS_OVERLAP = "address-overlap"
ENCAP_OFF_MULTI_SUBNET = "encapsulation-off-multi-subnet"
DISABLE_BGP_EXPORT_POD_POOL = "disable-bgp-export-pod-pool"
EBGP_MESH_NEXT_HOP = "ebgp-mesh-next-hop"
MESH_DISABLED_WITHOUT_PEERS = "mesh-disabled-without-peers"
MESH_DISABLED_AFTER_PEERS = "mesh-disabled-after-new-peers"
ENCAP_STAGED_CROSS_SUBNET = "encapsulation-staged-cross-subnet"
ENCAP_MTU = "encapsulation-mtu"
NODE_ADDRESS_MISSING = "node-address-missing"
OPERATOR_MANAGED_POOL = "operator-managed-pool"
OPERATOR_UNMAPPABLE = "operator-managed-pool-unmappable"
NOT_IN_SPEC = "not-in-spec"
PRODUCTION_CLUSTER = "production-cluster"
POOL_DELETION = "pool-deletion"
AS_NUMBER_CHANGE = "as-number-change"
UNREADABLE_CALICO_METADATA = "unreadable-calico-metadata"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    code: str
    severity: str
    message: str
    fix: str | None = None
    subjects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "subjects": list(self.subjects),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        severity = str(data["severity"])
        if severity not in SEVERITIES:
            raise SpecError(f"unknown finding severity {severity!r}", fix=f"use {', '.join(SEVERITIES)}")
        fix = data.get("fix")
        return cls(
            code=str(data["code"]),
            severity=severity,
            message=str(data["message"]),
            fix=None if fix is None else str(fix),
            subjects=tuple(str(s) for s in data.get("subjects") or ()),
        )

    def sort_key(self) -> tuple[int, str, tuple[str, ...], str]:
        return (SEVERITIES.index(self.severity), self.code, self.subjects, self.message)


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Errors first, then warnings, then notes; duplicates dropped."""
    return tuple(sorted(set(findings), key=Finding.sort_key))


# --- address plan ----------------------------------------------------------------------------------

ROLE_TITLES = {
    "pool": "pod pool",
    "service": "service range",
    "external-ips": "service external IP range",
    "load-balancer-ips": "service load-balancer IP range",
    "node": "node network",
    "office": "office network",
    "vpn": "VPN range",
}
# Ranges that may repeat or nest within their own role (several nodes share a subnet; an office
# may list a LAN and a sub-LAN; the advertised service CIDR may be part of the API server's range).
# Two pools may not: Calico refuses overlapping pools.
_SELF_OVERLAP_OK = {"node", "office", "vpn", "service"}
# Externally reachable service addresses are often carved out of the node LAN on purpose.
_SOFT_PAIRS = {frozenset({"external-ips", "node"}), frozenset({"load-balancer-ips", "node"})}


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressRange:
    """One range of the address plan: its role (see ``ROLE_TITLES``), prefix, and where it comes from."""

    role: str
    prefix: Prefix
    source: str

    def describe(self) -> str:
        return f"{ROLE_TITLES.get(self.role, self.role)} {self.prefix} ({self.source})"


def check_address_plan(ranges: Iterable[AddressRange]) -> tuple[Finding, ...]:
    """One finding per overlapping pair of ranges with different roles (or two pools / service ranges)."""
    merged: dict[tuple[Prefix, str], list[str]] = {}
    for item in ranges:
        merged.setdefault((item.prefix, item.role), []).append(item.source)

    def merged_range(key: tuple[Prefix, str]) -> AddressRange:
        return AddressRange(role=key[1], prefix=key[0], source=", ".join(sorted(set(merged[key]))))

    findings: list[Finding] = []
    # Sorted by (version, address, length), prefixes form a sweep: a prefix overlaps an earlier one
    # only if that one contains it, and the earlier prefixes still open at any point all contain
    # each other (CIDR ranges nest or are disjoint). So ``open_ranges`` is one chain of nested
    # prefixes, at most one per (length, role), and every overlapping pair is met once, in the
    # same (first, second) order as comparing every pair.
    open_ranges: list[tuple[Prefix, str]] = []
    for key in sorted(merged):
        prefix, role = key
        while open_ranges and not open_ranges[-1][0].contains(prefix):
            open_ranges.pop()
        for first in open_ranges:
            if first[1] == role and role in _SELF_OVERLAP_OK:
                continue
            findings.append(_overlap(merged_range(first), merged_range(key)))
        open_ranges.append(key)
    return sort_findings(findings)


def _overlap(first: AddressRange, second: AddressRange) -> Finding:
    soft = frozenset({first.role, second.role}) in _SOFT_PAIRS
    return Finding(
        code=ADDRESS_OVERLAP,
        severity="warning" if soft else "error",
        message=f"{first.describe()} overlaps {second.describe()}",
        fix=(
            "make sure those addresses are not assigned to hosts on the node network"
            if soft
            else "renumber one of them: office, node, pod, service and VPN ranges must not overlap"
        ),
        subjects=(first.source, second.source),
    )


# --- risk findings ---------------------------------------------------------------------------------


def node_subnets(nodes: Sequence[ObservedNode]) -> dict[Prefix, list[str]]:
    """IPv4 subnet -> node names, from the nodes' ``projectcalico.org/IPv4Address`` annotations."""
    subnets: dict[Prefix, list[str]] = {}
    for node in nodes:
        subnet = node.ipv4_subnet
        if subnet is not None:
            subnets.setdefault(subnet, []).append(node.name)
    return {k: sorted(v) for k, v in sorted(subnets.items())}


def peer_selects(peer: BGPPeer, node: ObservedNode) -> bool:
    """Whether ``node`` runs a session for ``peer`` (global, ``node`` or ``nodeSelector``)."""
    if peer.node:
        return peer.node == node.name
    if peer.node_selector:
        try:
            return parse_selector(peer.node_selector).matches(node.labels)
        except SpecError:
            return False
    return True


def _node_ips(nodes: Sequence[ObservedNode]) -> set[str]:
    return {ip for node in nodes if (ip := node.ipv4) is not None}


def external_peers(peers: Sequence[BGPPeer], nodes: Sequence[ObservedNode]) -> list[BGPPeer]:
    """Peers with a peerIP that is not a Calico node's address: the routers outside the cluster."""
    node_ips = _node_ips(nodes)
    return [p for p in peers if p.peer_ip and p.peer_ip not in node_ips]


def _rejects_remote_peers(peer: BGPPeer, filters: Mapping[str, BGPFilter]) -> bool:
    for name in peer.filters:
        bgp_filter = filters.get(name)
        if bgp_filter is None:
            continue
        for rule in (*bgp_filter.export_v4, *bgp_filter.export_v6):
            if rule.action == "Reject" and rule.source == "RemotePeers":
                return True
    return False


def risk_findings(
    *,
    pools: Sequence[IPPool],
    peers: Sequence[BGPPeer],
    config: BGPConfiguration | None,
    nodes: Sequence[ObservedNode],
    filters: Sequence[BGPFilter] = (),
    mesh_before: bool = True,
    new_peers: Sequence[str] = (),
) -> tuple[Finding, ...]:
    """Risks of the state after the plan (``pools``/``peers``/``config`` are that final state).

    ``mesh_before`` is the mesh setting before the plan; ``new_peers`` names the BGPPeers the plan
    creates or changes (their sessions cannot be Established yet when the plan is made).
    """
    findings: list[Finding] = []
    mesh_on = True if config is None else config.mesh_enabled
    global_as = 64512 if config is None else config.effective_as_number
    subnets = node_subnets(nodes)
    outside = external_peers(peers, nodes)
    filter_map = {f.name: f for f in filters}

    for node in nodes:
        if node.ipv4_subnet is None:
            findings.append(
                Finding(
                    code=NODE_ADDRESS_MISSING,
                    severity="warning",
                    message=(
                        f"node {node.name} has no usable projectcalico.org/IPv4Address annotation "
                        f"({node.ipv4_address or 'missing'}); CrossSubnet and next hops depend on its prefix length"
                    ),
                    fix="check calico-node's IP autodetection (the annotation must read address/prefix-length)",
                    subjects=(f"Node/{node.name}",),
                )
            )

    for pool in pools:
        key = f"IPPool/{pool.name}"
        pod_pool = "Workload" in pool.allowed_uses
        if pool.disable_bgp_export and pod_pool:
            findings.append(
                Finding(
                    code=DISABLE_BGP_EXPORT_POD_POOL,
                    severity="warning",
                    message=(
                        f"IPPool {pool.name} sets disableBGPExport: its routes are withheld from every BGP peer, "
                        "the node-to-node mesh included, so nodes stop learning each other's pod blocks"
                    ),
                    fix="to hide the pool from one router only, attach a BGPFilter to that BGPPeer; "
                    "otherwise remove disableBGPExport",
                    subjects=(key,),
                )
            )
        if pod_pool and not pool.encapsulated and not pool.disabled and pool.cidr.version == 4 and len(subnets) > 1:
            uncovered = [
                str(subnet)
                for subnet, names in subnets.items()
                if not any(peer_selects(p, n) for p in outside for n in nodes if n.name in names)
            ]
            if uncovered:
                findings.append(
                    Finding(
                        code=ENCAP_OFF_MULTI_SUBNET,
                        severity="warning",
                        message=(
                            f"IPPool {pool.name} has encapsulation off (ipipMode Never, vxlanMode Never) while the "
                            f"nodes span {len(subnets)} subnets ({', '.join(str(s) for s in subnets)}) and no BGP "
                            f"peer outside the cluster learns the pod routes of {', '.join(uncovered)}: pod traffic "
                            "between subnets leaves unencapsulated for a router with no route back"
                        ),
                        fix="add a BGPPeer to the router of each subnet (global or by nodeSelector), "
                        "or use ipipMode: CrossSubnet",
                        subjects=(key,),
                    )
                )

    if mesh_on:
        for peer in outside:
            selected = [n for n in nodes if peer_selects(peer, n)]
            local_ases = (
                {peer.local_as_number}
                if peer.local_as_number is not None
                else {n.as_number or global_as for n in selected} or {global_as}
            )
            if peer.as_number is None or peer.as_number in local_ases:
                continue
            if peer.keeps_next_hop or _rejects_remote_peers(peer, filter_map):
                continue
            local = ", ".join(str(a) for a in sorted(local_ases))
            findings.append(
                Finding(
                    code=EBGP_MESH_NEXT_HOP,
                    severity="warning",
                    message=(
                        f"BGPPeer {peer.name} is eBGP (peer AS {peer.as_number}, local AS {local}) while the "
                        "node-to-node mesh is on and nothing handles next hops: every selected node re-advertises "
                        "the routes it learned over the mesh with itself as next hop, so the peer learns every "
                        "pod block and service route from each of those nodes and return paths are asymmetric"
                    ),
                    fix="set nextHopMode: Keep (Calico 3.31+) or keepOriginalNextHop: true on the peer, "
                    "or attach a BGPFilter that rejects source RemotePeers",
                    subjects=(f"BGPPeer/{peer.name}",),
                )
            )

    if mesh_before and not mesh_on:
        replacements = [p for p in peers if p.peer_ip or p.peer_selector]
        if not replacements:
            findings.append(
                Finding(
                    code=MESH_DISABLED_WITHOUT_PEERS,
                    severity="error",
                    message=(
                        "the plan turns the node-to-node mesh off and no BGPPeer replaces it: "
                        "every node loses the routes to the other nodes' pods"
                    ),
                    fix="create BGPPeers to the ToR or to route reflectors first, check their sessions are "
                    "Established, then turn the mesh off",
                    subjects=("BGPConfiguration/default",),
                )
            )
        elif any(p.name in new_peers for p in replacements):
            findings.append(
                Finding(
                    code=MESH_DISABLED_AFTER_PEERS,
                    severity="warning",
                    message=(
                        "the plan turns the node-to-node mesh off in its last stage, after creating the "
                        "BGPPeers that replace it; until their sessions are Established pod routes are lost"
                    ),
                    fix="apply stage by stage and check every node's sessions (calicoctl node status or "
                    "CalicoNodeStatus) before the mesh stage",
                    subjects=("BGPConfiguration/default", *sorted(f"BGPPeer/{n}" for n in new_peers)),
                )
            )
    return sort_findings(findings)


def address_ranges(
    *,
    pools: Sequence[IPPool],
    config: BGPConfiguration | None,
    node_networks: Sequence[tuple[Prefix, str]] = (),
    office: Sequence[tuple[Prefix, str]] = (),
    vpn: Sequence[tuple[Prefix, str]] = (),
    service_ranges: Sequence[tuple[Prefix, str]] = (),
) -> list[AddressRange]:
    """The address plan as ``AddressRange``s (each input is ``(prefix, source)``)."""
    ranges = [AddressRange(role="pool", prefix=p.cidr, source=f"IPPool/{p.name}") for p in pools]
    if config is not None:
        source = f"BGPConfiguration/{config.name}"
        ranges += [
            AddressRange(role="service", prefix=p, source=f"{source} serviceClusterIPs")
            for p in config.service_cluster_ips
        ]
        ranges += [
            AddressRange(role="external-ips", prefix=p, source=f"{source} serviceExternalIPs")
            for p in config.service_external_ips
        ]
        ranges += [
            AddressRange(role="load-balancer-ips", prefix=p, source=f"{source} serviceLoadBalancerIPs")
            for p in config.service_load_balancer_ips
        ]
    ranges += [AddressRange(role="service", prefix=p, source=s) for p, s in service_ranges]
    ranges += [AddressRange(role="node", prefix=p, source=s) for p, s in node_networks]
    ranges += [AddressRange(role="office", prefix=p, source=s) for p, s in office]
    ranges += [AddressRange(role="vpn", prefix=p, source=s) for p, s in vpn]
    return ranges
