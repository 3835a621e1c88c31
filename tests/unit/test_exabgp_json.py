"""ExaBGP API lines (real captures from 4.2.25 and 5.0.15, exabgp-lab-notes §5) -> events."""

from __future__ import annotations

import json

import pytest

from bgpflat.core.exabgp.events import (
    EndOfRibEvent,
    IgnoredEvent,
    MalformedEvent,
    NegotiatedEvent,
    NotificationEvent,
    OpenEvent,
    SessionStateEvent,
    UpdateEvent,
)
from bgpflat.core.exabgp.parser import parse_line
from bgpflat.core.net.prefixes import Prefix

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


def bulk_update(items: list[object], family: str = "ipv4 unicast") -> str:
    line = json.loads(UPDATE_50)
    line["neighbor"]["message"]["update"]["announce"] = {family: {"10.0.0.1": items}}
    return json.dumps(line)


def eager_keys(items: list[object]) -> list[tuple[str, int | None]]:
    """What the per-NLRI parser makes of each item, one line per item (the reference)."""
    keys = []
    for item in items:
        event = parse_line(bulk_update([item]))
        assert isinstance(event, UpdateEvent)
        keys += [(str(r.prefix), r.path_id) for r in event.announced]
    return keys


@pytest.mark.parametrize(
    "items",
    [
        # the table-dump shape: /32s with one path-id (the whole list is checked at once)
        [{"nlri": f"100.64.{i // 256}.{i % 256}/32", "path-information": "0.0.0.3"} for i in range(300)],
        # lengths below /32 (host bits checked), several path-ids, none
        [
            {"nlri": "10.244.0.64/26", "path-information": "0.0.0.2"},
            {"nlri": "0.0.0.0/0", "path-information": "7"},
            {"nlri": "10.96.0.0/12", "path-information": "0.0.0.2"},
            {"nlri": "192.168.0.1/32"},
        ],
        [{"nlri": "10.244.0.64/26"}, {"nlri": "10.244.1.0/24"}],
        # non-canonical text and plain strings take the per-NLRI path; keys come out canonical
        [{"nlri": "010.1.2.0/24", "path-information": "0.0.0.1"}, "10.1.3.0/24"],
    ],
)
def test_bulk_nlri_give_the_same_paths_as_one_by_one(items: list[object]) -> None:
    event = parse_line(bulk_update(items))
    assert isinstance(event, UpdateEvent)
    keys = [key for announcement in event.announcements for key in announcement.keys]
    assert keys == eager_keys(items)
    assert [(str(r.prefix), r.path_id) for r in event.announced] == keys
    assert event.announced_count == len(items)


def test_ipv6_keys_are_canonical() -> None:
    event = parse_line(bulk_update([{"nlri": "FD00:10:0:0::/64", "path-information": "0.0.0.7"}], "ipv6 unicast"))
    assert isinstance(event, UpdateEvent)
    assert event.announcements[0].keys == (("fd00:10::/64", 7),)


@pytest.mark.parametrize(
    "bad",
    [
        {"nlri": "10.244.0.1/26", "path-information": "0.0.0.3"},  # host bits, among valid /32s
        {"nlri": "10.244.0.0/33", "path-information": "0.0.0.3"},
        {"nlri": "10.244.0.0/32\n10.0.0.0/32", "path-information": "0.0.0.3"},
        {"nlri": 42, "path-information": "0.0.0.3"},
        {"nlri": "10.244.0.0/32", "path-information": "x.y"},
        {"nlri": "10.244.0.0/32", "path-information": True},
    ],
)
def test_one_bad_nlri_in_a_bulk_update_makes_the_line_malformed(bad: dict[str, object]) -> None:
    items: list[object] = [{"nlri": f"100.64.0.{i}/32", "path-information": "0.0.0.3"} for i in range(200)]
    items.insert(100, bad)
    event = parse_line(bulk_update(items))
    assert isinstance(event, MalformedEvent), event


def test_withdraw_keys_match_the_announced_keys() -> None:
    announced = parse_line(UPDATE_50)
    line = (
        "{ " + ENV50 + ', "type": "update", "neighbor": { ' + NB50 + ', "direction": "receive", "message": '
        '{ "update": { "withdraw": { "ipv4 unicast": [ { "nlri": "10.244.0.0/26", "path-information": "0.0.0.2" } ] '
        "} } } } }"
    )
    withdrawn = parse_line(line)
    assert isinstance(announced, UpdateEvent) and isinstance(withdrawn, UpdateEvent)
    assert withdrawn.withdrawn_keys == announced.announcements[0].keys
