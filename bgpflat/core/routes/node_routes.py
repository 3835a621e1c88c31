"""The per-node half of the Calico export model (calico-facts §3.1-§3.2).

``NodeExports`` indexes the cluster once — blocks by owner, pools, disableBGPExport pools,
service statics, communities — and answers, per node: which routes it originates
(``local_candidates``), whether ``calico_export_to_bgp_peers`` lets a route out
(``calico_export``), and what it sends over the node-to-node mesh (``mesh_out``, cached: every
other node and every filter-less outside peer sees exactly that). ``advertise`` builds the
per-peer view on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from bgpflat.core.calico import BGPConfiguration
from bgpflat.core.calico.bgpfilter import HOST_INTERFACE
from bgpflat.core.net.prefix_index import PrefixIndex
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.net.selector import parse_selector
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
from bgpflat.errors import SpecError

Communities = tuple[tuple[Community, ...], tuple[LargeCommunity, ...]]
_NO_COMMUNITIES: Communities = ((), ())


class Candidate(NamedTuple):
    """A route in a node's BIRD table that the export filter will look at."""

    prefix: Prefix
    why: Why
    interface: str = ""
    origin_address: str = ""  # that node's address (the original next hop)
    as_tail: tuple[int, ...] = ()  # AS path as learned (M's AS when the mesh session was eBGP)
    communities: Communities = _NO_COMMUNITIES


_ExportFacts = tuple[bool, int, frozenset[str], bool]

# ``export_screen``: a route surely leaves nodes with the exclude-from-load-balancers label, the others.
PASSES_EXCLUDED = 1
PASSES_OTHERS = 2


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
        self._mesh_out: dict[tuple[str, int], list[Candidate]] = {}
        self._export_facts: dict[Prefix, _ExportFacts] = {}
        self._ranges: PrefixIndex[bool] = PrefixIndex((p, True) for p, _ in self.services.ranges)
        # Host routes every node has (single-address ranges, Services from every node); a node's
        # own ones are the few in ``services.by_node``.
        self._every_node_hosts = frozenset(
            [p for p, _ in self.services.ranges if p.is_host] + [p for p, _, _ in self.services.every_node]
        )
        # Host routes some node has of its own: a learned route matching none of these, no range
        # and no pool is refused on every node (``export_screen``).
        self._some_node_hosts = frozenset(host for hosts in self.services.by_node.values() for host, _, _ in hosts)
        self._mesh_out_ids: set[int] = set()
        self._screens: dict[int, tuple[list[Candidate], tuple[list[tuple[Candidate, int]], frozenset[str]]]] = {}
        self._speakers: dict[int, list[NodeInfo]] = {}
        self._several_as: dict[int, bool] = {}
        self._senders: dict[int, dict[str, tuple[list[Candidate], int, frozenset[str] | None]]] = {}
        self._mesh_senders: dict[int, list[tuple[str, tuple[list[Candidate], int, frozenset[str] | None]]]] = {}
        self._node_statics: dict[str, list[tuple[Prefix, Why]]] = {}
        self._adjacencies: dict[int, dict[str, set[str]]] = {}

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

    def export_screen(self, candidates: list[Candidate]) -> tuple[list[tuple[Candidate, int]], frozenset[str]]:
        """What ``calico_export`` decides on ``candidates`` for any node that owns none of their
        blocks, and the nodes that do (those ask ``calico_export`` of each candidate).

        For such a node only pools, service statics and load-balancer ranges matter: the
        candidates (in order) it may let out, each with the nodes it surely lets it out of
        (``PASSES_EXCLUDED``: nodes with the exclude-from-load-balancers label; ``PASSES_OTHERS``:
        the rest; neither: ask ``calico_export``). Kept per ``mesh_out`` list: every session of a
        node re-exporting the mesh walks those lists, and nearly every candidate passes (or fails)
        alike on every node but its owner.
        """
        key = id(candidates)
        found = self._screens.get(key)
        if found is not None:
            return found[1]
        screened: list[tuple[Candidate, int]] = []
        owners: set[str] = set()
        facts_of = self._export_facts
        for candidate in candidates:
            prefix = candidate.prefix
            facts = facts_of.get(prefix)
            if facts is None:
                facts = facts_of[prefix] = self._prefix_export_facts(prefix)
            no_export, _, block_owners, in_pool = facts
            if no_export:
                continue  # refused on every node
            owners.update(block_owners)
            if in_pool:
                screened.append((candidate, PASSES_EXCLUDED | PASSES_OTHERS))
            elif self._ranges.longest(prefix) is not None or prefix in self._every_node_hosts:
                screened.append((candidate, PASSES_OTHERS))  # a static route on every node not excluded
            elif prefix in self._some_node_hosts or self.lb_ranges.longest(prefix) is not None:
                screened.append((candidate, 0))  # depends on the node: ``calico_export`` decides
        result = (screened, frozenset(owners))
        if key in self._mesh_out_ids:
            self._screens[key] = (candidates, result)
        return result

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

    def mesh_out(self, node: NodeInfo, version: int) -> list[Candidate]:
        """What ``node`` sends to the other nodes over the mesh (same filter, internal=true).

        This is also exactly what it sends to an outside peer without BGPFilters; every other
        node it peers with sees it, so it is computed once per node.
        """
        key = (node.name, version)
        found = self._mesh_out.get(key)
        if found is None:
            address = node.bgp_address(version) or ""
            tail = (self.cluster.node_as(node),)
            found = self._mesh_out[key] = [
                Candidate(prefix, why, interface, address, tail, communities)
                for prefix, why, interface, communities in self.mesh_exports(node, version)
            ]
            self._mesh_out_ids.add(id(found))  # the dict keeps the list: its id stays its own
        return found

    def mesh_exports(self, node: NodeInfo, version: int) -> Iterator[tuple[Prefix, Why, str, Communities]]:
        """``mesh_out`` as (prefix, reason, interface, communities), computed afresh.

        A node no other node peers with (the mesh is off in large clusters) is asked once, by its
        outside peers: they read this directly and no candidate is kept for it.
        """
        found = self._mesh_out.get((node.name, version))
        if found is not None:
            for candidate in found:
                yield candidate.prefix, candidate.why, candidate.interface, candidate.communities
            return
        name = node.name
        index = bool(self.communities(node))  # once: ``PrefixIndex.__bool__`` is a Python call
        no_export = self.no_export if self._any_no_export else None
        add_communities = self.add_communities
        host_length = 32 if version == 4 else 128
        # Shortcuts for the bulk: calico_aggr accepts a node's own confirmed block as it is (only
        # step 1 can stop it), and a service range outside every block passes or fails alike on
        # every node. The node's blocks share one reason: they differ only in the prefix.
        block_why = Why(BLOCK, name)
        for block in self._confirmed.get(name, ()):
            if (
                block.version == version
                and block.length != host_length
                and not (no_export and no_export.longest(block) is not None)
            ):
                yield block, block_why, "", add_communities(node, block, _NO_COMMUNITIES) if index else _NO_COMMUNITIES
        if not node.excluded_from_load_balancers:
            for prefix, setting in self.services.ranges:
                if prefix.version == version and self.range_ok(prefix):
                    communities = add_communities(node, prefix, _NO_COMMUNITIES) if index else _NO_COMMUNITIES
                    yield prefix, Why(SERVICE_RANGE, name, detail=setting), "", communities
        for prefix, why, interface, _, _, _ in self.local_candidates(
            node, version, with_own_workloads=False, shortcut=True
        ):
            if self.calico_export(node, prefix):
                communities = add_communities(node, prefix, _NO_COMMUNITIES) if index else _NO_COMMUNITIES
                yield prefix, why, interface, communities

    def mesh_transit(self, node: NodeInfo, version: int) -> tuple[list[Candidate], list[Candidate]]:
        """Copies of other nodes' routes that reach ``node`` through a relay of a mesh of several
        AS, and differ from the direct copies: (arriving over eBGP, arriving over iBGP).

        Calico's mesh sessions run ``add paths on`` and export with ``calico_export_to_bgp_peers``
        whatever the route's source, so a node passes on every path it holds, adding its own
        prefixAdvertisements communities, except that BIRD sends no iBGP-learned path to an iBGP
        peer and drops a path carrying its own AS. With one AS per rack, node X in AS 1 then holds
        node Y's (AS 2) block as ``[2]`` and, through each AS 3 node, as ``[3 2]``; a relay in AS 2
        with a ``node.<name>`` BGPConfiguration adds its communities to a ``[2]`` copy. Every node
        shares the subnet, so BIRD keeps the origin's next hop on each hop (``origin_address``).
        ``as_tail`` is the AS path as ``node`` holds it.
        """
        if not self.cluster.mesh_enabled:
            return [], []
        node_as = self.cluster.node_as(node)
        speakers = self.bgp_neighbours(node, version)
        if len({self.cluster.node_as(m) for m in speakers} | {node_as}) < 2:
            return [], []  # one AS: iBGP only, nothing is relayed
        as_of = {m.name: self.cluster.node_as(m) for m in speakers}
        direct = {
            (c.prefix, c.as_tail, c.communities, c.origin_address) for m in speakers for c in self.mesh_out(m, version)
        }
        # A path as a holder keeps it: (candidate with the AS path held, holder, learned over iBGP?).
        # The origins' own routes start with an empty path.
        frontier = [(c._replace(as_tail=()), m, False) for m in speakers for c in self.mesh_out(m, version)]
        seen: set[tuple[Prefix, tuple[int, ...], Communities, str, str, bool]] = set()
        over_ebgp: dict[tuple[Prefix, tuple[int, ...], Communities, str], Candidate] = {}
        over_ibgp: dict[tuple[Prefix, tuple[int, ...], Communities, str], Candidate] = {}
        while frontier:
            moved: list[tuple[Candidate, NodeInfo, bool]] = []
            for candidate, holder, learned_ibgp in frontier:
                holder_as = as_of[holder.name]
                relayed = candidate.origin_address != holder.bgp_address(version)
                if relayed:
                    if not self.calico_export(holder, candidate.prefix):
                        continue
                    sent = candidate._replace(
                        communities=self.add_communities(holder, candidate.prefix, candidate.communities)
                    )
                else:
                    sent = candidate  # mesh_out already applied the origin's export filter and communities
                for receiver_name, receiver_as in [(node.name, node_as), *as_of.items()]:
                    if receiver_name == holder.name:
                        continue
                    ibgp = receiver_as == holder_as
                    if ibgp and learned_ibgp:
                        continue  # BIRD: no iBGP-learned path to an iBGP peer
                    path = sent.as_tail if ibgp else (holder_as, *sent.as_tail)
                    if receiver_as in path:
                        continue  # BIRD drops a path carrying its own AS
                    arrived = sent._replace(as_tail=path)
                    if receiver_name == node.name:
                        if relayed:
                            key = (arrived.prefix, path, arrived.communities, arrived.origin_address)
                            if key not in direct:  # a direct copy already says this
                                (over_ibgp if ibgp else over_ebgp).setdefault(key, arrived)
                        continue
                    state = (arrived.prefix, path, arrived.communities, arrived.origin_address, receiver_name, ibgp)
                    if state not in seen:
                        seen.add(state)
                        moved.append((arrived, next(m for m in speakers if m.name == receiver_name), ibgp))
            frontier = moved
        return list(over_ebgp.values()), list(over_ibgp.values())

    def speakers(self, version: int) -> list[NodeInfo]:
        """Nodes that run BGP in this address family (they have a BGP address)."""
        found = self._speakers.get(version)
        if found is None:
            found = self._speakers[version] = [n for n in self.cluster.nodes.values() if n.bgp_address(version)]
        return found

    def several_as(self, version: int) -> bool:
        """Whether the nodes that run BGP in this family are in more than one AS."""
        found = self._several_as.get(version)
        if found is None:
            found = self._several_as[version] = len({self.cluster.node_as(n) for n in self.speakers(version)}) > 1
        return found

    def mesh_senders(self, node: NodeInfo, version: int) -> list[tuple[list[Candidate], int, frozenset[str] | None]]:
        """What each of ``node``'s BGP neighbours (``bgp_neighbours``, in that order) sends it over
        the mesh, with the neighbour's AS and, where Calico's export filter lets none of it out of
        any node that owns none of its blocks (``export_screen``), the nodes that do own one.

        In a full mesh the list of every speaker's is made once per family: each session of each
        node re-exporting the mesh walks thousands of them.
        """
        known = self._senders.setdefault(version, {})
        if not self.cluster.mesh_enabled:
            return [self._sender(n, version, known) for n in self.bgp_neighbours(node, version)]
        every = self._mesh_senders.get(version)
        if every is None:
            every = [(n.name, self._sender(n, version, known)) for n in self.speakers(version)]
            self._mesh_senders[version] = every
        name = node.name
        return [sender for other, sender in every if other != name]

    def _sender(
        self, node: NodeInfo, version: int, known: dict[str, tuple[list[Candidate], int, frozenset[str] | None]]
    ) -> tuple[list[Candidate], int, frozenset[str] | None]:
        found = known.get(node.name)
        if found is None:
            candidates = self.mesh_out(node, version)
            screened, owners = self.export_screen(candidates)
            found = known[node.name] = (candidates, self.cluster.node_as(node), None if screened else owners)
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
            local = [n.name for n in speakers if self.peerings.selects(bgp_peer, n)]
            for a in local:
                for b in remote:
                    if a != b:
                        adjacency.setdefault(a, set()).add(b)
                        adjacency.setdefault(b, set()).add(a)
        self._adjacencies[version] = adjacency
        return adjacency


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
