"""BMP messages from a router -> the monitored peers and tables the station keeps (core.bmp)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from bgpflat.core.bmp.messages import Framer, PeerUp, decode
from bgpflat.core.bmp.rib import RouterRib
from bgpflat.core.bmp.update import BmpError
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route

sys.path.insert(0, str(Path(__file__).parent))
import bmp_wire as w

NODE, NODE6 = "10.0.0.1", "fd00::1"
P1, P2 = Prefix.parse("10.244.0.0/26"), Prefix.parse("10.96.0.0/12")
P6 = Prefix.parse("fd00:244::/122")


def feed(rib: RouterRib, *messages: bytes) -> list[dict[str, object]]:
    framer = Framer()
    events: list[dict[str, object]] = []
    for message in framer.feed(b"".join(messages)):
        events.extend(rib.handle(decode(message)))
    assert framer.pending == 0
    return events


def table(rib: RouterRib, policy: str) -> set[Route]:
    return {route for _, p, route in rib.routes(policy=policy) if p == policy}


def test_peer_up_keeps_both_opens_and_the_tables_fill_per_policy() -> None:
    rib = RouterRib(address="192.0.2.1")
    events = feed(
        rib,
        w.initiation(sys_descr="Juniper"),
        w.peer_up(NODE, peer_as=64512, router_as=65000),
        w.route_monitoring(NODE, w.update([P1, P2], communities=[(65000, 100)], large=[(64512, 1, 2)])),
        w.route_monitoring(NODE, w.update([P1]), post=True),
        w.route_monitoring(NODE, w.end_of_rib()),
        w.route_monitoring(NODE, w.end_of_rib(), post=True),
    )
    assert [e["event"] for e in events] == ["initiation", "peer-up"]
    up = events[1]
    assert up["sent_open"]["as"] == 65000 and up["received_open"]["as"] == 64512  # type: ignore[index]
    assert up["received_open"]["families"] == ["ipv4 unicast", "ipv6 unicast"]  # type: ignore[index]
    assert table(rib, "pre") == {
        Route(P1, NODE, NODE, (64512,), "igp", ((65000, 100),), ((64512, 1, 2),)),
        Route(P2, NODE, NODE, (64512,), "igp", ((65000, 100),), ((64512, 1, 2),)),
    }
    assert table(rib, "post") == {Route(P1, NODE, NODE, (64512,))}
    peer = rib.to_dict()["peers"][0]
    assert peer["tables"]["pre"] == {"paths": 2, "prefixes": 2, "eor": ["ipv4 unicast"], "complete": True}
    assert peer["tables"]["post"]["eor"] == ["ipv4 unicast"]


def test_withdrawals_ipv6_and_peer_down() -> None:
    rib = RouterRib(address="192.0.2.1")
    feed(
        rib,
        w.peer_up(NODE6),
        w.route_monitoring(NODE6, w.update([P6], next_hop="fd00::1")),
        w.route_monitoring(NODE6, w.update([P1], next_hop="10.0.0.1")),
        w.route_monitoring(NODE6, w.end_of_rib(afi=2)),
    )
    routes = table(rib, "pre")
    assert {r.prefix for r in routes} == {P6, P1}
    assert next(r for r in routes if r.prefix == P6).next_hop == "fd00::1"
    assert rib.to_dict()["peers"][0]["tables"]["pre"]["eor"] == ["ipv6 unicast"]
    feed(rib, w.route_monitoring(NODE6, w.update(withdrawn=[P6])))
    assert {r.prefix for r in table(rib, "pre")} == {P1}
    events = feed(rib, w.peer_down(NODE6))
    assert events[0]["flushed"] == 1 and table(rib, "pre") == set()
    assert rib.to_dict()["peers"][0]["state"] == "down"


def test_add_path_as_negotiated_in_the_peer_up() -> None:
    rib = RouterRib(address="192.0.2.1")
    feed(
        rib,
        w.initiation(sys_descr="Cisco IOS XR"),
        w.peer_up(NODE, router_add_path=1, peer_add_path=2),
        w.route_monitoring(NODE, w.update([P1, P1], path_ids=[1, 2], next_hop="10.0.0.1")),
    )
    assert sorted(r.path_id for r in table(rib, "pre")) == [1, 2]
    assert rib.to_dict()["peers"][0]["tables"]["pre"]["prefixes"] == 1  # two paths of one prefix


def test_frr_sends_no_path_ids_and_prepends_its_own_as() -> None:
    """FRR 8.4 drops path identifiers from Route Monitoring and encodes the AS path as it would
    send it to the eBGP peer; the table shows what the peer sent."""
    rib = RouterRib(address="192.0.2.1")
    feed(
        rib,
        w.initiation(sys_descr="FRRouting 8.4.4"),
        w.peer_up(NODE, router_add_path=1, peer_add_path=2, router_as=65000),
        w.route_monitoring(NODE, w.update([P1], as_path=(65000, 64512))),
    )
    assert table(rib, "pre") == {Route(P1, NODE, NODE, (64512,))}


def test_a_peer_up_without_opens_brings_the_peer_up() -> None:
    """FRR sends a bare OPEN header in a Peer Up when it kept no copy of that session's OPEN. The
    peer is up all the same; its own AS, which FRR prepends, comes from another Peer Up."""
    rib = RouterRib(address="192.0.2.1")
    events = feed(
        rib,
        w.initiation(sys_descr="FRRouting 8.4.4"),
        w.peer_up("10.0.0.2", router_as=65000),
        w.peer_up(NODE, bare_opens=True),
        w.route_monitoring(NODE, w.update([P1], as_path=(65000, 64512))),
    )
    up = [e for e in events if e.get("event") == "peer-up" and e["peer"] == NODE]
    assert up and up[0]["sent_open"] is None and up[0]["received_open"] is None
    assert table(rib, "pre") == {Route(P1, NODE, NODE, (64512,))}


def test_two_octet_as_path_with_as4_path() -> None:
    rib = RouterRib(address="192.0.2.1")
    pdu = w.update([P1], as_path=(23456,), two_octet=True)
    # Add AS4_PATH (17) carrying the real 4-byte AS: rebuild the UPDATE with one more attribute.
    import struct

    as4 = w.attr(17, struct.pack("!BBI", 2, 1, 4_200_000_000), 0xC0)
    body = pdu[19:]
    wlen = struct.unpack_from("!H", body, 0)[0]
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    attrs = body[4 + wlen : 4 + wlen + alen] + as4
    new = body[: 2 + wlen] + struct.pack("!H", len(attrs)) + attrs + body[4 + wlen + alen :]
    feed(rib, w.peer_up(NODE), w.route_monitoring(NODE, w.bgp(2, new), two_octet=True))
    assert [r.as_path for r in table(rib, "pre")] == [(4_200_000_000,)]


def test_loc_rib_routes_belong_to_the_router() -> None:
    rib = RouterRib(address="192.0.2.1")
    feed(rib, w.route_monitoring("0.0.0.0", w.update([P1], as_path=(64512,)), loc_rib=True))
    assert [(r.session, r.prefix) for r in table(rib, "loc-rib")] == [("192.0.2.1", P1)]


def test_statistics_are_kept_by_name() -> None:
    rib = RouterRib(address="192.0.2.1")
    feed(rib, w.peer_up(NODE), w.statistics(NODE, [(0, 3), (7, 12)]))
    assert rib.to_dict()["peers"][0]["statistics"] == {
        "prefixes rejected by inbound policy": 3,
        "routes in Adj-RIB-In": 12,
    }


def test_framer_waits_for_the_rest_and_refuses_garbage() -> None:
    message = w.peer_up(NODE)
    framer = Framer()
    assert framer.feed(message[:10]) == []
    assert [isinstance(decode(m), PeerUp) for m in framer.feed(message[10:])] == [True]
    with pytest.raises(BmpError, match="version 4"):
        Framer().feed(b"\x04" + message[1:])
    with pytest.raises(BmpError, match="length 2"):
        Framer().feed(b"\x03\x00\x00\x00\x02\x00")


@pytest.mark.parametrize(
    ("pdu", "error"),
    [
        (w.bgp(2, b"\x00\x00\x00\x04\x40\x01\x01\x07"), "ORIGIN"),
        (w.bgp(2, b"\x00\x00\x00\x00\x21\x0a"), "prefix length 33"),
        (w.bgp(2, b"\x00\x05\x00\x00"), "withdrawn"),
        (w.bgp(1, b""), "not UPDATE"),
    ],
)
def test_bad_updates_say_what_is_wrong(pdu: bytes, error: str) -> None:
    rib = RouterRib(address="192.0.2.1")
    with pytest.raises(BmpError, match=error):
        feed(rib, w.peer_up(NODE), w.route_monitoring(NODE, pdu))


def test_loc_rib_paths_name_the_node_whose_path_the_router_selected() -> None:
    """GoBGP's Loc-RIB (peer type 3, address 0.0.0.0, no Peer Up): each best path goes under the node
    whose post-policy path it is, else the monitored peer that is its next hop, else the router."""
    rib = RouterRib(address="192.0.2.1")
    other = "10.0.0.2"
    feed(
        rib,
        w.initiation(sys_name="GoBGP", sys_descr="3.10.0"),
        w.peer_up(NODE),
        w.peer_up(other),
        w.route_monitoring(NODE, w.update([P1], next_hop=NODE)),
        w.route_monitoring(other, w.update([P1], next_hop=other, as_path=(64512, 64513))),
        w.route_monitoring(other, w.update([P1], next_hop=other, as_path=(64512, 64513)), post=True),
        w.route_monitoring("0.0.0.0", w.update([P1], next_hop=other, as_path=(64512, 64513)), loc_rib=True),
        w.route_monitoring("0.0.0.0", w.update([P2], next_hop=NODE), loc_rib=True),  # in no Adj-RIB-In
        w.route_monitoring("0.0.0.0", w.update([P6], next_hop="fd00::9"), loc_rib=True),
    )
    assert {(r.prefix, r.session) for r in table(rib, "loc-rib")} == {(P1, other), (P2, NODE), (P6, "192.0.2.1")}
    # The same answer whichever way the station reads it: ``routes`` filtered to Loc-RIB or not.
    assert {r.session for _, p, r in rib.routes() if p == "loc-rib"} == {other, NODE, "192.0.2.1"}


@pytest.mark.parametrize(("sys_name", "complete"), [("GoBGP", True), ("tor1", False)])
def test_gobgp_tables_are_complete_without_end_of_rib(sys_name: str, complete: bool) -> None:
    """GoBGP sends End-of-RIB only in a new BMP session's table dump, and never for Loc-RIB."""
    rib = RouterRib(address="192.0.2.1")
    feed(
        rib,
        w.initiation(sys_name=sys_name, sys_descr="3.10.0"),
        w.peer_up(NODE),
        w.route_monitoring(NODE, w.update([P1])),
        w.route_monitoring("0.0.0.0", w.update([P1]), loc_rib=True),
    )
    tables = {policy: t["complete"] for peer in rib.to_dict()["peers"] for policy, t in peer["tables"].items()}
    assert tables == {"pre": complete, "loc-rib": complete}


def test_gobgp_path_identifiers_only_in_its_live_pre_policy_feed() -> None:
    """GoBGP with ADD-PATH toward the node: the node's UPDATEs as received carry path identifiers;
    its own single-path messages (table dump, post-policy, Loc-RIB) do not. 10.244.0.0/26 is the
    case that would read as an identifier and 0.0.0.0/0 if the station applied ADD-PATH to them."""
    rib = RouterRib(address="192.0.2.1")
    feed(
        rib,
        w.initiation(sys_name="GoBGP", sys_descr="3.10.0"),
        w.peer_up(NODE, router_add_path=1, peer_add_path=3),
        w.route_monitoring(NODE, w.update([P1])),  # the table dump: no identifier
        w.route_monitoring(NODE, w.update([P1]), post=True),
        w.route_monitoring("0.0.0.0", w.update([P1]), loc_rib=True),
        w.route_monitoring(NODE, w.update([P2, P2], path_ids=[1, 2])),  # live, as the node sent it
        w.route_monitoring(NODE, w.update([P2], path_ids=[1], next_hop="10.0.0.2")),
    )
    assert {(r.prefix, r.path_id) for r in table(rib, "pre")} == {(P1, None), (P2, 1), (P2, 2)}
    assert {(r.prefix, r.path_id) for r in table(rib, "post")} == {(P1, None)}
    assert {(r.prefix, r.path_id) for r in table(rib, "loc-rib")} == {(P1, None)}
    # The live feed names P1's path: it replaces the dump's; a withdrawal by identifier goes too.
    withdrawn = w.nlri(P2, path_id=1)
    feed(
        rib,
        w.route_monitoring(NODE, w.update([P1], path_ids=[7])),
        w.route_monitoring(NODE, w.bgp(2, struct.pack("!H", len(withdrawn)) + withdrawn + b"\0\0")),
    )
    assert {(r.prefix, r.path_id) for r in table(rib, "pre")} == {(P1, 7), (P2, 2)}
