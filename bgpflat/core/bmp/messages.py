"""BMP (RFC 7854, RFC 9069 Loc-RIB) messages: framing a byte stream and decoding each message (pure).

A router's BMP session is a one-way TCP stream of messages, each with a 6-byte common header
(version 3, length, type). ``Framer`` cuts the stream into messages without trusting it: a wrong
version, a length below the header or above ``MAX_MESSAGE`` is a ``BmpError``, after which the
stream cannot be resynchronised and the station drops that router. ``decode`` turns one message
into a value; the BGP messages inside are decoded by ``core.bmp.update``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bgpflat.core.bmp.policies import LOC_RIB, POST_POLICY, PRE_POLICY
from bgpflat.core.bmp.update import BmpError, OpenMessage, decode_open, split_pdu
from bgpflat.core.net.prefixes import format_address

VERSION = 3
HEADER = 6
PER_PEER = 42
# A BGP message is at most 65535 bytes (RFC 8654); with BMP's headers and TLVs, 1 MiB is far
# beyond any honest message and small enough that a broken length cannot make us buffer gigabytes.
MAX_MESSAGE = 1 << 20

ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP, INITIATION, TERMINATION, ROUTE_MIRRORING = range(7)
MESSAGE_NAMES = {
    ROUTE_MONITORING: "route-monitoring",
    STATISTICS: "statistics",
    PEER_DOWN: "peer-down",
    PEER_UP: "peer-up",
    INITIATION: "initiation",
    TERMINATION: "termination",
    ROUTE_MIRRORING: "route-mirroring",
}

# Per-peer header: peer types and flags (RFC 7854 §4.2, RFC 8671, RFC 9069).
LOC_RIB_PEER = 3
FLAG_V6, FLAG_POST, FLAG_2OCTET, FLAG_OUT = 0x80, 0x40, 0x20, 0x10


_INFO_NAMES = {0: "string", 1: "sys_descr", 2: "sys_name"}
_TERMINATION_REASONS = {
    0: "administratively closed",
    1: "unspecified reason",
    2: "out of resources",
    3: "redundant connection",
    4: "permanently administratively closed",
}
PEER_DOWN_REASONS = {
    1: "local system closed the session with a NOTIFICATION",
    2: "local system closed the session without a NOTIFICATION",
    3: "remote system closed the session with a NOTIFICATION",
    4: "remote system closed the session without a NOTIFICATION",
    5: "peer de-configured",
    6: "Loc-RIB instance no longer monitored",
}
STAT_NAMES = {
    0: "prefixes rejected by inbound policy",
    1: "duplicate prefix advertisements",
    2: "duplicate withdraws",
    3: "updates invalidated due to CLUSTER_LIST loop",
    4: "updates invalidated due to AS_PATH loop",
    5: "updates invalidated due to ORIGINATOR_ID",
    6: "updates invalidated due to AS_CONFED loop",
    7: "routes in Adj-RIB-In",
    8: "routes in Loc-RIB",
    9: "routes in per-AFI/SAFI Adj-RIB-In",
    10: "routes in per-AFI/SAFI Loc-RIB",
    11: "updates subjected to treat-as-withdraw",
    12: "prefixes subjected to treat-as-withdraw",
    13: "duplicate update messages",
    14: "routes in pre-policy Adj-RIB-Out",
    15: "routes in post-policy Adj-RIB-Out",
    16: "routes in per-AFI/SAFI pre-policy Adj-RIB-Out",
    17: "routes in per-AFI/SAFI post-policy Adj-RIB-Out",
}


@dataclass(frozen=True, slots=True)
class PeerHeader:
    """Which monitored peer, which table, and how its UPDATEs are encoded."""

    peer_type: int
    flags: int
    distinguisher: int
    address: str
    as_number: int
    bgp_id: str
    timestamp: float

    @property
    def policy(self) -> str:
        if self.peer_type == LOC_RIB_PEER:
            return LOC_RIB
        return POST_POLICY if self.flags & FLAG_POST else PRE_POLICY

    @property
    def adj_rib_out(self) -> bool:
        return self.peer_type != LOC_RIB_PEER and bool(self.flags & FLAG_OUT)

    @property
    def two_octet_as(self) -> bool:
        return self.peer_type != LOC_RIB_PEER and bool(self.flags & FLAG_2OCTET)

    @property
    def peer_key(self) -> tuple[int, int, str]:
        """The monitored peer, independent of the table: (peer type, distinguisher, address)."""
        return (self.peer_type, self.distinguisher, self.address)


@dataclass(frozen=True, slots=True)
class Initiation:
    info: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Termination:
    reason: str
    info: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class PeerUp:
    peer: PeerHeader
    local_address: str
    local_port: int
    remote_port: int
    # None where the router sent a bare OPEN header: FRR does when it holds no copy of a session's
    # OPEN (its "dummy open"), and the peer is up all the same.
    sent_open: OpenMessage | None
    received_open: OpenMessage | None


@dataclass(frozen=True, slots=True)
class PeerDown:
    peer: PeerHeader
    reason: str
    code: int


@dataclass(frozen=True, slots=True)
class RouteMonitoring:
    peer: PeerHeader
    update: memoryview  # the BGP UPDATE body; decoded with the peer's negotiated ADD-PATH


@dataclass(frozen=True, slots=True)
class Statistics:
    peer: PeerHeader
    counters: tuple[tuple[int, int], ...]  # (stat type, value); gauges and counters alike


@dataclass(frozen=True, slots=True)
class Skipped:
    """A message the station reads past (route mirroring, unknown types)."""

    kind: int


Message = Initiation | Termination | PeerUp | PeerDown | RouteMonitoring | Statistics | Skipped


class Framer:
    """Cuts a byte stream into whole BMP messages; keeps the tail until the rest arrives."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Messages completed by ``data`` (each with its common header); raises ``BmpError``."""
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        offset = 0
        while len(buffer) - offset >= HEADER:
            version = buffer[offset]
            (length,) = struct.unpack_from("!I", buffer, offset + 1)
            if version != VERSION:
                raise BmpError(f"BMP version {version}, not {VERSION}")
            if length < HEADER or length > MAX_MESSAGE:
                raise BmpError(f"BMP message length {length} outside {HEADER}..{MAX_MESSAGE}")
            if len(buffer) - offset < length:
                break
            out.append(bytes(buffer[offset : offset + length]))
            offset += length
        del buffer[:offset]
        return out


def _tlvs(data: memoryview, what: str) -> list[tuple[int, memoryview]]:
    out = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise BmpError(f"{what}: truncated TLV header")
        kind, length = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4 : offset + 4 + length]
        if len(value) < length:
            raise BmpError(f"{what}: TLV {kind} of {length} bytes, {len(value)} given")
        out.append((kind, value))
        offset += 4 + length
    return out


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", errors="replace")


def _info(data: memoryview, what: str) -> tuple[tuple[str, str], ...]:
    return tuple((_INFO_NAMES.get(kind, f"type {kind}"), _text(value)) for kind, value in _tlvs(data, what))


def _address(raw: memoryview, v6: bool) -> str:
    if v6:
        return format_address(6, int.from_bytes(raw, "big"))
    return format_address(4, int.from_bytes(raw[12:16], "big"))


def peer_header(view: memoryview) -> PeerHeader:
    if len(view) < PER_PEER:
        raise BmpError(f"per-peer header: {len(view)} byte(s), need {PER_PEER}")
    peer_type, flags, distinguisher = struct.unpack_from("!BBQ", view, 0)
    as_number, bgp_id, seconds, micros = struct.unpack_from("!IIII", view, 26)
    v6 = bool(flags & FLAG_V6) and peer_type != LOC_RIB_PEER
    return PeerHeader(
        peer_type=peer_type,
        flags=flags,
        distinguisher=distinguisher,
        address=_address(view[10:26], v6),
        as_number=as_number,
        bgp_id=format_address(4, bgp_id),
        timestamp=seconds + micros / 1e6,
    )


HeaderCache = dict[bytes, PeerHeader]


def decode(message: bytes, *, headers: HeaderCache | None = None) -> Message:
    """One framed message (as ``Framer.feed`` returns it) -> its value; raises ``BmpError``.

    ``headers`` (one per router) keeps decoded per-peer headers of Route Monitoring by their bytes
    up to the timestamp: a table dump repeats the same header for every prefix.
    """
    view = memoryview(message)
    if len(view) < HEADER:
        raise BmpError(f"BMP message of {len(view)} byte(s)")
    kind = view[5]
    body = view[HEADER:]
    name = MESSAGE_NAMES.get(kind, f"type {kind}")
    if kind == INITIATION:
        return Initiation(_info(body, "initiation"))
    if kind == TERMINATION:
        reason = "no reason given"
        info = []
        for tlv, value in _tlvs(body, "termination"):
            if tlv == 1 and len(value) == 2:
                code = struct.unpack_from("!H", value, 0)[0]
                reason = _TERMINATION_REASONS.get(code, f"reason {code}")
            else:
                info.append((_INFO_NAMES.get(tlv, f"type {tlv}"), _text(value)))
        return Termination(reason, tuple(info))
    if kind not in (ROUTE_MONITORING, STATISTICS, PEER_DOWN, PEER_UP):
        return Skipped(kind)
    if kind == ROUTE_MONITORING and headers is not None and len(body) >= PER_PEER:
        key = bytes(body[:34])
        peer = headers.get(key) or headers.setdefault(key, peer_header(body))
        if len(headers) > 4096:
            headers.clear()
    else:
        peer = peer_header(body)
    rest = body[PER_PEER:]
    if kind == ROUTE_MONITORING:
        pdu_type, update, tail = split_pdu(rest, name)
        if pdu_type != 2:
            raise BmpError(f"{name}: BGP message type {pdu_type}, not UPDATE")
        if len(tail):
            raise BmpError(f"{name}: {len(tail)} byte(s) after the UPDATE")
        return RouteMonitoring(peer, update)
    if kind == STATISTICS:
        if len(rest) < 4:
            raise BmpError(f"{name}: no count")
        counters = []
        for stat, value in _tlvs(rest[4:], name):
            if len(value) in (4, 8):
                counters.append((stat, int.from_bytes(value, "big")))
            elif stat in (9, 10, 16, 17) and len(value) == 11:  # per-AFI/SAFI gauges: afi, safi, u64
                counters.append((stat, int.from_bytes(value[3:], "big")))
        return Statistics(peer, tuple(counters))
    if kind == PEER_DOWN:
        if not len(rest):
            raise BmpError(f"{name}: no reason")
        code = rest[0]
        return PeerDown(peer, PEER_DOWN_REASONS.get(code, f"reason {code}"), code)
    if len(rest) < 20:
        raise BmpError(f"{name}: {len(rest)} byte(s), need 20 before the OPENs")
    local = _address(rest[:16], bool(peer.flags & FLAG_V6))
    local_port, remote_port = struct.unpack_from("!HH", rest, 16)
    opens = []
    tail = rest[20:]
    for which in ("sent OPEN", "received OPEN"):
        pdu_type, body_open, tail = split_pdu(tail, f"{name} {which}")
        if pdu_type != 1:
            raise BmpError(f"{name} {which}: BGP message type {pdu_type}, not OPEN")
        opens.append(decode_open(body_open) if body_open else None)
    _info(tail, name)  # checked for shape; their contents (RFC 9069 table name) are not kept
    return PeerUp(peer, local, local_port, remote_port, opens[0], opens[1])
