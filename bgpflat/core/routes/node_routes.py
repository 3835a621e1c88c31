"""The per-node half of the Calico export model (calico-facts §3.1-§3.2).

``NodeExports`` indexes the cluster once — blocks by owner, pools, disableBGPExport pools,
service statics, communities — and answers, per node: which routes it originates
(``local_candidates``), whether ``calico_export_to_bgp_peers`` lets a route out
(``calico_export``), and which communities it adds. ``mesh_routes`` adds what nodes send each
other over the mesh; ``advertise`` builds the per-peer view on top.
"""

from __future__ import annotations

from typing import NamedTuple

from bgpflat.core.calico import BGPConfiguration
from bgpflat.core.calico.bgpfilter import HOST_INTERFACE
from bgpflat.core.net.prefix_index import PrefixIndex
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.cluster import Allocation, ClusterState, NodeInfo, calico_version
from bgpflat.core.routes.expected import (
    BLOCK,
    BORROWED,
    LOCAL,
    POOL_ROUTE,
    SERVICE_RANGE,
    ModelOptions,
    Why,
)
from bgpflat.core.routes.service_routes import ServiceStatics, service_statics
from bgpflat.core.routes.sessions import Peerings
from bgpflat.core.routes.table import (
    Community,
    LargeCommunity,
    make_communities,
    make_large_communities,
    parse_community,
    parse_large_community,
)

Communities = tuple[tuple[Community, ...], tuple[LargeCommunity, ...]]
NO_COMMUNITIES: Communities = ((), ())


class Candidate(NamedTuple):
    """A route in a node's BIRD table that the export filter will look at."""

    prefix: Prefix
    why: Why
    interface: str = ""
    origin_address: str = ""  # that node's address (the original next hop)
    as_tail: tuple[int, ...] = ()  # AS path as learned (M's AS when the mesh session was eBGP)
    communities: Communities = NO_COMMUNITIES


_ExportFacts = tuple[bool, int, frozenset[str], bool]


class NodeExports:
    """Cluster-wide indexes and the per-node export decisions."""

    def __init__(self, cluster: ClusterState, options: ModelOptions) -> None:
        self.cluster = cluster
        self.options = options
        notes: list[str] = list(cluster.notes)
        version_text, parsed, note = calico_version(options.calico_version or cluster.calico_version)
        if note:
            notes.append(note)
        self.version_text: str = version_text
        self.calico = parsed
        self.peerings = Peerings(cluster, parsed)
        self.pools: PrefixIndex[str] = PrefixIndex((p.cidr, p.name) for p in cluster.pools)
        self.no_export: PrefixIndex[str] = PrefixIndex((p.cidr, p.name) for p in cluster.pools if p.disable_bgp_export)
        self._any_no_export = bool(self.no_export)
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
        self._aggr = _BlockOwners()
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
        # Nearly always a node's blocks are all confirmed: one list serves both (a model keeps
        # what it builds, and every kept container is one more for each garbage collection).
        own_blocks = self._own_blocks
        for node, blocks in self._confirmed.items():
            if own_blocks[node] == blocks:
                self._confirmed[node] = own_blocks[node]
        # The allocations themselves, not a copy per address: their routes sit on a cali* veth.
        self._workloads: dict[str, list[Allocation]] = {}
        for allocation in cluster.allocations:
            if allocation.kind == "workload":
                found_list = self._workloads.get(allocation.node)
                if found_list is None:
                    self._workloads[allocation.node] = [allocation]
                else:
                    found_list.append(allocation)
        self._communities: dict[str, PrefixIndex[Communities]] = {}
        self._export_facts: dict[Prefix, _ExportFacts] = {}
        self._ranges: PrefixIndex[bool] = PrefixIndex((p, True) for p, _ in self.services.ranges)
        # Host routes every node has (single-address ranges, Services from every node); a node's
        # own ones are the few in ``services.by_node``.
        self._every_node_hosts = frozenset(
            [p for p, _ in self.services.ranges if p.is_host] + [p for p, _, _ in self.services.every_node]
        )
        self._node_statics: dict[str, list[tuple[Prefix, Why]]] = {}

    def _add_block(self, cidr: Prefix, node: str) -> None:
        self._aggr.add(cidr, node)

    def _own_block(self, node: str, prefix: Prefix) -> int | None:
        """The length of the confirmed block of ``node`` that holds ``prefix``, if there is one
        (the block is then the prefix of that length around ``prefix``)."""
        found = self._aggr.holder(prefix)
        if found is not None and _owned_by(found[1], node):
            return found[0]
        return None

    # -- per node -------------------------------------------------------------------------------

    def confirmed_blocks(self, node: str) -> list[Prefix]:
        """The blocks confirmed affine to ``node``: the ones it originates a route for."""
        return list(self._confirmed.get(node, ()))

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
        if self._ranges.longest(prefix) is not None:
            return True
        if prefix in self._every_node_hosts:
            return True
        return any(prefix == host for host, _, _ in self.services.by_node.get(node.name, ()))

    def local_candidates(
        self, node: NodeInfo, version: int, *, with_own_workloads: bool, shortcut: bool = False
    ) -> list[Candidate]:
        """Routes the node originates itself (blocks, kernel, statics, direct) of one family.

        ``shortcut`` leaves out confirmed blocks and plain service ranges, which ``mesh_out``
        accepts without running the whole export filter on each.
        """
        name = node.name
        out: list[Candidate] = []
        own_blocks = self._own_blocks.get(name, ())
        if shortcut and own_blocks is self._confirmed.get(name):
            own_blocks = ()  # all confirmed: the shortcut leaves every one out
        for block in own_blocks:
            # A /32 block gets no blackhole; its one workload's kernel route stands for it.
            if block.version == version and not block.is_host:
                if shortcut and self._own_block(name, block) == block.length:
                    continue
                out.append(Candidate(block, Why(BLOCK, name)))
        holder = self._aggr.holder  # ``_own_block`` inline: this loop sees every workload once
        for allocation in self._workloads.get(name, ()):
            address = allocation.address
            if address.version != version:
                continue
            found = holder(address)
            inside_own = found is not None and _owned_by(found[1], name)
            if inside_own and not with_own_workloads:
                continue  # calico_aggr rejects it anyway; only a BGPFilter Accept could leak it
            rule = POOL_ROUTE if inside_own else BORROWED
            out.append(Candidate(address, Why(rule, name, LOCAL, f"workload {allocation.owner}"), "cali"))
        if not shortcut:
            out.extend(Candidate(prefix, why) for prefix, why in self.statics(node) if prefix.version == version)
        elif not node.excluded_from_load_balancers:
            # As ``statics`` but without the ranges that are accepted anyway, and without keeping
            # a list per node: a shortcut pass runs once per node.
            services = self.services
            for prefix, setting in services.ranges:
                if prefix.version == version and not self.range_ok(prefix):
                    out.append(Candidate(prefix, Why(SERVICE_RANGE, name, detail=setting)))
            for prefix, rule, service in (*services.every_node, *services.by_node.get(name, ())):
                if prefix.version == version:
                    out.append(Candidate(prefix, Why(rule, name, detail=service)))
        if version == 4 and node.ipv4_network is not None and not node.ipv4_network.is_host:
            out.append(
                Candidate(node.ipv4_network, Why(POOL_ROUTE, name, detail="node subnet (direct route)"), HOST_INTERFACE)
            )
        if self.options.tunnel_addresses and version == 4 and node.ipip_tunnel_address:
            tunnel = Prefix.host(node.ipip_tunnel_address)
            if self._own_block(name, tunnel) is None:
                out.append(Candidate(tunnel, Why(POOL_ROUTE, name, detail="tunl0 address"), interface="tunl0"))
        return out

    def range_ok(self, prefix: Prefix) -> bool:
        """A service range that no block holds: exported by every node unless disableBGPExport."""
        found = self._range_ok.get(prefix)
        if found is None:
            found = self._range_ok[prefix] = self._aggr.holder(prefix) is None and not (
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
        # This runs for every route a node does not export by shortcut, and for every mesh-learned
        # route (every node x every other node's blocks): what does not depend on the node is
        # looked up once per prefix.
        facts = self._export_facts.get(prefix)
        if facts is None:
            facts = self._export_facts[prefix] = self._prefix_export_facts(prefix)
        no_export, block_length, owners, in_pool = facts
        if no_export:
            return False
        if node.name in owners:
            return block_length == prefix.length  # the block itself; anything inside it is aggregated
        # What is left is "static route, or a load-balancer range on a reflector, or a pool".
        if in_pool or self._static_covers(node, prefix):
            return True
        return node.is_route_reflector and self.lb_ranges.longest(prefix) is not None

    def _prefix_export_facts(self, prefix: Prefix) -> _ExportFacts:
        """For ``calico_export``: in a pool with BGP export disabled; the length and the owners of
        the block holding it (none: no owner); in a pool."""
        no_export = self._any_no_export and self.no_export.longest(prefix) is not None
        found = self._aggr.holder(prefix)
        if found is None:
            return no_export, 0, frozenset(), self.pools.longest(prefix) is not None
        length, owners = found
        owner_set = frozenset((owners,) if isinstance(owners, str) else owners)
        return no_export, length, owner_set, self.pools.longest(prefix) is not None

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


class _BlockOwners:
    """Confirmed blocks -> the node(s) affine to each, answering "which block holds this prefix".

    ``PrefixIndex`` keeps a (prefix, value) tuple per entry; tens of thousands of blocks would be
    as many tuples for every garbage collection to walk while the model runs. Here an entry is a
    network number -> a node name (a tuple of names only for a block shared in broken data), in
    one dict per block length, and a lookup gives (length, owners).
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: dict[int, list[tuple[int, int, dict[int, str | tuple[str, ...]]]]] = {}

    def _table(self, version: int, length: int) -> dict[int, str | tuple[str, ...]]:
        levels = self._levels.setdefault(version, [])
        for level_length, _, table in levels:
            if level_length == length:
                return table
        table = {}
        levels.append((length, _BITS[version] - length, table))
        levels.sort(key=lambda level: -level[0])
        return table

    def add(self, block: Prefix, node: str) -> None:
        version, value, length = block
        table = self._table(version, length)
        key = value >> (_BITS[version] - length)
        owners = table.get(key)
        if owners is None:
            table[key] = node
        elif not _owned_by(owners, node):
            table[key] = (owners, node) if isinstance(owners, str) else (*owners, node)

    def holder(self, prefix: Prefix) -> tuple[int, str | tuple[str, ...]] | None:
        """(length, owners) of the most specific block equal to or containing ``prefix``."""
        version, value, prefix_length = prefix
        for length, shift, table in self._levels.get(version, ()):
            if length <= prefix_length:
                owners = table.get(value >> shift)
                if owners is not None:
                    return length, owners
        return None


_BITS = {4: 32, 6: 128}


def _owned_by(owners: str | tuple[str, ...], node: str) -> bool:
    return owners == node if isinstance(owners, str) else node in owners


def _community_names(default: BGPConfiguration | None, own: BGPConfiguration | None) -> dict[str, str]:
    names: dict[str, str] = {}
    for config in (default, own):
        if config is not None:
            names.update({c.name: c.value for c in config.communities})
    return names
