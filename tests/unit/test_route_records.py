"""A learned-route file with a bad value names the record, the field and the fix."""

from __future__ import annotations

import pytest

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
