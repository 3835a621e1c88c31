"""The per-node half of the Calico export model (calico-facts §3.1-§3.2).

``NodeExports`` indexes the cluster once — blocks by owner, pools, disableBGPExport pools,
service statics, communities — and answers, per node: which routes it originates
(``local_candidates``), whether ``calico_export_to_bgp_peers`` lets a route out
(``calico_export``), and what it sends over the node-to-node mesh (``mesh_out``, cached: every
other node and every filter-less outside peer sees exactly that). ``advertise`` builds the
per-peer view on top.
"""

from __future__ import annotations

from typing import NamedTuple

from bgpflat.core.advertise_services import ServiceStatics, service_statics
from bgpflat.core.calico import BGPConfiguration, BGPPeer
from bgpflat.core.cluster import ClusterState, NodeInfo, parse_calico_version
from bgpflat.core.expected import (
    BLOCK,
    BORROWED,
    POOL_ROUTE,
    SERVICE_RANGE,
    ModelOptions,
    Why,
)
from bgpflat.core.prefix_index import PrefixIndex
from bgpflat.core.prefixes import Prefix
from bgpflat.core.routes import (
    Community,
    LargeCommunity,
    make_communities,
    make_large_communities,
    parse_community,
    parse_large_community,
)
from bgpflat.core.selector import Selector, parse_selector
from bgpflat.errors import SpecError

# When neither the cluster (ClusterInformation) nor the caller says, the newest release
# calico-facts covers is assumed, and a note says so.
ASSUMED_CALICO_VERSION = "v3.32.0"

Communities = tuple[tuple[Community, ...], tuple[LargeCommunity, ...]]
_NO_COMMUNITIES: Communities = ((), ())


class Candidate(NamedTuple):
    """A route in a node's BIRD table that the export filter will look at."""

    prefix: Prefix
    why: Why
    interface: str = ""
    learned_from: str = ""  # node name when learned over BGP
    origin_address: str = ""  # that node's address (the original next hop)
    as_tail: tuple[int, ...] = ()  # AS path as learned (M's AS when the mesh session was eBGP)
    communities: Communities = _NO_COMMUNITIES


class NodeExports:
    """Cluster-wide indexes and the per-node export decisions."""

    def __init__(self, cluster: ClusterState, options: ModelOptions) -> None:
        self.cluster = cluster
        self.options = options
        notes: list[str] = list(cluster.notes)
        version_text = options.calico_version or cluster.calico_version
        parsed = parse_calico_version(version_text)
        if parsed is None:
            if version_text:
                notes.append(f"Calico version {version_text!r} not understood; assuming {ASSUMED_CALICO_VERSION}")
            else:
                notes.append(f"Calico version unknown (no ClusterInformation); assuming {ASSUMED_CALICO_VERSION}")
            version_text = ASSUMED_CALICO_VERSION
            parsed = parse_calico_version(ASSUMED_CALICO_VERSION)
        assert parsed is not None and version_text is not None
        self.version_text: str = version_text
        self.calico = parsed
        self.pools: PrefixIndex[str] = PrefixIndex((p.cidr, p.name) for p in cluster.pools)
        self.no_export: PrefixIndex[str] = PrefixIndex((p.cidr, p.name) for p in cluster.pools if p.disable_bgp_export)
        config = cluster.bgp_configuration
        self.lb_ranges: PrefixIndex[bool] = PrefixIndex(
            (p, True) for p in (config.service_load_balancer_ips if config else ())
        )
        self.services: ServiceStatics = service_statics(cluster, parsed)
        notes.extend(self.services.notes)
        self.notes = notes
        self._own_blocks: dict[str, list[Prefix]] = {}
        # One index of every confirmed block -> the node(s) it is affine to. IPAM blocks never
        # overlap, so the longest covering entry is *the* block holding an address; calico_aggr of
        # node N then only asks whether N is among its owners.
        self._aggr: PrefixIndex[list[str]] = PrefixIndex()
        self._confirmed: dict[str, list[Prefix]] = {}
        self._range_ok: dict[Prefix, bool] = {}
        for affinity in cluster.affinities:
            if affinity.deleted or affinity.type != "host" or affinity.state == "pending":
                continue  # confd drops pending affinities (client.go updateCache)
            if affinity.state == "pendingDeletion":
                if options.pending_deletion_blocks:
                    self._own_blocks.setdefault(affinity.node, []).append(affinity.cidr)
                continue
            self._own_blocks.setdefault(affinity.node, []).append(affinity.cidr)
            self._confirmed.setdefault(affinity.node, []).append(affinity.cidr)
            self._add_block(affinity.cidr, affinity.node)
        if not cluster.affinities:
            # A snapshot without BlockAffinity objects: the blocks' own affinity is the next best source.
            for block in cluster.blocks:
                if block.affinity and block.affinity.startswith("host:"):
                    node = block.affinity[len("host:") :]
                    self._own_blocks.setdefault(node, []).append(block.cidr)
                    self._confirmed.setdefault(node, []).append(block.cidr)
                    self._add_block(block.cidr, node)
        self._workloads: dict[str, list[tuple[Prefix, str, str]]] = {}
        for allocation in cluster.allocations:
            if allocation.kind == "workload":
                self._workloads.setdefault(allocation.node, []).append((allocation.address, allocation.owner, "cali"))
        self._communities: dict[str, PrefixIndex[Communities]] = {}
        self._mesh_out: dict[tuple[str, int], list[Candidate]] = {}
        self._ranges: PrefixIndex[bool] = PrefixIndex((p, True) for p, _ in self.services.ranges)
        self._hosts: dict[str, frozenset[Prefix]] = {}
        # Nodes grouped by identical label sets: a selector is evaluated once per group (racks of
        # nodes often share every label), not once per node and BGPPeer.
        self._label_groups: dict[tuple[tuple[str, str], ...], list[NodeInfo]] = {}
        for info in cluster.nodes.values():
            self._label_groups.setdefault(tuple(sorted(info.labels.items())), []).append(info)
        self._selectors: dict[str, Selector] = {}
        self._speakers: dict[int, list[NodeInfo]] = {}
        self._node_statics: dict[str, list[tuple[Prefix, Why]]] = {}
        self._selected: dict[str, frozenset[str]] = {}
        self._adjacencies: dict[int, dict[str, set[str]]] = {}

    def _add_block(self, cidr: Prefix, node: str) -> None:
        owners = self._aggr.get(cidr)
        if owners is None:
            self._aggr.add(cidr, [node])
        elif node not in owners:
            owners.append(node)

    def _own_block(self, node: str, prefix: Prefix) -> Prefix | None:
        """The confirmed block of ``node`` that holds ``prefix``, if any."""
        found = self._aggr.longest(prefix)
        if found is not None and node in found[1]:
            return found[0]
        return None

    # -- per node -------------------------------------------------------------------------------

    def node_address(self, node: NodeInfo, version: int) -> str | None:
        return node.ipv4_address if version == 4 else node.ipv6_address

    def statics(self, node: NodeInfo) -> list[tuple[Prefix, Why]]:
        """The node's service static routes (none on nodes with the exclude label)."""
        found = self._node_statics.get(node.name)
        if found is None:
            found = [] if node.excluded_from_load_balancers else self.services.for_node(node.name)
            self._node_statics[node.name] = found
        return found

    def _static_covers(self, node: NodeInfo, prefix: Prefix) -> bool:
        """Step 6: inside one of the node's ``/staticroutes`` (global ranges or its host routes)."""
        if node.excluded_from_load_balancers:
            return False
        if self._ranges.covers(prefix):
            return True
        hosts = self._hosts.get(node.name)
        if hosts is None:
            hosts = self._hosts[node.name] = frozenset(p for p, _ in self.statics(node) if p.is_host)
        return prefix in hosts

    def local_candidates(
        self, node: NodeInfo, version: int, *, with_own_workloads: bool, shortcut: bool = False
    ) -> list[Candidate]:
        """Routes the node originates itself (blocks, kernel, statics, direct) of one family.

        ``shortcut`` leaves out confirmed blocks and plain service ranges, which ``mesh_out``
        accepts without running the whole export filter on each.
        """
        name = node.name
        out: list[Candidate] = []
        for block in self._own_blocks.get(name, ()):
            # A /32 block gets no blackhole; its one workload's kernel route stands for it.
            if block.version == version and not block.is_host:
                if shortcut and self._own_block(name, block) == block:
                    continue
                out.append(Candidate(block, Why(BLOCK, name)))
        for address, owner, interface in self._workloads.get(name, ()):
            if address.version != version:
                continue
            inside_own = self._own_block(name, address) is not None
            if inside_own and not with_own_workloads:
                continue  # calico_aggr rejects it anyway; only a BGPFilter Accept could leak it
            rule = POOL_ROUTE if inside_own else BORROWED
            out.append(Candidate(address, Why(rule, name, detail=f"workload {owner}"), interface=interface))
        for prefix, why in self.statics(node):
            if prefix.version == version and not (shortcut and why.rule == SERVICE_RANGE and self.range_ok(prefix)):
                out.append(Candidate(prefix, why))
        if version == 4 and node.ipv4_network is not None and not node.ipv4_network.is_host:
            out.append(Candidate(node.ipv4_network, Why(POOL_ROUTE, name, detail="node subnet (direct route)")))
        if self.options.tunnel_addresses and version == 4 and node.ipip_tunnel_address:
            tunnel = Prefix.host(node.ipip_tunnel_address)
            if self._own_block(name, tunnel) is None:
                out.append(Candidate(tunnel, Why(POOL_ROUTE, name, detail="tunl0 address"), interface="tunl0"))
        return out

    def range_ok(self, prefix: Prefix) -> bool:
        """A service range that no block holds: exported by every node unless disableBGPExport."""
        found = self._range_ok.get(prefix)
        if found is None:
            found = self._range_ok[prefix] = self._aggr.longest(prefix) is None and not (
                self.no_export and self.no_export.covers(prefix)
            )
        return found

    def communities(self, node: NodeInfo) -> PrefixIndex[Communities]:
        """prefixAdvertisements of ``node.<name>`` if it has any, else of ``default``."""
        own = self.cluster.node_configurations.get(node.name)
        key = node.name if own is not None else ""  # nodes without their own object share one index
        found = self._communities.get(key)
        if found is not None:
            return found
        default = self.cluster.bgp_configuration
        source = own if own is not None and own.prefix_advertisements else default
        index: PrefixIndex[Communities] = PrefixIndex()
        if source is not None:
            names = _community_names(default, own)
            for advertisement in source.prefix_advertisements:
                standard: list[Community] = []
                large: list[LargeCommunity] = []
                for item in advertisement.communities:
                    value = names.get(item, item)
                    if value.count(":") == 2:
                        large.append(parse_large_community(value))
                    else:
                        standard.append(parse_community(value))
                index.add(advertisement.cidr, (make_communities(standard), make_large_communities(large)))
        self._communities[key] = index
        return index

    def calico_export(self, node: NodeInfo, prefix: Prefix) -> bool:
        """``calico_export_to_bgp_peers`` minus communities: does the route leave the node?"""
        if self.no_export and self.no_export.covers(prefix):
            return False
        block = self._own_block(node.name, prefix)
        if block is not None:
            return block == prefix
        if self._static_covers(node, prefix):
            return True
        if node.is_route_reflector and self.lb_ranges.covers(prefix):
            return True
        return self.pools.covers(prefix)

    def add_communities(self, node: NodeInfo, prefix: Prefix, current: Communities) -> Communities:
        found = self.communities(node).covering(prefix)
        if not found:
            return current
        standard = list(current[0])
        large = list(current[1])
        for _, (more, more_large) in found:
            standard.extend(more)
            large.extend(more_large)
        return make_communities(standard), make_large_communities(large)

    def mesh_out(self, node: NodeInfo, version: int) -> list[Candidate]:
        """What ``node`` sends to the other nodes over the mesh (same filter, internal=true).

        This is also exactly what it sends to an outside peer without BGPFilters, so it is computed
        once per node and shared by every peer and every other node.
        """
        key = (node.name, version)
        found = self._mesh_out.get(key)
        if found is not None:
            return found
        address = self.node_address(node, version) or ""
        tail = (self.cluster.node_as(node),)
        name = node.name
        index = self.communities(node)
        no_export = self.no_export if self.no_export else None
        accepted: list[tuple[Prefix, Why, str]] = []
        # Shortcuts for the bulk: calico_aggr accepts a node's own confirmed block as it is (only
        # step 1 can stop it), and a service range outside every block passes or fails alike on
        # every node.
        for block in self._confirmed.get(name, ()):
            if block.version == version and not block.is_host and not (no_export and no_export.covers(block)):
                accepted.append((block, Why(BLOCK, name), ""))
        if not node.excluded_from_load_balancers:
            for prefix, setting in self.services.ranges:
                if prefix.version == version and self.range_ok(prefix):
                    accepted.append((prefix, Why(SERVICE_RANGE, name, detail=setting), ""))
        for prefix, why, interface, *_ in self.local_candidates(node, version, with_own_workloads=False, shortcut=True):
            if self.calico_export(node, prefix):
                accepted.append((prefix, why, interface))
        out: list[Candidate] = []
        for prefix, why, interface in accepted:
            communities = self.add_communities(node, prefix, _NO_COMMUNITIES) if index else _NO_COMMUNITIES
            out.append(Candidate(prefix, why, interface, name, address, tail, communities))
        self._mesh_out[key] = out
        return out

    def speakers(self, version: int) -> list[NodeInfo]:
        """Nodes that run BGP in this address family (they have a BGP address)."""
        found = self._speakers.get(version)
        if found is None:
            found = self._speakers[version] = [n for n in self.cluster.nodes.values() if self.node_address(n, version)]
        return found

    def bgp_neighbours(self, node: NodeInfo, version: int) -> list[NodeInfo]:
        """Nodes whose routes reach ``node`` over BGP: the whole mesh, or peerSelector peerings
        (continuing through route reflectors, which pass on what their clients send)."""
        if self.cluster.mesh_enabled:
            return [n for n in self.speakers(version) if n.name != node.name]
        adjacency = self._adjacency(version)
        if not adjacency:
            return []
        by_name = {n.name: n for n in self.speakers(version)}
        seen = {node.name}
        order: list[str] = []
        frontier = [node.name]
        while frontier:
            current = frontier.pop()
            for neighbour in sorted(adjacency.get(current, ())):
                if neighbour in seen:
                    continue
                seen.add(neighbour)
                order.append(neighbour)
                if by_name[neighbour].is_route_reflector:
                    frontier.append(neighbour)
        return [by_name[name] for name in order]

    def _adjacency(self, version: int) -> dict[str, set[str]]:
        """Node-to-node peerings made by BGPPeers with a peerSelector (computed once)."""
        found = self._adjacencies.get(version)
        if found is not None:
            return found
        adjacency: dict[str, set[str]] = {}
        speakers = self.speakers(version)
        for bgp_peer in self.cluster.peers:
            if not bgp_peer.peer_selector:
                continue
            try:
                selector = parse_selector(bgp_peer.peer_selector)
            except SpecError:
                continue
            remote = [n.name for n in speakers if selector.matches(n.labels)]
            local = [n.name for n in speakers if self.selects(bgp_peer, n)]
            for a in local:
                for b in remote:
                    if a != b:
                        adjacency.setdefault(a, set()).add(b)
                        adjacency.setdefault(b, set()).add(a)
        self._adjacencies[version] = adjacency
        return adjacency

    def selected_nodes(self, bgp_peer: BGPPeer) -> frozenset[str]:
        """Names of the nodes this BGPPeer applies to (evaluated once per BGPPeer)."""
        key = bgp_peer.name  # BGPPeer names are unique in a cluster
        found = self._selected.get(key)
        if found is None:
            if bgp_peer.node:
                found = frozenset({bgp_peer.node}) & self.cluster.nodes.keys()
            else:
                found = frozenset(
                    member.name
                    for members in self._label_groups.values()
                    if self.selects(bgp_peer, members[0])
                    for member in members
                )
            self._selected[key] = found
        return found

    def _selector_matches(self, text: str, node: NodeInfo) -> bool:
        selector = self._selectors.get(text)
        if selector is None:
            selector = self._selectors[text] = parse_selector(text)
        return selector.matches(node.labels)

    def selects(self, bgp_peer: BGPPeer, node: NodeInfo) -> bool:
        """Does this BGPPeer make ``node`` peer (global, ``node`` or ``nodeSelector``)?"""
        if bgp_peer.node:
            return bgp_peer.node == node.name
        text = bgp_peer.node_selector
        if not text:
            return True
        try:
            return self._selector_matches(text, node)
        except SpecError as exc:
            raise SpecError(exc.message, path=f"BGPPeer {bgp_peer.name}.spec.nodeSelector", fix=exc.fix) from None


def _community_names(default: BGPConfiguration | None, own: BGPConfiguration | None) -> dict[str, str]:
    names: dict[str, str] = {}
    for config in (default, own):
        if config is not None:
            names.update({c.name: c.value for c in config.communities})
    return names
