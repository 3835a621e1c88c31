"""Laying desired objects over the observed cluster, and the route impact of doing so.

``lay_over`` gives the objects as the cluster holds them once a plan's changes are written
(creates added, merge patches applied as the API server applies them, deletes removed); the one
expected-route model (``bgpflat.core.routes``) runs on the state before and after. So ``plan``
answers "what will my ToR learn after this apply?" with the same rules ``routes expected`` and
``verify`` use, and the gate of a staged apply asks the same question of the state after each stage.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from bgpflat.core.net.prefixes import Prefix, canonical_address
from bgpflat.core.plan.impact import ADDED, CHANGED, MAX_LISTED, WITHDRAWN, PeerImpact, RouteChange
from bgpflat.core.plan.model import Action, ResourceChange
from bgpflat.core.routes.advertise import AdvertisementModel
from bgpflat.core.routes.cluster import ClusterState, ParseMemo
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer, explain_why
from bgpflat.core.routes.table import Route, address_sort_key

_REASONS_SHOWN = 3


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies it."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    return (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def lay_over(objects: Iterable[Mapping[str, Any]], changes: Iterable[ResourceChange]) -> list[Mapping[str, Any]]:
    """``objects`` as the cluster holds them once ``changes`` are written, in order.

    Objects no change touches are passed through as they are (not copied): a big cluster's nodes
    and blocks cost nothing here. A change to the operator's Installation is not laid over: the
    route model reads the IPPools the operator writes from it, and pool encapsulation, the only
    thing written there, does not change what is advertised.
    """
    by_key: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for obj in objects:
        by_key[_key(obj)] = obj
    for change in changes:
        key = (change.kind, change.namespace, change.name)
        if change.action is Action.CREATE and change.manifest is not None:
            by_key[key] = change.manifest
        elif change.action is Action.UPDATE and change.patch is not None and key in by_key:
            by_key[key] = merge_patch(by_key[key], change.patch)
        elif change.action is Action.DELETE:
            by_key.pop(key, None)
    return list(by_key.values())


def outside_peers(states: Iterable[ClusterState], extra: Iterable[OutsidePeer] = ()) -> list[OutsidePeer]:
    """The outside BGP speakers a BGPPeer of any of ``states`` names by ``peerIP``, plus ``extra``.

    A peer found only in BGPPeers has no AS of its own here: each state's BGPPeer gives it, so a
    changed ``asNumber`` is a change of the routes' AS path, not of the question asked.
    """
    found: dict[str, OutsidePeer] = {}
    for peer in extra:
        found.setdefault(canonical_address(peer.address), peer)
    for state in states:
        for bgp_peer in state.peers:
            if bgp_peer.peer_ip and not bgp_peer.peer_selector and not bgp_peer.local_workload_selector:
                address = canonical_address(bgp_peer.peer_ip)
                found.setdefault(address, OutsidePeer(address=address))
    return [found[a] for a in sorted(found, key=address_sort_key)]


def _as_number(peer: OutsidePeer, *expected: ExpectedRoutes) -> int | None:
    if peer.as_number is not None:
        return peer.as_number
    for routes in reversed(expected):  # the state after the change first
        for session in routes.sessions.values():
            return session.peer_as
    return None


def compare(before: ExpectedRoutes, after: ExpectedRoutes, *, limit: int = MAX_LISTED) -> PeerImpact:
    """The difference between two expected-route sets of the same peer, by (session, prefix)."""
    old, new = before.table.grouped(), after.table.grouped()
    # Set operations on the dicts' key views run in C: two tables of a million keys each compare
    # in well under a second. A route table never holds an empty path list.
    added = new.keys() - old.keys()
    withdrawn = old.keys() - new.keys()
    # Paths are whole routes (session and prefix included), so equal lists are the common case
    # and cheap to test; only lists that differ (order or content) are compared as attribute sets.
    changed = {
        k
        for k in new.keys() & old.keys()
        if new[k] != old[k] and {p.attributes() for p in new[k]} != {p.attributes() for p in old[k]}
    }
    listed: list[RouteChange] = []
    for (session, prefix), kind in _first(limit, ((added, ADDED), (withdrawn, WITHDRAWN), (changed, CHANGED))):
        source = before if kind == WITHDRAWN else after
        path: Route = min(source.table.grouped()[(session, prefix)], key=lambda r: address_sort_key(r.next_hop))
        hop_before = None
        if kind == CHANGED:
            hop_before = min((r.next_hop for r in old[(session, prefix)]), key=address_sort_key)
        listed.append(
            RouteChange(
                change=kind,
                prefix=str(prefix),
                session=session,
                node=source.node_of(session),
                next_hop=path.next_hop,
                next_hop_before=hop_before,
                reason=_reason(source, path),
            )
        )
    return PeerImpact(
        peer=after.peer.address,
        as_number=_as_number(after.peer, before, after),
        added=len(added),
        withdrawn=len(withdrawn),
        changed=len(changed),
        routes=tuple(listed),
        before_total=len(old),
        after_total=len(new),
    )


def _reason(expected: ExpectedRoutes, route: Route) -> str:
    """Why ``route`` is expected; a route many nodes' paths give (a service range over a mesh of
    thousands of nodes) names the first few, so one listed route stays one line."""
    reasons = expected.why(route)
    if len(reasons) <= _REASONS_SHOWN:
        return expected.explain(route)
    session = expected.sessions.get(route.session)
    shown = "; ".join(explain_why(why, session) for why in reasons[:_REASONS_SHOWN])
    return f"{shown}; and {len(reasons) - _REASONS_SHOWN} more paths"


def _first(
    limit: int, groups: Sequence[tuple[Collection[tuple[str, Prefix]], str]]
) -> list[tuple[tuple[str, Prefix], str]]:
    """The ``limit`` first keys of all groups in session address and prefix order, with their kind.

    Only the sessions that can hold the first ``limit`` keys are sorted: counting keys per session
    is one pass in C, where sorting two million keys with a Python key function takes seconds.
    """
    per_session: Counter[str] = Counter()
    for keys, _ in groups:
        per_session.update(map(itemgetter(0), keys))
    wanted: set[str] = set()
    total = 0
    for session in sorted(per_session, key=address_sort_key):
        if total >= limit:
            break
        wanted.add(session)
        total += per_session[session]
    chosen = [(key, kind) for keys, kind in groups for key in keys if key[0] in wanted]
    chosen.sort(key=lambda item: (address_sort_key(item[0][0]), item[0][1]))
    return chosen[:limit]


def route_impact(
    objects: Sequence[Mapping[str, Any]],
    changes: Sequence[ResourceChange],
    *,
    peers: Iterable[OutsidePeer] = (),
    options: ModelOptions | None = None,
) -> tuple[PeerImpact, ...]:
    """Per outside peer (those the BGPPeers before or after name, and ``peers``): the routes it
    learns before ``changes`` and after them, compared."""
    memo = ParseMemo()  # the objects the changes leave alone are read once for both states
    before = ClusterState.from_objects(objects, memo=memo)
    after = ClusterState.from_objects(lay_over(objects, changes), memo=memo) if changes else before
    del memo  # both states hold what they read; the index by object goes before the model runs
    chosen = outside_peers((before, after), peers)
    if not chosen:
        return ()
    options = options or ModelOptions()
    old_model = AdvertisementModel(before, options)
    new_model = old_model if after is before else AdvertisementModel(after, options)
    out = []
    for peer in chosen:
        old = old_model.expected_routes(peer)
        new = old if new_model is old_model else new_model.expected_routes(peer)
        out.append(compare(old, new))
    return tuple(out)
