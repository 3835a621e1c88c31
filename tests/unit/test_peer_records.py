"""The peer's route output built from the RIB's stored paths is the eager ``Route`` output, exactly."""

from __future__ import annotations

import json

from bgpflat.core.exabgp.events import UpdateEvent
from bgpflat.core.exabgp.parser import parse_line
from bgpflat.core.exabgp.rib import Rib
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route, RouteTable
from bgpflat.peer.supervisor import path_records, route_records

ENV = '"exabgp": "5.0.0", "time": 1.0, "host": "vm", "pid": 1, "ppid": 1, "counter": 1'


def line(peer: str, message: dict[str, object], kind: str = "update") -> str:
    neighbor = {"address": {"local": "10.0.0.100", "peer": peer}, "asn": {"local": 65000, "peer": 64512}}
    return "{" + ENV + f', "type": "{kind}", "neighbor": ' + json.dumps({**neighbor, **message}) + "}"


def update(peer: str, attribute: dict[str, object], announce: dict[str, object]) -> str:
    return line(peer, {"direction": "receive", "message": {"update": {"attribute": attribute, "announce": announce}}})


def fed_rib() -> Rib:
    rib = Rib()
    for peer in ("10.0.0.2", "10.0.0.10"):
        rib.apply(parse_line(line(peer, {"state": "up"}, kind="state")), now=1)
    bulk = [{"nlri": f"100.64.{i // 256}.{i % 256}/32", "path-information": "0.0.0.3"} for i in range(600, 0, -1)]
    lines = [
        update("10.0.0.10", {"origin": "igp", "as-path": [64512]}, {"ipv4 unicast": {"10.0.0.10": bulk}}),
        update(
            "10.0.0.2",
            {
                "origin": "incomplete",
                "as-path": {"0": {"element": "as-sequence", "value": [64512, 64513]}},
                "community": [[64512, 100], [64512, 5]],
                "large-community": [[64512, 1, 2]],
            },
            {
                "ipv4 unicast": {
                    "10.0.0.2": [
                        {"nlri": "10.244.0.64/26", "path-information": "0.0.0.2"},
                        {"nlri": "10.244.0.64/26", "path-information": "0.0.0.1"},
                        {"nlri": "10.96.0.0/12"},
                    ],
                    "10.0.0.9": [{"nlri": "10.244.0.128/26", "path-information": "0.0.0.1"}],
                },
                "ipv6 unicast": {"fd00::2": [{"nlri": "fd00:10:0:0::/64", "path-information": "0.0.0.7"}]},
            },
        ),
        update("10.0.0.2", {"origin": "igp", "as-path": [64512]}, {"ipv4 unicast": {"10.0.0.2": ["10.0.0.2/32"]}}),
    ]
    for text in lines:
        event = parse_line(text)
        assert isinstance(event, UpdateEvent), event
        rib.apply(event, now=2)
    return rib


def test_records_from_stored_paths_equal_records_from_routes() -> None:
    rib = fed_rib()
    records = path_records(rib.path_items())
    assert records == route_records(list(rib.routes()))
    assert json.dumps(records) == json.dumps(route_records(list(rib.routes())))  # key order too
    assert len(records) == 600 + 6
    assert records[0]["session"] == "10.0.0.2" and records[-1]["session"] == "10.0.0.10"


def test_stored_paths_read_back_as_the_routes_that_were_announced() -> None:
    rib = fed_rib()
    table = RouteTable.from_records(path_records(rib.path_items()))
    v6 = Route(
        Prefix.parse("fd00:10::/64"),
        "fd00::2",
        "10.0.0.2",
        (64512, 64513),
        "incomplete",
        ((64512, 5), (64512, 100)),
        ((64512, 1, 2),),
        7,
    )
    assert v6 in list(table)
    assert table == rib.table()
    assert str(table.paths("10.0.0.10", Prefix.parse("100.64.2.88/32"))[0].prefix) == "100.64.2.88/32"
