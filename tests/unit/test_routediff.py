"""diff_routes: missing / unexpected / mismatched per session and node, reason codes, compliance view."""

from __future__ import annotations

from test_advertise import ADDR, BLOCK, base, bgp_peer, expect

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.diff import (
    AS_PATH_MISMATCH,
    COMMUNITIES_MISMATCH,
    NEXT_HOP_MISMATCH,
    ROUTE_MISSING,
    ROUTE_UNEXPECTED,
    SESSION_NOTHING_LEARNED,
    SESSION_UNEXPECTED,
    diff_routes,
)
from bgpflat.core.routes.table import Route, RouteTable


def learned_copy(table: RouteTable) -> list[Route]:
    """What a peer with ADD-PATH reports: the same routes with path IDs."""
    return [route._replace(path_id=index + 1) for index, route in enumerate(table.sorted())]


def test_identical_tables_comply_and_count_every_prefix_as_present() -> None:
    expected = expect(base())
    diff = diff_routes(expected=expected, learned=RouteTable(learned_copy(expected.table)))
    assert diff.complies
    assert not diff
    assert len(diff.present) == 9
    assert diff.counts() == {"present": 9, "missing": 0, "unexpected": 0, "mismatched": 0, "session": 0}


def test_missing_block_is_explained_in_network_terms() -> None:
    expected = expect(base())
    gone = Prefix.parse(BLOCK["c"])
    learned = RouteTable(r for r in learned_copy(expected.table) if not (r.prefix == gone and r.session == ADDR["a"]))
    diff = diff_routes(expected=expected, learned=learned)
    assert not diff.complies
    [finding] = diff.missing
    assert finding.code == ROUTE_MISSING
    assert finding.node == "a"
    assert diff.explain(finding) == (
        "10.244.0.128/26 missing via 10.0.0.1 (a): block of c, expected through mesh re-export "
        "(eBGP peer, next hop self)"
    )


def test_wrong_next_hop_as_path_and_communities_each_have_a_code() -> None:
    expected = expect(base(mesh=False))
    routes = learned_copy(expected.table)
    a, b, c = sorted(routes, key=lambda r: r.session)
    learned = RouteTable(
        [a._replace(next_hop="10.0.0.9"), b._replace(as_path=(64512, 64512)), c._replace(communities=((65000, 1),))]
    )
    diff = diff_routes(expected=expected, learned=learned)
    assert [f.code for f in diff.mismatched] == [NEXT_HOP_MISMATCH, AS_PATH_MISMATCH, COMMUNITIES_MISMATCH]
    texts = [diff.explain(f) for f in diff.mismatched]
    assert texts[0].startswith(
        "10.244.0.0/26 mismatched via 10.0.0.1 (a): next hop expected 10.0.0.1, learned 10.0.0.9 — block of a"
    )
    assert "AS path expected [64512], learned [64512 64512]" in texts[1]
    assert "communities expected [], learned 65000:1" in texts[2]


def test_unexpected_routes_fail_only_in_strict_mode() -> None:
    expected = expect(base(mesh=False))
    extra = Route(Prefix.parse("10.244.0.7/32"), ADDR["b"], ADDR["b"], (64512,))
    learned = RouteTable([*learned_copy(expected.table), extra])
    relaxed = diff_routes(expected=expected, learned=learned)
    assert relaxed.complies
    assert [f.code for f in relaxed.unexpected] == [ROUTE_UNEXPECTED]
    assert "10.244.0.7/32 unexpected via 10.0.0.2 (b) (next hop 10.0.0.2)" in relaxed.explain(relaxed.unexpected[0])
    assert not diff_routes(expected=expected, learned=learned, strict=True).complies


def test_duplicate_identical_paths_are_not_a_difference() -> None:
    # BIRD may send the node's own service-range static and its mesh copy, both next hop self.
    expected = expect(base(config={"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
    routes = learned_copy(expected.table)
    duplicates = [r._replace(path_id=100 + i) for i, r in enumerate(routes) if str(r.prefix) == "10.96.0.0/12"]
    diff = diff_routes(expected=expected, learned=RouteTable([*routes, *duplicates]))
    assert diff.complies
    assert not diff.findings


def test_an_extra_path_behind_a_matching_one_is_a_mismatch() -> None:
    # Every key but one has a single path on both sides; the first learned path of that key matches.
    expected = expect(base(mesh=False))
    routes = learned_copy(expected.table)
    stray = routes[0]._replace(next_hop="10.0.0.9", path_id=99)
    diff = diff_routes(expected=expected, learned=RouteTable([*routes, stray]))
    [finding] = diff.findings
    assert finding.code == NEXT_HOP_MISMATCH
    assert (finding.session, finding.prefix) == (stray.session, stray.prefix)
    assert len(diff.present) == len(routes) - 1


def test_add_path_next_hop_sets_are_compared() -> None:
    expected = expect(
        base(peer=bgp_peer(keepOriginalNextHop=True), config={"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]})
    )
    routes = [
        r
        for r in learned_copy(expected.table)
        if not (r.session == ADDR["a"] and str(r.prefix) == "10.96.0.0/12" and r.next_hop == ADDR["c"])
    ]
    diff = diff_routes(expected=expected, learned=RouteTable(routes))
    [finding] = diff.mismatched
    assert finding.code == NEXT_HOP_MISMATCH
    assert "next hop expected {10.0.0.1, 10.0.0.2, 10.0.0.3}, learned {10.0.0.1, 10.0.0.2}" in diff.explain(finding)


def test_silent_expected_session_and_unknown_session() -> None:
    expected = expect(base(mesh=False))
    stranger = Route(Prefix.parse("10.244.0.0/26"), "10.0.0.77", "10.0.0.77", (64512,))
    learned = RouteTable([*(r for r in learned_copy(expected.table) if r.session != ADDR["c"]), stranger])
    diff = diff_routes(expected=expected, learned=learned)
    codes = {(f.code, f.session) for f in diff.session_findings}
    assert codes == {(SESSION_NOTHING_LEARNED, ADDR["c"]), (SESSION_UNEXPECTED, "10.0.0.77")}
    assert not diff.complies
    silent = next(f for f in diff.session_findings if f.code == SESSION_NOTHING_LEARNED)
    assert diff.explain(silent) == "session via 10.0.0.3 (c): nothing learned, 1 routes expected"


def test_per_session_and_per_node_breakdown() -> None:
    expected = expect(base())
    learned = RouteTable(
        r for r in learned_copy(expected.table) if not (r.session == ADDR["b"] and str(r.prefix) == BLOCK["a"])
    )
    diff = diff_routes(expected=expected, learned=learned)
    summary = {s.node: (s.expected, s.present, s.missing) for s in diff.summaries}
    assert summary == {"a": (3, 3, 0), "b": (3, 2, 1), "c": (3, 3, 0)}
    assert list(diff.by_node()) == ["a", "b", "c"]


def test_compliance_view_has_napalm_shape() -> None:
    expected = expect(base(mesh=False))
    extra = Route(Prefix.parse("192.0.2.0/24"), ADDR["a"], ADDR["a"], (64512,))
    learned = RouteTable([r for r in learned_copy(expected.table) if r.session != ADDR["b"]] + [extra])
    view = diff_routes(expected=expected, learned=learned).compliance()
    assert view["complies"] is False
    assert view["sessions"][ADDR["a"]] == {
        "present": [BLOCK["a"]],
        "missing": [],
        "extra": ["192.0.2.0/24"],
        "mismatched": [],
        "complies": True,
    }
    assert view["sessions"][ADDR["b"]]["missing"] == [BLOCK["b"]]
    assert view["sessions"][ADDR["b"]]["complies"] is False


def test_json_view_carries_codes_and_explanations_in_order() -> None:
    expected = expect(base(mesh=False))
    diff = diff_routes(expected=expected, learned=RouteTable())
    data = diff.to_dict()
    assert data["complies"] is False
    # A session's own finding comes first, then its routes, session by session.
    assert [f["code"] for f in data["findings"]] == [SESSION_NOTHING_LEARNED, ROUTE_MISSING] * 3
    assert data["reasons"] == {ROUTE_MISSING: 3, SESSION_NOTHING_LEARNED: 3}
    assert data["findings"][1]["explanation"].startswith("10.244.0.0/26 missing via 10.0.0.1 (a): block of a")


def test_plain_tables_can_be_diffed_without_reasons() -> None:
    route = Route(Prefix.parse("10.1.0.0/24"), "10.0.0.1", "10.0.0.1", (65001,))
    diff = diff_routes(expected=RouteTable([route]), learned=RouteTable([route._replace(origin="incomplete")]))
    assert diff.complies  # origin is not compared unless asked
    strict = diff_routes(
        expected=RouteTable([route]), learned=RouteTable([route._replace(origin="incomplete")]), compare_origin=True
    )
    assert [f.code for f in strict.mismatched] == ["origin-mismatch"]
    assert (
        diff_routes(expected=RouteTable([route]), learned=RouteTable()).explain(
            diff_routes(expected=RouteTable([route]), learned=RouteTable()).missing[0]
        )
        == "10.1.0.0/24 missing via 10.0.0.1: expected"
    )
