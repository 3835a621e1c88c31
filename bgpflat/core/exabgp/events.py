"""Typed peer events: what one ExaBGP API line means to the RIB.

An UPDATE is kept the way BGP sends it: one set of path attributes and the NLRI that share it.
Each NLRI is validated when the line is parsed (``bgpflat.core.exabgp.parser``) but becomes a
``Route`` only when someone reads it (``announced``, ``Rib.routes``): a table dump is 100k NLRI in
a few hundred UPDATEs, and building a ``Prefix`` and a ``Route`` per NLRI on arrival was the larger
part of bgpflat's CPU per dump (~1.8 µs per NLRI, against ~0.8 µs for everything now, JSON decoding
included).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple

from bgpflat.core.exabgp.nlri import PathKey, prefix_of
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Community, LargeCommunity, Route

# Building a NamedTuple through tuple.__new__ skips its argument handling: once per NLRI read.
_new = tuple.__new__


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStateEvent:
    """A ``type: state`` line: connected, up or down (with ExaBGP's reason text)."""

    peer: str
    local: str
    peer_as: int | None
    local_as: int | None
    state: str
    reason: str = ""


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
    """Paths announced with one set of attributes: validated, canonical prefix texts and their
    path-ids, in NLRI order (two parallel tuples: the RIB files paths by path-id, then text)."""

    attributes: PathAttributes
    texts: tuple[str, ...]
    path_ids: tuple[int | None, ...]

    @property
    def keys(self) -> tuple[PathKey, ...]:
        return tuple(zip(self.texts, self.path_ids, strict=True))

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
        return sum(len(announcement.texts) for announcement in self.announcements)

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
            announcements=tuple(
                Announcement(attributes, tuple(text for text, _ in keys), tuple(path_id for _, path_id in keys))
                for attributes, keys in groups.items()
            ),
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
