"""The BMP station's Prometheus metrics (``bgpflat bmp run --metrics-listen``).

Built on each scrape from ``Station.metrics_view()``: routers by the address their BMP session
comes from, monitored peers (the nodes that sent the routes), the paths of each table (``pre``,
``post``, ``loc-rib``), messages by BMP type and messages that did not decode.
"""

from __future__ import annotations

from typing import Any

from bgpflat.core.bmp.messages import MESSAGE_NAMES
from bgpflat.daemon.metrics import COUNTER, GAUGE, Family

ROUTER_STATES = ("up", "disconnected", "dropped")


def bmp_families(view: dict[str, Any]) -> list[Family]:
    routers = Family("bgpflat_bmp_routers", GAUGE, "Routers known to the station, by session state", ("state",))
    router_up = Family("bgpflat_bmp_router_up", GAUGE, "1 while the router's BMP session is up", ("router",))
    peers = Family(
        "bgpflat_bmp_monitored_peers", GAUGE, "Monitored peers each router reports, by state", ("router", "state")
    )
    routes = Family(
        "bgpflat_bmp_routes",
        GAUGE,
        "Paths in each monitored peer's table (pre-policy, post-policy, Loc-RIB)",
        ("router", "peer", "policy"),
    )
    messages = Family("bgpflat_bmp_messages_received", COUNTER, "BMP messages received, by type", ("router", "type"))
    malformed = Family(
        "bgpflat_bmp_malformed_messages", COUNTER, "BMP messages that did not decode (each ends a session)", ("router",)
    )
    states = dict.fromkeys(ROUTER_STATES, 0)
    for router in view["routers"]:
        address = str(router["router"])
        states[router["state"]] = states.get(router["state"], 0) + 1
        router_up.add(1.0 if router["state"] == "up" else 0.0, address)
        by_state: dict[str, int] = {}
        for peer in router["peers"]:
            by_state[peer["state"]] = by_state.get(peer["state"], 0) + 1
            for policy, count in sorted(peer["tables"].items()):
                routes.add(float(count), address, str(peer["peer"]), policy)
        for state, count in sorted(by_state.items()):
            peers.add(float(count), address, state)
        for kind, count in sorted(router["by_type"].items()):
            messages.add(float(count), address, MESSAGE_NAMES.get(kind, f"type-{kind}"))
    for router, count in sorted(view["malformed"].items()):
        malformed.add(float(count), router)
    for state, count in states.items():
        routers.add(float(count), state)
    return [routers, router_up, peers, routes, messages, malformed]
