"""The mesh half of the Calico export model: what each node sends the others over the
node-to-node mesh and its peerings, and what reaches a node from them.

``MeshExports`` adds to ``NodeExports`` (the per-node export decisions): ``mesh_out`` (what a node
sends, kept per node: every other node and every filter-less outside peer sees exactly that), the
neighbours a node learns from (``bgp_neighbours``, ``mesh_senders``), the copies relayed through a
mesh of several AS (``mesh_transit``), and ``export_screen``, which decides Calico's export filter
once per sent list for every node that owns none of its blocks. ``advertise`` builds the per-peer
view on top.
"""

from __future__ import annotations

from collections.abc import Iterator

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.net.selector import parse_selector
from bgpflat.core.routes.cluster import ClusterState, NodeInfo
from bgpflat.core.routes.expected import BLOCK, SERVICE_RANGE, ModelOptions, Why
from bgpflat.core.routes.node_routes import NO_COMMUNITIES, Candidate, Communities, NodeExports
from bgpflat.errors import SpecError

# ``export_screen``: a route surely leaves nodes with the exclude-from-load-balancers label, the others.
PASSES_EXCLUDED = 1
PASSES_OTHERS = 2

# A node as its neighbours' sessions see it: what it sends over the mesh, its AS, and — when
# Calico's export filter lets none of that out of a node owning none of its blocks — the nodes
# that own one (None: some of it may pass anywhere).
Sender = tuple[list[Candidate], int, frozenset[str] | None]


class MeshExports(NodeExports):
    """``NodeExports`` and the node-to-node mesh between the nodes."""

    def __init__(self, cluster: ClusterState, options: ModelOptions) -> None:
        super().__init__(cluster, options)
        self._mesh_out: dict[tuple[str, int], list[Candidate]] = {}
        # Host routes some node has of its own: a learned route matching none of these, no range
        # and no pool is refused on every node (``export_screen``).
        self._some_node_hosts = frozenset(host for hosts in self.services.by_node.values() for host, _, _ in hosts)
        self._mesh_out_ids: set[int] = set()
        self._screens: dict[int, tuple[list[Candidate], tuple[list[tuple[Candidate, int]], frozenset[str]]]] = {}
        self._speakers: dict[int, list[NodeInfo]] = {}
        self._several_as: dict[int, bool] = {}
        self._senders: dict[int, dict[str, Sender]] = {}
        self._mesh_senders: dict[int, list[tuple[str, Sender]]] = {}
        self._adjacencies: dict[int, dict[str, set[str]]] = {}

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
                yield block, block_why, "", add_communities(node, block, NO_COMMUNITIES) if index else NO_COMMUNITIES
        if not node.excluded_from_load_balancers:
            for prefix, setting in self.services.ranges:
                if prefix.version == version and self.range_ok(prefix):
                    communities = add_communities(node, prefix, NO_COMMUNITIES) if index else NO_COMMUNITIES
                    yield prefix, Why(SERVICE_RANGE, name, detail=setting), "", communities
        for prefix, why, interface, _, _, _ in self.local_candidates(
            node, version, with_own_workloads=False, shortcut=True
        ):
            if self.calico_export(node, prefix):
                communities = add_communities(node, prefix, NO_COMMUNITIES) if index else NO_COMMUNITIES
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
        if not self.cluster.mesh_enabled or not self.several_as(version):
            return [], []  # one AS: iBGP only, nothing is relayed (the full mesh is every speaker)
        node_as = self.cluster.node_as(node)
        speakers = self.bgp_neighbours(node, version)
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

    def mesh_senders(self, node: NodeInfo, version: int) -> list[Sender]:
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

    def _sender(self, node: NodeInfo, version: int, known: dict[str, Sender]) -> Sender:
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
