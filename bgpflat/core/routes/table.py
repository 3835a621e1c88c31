"""BGP routes and route tables shared by expected routes, the verification peer and the diff.

A ``Route`` is one path for one prefix as seen on one BGP session. ``session`` names the session by
the address of the speaker that sends the route (for Calico, the node's peering address), so a
table can hold the same prefix from many nodes and, with ADD-PATH, several paths per prefix from one
node. Routes are named tuples for the same reason ``Prefix`` is: tables of a million routes must be
cheap to build, hash and compare.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from itertools import chain, islice, repeat
from operator import add, itemgetter, mul
from typing import Any, NamedTuple

from bgpflat.core.net.prefixes import Prefix, canonical_address, parse_address, parse_canonical_v4
from bgpflat.errors import SpecError

Community = tuple[int, int]
LargeCommunity = tuple[int, int, int]

ORIGINS = ("igp", "egp", "incomplete")


class Route(NamedTuple):
    """One path: prefix, next hop and the attributes bgpflat compares, on one session."""

    prefix: Prefix
    next_hop: str
    session: str
    as_path: tuple[int, ...] = ()
    origin: str = "igp"
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    path_id: int | None = None

    @property
    def family(self) -> str:
        return "ipv4 unicast" if self.prefix.version == 4 else "ipv6 unicast"

    def attributes(self) -> tuple[str, tuple[int, ...], tuple[Community, ...], tuple[LargeCommunity, ...]]:
        """What a comparison of two paths for the same prefix and session looks at."""
        return (self.next_hop, self.as_path, self.communities, self.large_communities)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "prefix": str(self.prefix),
            "next_hop": self.next_hop,
            "session": self.session,
            "as_path": list(self.as_path),
            "origin": self.origin,
            "communities": community_texts(self.communities),
            "large_communities": large_community_texts(self.large_communities),
        }
        if self.path_id is not None:
            data["path_id"] = self.path_id
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "route") -> Route:
        """Inverse of ``to_dict``; raises ``SpecError`` naming ``where`` on bad input."""
        if not isinstance(data, Mapping):
            raise SpecError("a route must be a mapping", path=where)
        if "prefix" not in data:
            raise SpecError("missing field 'prefix'", path=where)
        field = "prefix"
        try:
            prefix = Prefix.parse(str(data["prefix"]))
            field = "next_hop"
            next_hop = canonical_address(str(data["next_hop"])) if data.get("next_hop") else ""
            field = "session"
            session = canonical_address(str(data["session"])) if data.get("session") else ""
            field = "as_path"
            as_path = _as_path(data.get("as_path"))
            field = "origin"
            origin = str(data.get("origin") or "igp")
            field = "communities"
            communities = make_communities(parse_community(str(c)) for c in _listed(data.get("communities")))
            field = "large_communities"
            large = make_large_communities(
                parse_large_community(str(c)) for c in _listed(data.get("large_communities"))
            )
            field = "path_id"
            path_id_raw = data.get("path_id")
            path_id = None if path_id_raw is None else int(path_id_raw)
        except SpecError as exc:
            raise SpecError(exc.message, path=f"{where}.{field}", fix=exc.fix) from None
        except (TypeError, ValueError):
            raise SpecError(
                f"{data.get(field)!r} is not a valid {field.replace('_', ' ')}",
                path=f"{where}.{field}",
                fix=_FIELD_FIXES.get(field),
            ) from None
        if origin not in ORIGINS:
            raise SpecError(f"unknown origin {origin!r}", path=f"{where}.origin", fix="igp, egp or incomplete")
        return cls(prefix, next_hop, session, as_path, origin, communities, large, path_id)


_FIELD_FIXES = {
    "as_path": "a list of AS numbers, e.g. [64512, 65000]",
    "path_id": "a whole number (the ADD-PATH path identifier)",
}


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError(value)


def _as_path(value: Any) -> tuple[int, ...]:
    asns = tuple(int(asn) for asn in _listed(value))
    if any(not 0 <= asn <= 0xFFFFFFFF for asn in asns):
        raise ValueError(value)
    return asns


def parse_community(text: str) -> Community:
    """``aa:nn`` with 16-bit parts."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise SpecError(f"community {text!r} is not aa:nn")
    a, b = int(parts[0]), int(parts[1])
    if a > 0xFFFF or b > 0xFFFF:
        raise SpecError(f"community {text!r} has a part above 65535", fix="use aa:nn:mm for 32-bit parts")
    return (a, b)


def parse_large_community(text: str) -> LargeCommunity:
    """``aa:nn:mm`` with 32-bit parts."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise SpecError(f"large community {text!r} is not aa:nn:mm")
    a, b, c = (int(p) for p in parts)
    if max(a, b, c) > 0xFFFFFFFF:
        raise SpecError(f"large community {text!r} has a part above 4294967295")
    return (a, b, c)


def community_texts(values: Iterable[Community]) -> list[str]:
    """Communities as ``to_dict`` writes them (``aa:nn``)."""
    return [f"{a}:{b}" for a, b in values]


def large_community_texts(values: Iterable[LargeCommunity]) -> list[str]:
    return [f"{a}:{b}:{c}" for a, b, c in values]


def make_communities(values: Iterable[Community]) -> tuple[Community, ...]:
    """Communities as a set in canonical (sorted, unique) order: BGP gives them no order."""
    return tuple(sorted(set(values)))


def make_large_communities(values: Iterable[LargeCommunity]) -> tuple[LargeCommunity, ...]:
    return tuple(sorted(set(values)))


class RouteTable:
    """Routes grouped by session and prefix; several paths per prefix are kept (ADD-PATH, ECMP)."""

    __slots__ = ("_by_key",)

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._by_key: dict[tuple[str, Prefix], list[Route]] = defaultdict(list)
        self._extend(routes if isinstance(routes, list) else list(routes))

    def add(self, route: Route) -> None:
        self._by_key[(route.session, route.prefix)].append(route)

    def __len__(self) -> int:
        return sum(map(len, self._by_key.values()))

    def __iter__(self) -> Iterator[Route]:
        for paths in self._by_key.values():
            yield from paths

    def __bool__(self) -> bool:
        return any(self._by_key.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RouteTable):
            return NotImplemented
        return Counter(r._replace(path_id=None) for r in self) == Counter(r._replace(path_id=None) for r in other)

    __hash__ = None  # type: ignore[assignment]

    def keys(self) -> Iterable[tuple[str, Prefix]]:
        return (key for key, paths in self._by_key.items() if paths)

    def paths(self, session: str, prefix: Prefix) -> list[Route]:
        return list(self._by_key.get((session, prefix), ()))

    def grouped(self) -> Mapping[tuple[str, Prefix], list[Route]]:
        """Read-only view of (session, prefix) -> paths; do not mutate the lists."""
        return self._by_key

    def sessions(self) -> list[str]:
        return sorted({session for session, _ in self.keys()}, key=_address_sort_key)

    def prefixes(self) -> list[Prefix]:
        return sorted({prefix for _, prefix in self.keys()})

    def sorted(self) -> list[Route]:
        """Deterministic order: session address, prefix, next hop, then the other attributes."""
        # The sort keys built column by column in C (``zip`` of ``map``s), not by a lambda per route;
        # the route's position last, so that equal keys keep the table's order as a stable sort does.
        routes = list(self)
        columns = list(zip(*routes, strict=True)) if routes else [()] * len(Route._fields)
        prefixes, next_hops, sessions, as_paths, _, communities, large, path_ids = columns
        # Few distinct sessions and next hops: each address is parsed once, not once per route.
        keys = {text: _address_sort_key(text) for text in {*sessions, *next_hops}}
        # Usually one path per session and prefix: the two ranked and combined into one integer
        # per route order the table as the whole keys do, and integers sort fastest.
        session_ranks = _ranks(sessions, keys.__getitem__)
        prefix_ranks = _ranks(prefixes, None)
        primary = list(
            map(
                add,
                map(mul, map(session_ranks.__getitem__, sessions), repeat(len(prefix_ranks))),
                map(prefix_ranks.__getitem__, prefixes),
            )
        )
        if len(set(primary)) == len(primary):
            return list(map(routes.__getitem__, sorted(range(len(routes)), key=primary.__getitem__)))
        decorated = sorted(
            zip(
                map(keys.__getitem__, sessions),
                prefixes,
                map(keys.__getitem__, next_hops),
                as_paths,
                communities,
                large,
                map(_NO_PATH_ID.get, path_ids, path_ids),  # path_id or 0
                range(len(routes)),
                strict=False,
            )
        )
        return list(map(routes.__getitem__, map(itemgetter(-1), decorated)))

    def to_records(self) -> list[dict[str, Any]]:
        return [route.to_dict() for route in self.sorted()]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], *, where: str = "routes") -> RouteTable:
        """Routes from ``Route.to_dict`` records; a bad record is a ``SpecError`` naming ``where[i]``.

        A million records (a peer's whole table) load in a second or two: records come in batches,
        and a batch of records all in the exact shape ``to_dict`` writes is read column by column
        (``add_flat_records``); any other record goes through ``Route.from_dict``, which accepts
        the same and says what is wrong.
        """
        table = cls()
        shared: dict[Any, Any] = {}
        index = 0
        iterator = iter(records)
        while batch := list(islice(iterator, FLAT_BATCH)):
            if not table.add_flat_records(batch, shared):
                for offset, record in enumerate(batch):
                    table.add_record(record, shared, where=f"{where}[{index + offset}]")
            index += len(batch)
        return table

    def add_record(self, record: Any, shared: dict[Any, Any], *, where: str) -> None:
        """One record as ``Route.from_dict`` reads it (``shared``: the values seen so far, to share)."""
        route = _plain_record(record, shared)
        if route is None:
            route = Route.from_dict(record, where=where)
        self._by_key[(route[2], route[0])].append(route)

    def add_flat_records(self, records: list[Any], shared: dict[Any, Any]) -> bool:
        """Add ``records`` if every one is in the exact shape ``to_dict`` writes, with a session;
        else add nothing and return False (read them one by one then).

        A column at a time: the few distinct sessions, next hops, AS paths and community lists of a
        batch are checked and parsed once each, and every value is checked by its exact type (a
        ``True`` is not the AS number 1, a float is never a path id), so that what is accepted
        here is exactly what ``Route.from_dict`` reads from the same record.
        """
        routes = _flat_routes(records, shared)
        if routes is None:
            return False
        self._extend(routes)
        return True

    def _extend(self, routes: list[Route]) -> None:
        """Add routes; a table of a million is built in a few C passes, not a million steps."""
        by_key = self._by_key
        keys = list(map(_route_key, routes))
        fresh = dict(zip(keys, map(list, zip(routes)), strict=True))
        if len(fresh) == len(keys) and by_key.keys().isdisjoint(fresh):
            # The usual case, one path per session and prefix: each key's list made in one C pass.
            by_key.update(fresh)
            return
        for key, route in zip(keys, routes, strict=True):
            by_key[key].append(route)


def _ranks(values: Iterable[Any], key: Any) -> dict[Any, int]:
    """Each distinct value's place among them in ``key`` order (values of equal keys share one)."""
    ranks: dict[Any, int] = {}
    rank, previous = -1, object()
    for value in sorted(set(values), key=key):
        current = value if key is None else key(value)
        if current != previous:
            rank, previous = rank + 1, current
        ranks[value] = rank
    return ranks


# Records read column by column at a time: large enough that the per-batch work is nothing, small
# enough that a batch's dicts and columns stay a few megabytes.
FLAT_BATCH = 4096

_FLAT_FIELDS = ("prefix", "next_hop", "session", "as_path", "origin", "communities", "large_communities")
_flat_fields = itemgetter(*_FLAT_FIELDS)
_flat_fields_with_id = itemgetter(*_FLAT_FIELDS, "path_id")
_ORIGINS = {origin: origin for origin in ORIGINS}
_route_key = itemgetter(2, 0)  # (session, prefix), the key of RouteTable._by_key
_NO_PATH_ID = {None: 0}


def _flat_routes(records: list[Any], shared: dict[Any, Any]) -> list[Route] | None:
    """The routes of ``records`` (``RouteTable.add_flat_records``), or None if one is not flat."""
    if not records:
        return []
    if set(map(type, records)) != {dict}:
        return None
    sizes = set(map(len, records))
    try:
        if sizes == {len(_FLAT_FIELDS) + 1}:
            rows = list(map(_flat_fields_with_id, records))
        elif sizes == {len(_FLAT_FIELDS)}:
            rows = list(map(_flat_fields, records))
        else:
            return None
        columns = list(zip(*rows, strict=True))
        texts, next_hops, sessions, as_paths, origins, communities, large = columns[:7]
        path_ids: Iterable[Any] = columns[7] if len(columns) == 8 else repeat(None)
        if len(columns) == 8 and not set(map(type, path_ids)) <= {int}:
            return None
        origin_column = list(map(_ORIGINS.__getitem__, origins))
        hop_column = _address_column(next_hops, shared)
        session_column = _address_column(sessions, shared)
        if hop_column is None or session_column is None or "" in session_column:
            return None
        path_column = _list_column(as_paths, int, shared, _as_path_of)
        community_column = _list_column(communities, str, shared, _communities_of)
        large_column = _list_column(large, str, shared, _large_communities_of)
        if path_column is None or community_column is None or large_column is None:
            return None
        prefixes = parse_canonical_v4(texts) or list(map(Prefix.parse, texts))
    except (KeyError, TypeError, ValueError, SpecError):
        return None  # read one by one: the same error (or the same acceptance) as from_dict's
    fields = zip(
        prefixes,
        hop_column,
        session_column,
        path_column,
        origin_column,
        community_column,
        large_column,
        path_ids,
        strict=False,  # path_ids may be repeat(None)
    )
    return list(map(_new_tuple, repeat(Route), fields))


def _each_distinct(values: Sequence[Any], parse: Callable[[Any], Any]) -> list[Any] | None:
    """``parse`` of each of ``values``, called once per distinct value; None if it refuses one."""
    found = {}
    for value in set(values):
        parsed = parse(value)
        if parsed is None:
            return None
        found[value] = parsed
    return list(map(found.__getitem__, values))


def _address_column(column: tuple[Any, ...], shared: dict[Any, Any]) -> list[str] | None:
    return _each_distinct(column, lambda text: _shared_address(text, shared))


def _list_column(column: tuple[Any, ...], kind: type, shared: dict[Any, Any], parse: Any) -> list[Any] | None:
    """A column of lists of ``kind`` (exactly), each read once per distinct value by ``parse``."""
    if set(map(type, column)) != {list}:
        return None
    if not any(column):
        return [()] * len(column)  # the usual communities: none
    if not set(map(type, chain.from_iterable(column))) <= {kind}:
        return None
    return _each_distinct(list(map(tuple, column)), lambda value: parse(value, shared))


def _as_path_of(value: tuple[int, ...], shared: dict[Any, Any]) -> tuple[int, ...] | None:
    return _shared_as_path(list(value), shared)


def _communities_of(value: tuple[str, ...], shared: dict[Any, Any]) -> tuple[Any, ...] | None:
    return _shared_communities(list(value), shared, large=False)


def _large_communities_of(value: tuple[str, ...], shared: dict[Any, Any]) -> tuple[Any, ...] | None:
    return _shared_communities(list(value), shared, large=True)


def make_route(fields: tuple[Any, ...]) -> Route:
    """``Route(*fields)`` without the named tuple's Python-level ``__new__``: a million calls a load."""
    route: Route = _new_tuple(Route, fields)
    return route


_new_tuple: Any = tuple.__new__


def _plain_record(record: Any, shared: dict[Any, Any]) -> Route | None:
    """``Route.from_dict`` for a record as ``to_dict`` writes it, or None for anything else.

    ``shared`` maps values already seen to their parsed (and shared) form: a table repeats a few
    sessions, next hops, AS paths and community sets across a million routes.
    """
    if type(record) is not dict:
        return None
    try:
        prefix = Prefix.parse(record["prefix"])
    except (KeyError, SpecError):
        return None
    next_hop = _shared_address(record.get("next_hop"), shared)
    session = _shared_address(record.get("session"), shared)
    as_path = _shared_as_path(record.get("as_path"), shared)
    origin = record.get("origin") or "igp"
    communities = _shared_communities(record.get("communities"), shared, large=False)
    large = _shared_communities(record.get("large_communities"), shared, large=True)
    path_id = record.get("path_id")
    if (
        next_hop is None
        or session is None
        or as_path is None
        or origin not in ORIGINS
        or communities is None
        or large is None
        or not (path_id is None or type(path_id) is int)
    ):
        return None
    return make_route((prefix, next_hop, session, as_path, origin, communities, large, path_id))


def _shared_address(text: Any, shared: dict[Any, Any]) -> str | None:
    if not text:
        return "" if text is None or text == "" else None
    if type(text) is not str:
        return None
    found = shared.get(text)  # the only keys that are strings (the others are tuples)
    if found is None:
        try:
            found = shared[text] = canonical_address(text)
        except SpecError:
            return None
    return found


def _shared_as_path(value: Any, shared: dict[Any, Any]) -> tuple[int, ...] | None:
    if value is None:
        return ()
    if type(value) is not list:
        return None
    key = ("as_path", *value)
    found = shared.get(key)
    if found is None:
        if not all(type(asn) is int and 0 <= asn <= 0xFFFFFFFF for asn in value):
            return None
        found = shared[key] = tuple(value)
    return found


def _shared_communities(value: Any, shared: dict[Any, Any], *, large: bool) -> tuple[Any, ...] | None:
    if value is None or value == []:
        return ()
    if type(value) is not list or not all(type(c) is str for c in value):
        return None
    key = ("large" if large else "communities", *value)
    found = shared.get(key)
    if found is None:
        try:
            if large:
                found = make_large_communities(parse_large_community(c) for c in value)
            else:
                found = make_communities(parse_community(c) for c in value)
        except SpecError:
            return None
        shared[key] = found
    return found


@lru_cache(maxsize=65536)
def address_sort_key(text: str) -> tuple[int, int, str]:
    """Sort addresses numerically (10.0.0.9 before 10.0.0.10); unparsable text sorts last."""
    if not text:
        return (0, 0, "")
    try:
        version, value = parse_address(text)
    except SpecError:
        return (9, 0, text)
    return (version, value, "")


_address_sort_key = address_sort_key
