"""ExaBGP JSON API lines -> typed peer events.

ExaBGP writes one JSON object per line on its API processes' stdin. The two supported versions
differ (exabgp-lab-notes §5): 4.2 gives ``as-path`` as a flat list and adds ``confederation-path``;
5.0 gives an object of numbered segments. Both are accepted here so that the rest of bgpflat never
sees a version difference.

``parse_line`` never raises: anything it cannot make sense of becomes a ``Malformed`` event, which
the RIB counts. A verification peer that crashed on one odd line would lose every route it holds.

An UPDATE is kept the way BGP sends it: one set of path attributes and the NLRI that share it.
Each NLRI is validated here but becomes a ``Route`` only when someone reads it (``announced``,
``Rib.routes``): a table dump is 100k NLRI in a few hundred UPDATEs, and building a ``Prefix`` and
a ``Route`` per NLRI on arrival was the larger part of bgpflat's CPU per dump (~1.8 µs per NLRI,
against ~0.8 µs for everything now, JSON decoding included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

from bgpflat.core.net.prefixes import Prefix, canonical_address
from bgpflat.core.routes.table import (
    ORIGINS,
    Community,
    LargeCommunity,
    Route,
    make_communities,
    make_large_communities,
)
from bgpflat.errors import SpecError

SUPPORTED_FAMILIES = ("ipv4 unicast", "ipv6 unicast")

# ExaBGP answers commands with bare text lines; a receive-only consumer never sends commands, but
# ``exabgp.api.ack`` defaults to true, so these can still appear and are not errors.
_TEXT_LINES = frozenset({"done", "error", "shutdown", b"done", b"error", b"shutdown"})
_MAX_QUOTED = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStateEvent:
    """A ``type: state`` line: connected, up or down (with ExaBGP's reason text)."""

    peer: str
    local: str
    peer_as: int | None
    local_as: int | None
    state: str
    reason: str = ""


PathKey = tuple[str, int | None]
"""A path's identity within one session: canonical prefix text (``str(Prefix)``) and path-id."""


class PathAttributes(NamedTuple):
    """What the NLRI of one next hop in one UPDATE share: a ``Route`` without prefix and path-id."""

    next_hop: str
    session: str
    as_path: tuple[int, ...] = ()
    origin: str = "igp"
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()


@dataclass(frozen=True, slots=True)
class Announcement:
    """Paths announced with one set of attributes; ``keys`` are validated and canonical."""

    attributes: PathAttributes
    keys: tuple[PathKey, ...]

    def routes(self) -> Iterator[Route]:
        return materialise(self.attributes, self.keys)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateEvent:
    """One BGP UPDATE: announced paths (grouped by shared attributes) and withdrawn path keys."""

    peer: str
    announcements: tuple[Announcement, ...] = ()
    withdrawn_keys: tuple[PathKey, ...] = ()
    unsupported: int = 0  # NLRI of families other than ipv4/ipv6 unicast, skipped

    @property
    def announced(self) -> tuple[Route, ...]:
        """The announced paths as routes (built on each call: for tests and small readers)."""
        return tuple(route for announcement in self.announcements for route in announcement.routes())

    @property
    def withdrawn(self) -> tuple[tuple[Prefix, int | None], ...]:
        return tuple((prefix_of(text), path_id) for text, path_id in self.withdrawn_keys)

    @property
    def announced_count(self) -> int:
        return sum(len(announcement.keys) for announcement in self.announcements)

    @classmethod
    def from_routes(
        cls,
        *,
        peer: str,
        announced: Iterable[Route] = (),
        withdrawn: Iterable[tuple[Prefix, int | None]] = (),
        unsupported: int = 0,
    ) -> UpdateEvent:
        """The same event built from ready routes (one announcement per distinct attribute set)."""
        groups: dict[PathAttributes, list[PathKey]] = {}
        for route in announced:
            attributes = _new(PathAttributes, route[1:7])
            groups.setdefault(attributes, []).append((str(route.prefix), route.path_id))
        return cls(
            peer=peer,
            announcements=tuple(Announcement(attributes, tuple(keys)) for attributes, keys in groups.items()),
            withdrawn_keys=tuple((str(prefix), path_id) for prefix, path_id in withdrawn),
            unsupported=unsupported,
        )


def materialise(attributes: PathAttributes, keys: Iterable[PathKey]) -> Iterator[Route]:
    """Routes for path keys that share ``attributes``."""
    return routes_of(zip(keys, repeat(attributes)))


def routes_of(items: Iterable[tuple[PathKey, PathAttributes]]) -> Iterator[Route]:
    """Routes for (path key, attributes) pairs, as the RIB stores them."""
    for (text, path_id), attributes in items:
        yield _new(Route, (prefix_of(text), *attributes, path_id))


def family_of_key(text: str) -> str:
    """The family of a canonical prefix text (IPv6 text always has a colon, IPv4 never)."""
    return "ipv6 unicast" if ":" in text else "ipv4 unicast"


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfRibEvent:
    peer: str
    family: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenEvent:
    """The peer's OPEN; the only place the peer's router-id appears (5.0's is the local one)."""

    peer: str
    router_id: str
    asn: int | None
    hold_time: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiatedEvent:
    """What both sides agreed on: the families End-of-RIB is expected for."""

    peer: str
    families: tuple[str, ...]
    add_path_receive: tuple[str, ...]
    hold_time: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationEvent:
    """A NOTIFICATION from the peer, or ExaBGP's own shutdown (then ``peer`` is None)."""

    peer: str | None
    code: int | None
    subcode: int | None
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IgnoredEvent:
    """A well-formed line that carries nothing the RIB needs (ack text, refresh markers, …)."""

    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MalformedEvent:
    reason: str
    line: str


PeerEvent = (
    SessionStateEvent
    | UpdateEvent
    | EndOfRibEvent
    | OpenEvent
    | NegotiatedEvent
    | NotificationEvent
    | IgnoredEvent
    | MalformedEvent
)


class _Bad(Exception):
    """Internal: the line is not what ExaBGP writes."""


def parse_line(line: str | bytes) -> PeerEvent:
    """Turn one ExaBGP API line (4.2 or 5.0 JSON) into an event; never raises."""
    stripped = line.strip()
    if not stripped or stripped in _TEXT_LINES:
        return IgnoredEvent(kind="text")
    try:
        # json.loads takes bytes as they come from the socket: no decoded copy of a 20 kB line.
        data = json.loads(stripped)
    except ValueError as exc:  # UnicodeDecodeError included
        return MalformedEvent(reason=f"not JSON: {exc}", line=_quote(stripped))
    try:
        return _dispatch(data)
    except (_Bad, SpecError) as exc:
        return MalformedEvent(reason=str(exc), line=_quote(stripped))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return MalformedEvent(reason=f"unexpected shape: {type(exc).__name__}: {exc}", line=_quote(stripped))


def _quote(line: str | bytes) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "…"


def _dispatch(data: Any) -> PeerEvent:
    if not isinstance(data, dict):
        raise _Bad("a JSON line must be an object")
    kind = data.get("type")
    neighbor = data.get("neighbor")
    if kind == "notification" and not isinstance(neighbor, dict):
        # ExaBGP's own shutdown line has no neighbor key.
        return NotificationEvent(peer=None, code=None, subcode=None, text=str(data.get("notification", "")))
    if not isinstance(kind, str):
        raise _Bad("no 'type'")
    if not isinstance(neighbor, dict):
        raise _Bad(f"'{kind}' line without a neighbor")
    peer = _peer_address(neighbor)
    if kind == "state":
        return _state(neighbor, peer)
    if kind == "update":
        return _update(neighbor, peer)
    if kind == "open":
        return _open(neighbor, peer)
    if kind == "negotiated":
        return _negotiated(neighbor, peer)
    if kind == "notification":
        return _notification(neighbor, peer)
    return IgnoredEvent(kind=kind)


def _peer_address(neighbor: Mapping[str, Any]) -> str:
    address = neighbor.get("address")
    if not isinstance(address, dict) or not isinstance(address.get("peer"), str):
        raise _Bad("neighbor.address.peer missing")
    return canonical_address(address["peer"])


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"expected an integer, got {value!r}")
    return value


def _state(neighbor: Mapping[str, Any], peer: str) -> SessionStateEvent:
    state = neighbor.get("state")
    if not isinstance(state, str):
        raise _Bad("state line without a state")
    address = neighbor["address"]
    local = address.get("local")
    asn_raw = neighbor.get("asn")
    asn: Mapping[str, Any] = asn_raw if isinstance(asn_raw, dict) else {}
    return SessionStateEvent(
        peer=peer,
        local=canonical_address(local) if isinstance(local, str) and local else "",
        peer_as=_optional_int(asn.get("peer")),
        local_as=_optional_int(asn.get("local")),
        state=state,
        reason=str(neighbor.get("reason", "")),
    )


def _update(neighbor: Mapping[str, Any], peer: str) -> PeerEvent:
    message = neighbor.get("message")
    if not isinstance(message, dict):
        raise _Bad("update line without a message")
    eor = message.get("eor")
    if isinstance(eor, dict):
        return EndOfRibEvent(peer=peer, family=f"{eor['afi']} {eor['safi']}")
    update = message.get("update")
    if not isinstance(update, dict):
        raise _Bad("update message without 'update' or 'eor'")
    announcements: list[Announcement] = []
    withdrawn: list[PathKey] = []
    unsupported = 0
    announce = update.get("announce")
    if announce:
        if not isinstance(announce, dict):
            raise _Bad("'announce' is not an object")
        attrs = update.get("attribute") or {}
        if not isinstance(attrs, dict):
            raise _Bad("'attribute' is not an object")
        as_path = _as_path(attrs.get("as-path"))
        origin = attrs.get("origin", "igp")
        if origin not in ORIGINS:
            raise _Bad(f"unknown origin {origin!r}")
        communities = make_communities(_community(c) for c in attrs.get("community") or ())
        large = make_large_communities(_large_community(c) for c in attrs.get("large-community") or ())
        for family, by_next_hop in announce.items():
            if family not in SUPPORTED_FAMILIES:
                unsupported += _count(by_next_hop)
                continue
            if not isinstance(by_next_hop, dict):
                raise _Bad(f"announce[{family!r}] is not an object")
            for next_hop_text, items in by_next_hop.items():
                next_hop = canonical_address(next_hop_text)
                if type(items) is not list:
                    raise _Bad(f"announce[{family!r}][{next_hop_text!r}] is not a list")
                attributes = _new(PathAttributes, (next_hop, peer, as_path, origin, communities, large))
                announcements.append(Announcement(attributes, _keys(items)))
    withdraw = update.get("withdraw")
    if withdraw:
        if not isinstance(withdraw, dict):
            raise _Bad("'withdraw' is not an object")
        for family, items in withdraw.items():
            if family not in SUPPORTED_FAMILIES:
                unsupported += _count(items)
                continue
            if type(items) is not list:
                raise _Bad(f"withdraw[{family!r}] is not a list")
            withdrawn.extend(_keys(items))
    return UpdateEvent(
        peer=peer, announcements=tuple(announcements), withdrawn_keys=tuple(withdrawn), unsupported=unsupported
    )


# The NLRI of one UPDATE are checked together, in C, where possible: ``_V4_LIST`` matches
# canonical IPv4 prefixes (no leading zeros, lengths 0-32), one per line, so one regex call
# validates a whole 4 kB UPDATE. Host bits only exist below /32; those prefixes, IPv6 and anything
# unusual take the per-NLRI path (``_key``), which also gives the precise error.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_PREFIX = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(?:3[0-2]|[12]?[0-9])"
_V4_LIST = re.compile(rf"{_V4_PREFIX}(?:\n{_V4_PREFIX})*")
_GET_NLRI = itemgetter("nlri")
_GET_PATH_INFO = itemgetter("path-information")


def _keys(items: list[Any]) -> tuple[PathKey, ...]:
    """Validated, canonical path keys of a list of NLRI items (``{"nlri": …, "path-information"?: …}``)."""
    try:
        texts = list(map(_GET_NLRI, items))
        joined = "\n".join(texts)
    except (TypeError, KeyError):
        return tuple(map(_key, items))
    count = len(texts)
    if not count or joined.count("\n") != count - 1 or _V4_LIST.fullmatch(joined) is None:
        return tuple(map(_key, items))
    if joined.count("/32") != count:
        for text in texts:
            if not text.endswith("/32"):
                _prefix(text)  # raises on host bits
    try:
        infos = list(map(_GET_PATH_INFO, items))
    except KeyError:
        infos = [item.get("path-information") for item in items]
    first = infos[0]
    # One path-id for a whole UPDATE is the common case (BIRD uses one per route source).
    if (first is None or type(first) is str) and infos.count(first) == count:
        return tuple(zip(texts, repeat(None if first is None else _path_id(first))))
    return tuple(zip(texts, [None if info is None else _path_id(info) for info in infos], strict=True))


def _key(item: Any) -> PathKey:
    prefix, path_id = _nlri(item)
    return (str(prefix), path_id)


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    if isinstance(value, list):
        return len(value)
    return 1


def _nlri(item: Any) -> tuple[Prefix, int | None]:
    if type(item) is dict:
        path_info = item.get("path-information")
        return _prefix(item["nlri"]), (None if path_info is None else _path_id(path_info))
    if isinstance(item, str):
        return _prefix(item), None
    raise _Bad(f"NLRI {item!r} is neither an object nor a string")


def _v4(text: str) -> int:
    a, b, c, d = text.split(".")
    if not (a.isdigit() and b.isdigit() and c.isdigit() and d.isdigit()):
        raise _Bad(f"bad IPv4 address {text!r}")
    ia, ib, ic, id_ = int(a), int(b), int(c), int(d)
    if not (ia <= 255 and ib <= 255 and ic <= 255 and id_ <= 255):
        raise _Bad(f"bad IPv4 address {text!r}")
    return (ia << 24) | (ib << 16) | (ic << 8) | id_


# This code runs once per NLRI: 100k times for one Calico-sized table dump, inside the time budget
# of a verification run. Two memo tables make IPv4 parsing ~3x faster than the general parser:
# table dumps repeat the first three octets and the path-ids, and the memos are bounded.
_MEMO_LIMIT = 1 << 16
_V4_HEADS: dict[str, int] = {}
_PATH_IDS: dict[str, int] = {}
_new = tuple.__new__


def _v4_head(head: str) -> int:
    value = _v4(head + ".0")
    if len(_V4_HEADS) >= _MEMO_LIMIT:
        _V4_HEADS.clear()
    _V4_HEADS[head] = value
    return value


def prefix_of(text: str) -> Prefix:
    """The ``Prefix`` of a prefix text; IPv4 uses the memoised fast path below."""
    return _prefix(text)


def _prefix(text: Any) -> Prefix:
    if type(text) is not str:
        raise _Bad(f"NLRI {text!r} is not a string")
    address, slash, length_text = text.partition("/")
    head, dot, tail = address.rpartition(".")
    if slash and dot and ":" not in address:
        top = _V4_HEADS.get(head)
        if top is None:
            top = _v4_head(head)
        if not (tail.isdigit() and length_text.isdigit()):
            raise _Bad(f"bad IPv4 prefix {text!r}")
        low, length = int(tail), int(length_text)
        value = top | low
        if low > 255 or length > 32 or value & (0xFFFFFFFF >> length):
            raise _Bad(f"bad IPv4 prefix {text!r}")
        prefix: Prefix = _new(Prefix, (4, value, length))
        return prefix
    return Prefix.parse(text)


def _path_id(value: Any) -> int:
    if type(value) is str:
        cached = _PATH_IDS.get(value)
        if cached is None:
            cached = int(value) if value.isdigit() else _v4(value)
            if len(_PATH_IDS) >= _MEMO_LIMIT:
                _PATH_IDS.clear()
            _PATH_IDS[value] = cached
        return cached
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _Bad(f"bad path-information {value!r}")


def _as_path(value: Any) -> tuple[int, ...]:
    """Both shapes: 4.2's flat list, 5.0's ``{"0": {"element": …, "value": [...]}}``."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(_flatten_asns(value))
    if isinstance(value, dict):
        path: list[int] = []
        for key in sorted(value, key=int):
            segment = value[key]
            # Confederation segments are not part of the path a peer outside the confederation
            # compares (4.2 reports them separately as ``confederation-path``).
            if str(segment.get("element", "")).startswith("confed"):
                continue
            path.extend(_flatten_asns(segment["value"]))
        return tuple(path)
    raise _Bad(f"bad as-path {value!r}")


def _flatten_asns(values: list[Any]) -> list[int]:
    result: list[int] = []
    for value in values:
        if isinstance(value, list):  # an AS_SET inside a 4.2 list
            result.extend(_flatten_asns(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            result.append(value)
        else:
            raise _Bad(f"bad AS number {value!r}")
    return result


def _community(value: Any) -> Community:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    raise _Bad(f"bad community {value!r}")


def _large_community(value: Any) -> LargeCommunity:
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value):
        return (value[0], value[1], value[2])
    raise _Bad(f"bad large community {value!r}")


def _open(neighbor: Mapping[str, Any], peer: str) -> OpenEvent:
    message = neighbor.get("open")
    if not isinstance(message, dict):
        raise _Bad("open line without 'open'")
    router_id = message.get("router_id", "")
    return OpenEvent(
        peer=peer,
        router_id=str(router_id),
        asn=_optional_int(message.get("asn")),
        hold_time=_optional_int(message.get("hold_time")),
    )


def _negotiated(neighbor: Mapping[str, Any], peer: str) -> NegotiatedEvent:
    message = neighbor.get("negotiated")
    if not isinstance(message, dict):
        raise _Bad("negotiated line without 'negotiated'")
    add_path_raw = message.get("add_path")
    add_path: Mapping[str, Any] = add_path_raw if isinstance(add_path_raw, dict) else {}
    return NegotiatedEvent(
        peer=peer,
        families=tuple(str(f) for f in message.get("families") or ()),
        add_path_receive=tuple(str(f) for f in add_path.get("receive") or ()),
        hold_time=_optional_int(message.get("hold_time")),
    )


def _notification(neighbor: Mapping[str, Any], peer: str) -> NotificationEvent:
    message = neighbor.get("notification")
    if isinstance(message, dict):
        return NotificationEvent(
            peer=peer,
            code=_optional_int(message.get("code")),
            subcode=_optional_int(message.get("subcode")),
            text=str(message.get("data", "")),
        )
    return NotificationEvent(peer=peer, code=None, subcode=None, text=str(message or ""))
