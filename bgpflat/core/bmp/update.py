"""BGP OPEN and UPDATE messages as BMP carries them -> capabilities, routes, withdrawals (pure).

Why a decoder of our own rather than ExaBGP's message code: ExaBGP decodes an UPDATE against a
``Negotiated`` object that it builds from its own neighbour configuration and a live session. A BMP
station has neither; what decides the wire format of each Route Monitoring message is the pair of
OPENs in the monitored peer's Peer Up and the flags of the per-peer header (RFC 7854 §4.2 A flag
for 2-octet AS paths). Faking a neighbour per monitored peer to satisfy ExaBGP would tie the station
to ExaBGP internals that change between releases, and it could not live in the pure core. What is
needed is small — ORIGIN, AS_PATH/AS4_PATH, NEXT_HOP, COMMUNITIES, LARGE_COMMUNITY,
MP_REACH/MP_UNREACH for IPv4/IPv6 unicast, ADD-PATH — and it is fuzzed with hypothesis
(tests/unit/test_bmp_fuzz.py): any byte string either decodes or raises ``BmpError``.

Other address families and attributes are skipped, not rejected: a router monitoring VPN or
flowspec peers must not lose its unicast tables because of them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from bgpflat.core.net.prefixes import Prefix, format_address
from bgpflat.core.routes.table import make_communities, make_large_communities

IPV4_UNICAST = (1, 1)
IPV6_UNICAST = (2, 1)
FAMILY_NAMES = {IPV4_UNICAST: "ipv4 unicast", IPV6_UNICAST: "ipv6 unicast"}
ORIGINS = ("igp", "egp", "incomplete")

MARKER = b"\xff" * 16
_OPEN, _UPDATE = 1, 2
_CAP_MP, _CAP_AS4, _CAP_ADD_PATH = 1, 65, 69


class BmpError(ValueError):
    """Bytes that are not a valid BMP or BGP message; the text says what and where."""


@dataclass(frozen=True, slots=True)
class OpenMessage:
    """What the station keeps of a BGP OPEN: AS, hold time, router ID and capabilities."""

    as_number: int
    hold_time: int
    router_id: str
    families: tuple[tuple[int, int], ...] = ()
    four_octet_as: bool = False
    # (afi, safi) -> 1 receive, 2 send, 3 both (RFC 7911)
    add_path: tuple[tuple[tuple[int, int], int], ...] = ()
    capabilities: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "as": self.as_number,
            "hold_time": self.hold_time,
            "router_id": self.router_id,
            "families": [FAMILY_NAMES.get(f, f"afi {f[0]} safi {f[1]}") for f in self.families],
            "four_octet_as": self.four_octet_as,
            "add_path": {FAMILY_NAMES.get(f, f"afi {f[0]} safi {f[1]}"): _ADD_PATH_MODES[m] for f, m in self.add_path},
            "capabilities": list(self.capabilities),
        }

    def add_path_mode(self, family: tuple[int, int]) -> int:
        return next((mode for fam, mode in self.add_path if fam == family), 0)


_ADD_PATH_MODES = {0: "none", 1: "receive", 2: "send", 3: "both"}


@dataclass(frozen=True, slots=True)
class Attributes:
    """The attributes bgpflat compares, as the fields of ``core.routes.table.Route`` hold them."""

    next_hop: str = ""
    as_path: tuple[int, ...] = ()
    origin: str = "igp"
    communities: tuple[tuple[int, int], ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()


PathKey = tuple[Prefix, int | None]


@dataclass(frozen=True, slots=True)
class Update:
    """One UPDATE: paths announced (by attribute set), paths withdrawn, End-of-RIB markers.

    ``announced`` holds at most two groups: the IPv4 NLRI with NEXT_HOP and the MP_REACH_NLRI ones
    with theirs; every other attribute is shared.
    """

    announced: tuple[tuple[Attributes, tuple[PathKey, ...]], ...] = ()
    withdrawn: tuple[PathKey, ...] = ()
    end_of_rib: tuple[tuple[int, int], ...] = ()

    @property
    def paths(self) -> int:
        return sum(len(keys) for _, keys in self.announced)


def _need(data: bytes | memoryview, size: int, what: str) -> None:
    if len(data) < size:
        raise BmpError(f"{what}: {len(data)} byte(s), need {size}")


def split_pdu(data: bytes | memoryview, what: str) -> tuple[int, memoryview, memoryview]:
    """One BGP message at the start of ``data`` -> (type, body, rest)."""
    view = memoryview(data)
    _need(view, 19, what)
    if bytes(view[:16]) != MARKER:
        raise BmpError(f"{what}: no BGP marker")
    (length,) = struct.unpack_from("!H", view, 16)
    if length < 19 or length > len(view):
        raise BmpError(f"{what}: BGP length {length} does not fit the {len(view)} byte(s) given")
    return view[18], view[19:length], view[length:]


def decode_open(body: bytes | memoryview) -> OpenMessage:
    """The body of an OPEN (after the 19-byte header)."""
    view = memoryview(body)
    _need(view, 10, "OPEN")
    version, my_as, hold, bgp_id, opt_len = struct.unpack_from("!BHHIB", view, 0)
    if version != 4:
        raise BmpError(f"OPEN: BGP version {version}, not 4")
    params = view[10 : 10 + opt_len]
    _need(params, opt_len, "OPEN optional parameters")
    families: list[tuple[int, int]] = []
    add_path: list[tuple[tuple[int, int], int]] = []
    codes: list[int] = []
    as4: int | None = None
    offset = 0
    while offset < len(params):
        _need(params[offset:], 2, "OPEN parameter")
        ptype, plen = params[offset], params[offset + 1]
        value = params[offset + 2 : offset + 2 + plen]
        _need(value, plen, "OPEN parameter value")
        offset += 2 + plen
        if ptype != 2:  # only capabilities (RFC 5492)
            continue
        cursor = 0
        while cursor < len(value):
            _need(value[cursor:], 2, "capability")
            code, clen = value[cursor], value[cursor + 1]
            cap = value[cursor + 2 : cursor + 2 + clen]
            _need(cap, clen, f"capability {code}")
            cursor += 2 + clen
            codes.append(code)
            if code == _CAP_MP and clen == 4:
                afi, _, safi = struct.unpack_from("!HBB", cap, 0)
                families.append((afi, safi))
            elif code == _CAP_AS4 and clen == 4:
                (as4,) = struct.unpack_from("!I", cap, 0)
            elif code == _CAP_ADD_PATH:
                if clen % 4:
                    raise BmpError(f"OPEN: ADD-PATH capability of {clen} bytes, not a multiple of 4")
                for at in range(0, clen, 4):
                    afi, safi, mode = struct.unpack_from("!HBB", cap, at)
                    add_path.append(((afi, safi), mode & 3))
    router_id = format_address(4, bgp_id)
    if not families:
        families = [IPV4_UNICAST]  # RFC 4760: no MP capability means IPv4 unicast only
    return OpenMessage(
        as_number=as4 if as4 is not None else my_as,
        hold_time=hold,
        router_id=router_id,
        families=tuple(families),
        four_octet_as=as4 is not None,
        add_path=tuple(add_path),
        capabilities=tuple(codes),
    )


def prefixes(data: memoryview, version: int, add_path: bool, what: str) -> list[PathKey]:
    out: list[PathKey] = []
    maximum = 32 if version == 4 else 128
    offset = 0
    size = len(data)
    while offset < size:
        path_id: int | None = None
        if add_path:
            _need(data[offset:], 4, f"{what} path identifier")
            (path_id,) = struct.unpack_from("!I", data, offset)
            offset += 4
        _need(data[offset:], 1, f"{what} prefix length")
        length = data[offset]
        if length > maximum:
            raise BmpError(f"{what}: prefix length {length} above {maximum}")
        nbytes = (length + 7) // 8
        raw = data[offset + 1 : offset + 1 + nbytes]
        _need(raw, nbytes, f"{what} prefix")
        offset += 1 + nbytes
        value = int.from_bytes(raw, "big") << (maximum - 8 * nbytes) if nbytes else 0
        value &= ((1 << maximum) - 1) ^ ((1 << (maximum - length)) - 1)  # bits past the length are ignored
        out.append((Prefix(version, value, length), path_id))
    return out


def _as_path(data: memoryview, width: int, what: str) -> tuple[int, ...]:
    asns: list[int] = []
    offset = 0
    fmt = "!H" if width == 2 else "!I"
    while offset < len(data):
        _need(data[offset:], 2, f"{what} segment")
        seg_type, count = data[offset], data[offset + 1]
        if seg_type not in (1, 2, 3, 4):
            raise BmpError(f"{what}: unknown segment type {seg_type}")
        offset += 2
        _need(data[offset:], count * width, f"{what} segment of {count} AS")
        for at in range(count):
            asns.append(struct.unpack_from(fmt, data, offset + at * width)[0])
        offset += count * width
    return tuple(asns)


AttributeCache = dict[tuple[bytes, bool, bool], "_Parsed"]
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class _Parsed:
    """An UPDATE's path attribute section, decoded: what NLRI outside it share, and what is inside."""

    shared: Attributes
    mp_next_hop: str
    mp_announced: tuple[PathKey, ...]
    mp_withdrawn: tuple[PathKey, ...]
    end_of_rib: tuple[tuple[int, int], ...]


def decode_update(
    body: bytes | memoryview,
    *,
    add_path: frozenset[tuple[int, int]] = frozenset(),
    two_octet_as: bool = False,
    cache: AttributeCache | None = None,
) -> Update:
    """The body of an UPDATE (after the 19-byte header).

    ``add_path`` names the families whose NLRI carry a path identifier; ``two_octet_as`` is the
    per-peer header's A flag (AS_PATH in 2-octet form, AS4_PATH merged in per RFC 6793).
    ``cache`` (one per monitored peer, whose ``add_path`` is on or off) keeps decoded attribute
    sections by their bytes: routers send one prefix per Route Monitoring message (FRR does) with
    the same attributes for thousands of them, and decoding those once is most of the speed.
    """
    view = memoryview(body)
    _need(view, 4, "UPDATE")
    (wlen,) = struct.unpack_from("!H", view, 0)
    withdrawn_raw = view[2 : 2 + wlen]
    _need(withdrawn_raw, wlen, "UPDATE withdrawn routes")
    _need(view[2 + wlen :], 2, "UPDATE attribute length")
    (alen,) = struct.unpack_from("!H", view, 2 + wlen)
    attrs_raw = view[4 + wlen : 4 + wlen + alen]
    _need(attrs_raw, alen, "UPDATE path attributes")
    nlri_raw = view[4 + wlen + alen :]
    v4_add_path = IPV4_UNICAST in add_path
    withdrawn = prefixes(withdrawn_raw, 4, v4_add_path, "withdrawn route") if wlen else []
    announced = prefixes(nlri_raw, 4, v4_add_path, "NLRI") if len(nlri_raw) else []
    if cache is None:
        parsed = _attributes(attrs_raw, add_path, two_octet_as)
    else:
        key = (bytes(attrs_raw), two_octet_as, bool(add_path))
        found = cache.get(key)
        if found is None:
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()  # unique attributes per prefix (IPv6 NLRI live inside them): start over
            found = cache[key] = _attributes(attrs_raw, add_path, two_octet_as)
        parsed = found
    end_of_rib = parsed.end_of_rib
    if not wlen and not alen and not len(nlri_raw):
        end_of_rib = (*end_of_rib, IPV4_UNICAST)
    if parsed.mp_withdrawn:
        withdrawn.extend(parsed.mp_withdrawn)
    groups: list[tuple[Attributes, tuple[PathKey, ...]]] = []
    if announced:
        groups.append((parsed.shared, tuple(announced)))
    if parsed.mp_announced:
        groups.append((replace(parsed.shared, next_hop=parsed.mp_next_hop), parsed.mp_announced))
    return Update(announced=tuple(groups), withdrawn=tuple(withdrawn), end_of_rib=end_of_rib)


def _attributes(attrs_raw: memoryview, add_path: frozenset[tuple[int, int]], two_octet_as: bool) -> _Parsed:
    next_hop = ""
    as_path: tuple[int, ...] = ()
    as4_path: tuple[int, ...] | None = None
    origin = "igp"
    communities: list[tuple[int, int]] = []
    large: list[tuple[int, int, int]] = []
    end_of_rib: list[tuple[int, int]] = []
    mp_next_hop = ""
    mp_announced: list[PathKey] = []
    mp_withdrawn: list[PathKey] = []
    offset = 0
    while offset < len(attrs_raw):
        _need(attrs_raw[offset:], 3, "path attribute header")
        flags, code = attrs_raw[offset], attrs_raw[offset + 1]
        if flags & 0x10:
            _need(attrs_raw[offset:], 4, "path attribute header")
            (length,) = struct.unpack_from("!H", attrs_raw, offset + 2)
            offset += 4
        else:
            length = attrs_raw[offset + 2]
            offset += 3
        value = attrs_raw[offset : offset + length]
        _need(value, length, f"path attribute {code}")
        offset += length
        if code == 1:
            if length != 1 or value[0] > 2:
                raise BmpError("ORIGIN is not one byte of 0, 1 or 2")
            origin = ORIGINS[value[0]]
        elif code == 2:
            as_path = _as_path(value, 2 if two_octet_as else 4, "AS_PATH")
        elif code == 17:
            as4_path = _as_path(value, 4, "AS4_PATH")
        elif code == 3:
            if length != 4:
                raise BmpError(f"NEXT_HOP of {length} bytes, not 4")
            next_hop = format_address(4, int.from_bytes(value, "big"))
        elif code == 8:
            if length % 4:
                raise BmpError(f"COMMUNITIES of {length} bytes, not a multiple of 4")
            communities.extend(struct.unpack_from("!HH", value, at) for at in range(0, length, 4))
        elif code == 32:
            if length % 12:
                raise BmpError(f"LARGE_COMMUNITY of {length} bytes, not a multiple of 12")
            large.extend(struct.unpack_from("!III", value, at) for at in range(0, length, 12))
        elif code == 14:
            _need(value, 5, "MP_REACH_NLRI")
            afi, safi, nh_len = struct.unpack_from("!HBB", value, 0)
            family = (afi, safi)
            nh = value[4 : 4 + nh_len]
            _need(value, 5 + nh_len, "MP_REACH_NLRI next hop")
            if family not in FAMILY_NAMES:
                continue
            version = 4 if afi == 1 else 6
            if version == 6 and nh_len in (16, 32):
                mp_next_hop = format_address(6, int.from_bytes(nh[:16], "big"))  # the global one
            elif version == 4 and nh_len == 4:
                mp_next_hop = format_address(4, int.from_bytes(nh, "big"))
            elif version == 4 and nh_len == 16:  # RFC 8950 IPv6 next hop for IPv4
                mp_next_hop = format_address(6, int.from_bytes(nh, "big"))
            else:
                raise BmpError(f"MP_REACH_NLRI {FAMILY_NAMES[family]}: next hop of {nh_len} bytes")
            mp_announced.extend(prefixes(value[5 + nh_len :], version, family in add_path, "MP_REACH_NLRI"))
        elif code == 15:
            _need(value, 3, "MP_UNREACH_NLRI")
            afi, safi = struct.unpack_from("!HB", value, 0)
            family = (afi, safi)
            if family not in FAMILY_NAMES:
                continue
            if length == 3:
                end_of_rib.append(family)
            mp_withdrawn.extend(prefixes(value[3:], 4 if afi == 1 else 6, family in add_path, "MP_UNREACH_NLRI"))
    if as4_path is not None and two_octet_as and len(as4_path) <= len(as_path):
        as_path = as_path[: len(as_path) - len(as4_path)] + as4_path
    shared = Attributes(
        next_hop=next_hop,
        as_path=as_path,
        origin=origin,
        communities=make_communities(communities),
        large_communities=make_large_communities(large),
    )
    return _Parsed(shared, mp_next_hop, tuple(mp_announced), tuple(mp_withdrawn), tuple(end_of_rib))
