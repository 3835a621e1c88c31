"""BMP and BGP messages as bytes, for tests: what a router would send the station.

Written from RFC 7854, RFC 4271, RFC 4760 and RFC 7911 directly, independently of the decoder.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from bgpflat.core.net.prefixes import Prefix


def bmp(kind: int, body: bytes) -> bytes:
    return struct.pack("!BIB", 3, 6 + len(body), kind) + body


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value


def initiation(sys_name: str = "tor1", sys_descr: str = "FRRouting 8.4.4") -> bytes:
    return bmp(4, tlv(2, sys_name.encode()) + tlv(1, sys_descr.encode()))


def termination(reason: int = 0) -> bytes:
    return bmp(5, tlv(1, struct.pack("!H", reason)))


def per_peer(
    address: str,
    *,
    peer_as: int = 64512,
    bgp_id: str = "10.0.0.1",
    post: bool = False,
    loc_rib: bool = False,
    two_octet: bool = False,
) -> bytes:
    ip = ipaddress.ip_address(address)
    flags = (0x80 if ip.version == 6 else 0) | (0x40 if post else 0) | (0x20 if two_octet else 0)
    raw = ip.packed if ip.version == 6 else bytes(12) + ip.packed
    return (
        struct.pack("!BBQ", 3 if loc_rib else 0, 0 if loc_rib else flags, 0)
        + raw
        + struct.pack("!I", peer_as)
        + ipaddress.IPv4Address(bgp_id).packed
        + struct.pack("!II", 1_700_000_000, 0)
    )


def bgp(kind: int, body: bytes) -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(
    as_number: int, bgp_id: str, *, add_path: int = 0, families: Sequence[tuple[int, int]] = ((1, 1), (2, 1))
) -> bytes:
    caps = b"".join(struct.pack("!BBHBB", 1, 4, afi, 0, safi) for afi, safi in families)
    caps += struct.pack("!BBI", 65, 4, as_number)
    if add_path:
        caps += struct.pack("!BB", 69, 4 * len(families)) + b"".join(
            struct.pack("!HBB", afi, safi, add_path) for afi, safi in families
        )
    params = struct.pack("!BB", 2, len(caps)) + caps
    short_as = as_number if as_number < 65536 else 23456
    return bgp(1, struct.pack("!BHH4sB", 4, short_as, 90, ipaddress.IPv4Address(bgp_id).packed, len(params)) + params)


def peer_up(
    address: str,
    *,
    peer_as: int = 64512,
    router_as: int = 65000,
    router_add_path: int = 0,
    peer_add_path: int = 0,
    loc_rib: bool = False,
    bare_opens: bool = False,
) -> bytes:
    """``bare_opens``: both OPENs as a header without a body, as FRR sends when it kept no copy."""
    local = ipaddress.ip_address("10.0.0.254" if ":" not in address else "fd00::fe")
    raw = local.packed if local.version == 6 else bytes(12) + local.packed
    body = per_peer(address, peer_as=peer_as, loc_rib=loc_rib) + raw + struct.pack("!HH", 179, 40000)
    if bare_opens:
        return bmp(3, body + bgp(1, b"") + bgp(1, b""))
    body += open_message(router_as, "10.0.0.254", add_path=router_add_path)
    body += open_message(peer_as, "10.0.0.1", add_path=peer_add_path)
    return bmp(3, body)


def peer_down(address: str, reason: int = 4) -> bytes:
    return bmp(2, per_peer(address) + bytes([reason]))


def nlri(prefix: Prefix, path_id: int | None = None) -> bytes:
    size = (prefix.length + 7) // 8
    bits = 32 if prefix.version == 4 else 128
    raw = prefix.value.to_bytes(bits // 8, "big")[:size]
    return (b"" if path_id is None else struct.pack("!I", path_id)) + bytes([prefix.length]) + raw


def attr(code: int, value: bytes, flags: int = 0x40) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def update(
    prefixes: Sequence[Prefix] = (),
    *,
    next_hop: str = "10.0.0.1",
    as_path: Sequence[int] = (64512,),
    communities: Sequence[tuple[int, int]] = (),
    large: Sequence[tuple[int, int, int]] = (),
    origin: int = 0,
    withdrawn: Sequence[Prefix] = (),
    path_ids: Sequence[int | None] | None = None,
    two_octet: bool = False,
) -> bytes:
    """An UPDATE; IPv6 prefixes and withdrawals go in MP_REACH/MP_UNREACH."""
    ids = list(path_ids) if path_ids is not None else [None] * len(prefixes)
    v4 = [(p, i) for p, i in zip(prefixes, ids, strict=True) if p.version == 4]
    v6 = [(p, i) for p, i in zip(prefixes, ids, strict=True) if p.version == 6]
    attrs = b""
    if prefixes:
        attrs += attr(1, bytes([origin]))
        width = "!H" if two_octet else "!I"
        path = b"".join(struct.pack(width, a) for a in as_path)
        attrs += attr(2, (struct.pack("!BB", 2, len(as_path)) + path) if as_path else b"")
        if v4:
            attrs += attr(3, ipaddress.IPv4Address(next_hop).packed)
        if communities:
            attrs += attr(8, b"".join(struct.pack("!HH", *c) for c in communities), 0xC0)
        if large:
            attrs += attr(32, b"".join(struct.pack("!III", *c) for c in large), 0xC0)
        if v6:
            nh = ipaddress.IPv6Address(next_hop).packed
            body = struct.pack("!HBB", 2, 1, 16) + nh + b"\x00" + b"".join(nlri(p, i) for p, i in v6)
            attrs += attr(14, body, 0x80)
    w4 = b"".join(nlri(p) for p in withdrawn if p.version == 4)
    w6 = [p for p in withdrawn if p.version == 6]
    if w6:
        attrs += attr(15, struct.pack("!HB", 2, 1) + b"".join(nlri(p) for p in w6), 0x80)
    body = struct.pack("!H", len(w4)) + w4 + struct.pack("!H", len(attrs)) + attrs
    body += b"".join(nlri(p, i) for p, i in v4)
    return bgp(2, body)


def end_of_rib(afi: int = 1) -> bytes:
    if afi == 1:
        return bgp(2, struct.pack("!HH", 0, 0))
    return bgp(2, struct.pack("!HH", 0, 6) + attr(15, struct.pack("!HB", 2, 1), 0x80))


def route_monitoring(address: str, pdu: bytes, *, post: bool = False, loc_rib: bool = False, **kw: object) -> bytes:
    return bmp(0, per_peer(address, post=post, loc_rib=loc_rib, **kw) + pdu)  # type: ignore[arg-type]


def statistics(address: str, counters: Sequence[tuple[int, int]]) -> bytes:
    body = struct.pack("!I", len(counters)) + b"".join(tlv(kind, struct.pack("!Q", v)) for kind, v in counters)
    return bmp(1, per_peer(address) + body)
