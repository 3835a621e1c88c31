"""ExaBGP API lines (real captures from 4.2.25 and 5.0.15, exabgp-lab-notes §5) -> events."""

from __future__ import annotations

import json

import pytest

from bgpflat.core.exabgp_json import (
    EndOfRibEvent,
    IgnoredEvent,
    MalformedEvent,
    NegotiatedEvent,
    NotificationEvent,
    OpenEvent,
    SessionStateEvent,
    UpdateEvent,
    parse_line,
)
from bgpflat.core.prefixes import Prefix

ENV42 = '"exabgp": "4.0.1", "time": 1795241428.6, "host" : "vm", "pid" : 26672, "ppid" : 1, "counter": 3'
ENV50 = '"exabgp": "5.0.0", "time": 1795241437.1, "host" : "vm", "pid" : 26681, "ppid" : 1, "counter": 3'
NB42 = '"address": { "local": "10.0.0.100", "peer": "10.0.0.1" }, "asn": { "local": 65000, "peer": 64512 }'
NB50 = NB42 + ', "router-id": "10.0.0.100"'

UPDATE_42 = (
    "{ " + ENV42 + ', "type": "update", "neighbor": { ' + NB42 + ' , "direction": "receive", "message": { "update": '
    '{ "attribute": { "origin": "igp", "as-path": [ 64512 ], "confederation-path": [], '
    '"community": [[64512, 100]], "large-community": [[64512, 1, 2]] }, "announce": { "ipv4 unicast": '
    '{ "10.0.0.1": [ { "nlri": "10.244.0.0/26", "path-information": "0.0.0.2" } ] } } } } } }'
)
UPDATE_50 = (
    "{ " + ENV50 + ', "type": "update", "neighbor": { ' + NB50 + ' , "direction": "receive", "message": { "update": '
    '{ "attribute": { "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [64512]}}, '
    '"community": [[64512, 100]], "large-community": [[64512, 1, 2]] }, "announce": { "ipv4 unicast": '
    '{ "10.0.0.1": [ { "nlri": "10.244.0.0/26", "path-information": "0.0.0.2" } ] } } } } } }'
)


def test_announce_is_the_same_route_from_42_and_50() -> None:
    a, b = parse_line(UPDATE_42), parse_line(UPDATE_50)
    assert isinstance(a, UpdateEvent) and isinstance(b, UpdateEvent)
    assert a.announced == b.announced
    (route,) = a.announced
    assert str(route.prefix) == "10.244.0.0/26"
    assert route.next_hop == "10.0.0.1"
    assert route.session == "10.0.0.1"
    assert route.as_path == (64512,)
    assert route.communities == ((64512, 100),)
    assert route.large_communities == ((64512, 1, 2),)
    assert route.path_id == 2


def test_bytes_lines_are_accepted() -> None:
    assert parse_line(UPDATE_50.encode()) == parse_line(UPDATE_50)


def test_several_nlri_and_next_hops_in_one_update() -> None:
    line = json.loads(UPDATE_50)
    line["neighbor"]["message"]["update"]["announce"] = {
        "ipv4 unicast": {"10.0.0.1": [{"nlri": "10.96.0.0/12"}, {"nlri": "10.244.0.64/26"}]},
        "ipv6 unicast": {"fd00::1": [{"nlri": "fd00:10::/64", "path-information": "0.0.0.7"}]},
    }
    event = parse_line(json.dumps(line))
    assert isinstance(event, UpdateEvent)
    assert [(str(r.prefix), r.next_hop, r.path_id) for r in event.announced] == [
        ("10.96.0.0/12", "10.0.0.1", None),
        ("10.244.0.64/26", "10.0.0.1", None),
        ("fd00:10::/64", "fd00::1", 7),
    ]


def test_as_path_segments_of_50_are_flattened_in_order_and_confeds_dropped() -> None:
    line = json.loads(UPDATE_50)
    line["neighbor"]["message"]["update"]["attribute"]["as-path"] = {
        "1": {"element": "as-set", "value": [65003, 65002]},
        "0": {"element": "as-sequence", "value": [65001, 65010]},
        "2": {"element": "confed-sequence", "value": [1]},
    }
    event = parse_line(json.dumps(line))
    assert isinstance(event, UpdateEvent)
    assert event.announced[0].as_path == (65001, 65010, 65003, 65002)


@pytest.mark.parametrize(
    "withdraw",
    [
        '{"ipv4 unicast": [{"nlri": "10.244.0.64/26", "path-information": "0.0.0.2"}]}',
        '{"ipv4 unicast": ["10.244.0.64/26"]}',
    ],
)
def test_withdraw(withdraw: str) -> None:
    line = (
        "{ " + ENV50 + ', "type": "update", "neighbor": { ' + NB50 + ', "direction": "receive", '
        '"message": { "update": { "withdraw": ' + withdraw + " } } } }"
    )
    event = parse_line(line)
    assert isinstance(event, UpdateEvent)
    assert event.announced == ()
    assert event.withdrawn[0][0] == Prefix.parse("10.244.0.64/26")


def test_end_of_rib() -> None:
    line = (
        "{ " + ENV50 + ', "type": "update", "neighbor": { ' + NB50 + ', "direction": "receive", '
        '"message": { "eor": { "afi" : "ipv4", "safi" : "unicast" } } } }'
    )
    assert parse_line(line) == EndOfRibEvent(peer="10.0.0.1", family="ipv4 unicast")


@pytest.mark.parametrize(
    ("env", "nb", "reason"),
    [
        (ENV42, NB42, "peer reset, message (notification received (6,2)) error(Cease / Administrative Shutdown)"),
        (ENV50, NB50, "notification received (6,2)"),
    ],
)
def test_state_down_keeps_reason(env: str, nb: str, reason: str) -> None:
    line = "{ " + env + ', "type": "state", "neighbor": { ' + nb + f', "state": "down", "reason": "{reason}" }} }}'
    event = parse_line(line)
    assert event == SessionStateEvent(
        peer="10.0.0.1", local="10.0.0.100", peer_as=64512, local_as=65000, state="down", reason=reason
    )


def test_shutdown_line_has_no_neighbor() -> None:
    line = (
        '{"exabgp": "5.0.0", "time": 1.0, "host": "vm", "pid": 1, "ppid": 1, "type": "notification", '
        '"notification": "shutdown"}'
    )
    assert parse_line(line) == NotificationEvent(peer=None, code=None, subcode=None, text="shutdown")


def test_peer_notification() -> None:
    line = (
        "{ " + ENV50 + ', "type": "notification", "neighbor": { ' + NB50 + ', "direction": "receive", '
        '"message": "", "notification": {"code": 6, "subcode": 2, "data": "0x"} } }'
    )
    event = parse_line(line)
    assert isinstance(event, NotificationEvent) and (event.code, event.subcode) == (6, 2)


def test_open_gives_the_peer_router_id() -> None:
    line = (
        "{ " + ENV50 + ', "type": "open", "neighbor": { ' + NB50 + ', "direction": "receive", "open": '
        '{"version": 4, "asn": 64512, "hold_time": 240, "router_id": "10.0.0.1", "capabilities": {}} } }'
    )
    assert parse_line(line) == OpenEvent(peer="10.0.0.1", router_id="10.0.0.1", asn=64512, hold_time=240)


def test_negotiated_families() -> None:
    line = (
        "{ " + ENV50 + ', "type": "negotiated", "neighbor": { ' + NB50 + ', "negotiated": {"message_size": 4096,'
        ' "hold_time": 90, "families": ["ipv4 unicast", "ipv6 unicast"], "add_path": {"send": [], '
        '"receive": ["ipv4 unicast"]}} } }'
    )
    assert parse_line(line) == NegotiatedEvent(
        peer="10.0.0.1", families=("ipv4 unicast", "ipv6 unicast"), add_path_receive=("ipv4 unicast",), hold_time=90
    )


@pytest.mark.parametrize("line", ["done", "error", "", "   "])
def test_ack_text_is_ignored_not_malformed(line: str) -> None:
    assert isinstance(parse_line(line), IgnoredEvent)


def test_unknown_types_are_ignored() -> None:
    line = "{ " + ENV50 + ', "type": "refresh", "neighbor": { ' + NB50 + ', "direction": "receive" } }'
    assert parse_line(line) == IgnoredEvent(kind="refresh")


def test_other_families_are_counted_not_parsed() -> None:
    line = json.loads(UPDATE_50)
    line["neighbor"]["message"]["update"]["announce"]["ipv4 flow"] = {"no-nexthop": [{"x": 1}, {"y": 2}]}
    event = parse_line(json.dumps(line))
    assert isinstance(event, UpdateEvent) and event.unsupported == 2 and len(event.announced) == 1


@pytest.mark.parametrize(
    "line",
    [
        # 4.2.25's broken route-refresh JSON
        '{ "exabgp": "4.0.1", "type": "refresh", "neighbor": { "route-refresh": { "afi": ""ipv4"" } } }',
        "not json at all",
        "[1, 2]",
        '{"type": "update"}',
        UPDATE_50.replace('"10.244.0.0/26"', '"10.244.0.1/26"'),
        UPDATE_50.replace('"10.244.0.0/26"', '"10.300.0.0/26"'),
        UPDATE_50.replace('"10.244.0.0/26"', '"10.244.0.0/33"'),
        UPDATE_50.replace('"igp"', '"sideways"'),
        UPDATE_50.replace("[[64512, 100]]", '["64512:100"]'),
        UPDATE_50.replace('"10.0.0.1": [', '"not-an-address": ['),
        UPDATE_50[: len(UPDATE_50) // 2],
    ],
)
def test_malformed_lines_never_raise(line: str) -> None:
    event = parse_line(line)
    assert isinstance(event, MalformedEvent)
    assert event.reason
    assert len(event.line) <= 201


def test_invalid_utf8_is_malformed() -> None:
    event = parse_line(b'{"type": "\xff"}')
    assert isinstance(event, MalformedEvent)
