"""Which Calico nodes open a BGP session to an outside address, and how (calico-facts §1.2).

This is confd's peering rule, written once. The route model asks it which nodes speak to a peer
and what their sessions look like; the verification peer asks it which neighbours to expect,
each with its AS. Calico's source is the reference (confd ``client.go`` ``updatePeersV1`` and
the peer rendering of the bird templates / ``bgp_processor.go`` ``buildPeerFromData``):

* A BGPPeer with a ``peerIP`` applies to the nodes it selects: ``spec.node`` names one,
  ``spec.nodeSelector`` matches labels, neither makes it a global peer (every node).
  ``peerSelector`` and ``localWorkloadSelector`` BGPPeers make sessions between nodes or with
  workloads, never one to an outside address.
* confd keys a peering by (peer IP, port) and emits every global BGPPeer first: a node-specific
  BGPPeer to an (IP, port) a global one already has is dropped on every node. Between two
  BGPPeers of the same kind to the same key the first emitted stays; confd walks a Go map, so
  which one is not fixed. bgpflat takes the first by name and says so in a note.
* A node without a BGP address in the peer's family runs no session with it; a node whose own
  address is the peer address skips itself ("Skipping ourselves").
* The node speaks from its BGP address (``sourceAddress: UseNodeIP``, the default) with its local
  AS: the BGPPeer's ``localASNumber`` (v3.31+), else the node's AS (``projectcalico.org/ASNumber``
  / ``spec.bgp.asNumber``), else the default BGPConfiguration's ``asNumber``, else 64512. The
  peer AS is the BGPPeer's ``asNumber``.
* Next hop of routes the node learned from other nodes: ``nextHopMode`` (v3.31+) ``Keep`` keeps
  and ``Self`` rewrites; otherwise ``keepOriginalNextHop`` keeps only toward eBGP peers
  (calico#4164), and BIRD's defaults apply (self toward eBGP, kept toward iBGP).
* A ``reachableBy`` gateway of the other address family makes confd drop the BGPPeer.

``Peerings`` indexes a cluster once (BGPPeers by address, selections per label set) so that many
outside peers, or the peer-selector mesh of the route model, cost little more than one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgpflat.core.calico import BGPPeer
from bgpflat.core.net.prefixes import canonical_address, parse_address
from bgpflat.core.net.selector import Selector, parse_selector
from bgpflat.core.routes.cluster import ClusterState, NodeInfo, calico_version
from bgpflat.core.routes.expected import OutsidePeer
from bgpflat.errors import SpecError

__all__ = ["Peerings", "Session", "sessions"]

# The name the model gives the BGPPeer it assumes when none exists yet (``OutsidePeer.as_number``).
ASSUMED_PEER = "(assumed global peer)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One BGP session a Calico node opens to the outside address ``peer_address``."""

    node: NodeInfo
    address: str  # the node's BGP address: the session's source, as the peer sees it
    peer_address: str
    bgp_peer: BGPPeer  # the BGPPeer whose settings the node renders
    why: str  # why this BGPPeer, for people
    local_as: int
    peer_as: int | None  # None: neither the BGPPeer nor the caller gives it
    next_hop_mode: str | None  # nextHopMode as this Calico version honours it (None before v3.31)
    shadowed: tuple[str, ...] = ()  # BGPPeers to the same address Calico drops on this node

    @property
    def known_peer_as(self) -> int:
        if self.peer_as is None:
            raise SpecError(
                f"the AS number of peer {self.peer_address} is unknown",
                path=f"BGPPeer {self.bgp_peer.name}.spec.asNumber",
                fix="give --peer-as",
            )
        return self.peer_as

    @property
    def ebgp(self) -> bool:
        return self.known_peer_as != self.local_as

    @property
    def reflects(self) -> bool:
        """The node is a route reflector and the peer, iBGP without its cluster ID, its client."""
        return self.node.is_route_reflector and not self.ebgp

    @property
    def next_hop_keep(self) -> bool:
        """Routes learned from other nodes keep their original next hop (else: next hop self)."""
        mode = self.next_hop_mode
        if self.ebgp:
            return mode == "Keep" or (mode in (None, "Auto") and self.bgp_peer.keep_original_next_hop)
        return mode != "Self"


def sessions(
    cluster: ClusterState, peer: OutsidePeer | str, *, calico: str | None = None
) -> tuple[tuple[Session, ...], tuple[str, ...]]:
    """The sessions Calico nodes open to ``peer``, by node name, and notes for the user.

    ``calico`` is the Calico version to follow (default: the cluster's ClusterInformation).
    """
    _, parsed, _ = calico_version(calico or cluster.calico_version)
    found, notes = Peerings(cluster, parsed).sessions(peer)
    return tuple(found), tuple(notes)


class Peerings:
    """BGPPeer selection over one cluster, for one Calico version (a ``(major, minor, patch)``)."""

    def __init__(self, cluster: ClusterState, calico: tuple[int, int, int]) -> None:
        self.cluster = cluster
        self.calico = calico
        # Nodes grouped by identical label sets: a selector is evaluated once per group (racks of
        # nodes often share every label), not once per node and BGPPeer.
        self._label_groups: dict[tuple[tuple[str, str], ...], list[NodeInfo]] = {}
        for info in cluster.nodes.values():
            self._label_groups.setdefault(tuple(sorted(info.labels.items())), []).append(info)
        self._selectors: dict[str, Selector] = {}
        self._selected: dict[str, frozenset[str]] = {}
        self._by_address: dict[str, list[BGPPeer]] | None = None

    # -- selection ------------------------------------------------------------------------------

    def selects(self, bgp_peer: BGPPeer, node: NodeInfo) -> bool:
        """Does this BGPPeer make ``node`` peer (global, ``node`` or ``nodeSelector``)?"""
        if bgp_peer.node:
            return bgp_peer.node == node.name
        text = bgp_peer.node_selector
        if not text:
            return True
        try:
            selector = self._selectors.get(text)
            if selector is None:
                selector = self._selectors[text] = parse_selector(text)
            return selector.matches(node.labels)
        except SpecError as exc:
            raise SpecError(exc.message, path=f"BGPPeer {bgp_peer.name}.spec.nodeSelector", fix=exc.fix) from None

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

    def pointing_at(self, address: str) -> list[BGPPeer]:
        """The BGPPeers whose ``peerIP`` is ``address`` (any port), by name."""
        if self._by_address is None:
            # Every BGPPeer's address parsed once, not once per outside peer asked.
            by_address: dict[str, list[BGPPeer]] = {}
            for bgp_peer in sorted(self.cluster.peers, key=lambda p: p.name):
                if bgp_peer.peer_ip and not bgp_peer.peer_selector and not bgp_peer.local_workload_selector:
                    by_address.setdefault(canonical_address(bgp_peer.peer_ip), []).append(bgp_peer)
            self._by_address = by_address
        return list(self._by_address.get(canonical_address(address), ()))

    # -- sessions -------------------------------------------------------------------------------

    def sessions(self, peer: OutsidePeer | str) -> tuple[list[Session], list[str]]:
        """The sessions Calico nodes open to ``peer`` (by node name), and notes for the user."""
        if isinstance(peer, str):
            peer = OutsidePeer(address=peer)
        version, _ = parse_address(peer.address)
        target = canonical_address(peer.address)
        notes: list[str] = []
        candidates = [p for p in self.pointing_at(target) if self._renders(p, version, notes)]
        if not candidates and peer.as_number is not None:
            # No BGPPeer yet: predict the view of a global peer with the given AS.
            candidates = [BGPPeer(name=ASSUMED_PEER, peer_ip=target, as_number=peer.as_number)]
            notes.append(f"no BGPPeer has peerIP {target}; assuming a global peer with AS {peer.as_number}")
        if not candidates:
            notes.append(f"no BGPPeer has peerIP {target}: no node peers with it")
            return [], notes
        chosen = self._chosen(candidates, target, notes)
        found: list[Session] = []
        nodes = self.cluster.nodes
        modern = self.calico >= (3, 31, 0)
        for name in sorted(chosen):
            node = nodes[name]
            bgp_peer, why, shadowed = chosen[name]
            address = node.bgp_address(version)
            if not address:
                notes.append(f"{node.name} has no IPv{version} BGP address: it runs no session with {target}")
                continue
            if address == target:
                continue  # "Skipping ourselves"
            local_as = self.cluster.node_as(node)
            if bgp_peer.local_as_number is not None and modern:
                local_as = bgp_peer.local_as_number
            found.append(
                Session(
                    node=node,
                    address=address,
                    peer_address=target,
                    bgp_peer=bgp_peer,
                    why=why,
                    local_as=local_as,
                    peer_as=peer.as_number if peer.as_number is not None else bgp_peer.as_number,
                    next_hop_mode=bgp_peer.next_hop_mode if modern else None,
                    shadowed=shadowed,
                )
            )
        return found, notes

    def _renders(self, bgp_peer: BGPPeer, version: int, notes: list[str]) -> bool:
        """Whether confd renders this BGPPeer at all on this Calico version (notes when it differs)."""
        if bgp_peer.reachable_by and parse_address(bgp_peer.reachable_by)[0] != version:
            notes.append(f"BGPPeer {bgp_peer.name}: reachableBy is not an IPv{version} address; Calico drops the peer")
            return False
        if self.calico < (3, 31, 0):
            for field, value in (("nextHopMode", bgp_peer.next_hop_mode), ("localASNumber", bgp_peer.local_as_number)):
                if value is not None:
                    notes.append(f"BGPPeer {bgp_peer.name}: {field} is ignored before Calico v3.31")
        return True

    def _chosen(
        self, candidates: list[BGPPeer], target: str, notes: list[str]
    ) -> dict[str, tuple[BGPPeer, str, tuple[str, ...]]]:
        """Node name -> (the BGPPeer it renders for ``target``, why, the BGPPeers dropped there)."""
        # confd's emit order: every global peering first, keyed (IP, port); then node-specific
        # ones, dropped where their key is taken (by a global peer, or by an earlier node peer).
        ordered = sorted(candidates, key=lambda p: (not p.is_global, p.name))
        taken: dict[tuple[str, int | None], BGPPeer] = {}  # (node, port) -> the BGPPeer emitted
        dropped: dict[str, list[str]] = {}  # node -> BGPPeers dropped there
        ties: dict[tuple[str, str], int] = {}  # (kept, dropped) of the same kind -> nodes
        shadowed_by_global: dict[str, set[str]] = {}  # node-specific BGPPeer -> global winners
        for bgp_peer in ordered:
            for name in sorted(self.selected_nodes(bgp_peer)):
                first = taken.setdefault((name, bgp_peer.peer_port), bgp_peer)
                if first is bgp_peer:
                    continue
                dropped.setdefault(name, []).append(bgp_peer.name)
                if first.is_global and not bgp_peer.is_global:
                    shadowed_by_global.setdefault(bgp_peer.name, set()).add(first.name)
                else:
                    ties[first.name, bgp_peer.name] = ties.get((first.name, bgp_peer.name), 0) + 1
        chosen: dict[str, tuple[BGPPeer, str, tuple[str, ...]]] = {}
        ports: dict[str, list[str]] = {}
        for (name, _), bgp_peer in taken.items():  # in emit order: the first is the one modelled
            ports.setdefault(name, []).append(bgp_peer.name)
            if name in chosen:
                continue
            why = _why(bgp_peer)
            shadowed = tuple(dropped.get(name, ()))
            if shadowed:
                why += f"; Calico drops BGPPeer {', '.join(shadowed)} to the same address here"
            chosen[name] = (bgp_peer, why, shadowed)
        for name, winners in shadowed_by_global.items():
            notes.append(
                f"BGPPeer {name} is dropped by Calico: global BGPPeer {', '.join(sorted(winners))} "
                f"already peers with {target}"
            )
        for (kept, lost), count in ties.items():
            notes.append(
                f"BGPPeers {kept} and {lost} both make {count} node(s) peer with {target}: Calico keeps "
                f"one of them, in no fixed order; expecting {kept}'s sessions"
            )
        for name, names in ports.items():
            if len(names) > 1:
                notes.append(
                    f"{name} runs {len(names)} sessions to {target} on different ports "
                    f"(BGPPeer {', '.join(names)}); expecting {names[0]}'s"
                )
        return chosen


def _why(bgp_peer: BGPPeer) -> str:
    if bgp_peer.is_global:
        return f"global BGPPeer {bgp_peer.name}"
    if bgp_peer.node:
        return f"BGPPeer {bgp_peer.name} (node {bgp_peer.node})"
    return f"BGPPeer {bgp_peer.name} (nodeSelector {bgp_peer.node_selector})"
