"""Route tables and JSON at the speed of the data: the fast writers print what rich and json print."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

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


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_write_json_is_json_dump_with_indent_2_byte_for_byte(value: Any) -> None:
    buffer = io.StringIO()
    write_json(value, buffer)
    assert buffer.getvalue() == json.dumps(value, indent=2) + "\n"
