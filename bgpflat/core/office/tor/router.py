"""One router's view of the cluster: the BGPPeers that point at it, merged, for the vendor renderers.

Several BGPPeers may name the same ``peerIP`` (one per group of nodes); the router sees them as
one set of neighbours. Different ``peerIP``s are different routers, so a render covers one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgpflat.core.net.prefixes import Prefix, format_address, parse_address
from bgpflat.core.office.intent import CALICO_MULTIHOP_TTL, NodeSession, OfficeIntent, PeerIntent
from bgpflat.core.office.tor.bmp import BmpStation
from bgpflat.errors import SpecError


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbour:
    """One session as the router configures it."""

    address: str
    remote_as: int
    node: str
    peer: PeerIntent

    @property
    def external(self) -> bool:
        return self.remote_as != self.peer.as_number

    @property
    def multihop_ttl(self) -> int | None:
        """eBGP TTL when no GTSM is set: Calico's BIRD sends with TTL 64 (``multihop;``)."""
        if self.peer.ttl_security is not None or not self.external:
            return None
        return CALICO_MULTIHOP_TTL

    @property
    def password(self) -> str:
        return self.peer.password_placeholder


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterView:
    name: str  # the BGPPeer names, joined: used in filter names
    router_ip: str
    version: int
    as_number: int
    listen_port: int
    neighbours: tuple[Neighbour, ...]
    accepted: tuple[Prefix, ...]
    services: tuple[Prefix, ...]
    max_prefixes: int
    cluster_name: str | None
    # Same-AS nodes without the mesh learn each other's routes only through the router, which must
    # then reflect them (calico-facts §3.3, remedy c); otherwise nothing goes back to the nodes.
    reflect: bool = False
    bmp: BmpStation | None = None  # render tor --bmp: the BMP station the router streams to

    @property
    def ident(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name).upper()

    @property
    def multipath(self) -> int:
        """How many equal paths to install: each node advertises the service ranges (calico-facts §3.4)."""
        return len(self.neighbours) if len(self.neighbours) > 1 else 0

    @property
    def mixed_as(self) -> bool:
        """Nodes in different ASes: multipath must accept paths from different neighbouring ASes."""
        return len({n.remote_as for n in self.neighbours if n.external}) > 1

    @property
    def internal_multipath(self) -> bool:
        return any(not n.external for n in self.neighbours)

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(sorted({n.peer.node_port for n in self.neighbours}))

    @property
    def router_id(self) -> str:
        """The BGP identifier: the router's IPv4 address, or for an IPv6 router its low 32 bits.

        An IPv6-only router has no IPv4 address to borrow, and BIRD and FRR both need one; the
        low 32 bits of its peering address are unique wherever its addresses are.
        """
        if self.version == 4:
            return self.router_ip
        low = parse_address(self.router_ip)[1] & 0xFFFFFFFF
        return format_address(4, low)

    @property
    def host_length(self) -> int:
        return 32 if self.version == 4 else 128


def router_view(intent: OfficeIntent, *, peer: str | None = None) -> RouterView:
    """The router for BGPPeer ``peer`` (or the only router when the cluster peers with just one)."""
    if not intent.peers:
        raise SpecError(
            "no BGPPeer with a peerIP and asNumber in the spec or the cluster",
            path="peers",
            fix="add a peer (peerIP, asNumber, nodeSelector) to the spec, "
            "or point --snapshot/--kubeconfig at the cluster",
        )
    routers = sorted({p.peer_ip for p in intent.peers})
    if peer is not None:
        chosen = [p for p in intent.peers if p.name == peer or p.peer_ip == peer]
        if not chosen:
            known = ", ".join(f"{p.name} ({p.peer_ip})" for p in intent.peers)
            raise SpecError(f"no BGPPeer named {peer!r}", path="--peer", fix=f"use one of: {known}")
        router_ip = chosen[0].peer_ip
    elif len(routers) > 1:
        known = ", ".join(f"{p.name} ({p.peer_ip})" for p in intent.peers)
        raise SpecError(
            f"the BGPPeers point at {len(routers)} routers; a config is for one of them",
            path="--peer",
            fix=f"pass --peer with one of: {known}",
        )
    else:
        router_ip = routers[0]
    peers = [p for p in intent.peers if p.peer_ip == router_ip]
    as_numbers = sorted({p.as_number for p in peers})
    if len(as_numbers) > 1:
        raise SpecError(
            f"BGPPeers for {router_ip} disagree on its AS ({', '.join(map(str, as_numbers))})",
            path="peers",
            fix="give every BGPPeer of one router the same asNumber",
        )
    neighbours: dict[str, Neighbour] = {}
    for p in peers:
        for session in p.sessions:
            neighbours.setdefault(session.address, _neighbour(session, p))
    if not neighbours:
        names = ", ".join(p.name for p in peers)
        raise SpecError(
            f"BGPPeer {names} selects no node with a BGP address",
            path="peers",
            fix="check the peer's nodeSelector against the node labels, and that nodes carry "
            "the projectcalico.org/IPv4Address annotation (use --snapshot or --kubeconfig)",
        )
    version = peers[0].version
    accepted = tuple(p for p in intent.accepted_prefixes if p.version == version)
    return RouterView(
        name="-".join(p.name for p in peers),
        router_ip=router_ip,
        version=version,
        as_number=as_numbers[0],
        listen_port=peers[0].peer_port,
        neighbours=tuple(sorted(neighbours.values(), key=lambda n: (len(n.address), n.address))),
        accepted=accepted,
        services=tuple(p for p in intent.advertised_services if p.version == version),
        max_prefixes=intent.max_prefixes(peers[0]),
        cluster_name=intent.cluster_name,
        reflect=not intent.mesh_enabled and all(n.remote_as == as_numbers[0] for n in neighbours.values()),
    )


def _neighbour(session: NodeSession, peer: PeerIntent) -> Neighbour:
    return Neighbour(address=session.address, remote_as=session.as_number, node=session.node, peer=peer)


def header_lines(view: RouterView, *, vendor: str) -> list[str]:
    """The comment block every ToR config starts with (without the comment marker)."""
    cluster = f" of cluster {view.cluster_name}" if view.cluster_name else ""
    lines = [
        f"bgpflat render tor --vendor {vendor}: router {view.router_ip} (AS {view.as_number}), "
        f"BGPPeer {view.name}{cluster}",
        f"{len(view.neighbours)} neighbour(s), one per calico-node the BGPPeer selects.",
        "Accepted from the nodes: " + (", ".join(str(p) for p in view.accepted) or "nothing"),
    ]
    lines.append(
        f"Prefix limit {view.max_prefixes} per neighbour, warning only (logged, the session stays up): "
        "twice the blocks of the pools plus 100 per accepted range for /32s (Local services, borrowed IPs)."
    )
    if view.reflect:
        lines.append("Same AS and no node-to-node mesh: this router reflects the cluster routes between the nodes.")
    else:
        lines.append("Nothing is sent to the nodes: they need no office routes to answer the office.")
    if any(n.peer.password for n in view.neighbours):
        lines.append("Replace CHANGE-ME-<secret>-<key> with the password in that Kubernetes Secret.")
    if view.version == 6:
        lines.append(f"Router ID {view.router_id} comes from the low 32 bits of {view.router_ip}; change it if taken.")
    if view.listen_port != 179:
        lines.append(f"The nodes connect to port {view.listen_port}: make the BGP daemon listen there.")
    return lines


def filter_names(view: RouterView) -> tuple[str, str]:
    """(inbound, outbound) filter names; a reflector sends the nodes what it accepts from them."""
    inbound = f"BGPFLAT-{view.ident}-IN"
    return inbound, inbound if view.reflect else f"BGPFLAT-{view.ident}-OUT"
