"""The Calico export model: which routes each node sends to one outside BGP peer (calico-facts §3, §6).

For every node N that peers with the outside address P (which, with which AS and next-hop
settings: ``sessions``, the one statement of that rule):

1. N's candidates: static blackholes of its confirmed blocks, kernel /32s of its workloads, its
   service statics (``advertise_services``), its direct subnet, and — over the node-to-node mesh
   or through route reflectors — what every other node M exports over the mesh.
2. BIRD's protocol rule first: a route learned over iBGP is never sent to an iBGP peer unless N is
   a route reflector (``bgp_import_control``).
3. The peer's BGPFilters, in order, first match wins (``bgpfilter``); an Accept skips step 4.
4. ``calico_export_to_bgp_peers``: reject inside disableBGPExport pools; communities from
   prefixAdvertisements (``node.<name>`` replaces ``default``); ``calico_aggr`` (a node's own
   confirmed block is accepted exactly and anything more specific inside it rejected); accept
   inside the node's service statics, inside serviceLoadBalancerIPs on route reflectors, inside
   any pool (disabled or not); reject the rest.
5. Next hop: the node's own address for its own routes; for learned routes, next hop self
   toward eBGP peers unless ``keepOriginalNextHop``/``nextHopMode: Keep``, and the original
   next hop toward iBGP peers unless ``nextHopMode: Self``. AS path: ``[local AS]`` toward eBGP
   peers, nothing toward iBGP peers, plus M's AS when the mesh session itself was eBGP.

``AdvertisementModel`` indexes the cluster once, so that many peers cost little more than one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bgpflat.core.calico import BGPPeer
from bgpflat.core.calico.bgpfilter import ACCEPT, ExportRule, export_rules, first_match
from bgpflat.core.net.prefixes import Prefix, parse_address
from bgpflat.core.routes.cluster import ASSUMED_CALICO_VERSION, ClusterState, NodeInfo
from bgpflat.core.routes.expected import (
    FILTER_ACCEPT,
    MESH,
    REFLECTED,
    ExpectedRoutes,
    ModelOptions,
    OutsidePeer,
    Reason,
    Reasons,
    SessionExpectation,
    Why,
)
from bgpflat.core.routes.mesh_routes import PASSES_EXCLUDED, PASSES_OTHERS, MeshExports
from bgpflat.core.routes.node_routes import Candidate
from bgpflat.core.routes.sessions import Session
from bgpflat.core.routes.table import (
    Route,
    RouteTable,
    address_sort_key,
    make_route,
)

__all__ = ["ASSUMED_CALICO_VERSION", "AdvertisementModel", "expected_routes", "expected_routes_for_peers"]


# A session's paths as two parallel lists, routes and their reasons: no tuple per path. A reason
# is a ``Why`` or, in the bulk paths, a plain tuple of its fields (see ``Reasons``).
_Paths = tuple[list[Route], list[Reason]]


def expected_routes(
    *, cluster: ClusterState, peer: OutsidePeer | str, options: ModelOptions | None = None
) -> ExpectedRoutes:
    """The routes ``peer`` should learn from the cluster, each with the reason it is expected."""
    return AdvertisementModel(cluster, options or ModelOptions()).expected_routes(peer)


class AdvertisementModel(MeshExports):
    """Cluster-wide indexes for the export model; ``expected_routes(peer)`` per outside peer."""

    def __init__(self, cluster: ClusterState, options: ModelOptions) -> None:
        super().__init__(cluster, options)
        # A node's routes toward filter-less peers that see it alike, kept once a second such
        # peer asks (peers usually see disjoint racks: keeping every node's lists would only
        # feed the garbage collector).
        self._own_paths: dict[tuple[str, int, str, tuple[int, ...]], _Paths] = {}
        self._own_asked: set[tuple[str, int, str, tuple[int, ...]]] = set()

    # -- per peer -------------------------------------------------------------------------------

    def expected_routes(self, peer: OutsidePeer | str) -> ExpectedRoutes:
        if isinstance(peer, str):
            peer = OutsidePeer(address=peer)
        version, _ = parse_address(peer.address)
        sessions, notes = self.peerings.sessions(peer)
        # Route -> its one reason, or a tuple of several (see ``Reasons``).
        reasons: dict[Route, Reason | tuple[Reason, ...]] = {}
        get = reasons.get
        # Identical paths (the node's own static and mesh copies, all next hop self) are one route
        # with several reasons, gathered here first: a service range every node exports reaches a
        # re-exporting node from each of thousands of others, and growing a tuple per copy would
        # cost the square of their number.
        several: dict[Route, list[Reason]] = {}
        expectations: dict[str, SessionExpectation] = {}
        for session in sessions:
            expectation, parts = self._session_routes(session, version, notes)
            expectations[session.address] = expectation
            for routes, whys in parts:
                for route, why in zip(routes, whys, strict=True):
                    known = get(route)
                    if known is None:
                        reasons[route] = why
                    else:
                        found = several.get(route)
                        if found is None:
                            several[route] = [known, why]  # type: ignore[list-item]
                        else:
                            found.append(why)
        for route, whys in several.items():
            reasons[route] = tuple(whys)  # the route keeps its place: its key is already there
        return ExpectedRoutes(
            peer=peer,
            table=RouteTable(reasons),
            reasons=Reasons(reasons),
            sessions=expectations,
            calico_version=self.version_text,
            options=self.options,
            notes=tuple(dict.fromkeys([*self.notes, *notes])),
        )

    def _own_routes(self, node: NodeInfo, version: int, address: str, as_path: tuple[int, ...]) -> _Paths:
        """The node's mesh exports as routes on its session with an outside peer without filters.

        Peers that see a node alike (same session address and AS path: typically the two ToRs of
        a rack, or every iBGP peer) share one list of routes from the second such peer on.
        """
        key = (node.name, version, address, as_path)
        found = self._own_paths.get(key)
        if found is None:
            routes: list[Route] = []
            whys: list[Reason] = []
            add_route, add_why = routes.append, whys.append
            route = Route
            for prefix, why, _, (communities, large) in self.mesh_exports(node, version):
                add_route(route(prefix, address, address, as_path, "igp", communities, large))
                add_why(tuple(why))  # type: ignore[arg-type]
            found = (routes, whys)
            if key in self._own_asked:
                self._own_paths[key] = found
            else:
                self._own_asked.add(key)
        return found

    def _session_routes(
        self, session: Session, version: int, notes: list[str]
    ) -> tuple[SessionExpectation, list[_Paths]]:
        """The session's expectation and its paths, as (routes, reasons) lists in table order."""
        node, bgp_peer = session.node, session.bgp_peer
        ebgp = session.ebgp
        keep = session.next_hop_keep
        rules = self._rules(bgp_peer, version, notes)
        expectation = SessionExpectation(
            session=session.address,
            node=node.name,
            bgp_peer=bgp_peer.name,
            local_as=session.local_as,
            peer_as=session.known_peer_as,
            ebgp=ebgp,
            next_hop_keep=keep,
            route_reflector=node.is_route_reflector,
            filters=bgp_peer.filters,
        )
        node_as = self.cluster.node_as(node)
        address = session.address
        local_path = (session.local_as,) if ebgp else ()
        reflects = session.reflects
        path = REFLECTED if reflects else MESH
        # (candidates, path, learned over iBGP?) per neighbour; BIRD never passes iBGP-learned
        # routes to another iBGP peer, unless it reflects them. Without BGPFilters, a neighbour
        # whose routes Calico's export filter keeps on every node but their owners is left out here.
        name = node.name
        learned_sets: list[tuple[list[Candidate], str, bool]] = []
        if ebgp or reflects or self.several_as(version):  # else every neighbour is an iBGP one
            learned_sets = [
                (candidates, path, other_as == node_as)
                for candidates, other_as, silent in self.mesh_senders(node, version)
                if (ebgp or reflects or other_as != node_as) and (rules or silent is None or name in silent)
            ]
        add_path = self.options.add_path
        if add_path:
            # Without ADD-PATH the peer gets the best path, never one relayed through another AS
            # (a longer AS path than the direct copy).
            over_ebgp, over_ibgp = self.mesh_transit(node, version)
            if over_ebgp:
                learned_sets.append((over_ebgp, MESH, False))
            if over_ibgp and ebgp:  # iBGP-learned: never to an iBGP peer; ``as_tail`` is the path held
                learned_sets.append((over_ibgp, MESH, False))
        if not rules and add_path:
            # The common case, kept free of per-route tuples beyond the routes themselves:
            # without filters the peer sees exactly what the node sends over the mesh.
            parts = [self._own_routes(node, version, address, local_path)]
            if learned_sets:
                parts.append(self._learned_routes(node, learned_sets, address, local_path, keep))
            return expectation, parts
        # (route, why, learned?, origin address) — the last two rank paths when ADD-PATH is off.
        out: list[tuple[Route, Reason, bool, str]] = []
        emit = out.append
        if rules:
            for candidate in self.local_candidates(node, version, with_own_workloads=True):
                self._through_filters(
                    candidate,
                    rules,
                    node,
                    version,
                    emit,
                    address=address,
                    as_path=local_path,
                    next_hop=address,
                    why=candidate.why,
                    learned=False,
                )
        else:
            routes, whys = self._own_routes(node, version, address, local_path)
            out.extend((route, why, False, address) for route, why in zip(routes, whys, strict=True))
        for candidates, path, mesh_ibgp in learned_sets:
            if not rules:
                origins: list[str] = []
                routes, whys = self._learned_routes(
                    node, [(candidates, path, mesh_ibgp)], address, local_path, keep, origins=origins
                )
                out.extend(zip(routes, whys, [True] * len(routes), origins, strict=True))
                continue
            for candidate in candidates:
                self._through_filters(
                    candidate,
                    rules,
                    node,
                    version,
                    emit,
                    address=address,
                    as_path=local_path if mesh_ibgp else local_path + candidate.as_tail,
                    next_hop=candidate.origin_address if keep else address,
                    why=candidate.why._replace(path=path),
                    learned=True,
                )
        if add_path:
            return expectation, [([item[0] for item in out], [item[1] for item in out])]
        # Best path only: the node's own route first (static/kernel beat BGP), then the copy
        # from the lowest router ID (the node address) — BIRD's final tie-breaker.
        best: dict[Prefix, tuple[Route, Reason, bool, str]] = {}
        for item in out:
            current = best.get(item[0].prefix)
            if current is None or (item[2], address_sort_key(item[3])) < (current[2], address_sort_key(current[3])):
                best[item[0].prefix] = item
        chosen = list(best.values())
        return expectation, [([item[0] for item in chosen], [item[1] for item in chosen])]

    def _learned_routes(
        self,
        node: NodeInfo,
        learned_sets: list[tuple[list[Candidate], str, bool]],
        address: str,
        local_path: tuple[int, ...],
        keep: bool,
        *,
        origins: list[str] | None = None,
    ) -> _Paths:
        """Routes ``node`` re-exports from other nodes to a peer without filters; ``origins``, if
        given, gets each route's original next hop (to rank paths when ADD-PATH is off)."""
        routes: list[Route] = []
        whys: list[Reason] = []
        add_route, add_why = routes.append, whys.append
        node_communities = bool(self.communities(node))
        calico_export = self.calico_export
        make = make_route  # tuple.__new__ in C: a named tuple's own __new__ is a Python call
        name = node.name
        surely = PASSES_EXCLUDED if node.excluded_from_load_balancers else PASSES_OTHERS
        for candidates, path, mesh_ibgp in learned_sets:
            screened, owners = self.export_screen(candidates)
            if name in owners:  # the node holds one of their blocks: ask about each candidate
                screened = [(candidate, 0) for candidate in candidates]
            for candidate, passes in screened:
                prefix = candidate.prefix
                if not passes & surely and not calico_export(node, prefix):
                    continue
                as_path = local_path if mesh_ibgp else local_path + candidate.as_tail
                next_hop = candidate.origin_address if keep else address
                communities = (
                    self.add_communities(node, prefix, candidate.communities)
                    if node_communities
                    else candidate.communities
                )
                add_route(make((prefix, next_hop, address, as_path, "igp", communities[0], communities[1], None)))
                rule, owner, _, detail = candidate.why
                add_why((rule, owner, path, detail))
                if origins is not None:
                    origins.append(candidate.origin_address)
        return routes, whys

    def _through_filters(
        self,
        candidate: Candidate,
        rules: tuple[ExportRule, ...],
        node: NodeInfo,
        version: int,
        emit: Callable[[tuple[Route, Reason, bool, str]], None],
        *,
        address: str,
        as_path: tuple[int, ...],
        next_hop: str,
        why: Why,
        learned: bool,
    ) -> None:
        """The peer's BGPFilters, then (on no match) Calico's own export filter."""
        prefix = candidate.prefix
        communities = candidate.communities
        verdict = first_match(rules, prefix, learned=learned, interface=candidate.interface)
        if verdict is not None:
            if verdict.action != ACCEPT:
                return
            why = why._replace(
                rule=FILTER_ACCEPT, detail=f"BGPFilter {verdict.filter_name} exportV{version}[{verdict.rule_index}]"
            )
        else:
            if not self.calico_export(node, prefix):
                return
            communities = self.add_communities(node, prefix, communities)
        emit(
            (
                Route(prefix, next_hop, address, as_path, "igp", communities[0], communities[1]),
                why,
                learned,
                candidate.origin_address if learned else address,
            )
        )

    def _rules(self, bgp_peer: BGPPeer, version: int, notes: list[str]) -> tuple[ExportRule, ...]:
        if not bgp_peer.filters:
            return ()
        if self.calico < (3, 26, 0):
            notes.append(f"BGPPeer {bgp_peer.name}: BGPFilters need Calico v3.26+; ignored")
            return ()
        found = []
        for name in bgp_peer.filters:
            bgp_filter = self.cluster.filters.get(name)
            if bgp_filter is None:
                notes.append(f"BGPPeer {bgp_peer.name} names BGPFilter {name!r}, which does not exist")
                continue
            found.append(bgp_filter)
        rules = export_rules(found, version=version, calico=self.calico)
        notes.extend(
            f"BGPFilter {rule.filter_name} exportV{version}[{rule.rule_index}]: with a prefixLength, BIRD compares "
            f"each route with a prefix set and never finds it equal, so {rule.operator} "
            f"{'always' if rule.operator == 'NotEqual' else 'never'} matches"
            for rule in rules
            if rule.compares_set
        )
        return rules


def expected_routes_for_peers(
    *, cluster: ClusterState, peers: Iterable[OutsidePeer], options: ModelOptions | None = None
) -> list[ExpectedRoutes]:
    """Expected routes for several outside peers, sharing the cluster indexes."""
    model = AdvertisementModel(cluster, options or ModelOptions())
    return [model.expected_routes(peer) for peer in peers]
