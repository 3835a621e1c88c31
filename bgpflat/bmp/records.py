"""The station's tables as records (the route shape of ``peer routes`` plus router, peer and
policy), and as the learned state ``verify --source bmp:DIR`` compares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bgpflat.core.bmp.messages import LOC_RIB_PEER
from bgpflat.core.bmp.policies import LOC_RIB, POST_POLICY, PRE_POLICY, policy_name
from bgpflat.core.bmp.rib import RouterRib
from bgpflat.core.net.prefixes import parse_address
from bgpflat.core.routes.table import RouteTable
from bgpflat.core.routes.verdict import LearnedState, SessionState
from bgpflat.errors import SpecError, StationError

POLICY_ORDER = {"pre": 0, "post": 1, "loc-rib": 2}


def route_records(
    routers: Iterable[RouterRib],
    *,
    router: str | None = None,
    peer: str | None = None,
    policy: str | None = None,
) -> list[dict[str, Any]]:
    """Every kept path as ``Route.to_dict()`` with ``router``, ``peer`` and ``policy`` added,
    sorted by router, monitored peer, policy, prefix and path id."""
    rows = []
    for rib in routers:
        if router is not None and rib.address != router:
            continue
        router_key = parse_address(rib.address)
        for monitored, table_policy, route in rib.routes(peer=peer, policy=policy):
            key = (
                router_key,
                parse_address(monitored),
                POLICY_ORDER.get(table_policy, 9),
                route.prefix,
                route.path_id or 0,
            )
            rows.append((key, rib.address, monitored, table_policy, route))
    rows.sort(key=lambda row: row[0])
    out = []
    for _, address, monitored, table_policy, route in rows:
        record = route.to_dict()
        record["router"] = address
        record["peer"] = monitored
        record["policy"] = table_policy
        out.append(record)
    return out


def learned_from_station(data: Mapping[str, Any], *, router: str, policy: str, source: str) -> LearnedState:
    """What ``router`` reported in ``policy`` (pre, post or loc-rib), as verify's learned state.

    Sessions are the router's monitored peers (each a node's session with the router), up when
    the router says so and at End-of-RIB when that table is complete (for ``loc-rib``: when the
    router's Loc-RIB is). With ``post`` and ``loc-rib``, the pre-policy table rides along as
    ``sent``: a route the node sent but the router did not keep is then reported as filtered by
    the router rather than missing. ``loc-rib`` is what the router selected as best across all its
    peers: one path per prefix, each under the node whose path it is (``RouterRib.routes``), and a
    prefix matches when its best path is one that a node was expected to send.
    """
    routers = {str(r.get("router")): r for r in data.get("routers") or []}
    found = routers.get(router)
    if found is None:
        known = ", ".join(sorted(routers)) or "none"
        raise StationError(f"router {router} has never connected to the BMP station ({source}); routers: {known}")
    if found.get("state") != "up":
        raise StationError(
            f"router {router} has no BMP session with the station ({found.get('state')}: {found.get('reason')})"
        )
    peers = found.get("peers") or []
    loc_rib = [p for p in peers if p.get("peer_type") == LOC_RIB_PEER]
    if policy == LOC_RIB and not loc_rib:
        raise StationError(
            f"router {router} has sent the BMP station no Loc-RIB ({source}); FRR 8.4 streams none, "
            'GoBGP does with route-monitoring-policy "local-rib" or "all"'
        )
    sessions: dict[str, SessionState] = {}
    for peer in peers:
        if peer.get("peer_type") == LOC_RIB_PEER:
            continue
        table = (peer.get("tables") or {}).get(policy) or {}
        if policy == LOC_RIB:
            table = {"complete": any((p.get("tables") or {}).get(LOC_RIB, {}).get("complete") for p in loc_rib)}
        address = str(peer.get("peer"))
        sessions[address] = SessionState(
            peer=address, state=str(peer.get("state")), end_of_rib=bool(table.get("complete"))
        )
    records = [r for r in data.get("routes") or [] if r.get("router") == router]
    try:
        routes = RouteTable.from_records([r for r in records if r.get("policy") == policy])
        sent_records = [r for r in records if r.get("policy") == PRE_POLICY]
        if policy == LOC_RIB:
            # A path the router kept but did not select is not filtered: only what its import
            # policy refused (in pre-policy, not in post-policy) is, where post-policy is streamed.
            kept = {(r.get("session"), r.get("prefix")) for r in records if r.get("policy") == POST_POLICY}
            sent_records = [r for r in sent_records if (r.get("session"), r.get("prefix")) not in kept]
        sent = RouteTable.from_records(sent_records) if policy in (POST_POLICY, LOC_RIB) and sent_records else None
    except SpecError as exc:
        raise SpecError(exc.message, file=source, path=exc.path, fix=exc.fix) from None
    return LearnedState(
        routes=routes,
        sessions=sessions,
        source=f"{source} router {router} {policy_name(policy)}",
        sent=sent,
        router=router,
        # Without path identifiers a monitored peer's ADD-PATH paths overwrite each other.
        single_path=not any(r.get("path_id") is not None for r in records),
        best_path_only=policy == LOC_RIB,
    )
