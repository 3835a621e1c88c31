"""What ``expected_routes`` returns: the expected table, and why each route is in it.

The table is an ordinary ``RouteTable`` (so the diff and the renderers treat expected and learned
routes alike). The reasons live beside it, keyed by route, as small named tuples (``Reasons``
keeps the single reason most routes have without a wrapping tuple), and the sentences a person
reads are made only when a route is shown (``explain``), never in the computation itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

from bgpflat.core.routes.table import Route, RouteTable, address_sort_key, community_texts, large_community_texts

# Fixed codes for the rule that makes a node originate a route (calico-facts §3).
BLOCK = "block"  # §3.1.1 static blackhole of a confirmed affine block
BORROWED = "borrowed"  # §3.2 kernel /32 of a workload whose IP is outside the node's blocks
SERVICE_RANGE = "service-range"  # §3.4 global service CIDR static
SERVICE_LOCAL = "service-local"  # §3.4 ETP Local /32, node has a ready local endpoint
SERVICE_SINGLE = "service-single"  # §3.4 ETP Cluster /32 matching a single-address entry
SERVICE_ANY = "service-endpoints"  # §3.4 aggregation Disabled: /32 from every node once any endpoint is ready
POOL_ROUTE = "pool-route"  # §3.2 step 8: any other route of the node inside a pool
FILTER_ACCEPT = "filter-accept"  # §3.6 a BGPFilter export rule accepted it before Calico's filter

# How the route reaches the outside peer from the advertising node.
LOCAL = "local"
MESH = "mesh"
REFLECTED = "reflected"

_RULE_TEXT = {
    BLOCK: "block of {owner}",
    BORROWED: "borrowed address on {owner}{detail}",
    SERVICE_RANGE: "service range{detail} of {owner}",
    SERVICE_LOCAL: "service /32{detail} with a ready local endpoint on {owner} (externalTrafficPolicy Local)",
    SERVICE_SINGLE: "service /32{detail} matching a single-address range, from every node incl. {owner}",
    SERVICE_ANY: "service /32{detail} (serviceLoadBalancerAggregation Disabled, endpoints ready) of {owner}",
    POOL_ROUTE: "route inside an IP pool on {owner}{detail}",
    FILTER_ACCEPT: "route of {owner}{detail}",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class OutsidePeer:
    """The outside BGP speaker whose view is predicted: its address and, optionally, its AS.

    ``as_number`` overrides the BGPPeer's ``asNumber`` (useful before the BGPPeer exists).
    """

    address: str
    as_number: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelOptions:
    """Choices where Calico's behaviour is version-dependent or not fully known (calico-facts §7).

    ``add_path``: the peer negotiates ADD-PATH receive (the ExaBGP verification peer does; Calico
    renders ``add paths on``), so a node sends every path it holds for a prefix that passes the
    export filter, not only its best one (BIRD 1.6 does: its own service-range static *and* the
    mesh copy). Without it, only the best path per prefix is expected: the node's own route if it
    has one, else the copy from the node with the lowest router ID (BIRD's last tie-breaker).
    ``pending_deletion_blocks``: blocks in state ``pendingDeletion`` still carry their static
    route until confd removes them (calico-facts §3.1); they are expected unless this is off.
    ``tunnel_addresses``: export the ``tunl0`` /32 of a node whose tunnel address lies outside its
    own blocks. BIRD's ``protocol direct`` picks it up from tunl0; inside a pool and outside the
    node's blocks it passes the export filter and the mesh (seen with confd v3.31.0 and BIRD 1.6
    in the conformance lab, settling the calico-facts §7 item), so it is on by default. Inside the
    node's own block ``calico_aggr`` hides it either way.
    """

    calico_version: str | None = None
    add_path: bool = True
    pending_deletion_blocks: bool = True
    tunnel_addresses: bool = True


class Why(NamedTuple):
    """Why one path is expected: the rule, the node that originates it, how it travels, detail."""

    rule: str
    owner: str
    path: str = LOCAL
    detail: str = ""


# A reason as stored by ``Reasons``: a ``Why`` or a plain tuple of the same four fields.
Reason = tuple[str, str, str, str]


class Reasons(Mapping[Route, tuple[Why, ...]]):
    """Route -> its reasons (``Why``), stored compactly and made into ``Why`` only when read.

    Nearly every route has exactly one reason, kept without a wrapping tuple; and the bulk of them
    are plain tuples of strings rather than ``Why`` named tuples: the garbage collector stops
    tracking a plain tuple of strings, so a hundred thousand reasons add nothing to the work of
    each collection (a named tuple stays tracked for good).
    """

    __slots__ = ("_store", "stored")

    def __init__(self, store: Mapping[Route, Reason | tuple[Reason, ...]]) -> None:
        self._store = store  # a value whose first item is a string is one reason, else several
        # The value kept for a route (hashable, equal for equal reasons), or None: the store's own
        # ``get``, so that reading it for every route of a table is one C call each.
        self.stored: Callable[[Route], Any] = store.get

    def __getitem__(self, route: Route) -> tuple[Why, ...]:
        found: Any = self._store[route]
        if type(found[0]) is str:
            return (found if type(found) is Why else Why._make(found),)
        return tuple(why if type(why) is Why else Why._make(why) for why in found)

    def __contains__(self, route: object) -> bool:
        return route in self._store

    def __iter__(self) -> Iterator[Route]:
        return iter(self._store)

    def __len__(self) -> int:
        return len(self._store)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionExpectation:
    """One expected BGP session between a Calico node and the outside peer."""

    session: str  # the node's peering (source) address, as the peer sees it
    node: str
    bgp_peer: str  # the BGPPeer object that makes the node peer
    local_as: int
    peer_as: int
    ebgp: bool
    next_hop_keep: bool  # next hop of routes learned from other nodes is kept (not self)
    route_reflector: bool
    filters: tuple[str, ...] = ()

    def describe(self) -> str:
        kind = "eBGP" if self.ebgp else "iBGP"
        hop = "next hop keep" if self.next_hop_keep else "next hop self"
        return f"{kind} peer, {hop}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "node": self.node,
            "bgp_peer": self.bgp_peer,
            "local_as": self.local_as,
            "peer_as": self.peer_as,
            "type": "eBGP" if self.ebgp else "iBGP",
            "next_hop": "keep" if self.next_hop_keep else "self",
            "route_reflector": self.route_reflector,
            "filters": list(self.filters),
        }


def explain_why(why: Why, session: SessionExpectation | None) -> str:
    """One reason as a sentence a network engineer reads."""
    return _rule_text(why) + _path_text(why.path, session)


def _rule_text(why: Why) -> str:
    """The first half of the sentence: the rule and the node (the same on every session)."""
    detail = f" ({why.detail})" if why.detail and why.rule != FILTER_ACCEPT else ""
    text = _RULE_TEXT.get(why.rule, why.rule + " of {owner}").format(owner=why.owner, detail=detail)
    if why.rule == FILTER_ACCEPT:
        text += f", accepted by {why.detail} before Calico's export filter (no Calico communities)"
    return text


def _path_text(path: str, session: SessionExpectation | None) -> str:
    """The second half: how the route travels to the peer (the same for every rule)."""
    context = session.describe() if session is not None else ""
    if path == MESH:
        return f", expected through mesh re-export ({context})"
    if path == REFLECTED:
        node = session.node if session is not None else "the node"
        return f", reflected by route reflector {node} (next hop kept)"
    return ", originated by the node itself" + (f" ({context})" if context else "")


# A set of reasons as ``to_dict`` shows it: the reason records and (first half of the sentence, path).
_Shown = tuple[list[dict[str, str]], tuple[tuple[str, str], ...]]
_RECORD_KEYS_WITH_ID = (
    *("prefix", "next_hop", "session", "as_path", "origin", "communities", "large_communities", "path_id"),
    *("node", "reasons", "explanation"),
)


def _each(column: Sequence[Any], make: Any) -> list[Any]:
    """``make`` of every value of a column, called once per distinct value (the results shared)."""
    made = {value: make(value) for value in set(column)}
    return list(map(made.__getitem__, column))


def _each_list(column: Sequence[Any], make: Any) -> list[list[Any]]:
    """``_each`` for values shown as lists, each record's a copy of its own: the same list in two
    records would be an anchor and an alias in ``-o yaml``."""
    return list(map(list.copy, _each(column, make)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectedRoutes:
    """The routes an outside peer should learn, with a reason per route and per-session context."""

    peer: OutsidePeer
    table: RouteTable
    reasons: Mapping[Route, tuple[Why, ...]]
    sessions: Mapping[str, SessionExpectation]
    calico_version: str
    options: ModelOptions = field(default_factory=ModelOptions)
    notes: tuple[str, ...] = ()

    def why(self, route: Route) -> tuple[Why, ...]:
        return self.reasons.get(route._replace(path_id=None), ())

    def explain(self, route: Route) -> str:
        """Every reason for ``route`` as one sentence (several paths may give the same route)."""
        session = self.sessions.get(route.session)
        reasons = self.why(route)
        if not reasons:
            return "not derived from the cluster state"
        return "; ".join(explain_why(why, session) for why in reasons)

    def node_of(self, session: str) -> str:
        found = self.sessions.get(session)
        return found.node if found is not None else ""

    def to_dict(self) -> dict[str, Any]:
        """Everything, routes in table order, each with its reasons and their sentence.

        Reasons repeat (a block's route reaches the peer from many sessions), so the reason
        records and both halves of each sentence are made once per distinct reason and per
        (path, session) and shared: records of routes with the same reasons hold the same
        ``reasons`` list (read-only by convention, as the result is for output).
        """
        return {
            "peer": {"address": self.peer.address, "as_number": self.peer.as_number},
            "calico_version": self.calico_version,
            "add_path": self.options.add_path,
            "sessions": [self.sessions[s].to_dict() for s in self.table_sessions()],
            "notes": list(self.notes),
            "routes": self._route_records(),
        }

    def _route_records(self) -> list[dict[str, Any]]:
        """``to_dict``'s routes, column by column: every value is made once per distinct value (a
        few hundred prefixes, AS paths, sets of reasons and sentence halves across 250,000 routes)
        and the records are zipped together in C passes."""
        routes = self.table.sorted()
        if not routes:
            return []
        prefixes, next_hops, sessions, as_paths, origins, communities, large, path_ids = zip(*routes, strict=True)
        ids = set(path_ids)
        # The stored value (hashable, one per distinct set of reasons) where the mapping keeps it.
        lookup = self.reasons.stored if isinstance(self.reasons, Reasons) else self.reasons.get
        plain = routes if ids == {None} else [r if r[7] is None else r._replace(path_id=None) for r in routes]
        founds = list(map(lookup, plain))
        shown = self._shown_reasons(dict(zip(founds, routes, strict=True)))
        shown_column = list(map(shown.__getitem__, founds))
        columns: list[Iterable[Any]] = [
            _each(prefixes, str),
            next_hops,
            sessions,
            _each_list(as_paths, list),
            origins,
            _each_list(communities, community_texts),
            _each_list(large, large_community_texts),
        ]
        if ids != {None}:
            columns.append(path_ids)
        nodes = {session: found.node for session, found in self.sessions.items()}
        columns.append(map(nodes.get, sessions, repeat("")))
        columns.append(map(itemgetter(0), shown_column))
        columns.append(self._explanations(shown_column, sessions, shown.values()))
        if ids == {None}:
            # A dict display per record (no path identifiers, the usual case): the fastest way to
            # make 250,000 dicts with the same keys.
            records = [
                {
                    "prefix": p,
                    "next_hop": h,
                    "session": s,
                    "as_path": a,
                    "origin": o,
                    "communities": c,
                    "large_communities": lc,
                    "node": n,
                    "reasons": r,
                    "explanation": e,
                }
                for p, h, s, a, o, c, lc, n, r, e in zip(*columns, strict=True)
            ]
        else:
            records = list(map(dict, map(zip, repeat(_RECORD_KEYS_WITH_ID), zip(*columns, strict=True))))
        if None in ids and ids != {None}:
            for record in records:  # some paths with an identifier, some without (none written)
                if record["path_id"] is None:
                    del record["path_id"]
        return records

    def _shown_reasons(self, routes_by_found: dict[Any, Route]) -> dict[Any, _Shown]:
        """Per distinct set of reasons (and one route that has it): its records, shared between
        the routes' records (read-only, as the result is for output), and the first halves of its
        sentences with each reason's path. A set of reasons is often per session (a service range:
        "local" on the node's own session, "mesh" on the others), its reasons are not: each record
        made once, and copied into each set (a dict in two sets would be an alias in ``-o yaml``)."""
        by_why: dict[Why, tuple[dict[str, str], str]] = {}
        out: dict[Any, _Shown] = {}
        for found, route in routes_by_found.items():
            whys = self.why(route)
            for w in whys:
                if w not in by_why:
                    by_why[w] = ({"rule": w.rule, "owner": w.owner, "path": w.path, "detail": w.detail}, _rule_text(w))
            out[found] = ([by_why[w][0].copy() for w in whys], tuple((by_why[w][1], w.path) for w in whys))
        return out

    def _explanations(
        self, shown_column: list[_Shown], sessions: Sequence[str], distinct: Iterable[_Shown]
    ) -> list[str]:
        """Every route's sentence: its reasons' first halves, each with the second half of its path
        on the route's session (made once per path and session)."""
        paths = {path for _, texts in distinct for _, path in texts}
        every = set(sessions)
        tails = {path: {session: _path_text(path, self.sessions.get(session)) for session in every} for path in paths}
        out: list[str] = []
        append = out.append
        for (_, texts), session in zip(shown_column, sessions, strict=True):
            if len(texts) == 1:
                text, path = texts[0]
                append(text + tails[path][session])
            elif texts:
                append("; ".join([text + tails[path][session] for text, path in texts]))
            else:
                append("not derived from the cluster state")
        return out

    def table_sessions(self) -> list[str]:
        """Expected sessions in address order, including sessions that expect no route."""
        return sorted(self.sessions, key=address_sort_key)


def merge_expected(parts: Sequence[ExpectedRoutes]) -> ExpectedRoutes:
    """One outside speaker with an address per family (a dual-stack peer) as one expectation.

    Each part is ``expected_routes`` for one of the speaker's addresses; their sessions never
    overlap (an IPv4 session runs between IPv4 addresses), so tables, reasons and sessions are
    unions. The result names the first part's peer; notes keep their order, once each.
    """
    if not parts:
        raise ValueError("merge_expected needs at least one ExpectedRoutes")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    reasons: dict[Route, tuple[Why, ...]] = {}
    sessions: dict[str, SessionExpectation] = {}
    for part in parts:
        overlap = set(sessions) & set(part.sessions)
        if overlap:
            raise ValueError(f"expectations share sessions {sorted(overlap)}: not one speaker's families")
        sessions.update(part.sessions)
        reasons.update((route, part.reasons[route]) for route in part.reasons)
    return ExpectedRoutes(
        peer=first.peer,
        table=RouteTable(route for part in parts for route in part.table),
        reasons=reasons,
        sessions=sessions,
        calico_version=first.calico_version,
        options=first.options,
        notes=tuple(dict.fromkeys(note for part in parts for note in part.notes)),
    )
