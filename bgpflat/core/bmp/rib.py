"""What one router told the station: its monitored peers and their tables (pure).

A ``RouterRib`` is fed the decoded messages of one BMP session, in order, and keeps per monitored
peer its Peer Up (both OPENs), its state, its statistics and, per table (pre-policy Adj-RIB-In,
post-policy Adj-RIB-In, Loc-RIB), the paths and the families whose End-of-RIB was seen. It starts
empty for every session: a router that reconnects sends its tables again (RFC 7854 §5), so nothing
from an earlier session may survive. Adj-RIB-Out (RFC 8671) messages are counted and not kept.

Routes come out as ``core.routes.table.Route`` with ``session`` = the monitored peer's address
(the node that sent them), so a table compares with the expected routes exactly like the
verification peer's. A Loc-RIB path names no sending peer (RFC 9069): its ``session`` is the node
whose path the router selected, the monitored peer whose post-policy (else pre-policy) table holds
the very same path, else the one whose address is its next hop, else the router's own address.

FRR quirks, checked against FRR 8.4 (bgpd_bmp.so) and its source:
- it writes Route Monitoring UPDATEs without ADD-PATH path identifiers even when ADD-PATH was
  negotiated with the monitored peer, so for a router whose Initiation names FRRouting the
  negotiated ADD-PATH is not applied;
- it encodes the AS path as if sending to the monitored peer: for an eBGP peer its own AS is
  prepended. The station removes that one leading AS again, so that the table shows what the peer
  sent (RFC 7854 §4.6: "as received");
- it sends End-of-RIB only at the end of the table dump of a new BMP session, never for a peer
  that comes up later, so a table from FRR counts as complete without one (``complete``);
  verify's settle time then decides when it has stopped changing.

GoBGP quirks, checked against GoBGP 3.10 (``[[bmp-servers]]``, ``route-monitoring-policy = "all"``)
and its source:
- End-of-RIB, likewise, only in the table dump of a new BMP session (pre-policy per monitored peer
  and family; post-policy only for a peer with paths in the RIB), never for a peer that comes up
  later, and never for its Loc-RIB: its tables count as complete without one, as FRR's do. Its
  Initiation names it by sys_name "GoBGP" (sys_descr is the bare version);
- its Loc-RIB instance (peer type 3, address 0.0.0.0, flags 0) sends no Peer Up, only Route
  Monitoring, and the station takes it as up from its first message;
- with ADD-PATH negotiated toward a monitored peer, only its live pre-policy messages (the peer's
  UPDATEs as received) carry path identifiers. What GoBGP encodes itself never does: post-policy,
  Loc-RIB and the pre-policy table dump, one path per message. A pre-policy message that reads as
  exactly one path without identifiers is taken as GoBGP's own (with them, an UPDATE as received
  reads as several paths or not at all: identifiers are small numbers, so their leading zero bytes
  read as /0 prefixes), and the dump's path without identifier stands for the prefix until the
  live feed names that prefix's paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.bmp.messages import (
    LOC_RIB_PEER,
    ROUTE_MONITORING,
    STAT_NAMES,
    HeaderCache,
    Initiation,
    Message,
    PeerDown,
    PeerHeader,
    PeerUp,
    RouteMonitoring,
    Skipped,
    Statistics,
    Termination,
    decode,
)
from bgpflat.core.bmp.policies import LOC_RIB, POLICIES, POST_POLICY, PRE_POLICY
from bgpflat.core.bmp.update import (
    FAMILY_NAMES,
    IPV4_UNICAST,
    MARKER,
    AttributeCache,
    Attributes,
    BmpError,
    OpenMessage,
    PathKey,
    Update,
    decode_update,
    prefixes,
)
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route

PeerKey = tuple[int, int, str]


@dataclass(slots=True)
class MonitoredPeer:
    """One monitored peer of one router, and its tables."""

    header: PeerHeader
    state: str = "up"
    since: float = 0.0
    reason: str = ""
    up: PeerUp | None = None
    add_path: frozenset[tuple[int, int]] = frozenset()
    strip_as: int | None = None
    tables: dict[str, dict[PathKey, Attributes]] = field(default_factory=dict)
    eor: dict[str, set[tuple[int, int]]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    updates: int = 0
    cache: AttributeCache = field(default_factory=dict, repr=False)

    def to_dict(self, *, complete_without_eor: bool = False) -> dict[str, Any]:
        header = self.header
        data: dict[str, Any] = {
            "peer": header.address,
            "peer_as": header.as_number,
            "peer_bgp_id": header.bgp_id,
            "peer_type": header.peer_type,
            "distinguisher": header.distinguisher,
            "state": self.state,
            "since": self.since,
            "updates": self.updates,
            "tables": {
                policy: {
                    "paths": len(paths),
                    # Without ADD-PATH every path is its prefix's only one: no set of 100,000
                    # prefixes each time a status is asked for (verify --wait polls it).
                    "prefixes": len({prefix for prefix, _ in paths}) if self.add_path else len(paths),
                    "eor": sorted(FAMILY_NAMES[f] for f in self.eor.get(policy, ())),
                    "complete": complete_without_eor or bool(self.eor.get(policy)),
                }
                for policy, paths in sorted(self.tables.items())
            },
            "statistics": dict(self.stats),
        }
        if self.reason:
            data["reason"] = self.reason
        if self.up is not None:
            data["local_address"] = self.up.local_address
            data["sent_open"] = _open_dict(self.up.sent_open)
            data["received_open"] = _open_dict(self.up.received_open)
        return data


@dataclass(slots=True)
class RouterRib:
    """The state one BMP session built. ``handle`` returns event records worth logging."""

    address: str
    sys_name: str = ""
    sys_descr: str = ""
    initiated: bool = False
    terminated: str = ""
    peers: dict[PeerKey, MonitoredPeer] = field(default_factory=dict)
    messages: int = 0
    skipped: int = 0
    # Messages taken in by ``ingest``, by BMP message type (the metrics' messages by type).
    by_type: dict[int, int] = field(default_factory=dict)
    # The router's own AS, from the first OPEN it sent; stands in for a Peer Up that lacks it.
    local_as: int | None = None
    headers: HeaderCache = field(default_factory=dict, repr=False)
    _fast: dict[bytes, tuple[dict[PathKey, Attributes], Attributes, MonitoredPeer]] = field(
        default_factory=dict, repr=False
    )

    def ingest(self, message: bytes) -> list[dict[str, Any]]:
        """Decode one framed message and apply it; raises ``BmpError`` on bad input.

        Same result as ``handle(decode(message))``, faster: a Route Monitoring message whose
        per-peer header and attributes were seen before, with plain IPv4 NLRI and nothing else,
        only has its NLRI read (``_ingest_fast``). That is nearly every message of a table dump
        from a router that sends one prefix per message, as FRR does.
        """
        kind = message[5]
        self.by_type[kind] = self.by_type.get(kind, 0) + 1
        if kind == ROUTE_MONITORING and self._ingest_fast(message):
            return []
        decoded = decode(message, headers=self.headers)
        if not isinstance(decoded, RouteMonitoring):
            self._fast.clear()  # Peer Up/Down replace peers and tables the entries point at
            return self.handle(decoded)
        self.messages += 1
        found = self._monitor(decoded)
        if found is not None:
            update, table, attributes, peer = found
            end = 71 + int.from_bytes(message[69:71], "big")
            eligible = (
                len(update.announced) == 1
                and not update.withdrawn
                and not update.end_of_rib
                and IPV4_UNICAST not in peer.add_path
                and message[67:69] == b"\0\0"
                and len(message) > end
            )
            if eligible:
                if len(self._fast) >= 4096:
                    self._fast.clear()
                self._fast[message[6:40] + message[69:end]] = (table, attributes, peer)
        return []

    def _ingest_fast(self, m: bytes) -> bool:
        """Apply a Route Monitoring message from the cache of ``ingest``; False: decode it fully.

        Byte offsets: common header 0-5, per-peer header 6-47 (timestamp 40-47), BGP marker
        48-63, length 64-65, type 66, withdrawn length 67-68, attribute length 69-70.
        """
        size = len(m)
        if size < 72 or m[66] != 2 or m[67] or m[68] or m[48:64] != MARKER:
            return False
        if int.from_bytes(m[64:66], "big") != size - 48:
            return False
        end = 71 + int.from_bytes(m[69:71], "big")
        if end >= size:
            return False
        entry = self._fast.get(m[6:40] + m[69:end])
        if entry is None:
            return False
        table, attributes, peer = entry
        self.messages += 1  # counted before the NLRI are read, as a message that fails there is
        if size - end == 5 and m[end] == 32:
            table[(Prefix(4, int.from_bytes(m[end + 1 :], "big"), 32), None)] = attributes
        else:
            for key in prefixes(memoryview(m)[end:], 4, False, "NLRI"):
                table[key] = attributes
        peer.updates += 1
        return True

    @property
    def is_frr(self) -> bool:
        """FRR, whose quirks (module docstring) the station undoes; its Initiation says so."""
        return self.sys_descr.startswith("FRRouting")

    @property
    def is_gobgp(self) -> bool:
        """GoBGP, whose quirks (module docstring) the station allows for; its default sys_name."""
        return self.sys_name == "GoBGP"

    @property
    def eor_in_dump_only(self) -> bool:
        """A router that sends End-of-RIB only in a new BMP session's table dump (FRR, GoBGP): its
        tables count as complete without one, and verify's settle time decides."""
        return self.is_frr or self.is_gobgp

    def handle(self, message: Message) -> list[dict[str, Any]]:
        """Apply one message; raises ``BmpError`` (from the UPDATE decoder) on bad input."""
        self.messages += 1
        if isinstance(message, RouteMonitoring):
            self._monitor(message)
            return []
        self._fast.clear()
        if isinstance(message, Initiation):
            info = dict(message.info)
            self.sys_name = info.get("sys_name", self.sys_name)
            self.sys_descr = info.get("sys_descr", self.sys_descr)
            self.initiated = True
            return [{"event": "initiation", "sys_name": self.sys_name, "sys_descr": self.sys_descr}]
        if isinstance(message, PeerUp):
            return [self._peer_up(message)]
        if isinstance(message, PeerDown):
            return [self._peer_down(message)]
        if isinstance(message, Statistics):
            peer = self._peer(message.peer)
            for stat, value in message.counters:
                peer.stats[STAT_NAMES.get(stat, f"type {stat}")] = value
            return []
        if isinstance(message, Termination):
            self.terminated = message.reason
            return [{"event": "termination", "reason": message.reason, "info": dict(message.info)}]
        assert isinstance(message, Skipped)
        self.skipped += 1
        return []

    def _peer(self, header: PeerHeader) -> MonitoredPeer:
        key = header.peer_key
        peer = self.peers.get(key)
        if peer is None:
            # Route Monitoring before Peer Up (Loc-RIB from some routers): decode without ADD-PATH.
            peer = self.peers[key] = MonitoredPeer(header=header, since=header.timestamp)
        return peer

    def _peer_up(self, message: PeerUp) -> dict[str, Any]:
        header = message.peer
        sent, received = message.sent_open, message.received_open
        if sent is not None and self.local_as is None:
            self.local_as = sent.as_number
        local_as = sent.as_number if sent is not None else self.local_as
        peer = MonitoredPeer(header=header, since=header.timestamp, up=message)
        if not self.is_frr and sent is not None and received is not None:
            peer.add_path = add_path_families(sent, received)
        if self.is_frr and header.policy != LOC_RIB and local_as is not None and header.as_number != local_as:
            peer.strip_as = local_as
        self.peers[header.peer_key] = peer  # a Peer Up starts the peer's tables afresh
        return {
            "event": "peer-up",
            "peer": header.address,
            "peer_as": header.as_number,
            "peer_type": header.peer_type,
            "sent_open": _open_dict(sent),
            "received_open": _open_dict(received),
        }

    def _peer_down(self, message: PeerDown) -> dict[str, Any]:
        peer = self._peer(message.peer)
        flushed = sum(len(table) for table in peer.tables.values())
        peer.state, peer.reason, peer.since = "down", message.reason, message.peer.timestamp
        peer.tables.clear()
        peer.eor.clear()
        return {"event": "peer-down", "peer": message.peer.address, "reason": message.reason, "flushed": flushed}

    def _monitor(
        self, message: RouteMonitoring
    ) -> tuple[Update, dict[PathKey, Attributes], Attributes, MonitoredPeer] | None:
        """Apply one Route Monitoring; returns what ``ingest`` may cache (the attributes of the
        last group as stored), None when nothing was kept."""
        header = message.peer
        if header.adj_rib_out:
            self.skipped += 1
            return None
        peer = self._peer(header)
        policy = header.policy
        add_path = peer.add_path
        update: Update | None = None
        if add_path and self.is_gobgp:
            if policy != PRE_POLICY:
                add_path = frozenset()
            else:
                update = _gobgp_own(message, header, peer)
        if update is None:
            update = decode_update(
                message.update, add_path=add_path, two_octet_as=header.two_octet_as, cache=peer.cache
            )
        peer.updates += 1
        table = peer.tables.get(policy)
        if table is None:
            table = peer.tables[policy] = {}
        for key in update.withdrawn:
            table.pop(key, None)
        if add_path:
            # Paths named by identifier replace the table dump's path without one (GoBGP).
            for prefix, _ in (*update.withdrawn, *(key for _, keys in update.announced for key in keys)):
                table.pop((prefix, None), None)
        strip = peer.strip_as
        stored: Attributes | None = None
        for attributes, keys in update.announced:
            if strip is not None and attributes.as_path[:1] == (strip,):
                attributes = Attributes(
                    attributes.next_hop,
                    attributes.as_path[1:],
                    attributes.origin,
                    attributes.communities,
                    attributes.large_communities,
                )
            for key in keys:
                table[key] = attributes
            stored = attributes
        if update.end_of_rib:
            peer.eor.setdefault(policy, set()).update(update.end_of_rib)
        return None if stored is None else (update, table, stored, peer)

    # -- reading --------------------------------------------------------------------------------

    def routes(self, *, peer: str | None = None, policy: str | None = None) -> list[tuple[str, str, Route]]:
        """(monitored peer, policy, route) for every path kept, filtered by peer and policy."""
        out = []
        sources: tuple[dict[tuple[Prefix, Attributes], str], dict[str, str]] | None = None
        for monitored in self.peers.values():
            address = monitored.header.address
            if peer is not None and address != peer:
                continue
            for table_policy, table in monitored.tables.items():
                if policy is not None and table_policy != policy:
                    continue
                if table_policy == LOC_RIB and sources is None:
                    sources = self._path_sources()
                for (prefix, path_id), a in table.items():
                    session = address
                    if sources is not None and table_policy == LOC_RIB:
                        paths, by_address = sources
                        session = paths.get((prefix, a)) or by_address.get(a.next_hop, self.address)
                    route = Route(
                        prefix, a.next_hop, session, a.as_path, a.origin, a.communities, a.large_communities, path_id
                    )
                    out.append((address, table_policy, route))
        return out

    def _path_sources(self) -> tuple[dict[tuple[Prefix, Attributes], str], dict[str, str]]:
        """Where a Loc-RIB path came from: (prefix, attributes) -> the monitored peer whose
        post-policy table (else pre-policy: post is what the router ranked, after an import policy
        that may rewrite attributes) holds that path; and the monitored peers by address, for a
        path found in neither (a router that streams Loc-RIB alone), by its next hop."""
        paths: dict[tuple[Prefix, Attributes], str] = {}
        by_address: dict[str, str] = {}
        for monitored in self.peers.values():
            if monitored.header.peer_type == LOC_RIB_PEER:
                continue
            address = monitored.header.address
            by_address[address] = address
            for policy in (PRE_POLICY, POST_POLICY):  # post last: it wins
                for (prefix, _), attributes in monitored.tables.get(policy, {}).items():
                    paths[(prefix, attributes)] = address
        return paths, by_address

    def to_dict(self) -> dict[str, Any]:
        return {
            "router": self.address,
            "sys_name": self.sys_name,
            "sys_descr": self.sys_descr,
            "initiated": self.initiated,
            "terminated": self.terminated or None,
            "messages": self.messages,
            "skipped": self.skipped,
            "peers": [p.to_dict(complete_without_eor=self.eor_in_dump_only) for p in self.peers.values()],
        }


def _gobgp_own(message: RouteMonitoring, header: PeerHeader, peer: MonitoredPeer) -> Update | None:
    """A GoBGP pre-policy message of one path without identifier (its own encoding: the table
    dump), else None: the peer's UPDATE as received, with the negotiated ADD-PATH."""
    try:
        plain = decode_update(message.update, two_octet_as=header.two_octet_as, cache=peer.cache)
    except BmpError:
        return None
    return plain if plain.paths + len(plain.withdrawn) == 1 else None


def _open_dict(message: OpenMessage | None) -> dict[str, object] | None:
    return message.to_dict() if message is not None else None


def add_path_families(sent: OpenMessage, received: OpenMessage) -> frozenset[tuple[int, int]]:
    """Families whose Adj-RIB-In NLRI carry path identifiers (RFC 7911 §4): the router offered to
    receive (the OPEN it sent) and the monitored peer offered to send (the OPEN it received)."""
    return frozenset(
        family for family in FAMILY_NAMES if sent.add_path_mode(family) & 1 and received.add_path_mode(family) & 2
    )


__all__ = ["POLICIES", "MonitoredPeer", "RouterRib", "add_path_families"]
