"""What the office-side renderers need to know, built once from a spec and the cluster's objects.

``OfficeIntent`` is the renderers' only input: the pod pools and service ranges the office must
reach, every BGPPeer with the node addresses it selects (one neighbour per node on the far side),
the office and VPN networks, the cluster DNS address and an optional forwarding node. It is built
from the *effective* Calico objects: what the spec asks for, laid over what the cluster (or a
snapshot) already has, i.e. the state after ``apply``. Every renderer is then a pure function of
this value, so the same inputs always print the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bgpflat.core.calico import BGPConfiguration, BGPPeer, IPPool, SecretKeyRef
from bgpflat.core.net.prefixes import Prefix, canonical_address, collapse, parse_address
from bgpflat.core.net.selector import parse_selector
from bgpflat.core.state.model import DesiredState, ObservedNode, ObservedState
from bgpflat.errors import SpecError

CLUSTER_DOMAIN = "cluster.local"
BGP_PORT = 179
# Calico renders every explicit peer as ``multihop`` without a number, which BIRD reads as a TTL
# of 64 (calico-facts §1.2/§3.3); the other side must accept that many hops.
CALICO_MULTIHOP_TTL = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSession:
    """One calico-node that a BGPPeer selects: the far side's neighbour."""

    node: str
    address: str  # the node's BGP address in the peer's address family
    as_number: int  # the node's AS (its own annotation, else the cluster default)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerIntent:
    """One BGPPeer seen from the router at ``peer_ip``."""

    name: str
    peer_ip: str
    version: int
    as_number: int  # the router's own AS (the BGPPeer's asNumber)
    sessions: tuple[NodeSession, ...]
    peer_port: int = BGP_PORT  # where the router listens (peerIP's port)
    node_port: int = BGP_PORT  # where the nodes listen (BGPConfiguration listenPort)
    ttl_security: int | None = None  # hops, when the BGPPeer sets ttlSecurity
    password: SecretKeyRef | None = None
    keeps_next_hop: bool = False

    @property
    def cluster_as_numbers(self) -> tuple[int, ...]:
        return tuple(sorted({s.as_number for s in self.sessions}))

    @property
    def internal(self) -> bool:
        """iBGP: every node shares the router's AS."""
        return self.cluster_as_numbers == (self.as_number,)

    @property
    def ident(self) -> str:
        """A name usable as an identifier in every vendor syntax (letters, digits, ``_``)."""
        return "".join(c if c.isalnum() else "_" for c in self.name)

    @property
    def password_placeholder(self) -> str:
        """Stands where the real password goes; names the Secret that holds it."""
        if self.password is None:
            return ""
        return f"CHANGE-ME-{self.password.name}-{self.password.key}".replace("_", "-").replace(".", "-")


@dataclass(frozen=True, slots=True, kw_only=True)
class ForwardingNode:
    """A node that forwards (and masquerades) office traffic into the cluster (scenarios A and C)."""

    name: str  # "" when only its address was given and no cluster state names it
    address: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.address})" if self.name else self.address


@dataclass(frozen=True, slots=True, kw_only=True)
class OfficeIntent:
    pools: tuple[Prefix, ...] = ()  # pod pools whose blocks reach the office (BGP export on)
    advertised_services: tuple[Prefix, ...] = ()  # service ranges the nodes advertise over BGP
    service_ranges: tuple[Prefix, ...] = ()  # every service range, advertised or not
    block_sizes: Mapping[Prefix, int] | None = None
    peers: tuple[PeerIntent, ...] = ()
    office: tuple[Prefix, ...] = ()
    vpn: tuple[Prefix, ...] = ()
    node_networks: tuple[Prefix, ...] = ()
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = CLUSTER_DOMAIN
    forwarding: ForwardingNode | None = None
    cluster_name: str | None = None
    mesh_enabled: bool = True

    @property
    def cluster_prefixes(self) -> tuple[Prefix, ...]:
        """Every range the office reaches: pools first, then service ranges; covered ones dropped."""
        return _outermost((*self.pools, *self.service_ranges))

    @property
    def accepted_prefixes(self) -> tuple[Prefix, ...]:
        """What a router may accept from the nodes: pools and advertised service ranges."""
        return _outermost((*self.pools, *self.advertised_services))

    def max_prefixes(self, peer: PeerIntent) -> int:
        """A maximum-prefix limit with room: every block, a /32 per pod in a borrowed block, services.

        The count a session can carry is every pool block plus /32s (borrowed IPs, per-service
        routes); a limit at twice the block count plus 100 per range trips on a leak (someone
        exporting a default-free table) but not on normal growth.
        """
        blocks = 0
        for pool in self.pools:
            if pool.version != peer.version:
                continue
            size = (self.block_sizes or {}).get(pool, pool.max_length)
            blocks += 1 << max(0, min(size, pool.max_length) - pool.length)
        ranges = sum(1 for p in self.accepted_prefixes if p.version == peer.version)
        return min(2 * blocks + 100 * max(1, ranges), 100_000)


def _outermost(prefixes: tuple[Prefix, ...]) -> tuple[Prefix, ...]:
    """In input order, without duplicates and without prefixes inside another one (one route covers them)."""
    out: list[Prefix] = []
    for prefix in prefixes:
        if prefix in out or any(other != prefix and other.contains(prefix) for other in prefixes):
            continue
        out.append(prefix)
    return tuple(out)


# --- building ------------------------------------------------------------------------------------


def effective_resources(
    *, desired: DesiredState | None, observed: ObservedState
) -> tuple[tuple[IPPool, ...], tuple[BGPPeer, ...], BGPConfiguration | None]:
    """The Calico objects as they will be after ``apply``: desired ones replace observed ones by name."""
    chosen: dict[tuple[str, str], Any] = {}
    for seen in observed.resources:
        if seen.kind not in ("IPPool", "BGPPeer", "BGPConfiguration"):
            continue
        try:
            chosen[(seen.kind, seen.name)] = seen.model()
        except SpecError:
            continue  # an observed object bgpflat cannot read is one the renderers cannot use either
    if desired is not None:
        for wanted in desired.resources:
            chosen[(wanted.kind, wanted.name)] = wanted
    pools = tuple(sorted((r for r in chosen.values() if isinstance(r, IPPool)), key=lambda r: r.name))
    peers = tuple(sorted((r for r in chosen.values() if isinstance(r, BGPPeer)), key=lambda r: r.name))
    default = chosen.get(("BGPConfiguration", "default"))
    return pools, peers, default if isinstance(default, BGPConfiguration) else None


def _node_address(node: ObservedNode, version: int) -> str | None:
    text = node.ipv4_address if version == 4 else node.ipv6_address
    if not text:
        return None
    try:
        return canonical_address(text.split("/", 1)[0])
    except SpecError:
        return None


def _selected(peer: BGPPeer, node: ObservedNode) -> bool:
    if peer.node:
        return peer.node == node.name
    if peer.node_selector:
        return parse_selector(peer.node_selector).matches(node.labels)
    return True


def peer_intent(peer: BGPPeer, *, nodes: Sequence[ObservedNode], config: BGPConfiguration | None) -> PeerIntent | None:
    """The router side of one BGPPeer; None for node-to-node peerings (peerSelector)."""
    if peer.peer_selector or not peer.peer_ip or peer.as_number is None:
        return None
    version, _ = parse_address(peer.peer_ip)
    default_as = config.effective_as_number if config else 64512
    sessions = []
    for node in nodes:
        address = _node_address(node, version)
        # calico-node skips a peer whose address is its own ("Skipping ourselves").
        if address is None or address == peer.peer_ip or not _selected(peer, node):
            continue
        node_as = peer.local_as_number or node.as_number or default_as
        sessions.append(NodeSession(node=node.name, address=address, as_number=node_as))
    return PeerIntent(
        name=peer.name,
        peer_ip=peer.peer_ip,
        version=version,
        as_number=peer.as_number,
        sessions=tuple(sorted(sessions, key=lambda s: (parse_address(s.address), s.node))),
        peer_port=peer.peer_port or BGP_PORT,
        node_port=config.effective_listen_port if config else BGP_PORT,
        ttl_security=peer.ttl_security,
        password=peer.password_secret,
        keeps_next_hop=peer.keeps_next_hop,
    )


def cluster_dns_addresses(objects: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The cluster IP(s) of ``kube-system/kube-dns`` (the name CoreDNS keeps for compatibility)."""
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") != "Service" or meta.get("namespace") != "kube-system" or meta.get("name") != "kube-dns":
            continue
        spec = obj.get("spec") or {}
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        return tuple(str(ip) for ip in ips if ip and ip != "None")
    return ()


def build_intent(
    *,
    desired: DesiredState | None,
    observed: ObservedState,
    objects: Iterable[Mapping[str, Any]] = (),
    cluster_dns: Sequence[str] = (),
    forwarding_node: str | None = None,
) -> OfficeIntent:
    """Everything the renderers need, from a spec (optional) and the cluster's objects."""
    objects = list(objects)
    pools, peers, config = effective_resources(desired=desired, observed=observed)
    exported = tuple(p for p in pools if not p.disable_bgp_export)
    advertised: list[Prefix] = []
    if config is not None:
        advertised.extend(config.service_cluster_ips)
        advertised.extend(config.service_external_ips)
        advertised.extend(config.service_load_balancer_ips)
    networks = desired.networks if desired is not None else None
    service_ranges = collapse([*advertised, *(networks.service_cluster_ip_range if networks else ())])
    intents = [peer_intent(p, nodes=observed.nodes, config=config) for p in peers]
    dns = tuple(canonical_address(a) for a in cluster_dns) or cluster_dns_addresses(objects)
    return OfficeIntent(
        pools=tuple(p.cidr for p in exported),
        advertised_services=tuple(collapse(list(advertised))),
        service_ranges=tuple(service_ranges),
        block_sizes={p.cidr: p.effective_block_size for p in exported},
        peers=tuple(i for i in intents if i is not None),
        office=networks.office if networks else (),
        vpn=networks.vpn if networks else (),
        node_networks=networks.nodes if networks else (),
        cluster_dns=dns,
        forwarding=_forwarding(forwarding_node, observed.nodes),
        cluster_name=desired.cluster.name if desired is not None and desired.cluster else None,
        mesh_enabled=config.mesh_enabled if config is not None else True,
    )


def _forwarding(value: str | None, nodes: Sequence[ObservedNode]) -> ForwardingNode | None:
    """``--via`` takes a node name (its address comes from the cluster) or ``NAME=IP`` or an IP."""
    if not value:
        return None
    name, _, address = value.partition("=")
    if address:
        return ForwardingNode(name=name, address=_address(address, "--via"))
    for node in nodes:
        if node.name == value and node.ipv4:
            return ForwardingNode(name=node.name, address=node.ipv4)
    known = ", ".join(n.name for n in nodes) or "none"
    try:
        address = canonical_address(value)
    except SpecError:
        raise SpecError(
            f"forwarding node {value!r} is neither a node with an address nor an IP address",
            path="--via",
            fix=f"use a node name (known: {known}), NAME=IP, or an IP address",
        ) from None
    # An address names its node (kubectl taint needs the name); with the cluster's nodes known, an
    # address none of them has is a typo, not a forwarding node.
    for node in nodes:
        if node.ipv4 == address:
            return ForwardingNode(name=node.name, address=address)
    if nodes:
        raise SpecError(
            f"no node has the address {address}",
            path="--via",
            fix=f"use a node name (known: {known}) or one of their addresses, or NAME=IP for a node outside "
            "the cluster",
        )
    return ForwardingNode(name="", address=address)


def _address(text: str, where: str) -> str:
    try:
        return canonical_address(text)
    except SpecError:
        raise SpecError(f"{text!r} is not an IP address", path=where, fix="write an IPv4 or IPv6 address") from None


def require(condition: bool, message: str, *, fix: str, path: str | None = None) -> None:
    """Raise a ``SpecError`` when a renderer lacks an input it cannot guess."""
    if not condition:
        raise SpecError(message, path=path, fix=fix)
