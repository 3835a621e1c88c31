"""Route tables and JSON at the speed of the data: the fast writers print what rich and json print."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from bgpflat.cli import output
from bgpflat.cli.output import write_json
from bgpflat.views.routes import PLAIN_ROWS, PlainTable

COLUMNS = [("node", False), ("session", True), ("why", False)]


def rows(count: int, why: str = "block of node-1, originated by the node itself") -> list[list[str]]:
    return [[f"node-{i}", f"10.0.{i // 250}.{i % 250 + 1}", why] for i in range(count)]


def printed(renderable: Any, *, width: int = 400, terminal: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, no_color=True, highlight=False, force_terminal=terminal, soft_wrap=True, width=width)
    console.print(renderable)
    return buffer.getvalue()


def test_a_table_that_fits_prints_exactly_as_rich_prints_it() -> None:
    for table in (
        PlainTable("Routes expected at 10.0.0.254 (Calico v3.30.7)", COLUMNS, rows(30)),
        PlainTable("Sessions", COLUMNS, []),
        PlainTable("Routes", COLUMNS, [["a", "fd00::1", "service range 64512:100 1:2:3"]]),
    ):
        assert printed(table) == printed(table.rich_table())


def test_cells_rich_would_change_are_left_to_rich() -> None:
    # Markup, emoji codes and wide characters: rich's own rendering, whatever it does with them.
    for cell in ("[bold]x[/bold]", "node :thumbs_up: x", "nœud", "宽"):
        table = PlainTable("T", COLUMNS, [["a", "10.0.0.1", cell]])
        assert printed(table) == printed(table.rich_table())
    table = PlainTable("T", COLUMNS, rows(3))
    assert printed(table, terminal=True) == printed(table.rich_table(), terminal=True)


def test_a_long_table_too_wide_keeps_every_row_whole_on_one_line() -> None:
    long_why = "; ".join(f"service range of node-{i}, expected through mesh re-export" for i in range(40))
    table = PlainTable("Routes", COLUMNS, [*rows(1, long_why), *rows(PLAIN_ROWS)])
    lines = printed(table, width=200).splitlines()
    assert len(lines) == PLAIN_ROWS + 1 + 5
    assert lines[4].endswith(long_why + " │")
    assert all(len(line) == 200 for line in lines[5:-1])  # the others keep the table's width


def test_a_short_table_too_wide_is_wrapped_by_rich_as_before() -> None:
    table = PlainTable("Routes", COLUMNS, rows(3, "x " * 300))
    assert printed(table, width=120) == printed(table.rich_table(), width=120)


def _json_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
        max_leaves=30,
    )


# orjson spells a float of magnitude 1e-10 to 1e-4 as 0.00001 or 1e-9 where json writes 1e-05 or
# 1e-09, and NaN as null; bgpflat's outputs hold no such float (times are rounded to milliseconds).
_SPELLED_ALIKE = st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not 1e-10 <= abs(x) < 1e-4)


@settings(max_examples=300, deadline=None)
@given(_json_values(_SPELLED_ALIKE))
def test_write_json_is_json_dump_with_indent_2_byte_for_byte(value: Any) -> None:
    buffer = io.StringIO()
    write_json(value, buffer)
    assert buffer.getvalue() == json.dumps(value, indent=2) + "\n"


@settings(max_examples=300, deadline=None)
@given(_json_values(st.floats()))
def test_without_orjson_write_json_is_json_dump_byte_for_byte_nan_and_all(value: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(output, "_orjson", None)
        buffer = io.StringIO()
        write_json(value, buffer)
    assert buffer.getvalue() == json.dumps(value, indent=2) + "\n"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=1e-10, max_value=1e-4) | st.floats(min_value=-1e-4, max_value=-1e-10), max_size=8))
def test_tiny_floats_are_read_back_as_the_same_numbers(value: list[float]) -> None:
    buffer = io.StringIO()
    write_json({"values": value}, buffer)
    assert json.loads(buffer.getvalue()) == {"values": value}


def test_every_character_is_escaped_as_json_escapes_it() -> None:
    # Printable ASCII as it is; controls, DEL, the rest of Unicode and the astral planes escaped.
    text = "".join(map(chr, [*range(0x80), 0xE9, 0x2028, 0xFFFF, 0x1F600, 0x10FFFF]))
    value = [{"name": text, text: [text, 1]}, text]
    buffer = io.StringIO()
    write_json(value, buffer)
    assert buffer.getvalue() == json.dumps(value, indent=2) + "\n"


def test_what_orjson_refuses_is_written_as_json_writes_it() -> None:
    # Integers beyond 64 bits, keys that are not strings, a lone surrogate: json's own text, and
    # what json refuses (a set) is refused as json refuses it.
    value = [{"big": 2**70, 1: "one", None: [True]}, "\ud800", [2**64, -(2**63) - 1]]
    buffer = io.StringIO()
    write_json(value, buffer)
    assert buffer.getvalue() == json.dumps(value, indent=2) + "\n"
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        write_json([{1, 2}], io.StringIO())


def test_a_large_route_document_is_the_same_text_as_json_writes() -> None:
    routes = [
        {
            "prefix": f"10.{i >> 8 & 255}.{i & 255}.0/24",
            "next_hop": f"172.16.0.{i % 250 + 1}",
            "as_path": [64512, 65000 + i % 7],
            "communities": [f"64512:{i % 5}"] * (i % 3),
            "path_id": i if i % 2 else None,
            "reasons": [{"rule": "block", "owner": f"nœud-{i}", "path": "local", "detail": ""}],
            "explanation": "block of node-1, originated by the node itself",
            "elapsed_seconds": round(i / 7, 3),
        }
        for i in range(3000)
    ]
    value = {"format_version": 1, "peer": {"address": "172.31.1.1"}, "notes": [], "routes": routes}
    buffer = io.StringIO()
    write_json(value, buffer)
    assert buffer.getvalue() == json.dumps(value, indent=2) + "\n"


# --- on a terminal: nothing cut short, one line per route -------------------------------------------


def _scenario_d_expected() -> Any:
    from pathlib import Path

    from bgpflat.adapters.files import load_documents, load_snapshot
    from bgpflat.core.routes.expected import OutsidePeer
    from bgpflat.core.state.load import load_desired
    from bgpflat.workflows.planning import lay_desired_over
    from bgpflat.workflows.routes import cluster_state, expected_for

    labs = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
    desired = load_desired(list(load_documents(labs / "bgpflat.yaml")))
    objects = lay_desired_over(load_snapshot(labs / "cluster.yaml").objects, desired)
    from bgpflat.core.routes.expected import ModelOptions

    return expected_for(cluster_state(objects), peer=OutsidePeer(address="10.200.20.254"), options=ModelOptions())


def test_expected_routes_on_an_80_column_terminal_one_line_per_route_nothing_cut() -> None:
    from bgpflat.views.routes import expected_routes_table

    expected = _scenario_d_expected()
    routes = expected.table.sorted()
    text = re.sub(r"\x1b\[[0-9;]*m", "", printed(expected_routes_table(expected), width=80, terminal=True))
    assert "…" not in text
    assert max(len(line) for line in text.splitlines() if line[:1] in "┏┃┡│└") <= 80
    for route in routes:  # every route whole on its own line
        assert any(str(route.prefix) in line and route.next_hop in line for line in text.splitlines())
    assert len(text.splitlines()) <= len(routes) + 16  # was 174 lines for these 8 routes
    wide = printed(expected_routes_table(expected, wide=True), width=200, terminal=True)
    assert "…" not in wide and "why" in wide and expected.explain(routes[0]).split(",")[0] in wide


def test_learned_routes_never_cut_an_as_path_or_address_on_a_narrow_terminal() -> None:
    from bgpflat.core.routes.table import RouteTable
    from bgpflat.views.peer import render_routes

    path = [64512 + i for i in range(12)]
    table = RouteTable.from_records(
        [{"session": "10.200.20.103", "prefix": "10.233.110.0/24", "next_hop": "10.200.20.103", "as_path": path}],
        where="test",
    )
    text = printed(render_routes(table), width=80, terminal=True)
    assert "…" not in text
    assert "10.200.20.103" in text and "10.233.110.0/24" in text  # addresses whole
    assert all(str(a) in text for a in path)  # the AS path wraps at its spaces


def test_bmp_loc_rib_rows_show_the_node_whose_path_was_selected() -> None:
    from bgpflat.views.bmp import render_routes

    base = {"router": "10.0.9.1", "prefix": "10.96.0.0/12", "next_hop": "10.0.1.1", "as_path": [64512]}
    records = [
        {**base, "peer": "10.0.2.2", "session": "10.0.2.2", "policy": "pre"},
        {**base, "peer": "0.0.0.0", "session": "10.0.1.1", "policy": "loc-rib"},
    ]
    rows = [line.replace("│", " ").split() for line in printed(render_routes(records)).splitlines()]
    assert [(row[1], row[2]) for row in rows if "10.96.0.0/12" in row] == [("10.0.2.2", "pre"), ("10.0.1.1", "loc-rib")]


@pytest.mark.parametrize("path_ids", ["none", "all", "some"])
def test_expected_routes_json_records_are_each_routes_own_words(path_ids: str) -> None:
    # Each record as the route says it of itself, whatever the table's mix of path identifiers:
    # to_dict builds them column by column, sharing every repeated value.
    import dataclasses

    from bgpflat.core.routes.table import RouteTable

    expected = _scenario_d_expected()
    routes = list(expected.table)
    if path_ids != "none":
        routes = [r._replace(path_id=i + 1) if path_ids == "all" or i % 2 else r for i, r in enumerate(routes)]
        routes.append(routes[0]._replace(path_id=99, next_hop="10.200.20.1"))  # a second path, no reason
    expected = dataclasses.replace(expected, table=RouteTable(routes))
    records = expected.to_dict()["routes"]
    assert records == [
        {
            **route.to_dict(),
            "node": expected.node_of(route.session),
            "reasons": [w._asdict() for w in expected.why(route)],
            "explanation": expected.explain(route),
        }
        for route in expected.table.sorted()
    ]
    assert [list(record) for record in records] == [
        [*route.to_dict(), "node", "reasons", "explanation"] for route in expected.table.sorted()
    ]


def test_expected_routes_records_share_no_list_but_equal_reasons() -> None:
    # -o yaml writes an object found twice as an anchor and an alias: records may share their
    # reasons list (routes with the same reasons always have), and nothing else.
    records = _scenario_d_expected().to_dict()["routes"]
    seen: set[int] = set()
    reason_lists: set[int] = set()
    for record in records:
        for key, value in record.items():
            if key == "reasons":
                if id(value) in reason_lists:
                    continue  # a shared list, with its contents
                reason_lists.add(id(value))
            for part in value if key == "reasons" else [value]:
                if isinstance(part, list | dict):
                    assert id(part) not in seen, (key, part)
                    seen.add(id(part))
    assert len({id(record["reasons"]) for record in records}) < len(records)  # shared where equal
