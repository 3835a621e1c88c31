"""The station's tables as records: the route shape of ``peer routes`` plus router, peer and policy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bgpflat.core.bmp.rib import RouterRib
from bgpflat.core.net.prefixes import parse_address

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
