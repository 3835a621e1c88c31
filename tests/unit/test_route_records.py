"""A learned-route file with a bad value names the record, the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route, RouteTable
from bgpflat.errors import SpecError

AS_PATH_FIX = "(fix: a list of AS numbers, e.g. [64512, 65000])"
PATH_ID_FIX = "(fix: a whole number (the ADD-PATH path identifier))"
GOOD = {"prefix": "10.233.65.0/24", "next_hop": "10.200.20.103", "session": "10.200.20.103", "as_path": [64513]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"as_path": "abc"}, f"routes[1].as_path: 'abc' is not a valid as path {AS_PATH_FIX}"),
        ({"as_path": [4294967296]}, f"routes[1].as_path: [4294967296] is not a valid as path {AS_PATH_FIX}"),
        (
            {"prefix": "10.233.65.1/24"},
            "routes[1].prefix: '10.233.65.1/24' has host bits set (fix: use 10.233.65.0/24)",
        ),
        ({"next_hop": "node-1"}, "routes[1].next_hop: 'node-1' is not an IP address"),
        ({"communities": ["64512:1:2"]}, "routes[1].communities: community '64512:1:2' is not aa:nn"),
        ({"path_id": "first"}, f"routes[1].path_id: 'first' is not a valid path id {PATH_ID_FIX}"),
        ({"origin": "bgp"}, "routes[1].origin: unknown origin 'bgp' (fix: igp, egp or incomplete)"),
    ],
)
def test_bad_field_is_named_with_its_fix(change: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        RouteTable.from_records([GOOD, {**GOOD, **change}])
    assert str(caught.value) == message


def test_missing_prefix_names_the_record() -> None:
    with pytest.raises(SpecError, match=r"^routes\[0\]: missing field 'prefix'$"):
        RouteTable.from_records([{"next_hop": "10.0.0.1"}])


def test_good_record_round_trips() -> None:
    route = Route.from_dict({**GOOD, "communities": ["64513:100"], "path_id": 2})
    assert Route.from_dict(route.to_dict()) == route
    assert route.as_path == (64513,) and route.communities == ((64513, 100),)


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1, 2**32 + 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "10.0.0.0/8", "10.0.0.1/8", "fd00::/64", "10.0.0.1", "fd00::1", "x", "64512:1", "1:2:3"]),
    st.sampled_from(["igp", "egp", "incomplete", "bgp"]),
    st.lists(st.one_of(st.integers(-1, 2**32 + 1), st.booleans(), st.sampled_from(["1", "64512:100", "1:2:3"]))),
)
_records = st.one_of(
    st.dictionaries(
        st.sampled_from(["prefix", "next_hop", "session", "as_path", "origin", "communities", "large_communities"])
        | st.just("path_id"),
        _values,
    ),
    st.builds(lambda r: r.to_dict(), st.builds(Route.from_dict, st.just(GOOD))),
    st.lists(st.none(), max_size=1),
)


def _one_by_one(records: list[object]) -> list[Route] | str:
    try:
        return [Route.from_dict(r, where=f"routes[{i}]") for i, r in enumerate(records)]  # type: ignore[arg-type]
    except SpecError as exc:
        return str(exc)


@settings(max_examples=500, deadline=None)
@given(st.lists(_records, max_size=6))
def test_from_records_reads_exactly_what_from_dict_reads(records: list[object]) -> None:
    # The short path for well-formed records must never accept, refuse or read anything differently.
    expected = _one_by_one(records)
    try:
        table = RouteTable.from_records(records)  # type: ignore[arg-type]
    except SpecError as exc:
        assert str(exc) == expected
    else:
        assert not isinstance(expected, str)
        grouped = [
            r
            for key in dict.fromkeys((r.session, r.prefix) for r in expected)
            for r in expected
            if (r.session, r.prefix) == key
        ]
        # Compared as printed too: a True where from_dict reads 1 would show in JSON output.
        assert [repr(r) for r in table] == [repr(r) for r in grouped]


# Texts near the canonical IPv4 form a fast path takes, and anything else.
_octet = st.one_of(
    st.integers(0, 255).map(str), st.sampled_from(["-1", "-0", "+1", "01", "256", "1_0", " 1", "1 ", "٣", "²", ""])
)
_length = st.one_of(st.integers(0, 33).map(str), st.sampled_from(["-0", "08", "+8", "", " 8", "128"]))
_near_v4 = st.builds(
    lambda a, b, c, d, n, sep: f"{a}.{b}.{c}.{d}{sep}{n}",
    _octet,
    _octet,
    _octet,
    _octet,
    _length,
    st.sampled_from(["/", "/", "/", ".", "//", ""]),
)


def _outcome(parse: Any, text: str, strict: bool) -> object:
    try:
        return parse(text, strict=strict)
    except SpecError as exc:
        return ("refused", str(exc))
    except Exception as exc:  # whatever the full parse raises, the fast path must raise too
        return ("raised", type(exc))


@settings(max_examples=600, deadline=None)
@given(st.one_of(_near_v4, st.text(max_size=20), st.sampled_from(["10.0.0.0/26", "fd00::/64", "10.0.0.1"])))
def test_prefix_parse_accepts_and_refuses_exactly_what_the_full_parse_does(text: str) -> None:
    for strict in (True, False):
        fast = _outcome(Prefix.parse, text, strict)
        full = _outcome(Prefix._parse_in_full, text, strict)
        assert fast == full
        assert type(fast) is type(full)


_addresses = st.sampled_from(["10.0.0.9", "10.0.0.10", "fd00::1", "fd00:0::1", "", "node-1", "10.0.0.2"])
_routes = st.builds(
    Route,
    prefix=st.sampled_from([Prefix.parse(p) for p in ("10.0.0.0/24", "10.0.0.0/25", "9.0.0.0/8", "fd00::/64")]),
    next_hop=_addresses,
    session=_addresses,
    as_path=st.sampled_from([(), (64512,), (64512, 65000)]),
    communities=st.sampled_from([(), ((64512, 1),)]),
    path_id=st.sampled_from([None, 0, 1, 2]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_routes, max_size=12))
def test_sorted_orders_as_its_key_says(routes: list[Route]) -> None:
    # Session address, prefix, next hop, AS path, communities, path id; ties in table order.
    from bgpflat.core.routes.table import address_sort_key

    table = RouteTable(routes)
    expected = sorted(
        table,
        key=lambda r: (
            address_sort_key(r.session),
            r.prefix,
            address_sort_key(r.next_hop),
            r.as_path,
            r.communities,
            r.large_communities,
            r.path_id or 0,
        ),
    )
    assert [repr(r) for r in table.sorted()] == [repr(r) for r in expected]
