"""The Calico export model: which routes each node sends to one outside BGP peer (calico-facts §3, §6).

For every node N that a BGPPeer makes peer with the outside address P:

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
from typing import NamedTuple

from bgpflat.core.advertise_node import ASSUMED_CALICO_VERSION, Candidate, NodeExports
from bgpflat.core.bgpfilter import ACCEPT, ExportRule, export_rules, first_match
from bgpflat.core.calico import BGPPeer
from bgpflat.core.cluster import ClusterState, NodeInfo
from bgpflat.core.expected import (
    FILTER_ACCEPT,
    MESH,
    REFLECTED,
    ExpectedRoutes,
    ModelOptions,
    OutsidePeer,
    SessionExpectation,
    Why,
)
from bgpflat.core.prefixes import Prefix, canonical_address, parse_address
from bgpflat.core.routes import (
    Route,
    RouteTable,
    address_sort_key,
)
from bgpflat.errors import SpecError

__all__ = ["ASSUMED_CALICO_VERSION", "AdvertisementModel", "expected_routes", "expected_routes_for_peers"]


class _Session(NamedTuple):
    node: NodeInfo
    address: str
    bgp_peer: BGPPeer
    local_as: int
    peer_as: int


def expected_routes(
    *, cluster: ClusterState, peer: OutsidePeer | str, options: ModelOptions | None = None
) -> ExpectedRoutes:
    """The routes ``peer`` should learn from the cluster, each with the reason it is expected."""
    return AdvertisementModel(cluster, options or ModelOptions()).expected_routes(peer)


class AdvertisementModel(NodeExports):
    """Cluster-wide indexes for the export model; ``expected_routes(peer)`` per outside peer."""

    # -- per peer -------------------------------------------------------------------------------

    def sessions(self, peer: OutsidePeer) -> tuple[list[_Session], list[str]]:
        """The nodes that peer with ``peer``, and notes about nodes that cannot or are skipped."""
        version, _ = parse_address(peer.address)
        target = canonical_address(peer.address)
        notes: list[str] = []
        matching = [p for p in self.cluster.peers if p.peer_ip and canonical_address(p.peer_ip) == target]
        if not matching and peer.as_number is not None:
            # No BGPPeer yet: predict the view of a global peer with the given AS.
            matching = [BGPPeer(name="(assumed global peer)", peer_ip=target, as_number=peer.as_number)]
            notes.append(f"no BGPPeer has peerIP {target}; assuming a global peer with AS {peer.as_number}")
        if not matching:
            notes.append(f"no BGPPeer has peerIP {target}: no node peers with it")
            return [], notes
        # Global peers are rendered first and win over node-specific ones to the same address.
        ordered = sorted(matching, key=lambda p: (not p.is_global, p.name))
        chosen_for: dict[str, BGPPeer] = {}
        for bgp_peer in reversed(ordered):
            chosen_for.update(dict.fromkeys(self.selected_nodes(bgp_peer), bgp_peer))
        sessions: list[_Session] = []
        nodes = self.cluster.nodes
        for name in sorted(chosen_for):
            node, chosen = nodes[name], chosen_for[name]
            address = self.node_address(node, version)
            if not address:
                notes.append(f"{node.name} has no IPv{version} BGP address: it runs no session with {target}")
                continue
            if address == target:
                continue  # "Skipping ourselves"
            peer_as = peer.as_number if peer.as_number is not None else chosen.as_number
            if peer_as is None:
                raise SpecError(
                    f"the AS number of peer {target} is unknown",
                    path=f"BGPPeer {chosen.name}.spec.asNumber",
                    fix="give --peer-as",
                )
            local_as = self.cluster.node_as(node)
            if chosen.local_as_number is not None and self.calico >= (3, 31, 0):
                local_as = chosen.local_as_number
            sessions.append(_Session(node, address, chosen, local_as, peer_as))
        return sessions, notes

    def expected_routes(self, peer: OutsidePeer | str) -> ExpectedRoutes:
        if isinstance(peer, str):
            peer = OutsidePeer(address=peer)
        version, _ = parse_address(peer.address)
        sessions, notes = self.sessions(peer)
        reasons: dict[Route, tuple[Why, ...]] = {}
        get = reasons.get
        expectations: dict[str, SessionExpectation] = {}
        for session in sessions:
            expectation, paths = self._session_routes(session, version, notes)
            expectations[session.address] = expectation
            for route, why, _, _ in paths:
                # Identical paths (the node's own static and mesh copies, all next hop self)
                # are one route with several reasons.
                known = get(route)
                reasons[route] = (why,) if known is None else (*known, why)
        return ExpectedRoutes(
            peer=peer,
            table=RouteTable(reasons),
            reasons=reasons,
            sessions=expectations,
            calico_version=self.version_text,
            options=self.options,
            notes=tuple(dict.fromkeys([*self.notes, *notes])),
        )

    def _session_routes(
        self, session: _Session, version: int, notes: list[str]
    ) -> tuple[SessionExpectation, list[tuple[Route, Why, bool, str]]]:
        node, bgp_peer = session.node, session.bgp_peer
        ebgp = session.peer_as != session.local_as
        mode = bgp_peer.next_hop_mode if self.calico >= (3, 31, 0) else None
        if bgp_peer.next_hop_mode and mode is None:
            notes.append(f"BGPPeer {bgp_peer.name}: nextHopMode is ignored before Calico v3.31")
        # keepOriginalNextHop renders `next hop keep` only toward eBGP peers (calico#4164).
        keep_ebgp = mode == "Keep" or (mode in (None, "Auto") and bgp_peer.keep_original_next_hop)
        keep = keep_ebgp if ebgp else mode != "Self"
        rules = self._rules(bgp_peer, version, notes)
        expectation = SessionExpectation(
            session=session.address,
            node=node.name,
            bgp_peer=bgp_peer.name,
            local_as=session.local_as,
            peer_as=session.peer_as,
            ebgp=ebgp,
            next_hop_keep=keep,
            route_reflector=node.is_route_reflector,
            filters=bgp_peer.filters,
        )
        node_as = self.cluster.node_as(node)
        address = session.address
        local_path = (session.local_as,) if ebgp else ()
        # (route, why, learned?, origin address) — the last two rank paths when ADD-PATH is off.
        out: list[tuple[Route, Why, bool, str]] = []
        emit = out.append
        if rules:
            local = self.local_candidates(node, version, with_own_workloads=True)
        else:
            # Without filters the peer sees exactly what the node sends over the mesh: reuse it.
            local = self.mesh_out(node, version)
            for candidate in local:
                communities = candidate.communities
                emit(
                    (
                        Route(candidate.prefix, address, address, local_path, "igp", communities[0], communities[1]),
                        candidate.why,
                        False,
                        address,
                    )
                )
            local = []
        node_communities = bool(self.communities(node))
        learned_sets: list[tuple[list[Candidate], str, bool]] = []
        for other in self.bgp_neighbours(node, version):
            mesh_ibgp = self.cluster.node_as(other) == node_as
            if not ebgp and mesh_ibgp and not node.is_route_reflector:
                continue  # BIRD never passes iBGP-learned routes to another iBGP peer
            path = REFLECTED if (not ebgp and node.is_route_reflector) else MESH
            learned_sets.append((self.mesh_out(other, version), path, mesh_ibgp))
        for candidate in local:
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
        for candidates, path, mesh_ibgp in learned_sets:
            for candidate in candidates:
                why = candidate.why._replace(path=path)
                as_path = local_path if mesh_ibgp else local_path + candidate.as_tail
                next_hop = candidate.origin_address if keep else address
                if rules:
                    self._through_filters(
                        candidate,
                        rules,
                        node,
                        version,
                        emit,
                        address=address,
                        as_path=as_path,
                        next_hop=next_hop,
                        why=why,
                        learned=True,
                    )
                    continue
                prefix = candidate.prefix
                if not self.calico_export(node, prefix):
                    continue
                communities = (
                    self.add_communities(node, prefix, candidate.communities)
                    if node_communities
                    else candidate.communities
                )
                emit(
                    (
                        Route(prefix, next_hop, address, as_path, "igp", communities[0], communities[1]),
                        why,
                        True,
                        candidate.origin_address,
                    )
                )
        if self.options.add_path:
            return expectation, out
        # Best path only: the node's own route first (static/kernel beat BGP), then the copy
        # from the lowest router ID (the node address) — BIRD's final tie-breaker.
        best: dict[Prefix, tuple[Route, Why, bool, str]] = {}
        for item in out:
            current = best.get(item[0].prefix)
            if current is None or (item[2], address_sort_key(item[3])) < (current[2], address_sort_key(current[3])):
                best[item[0].prefix] = item
        return expectation, list(best.values())

    def _through_filters(
        self,
        candidate: Candidate,
        rules: tuple[ExportRule, ...],
        node: NodeInfo,
        version: int,
        emit: Callable[[tuple[Route, Why, bool, str]], None],
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
        return export_rules(found, version=version, calico=self.calico)


def expected_routes_for_peers(
    *, cluster: ClusterState, peers: Iterable[OutsidePeer], options: ModelOptions | None = None
) -> list[ExpectedRoutes]:
    """Expected routes for several outside peers, sharing the cluster indexes."""
    model = AdvertisementModel(cluster, options or ModelOptions())
    return [model.expected_routes(peer) for peer in peers]
