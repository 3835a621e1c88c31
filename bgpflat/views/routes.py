"""rich renderables for expected route tables, route diffs and verify results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich._emoji_replace import _emoji_replace
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from bgpflat.core.routes.diff import MISMATCHED, MISSING, SESSION, UNEXPECTED, RouteDiff
from bgpflat.core.routes.expected import ExpectedRoutes
from bgpflat.core.routes.table import Route
from bgpflat.core.routes.verdict import CANNOT_VERIFY, MATCH, VerifyResult

_STYLE = {MISSING: "red", MISMATCHED: "yellow", UNEXPECTED: "magenta", SESSION: "red"}
_MARK = {MISSING: "-", MISMATCHED: "~", UNEXPECTED: "+", SESSION: "!"}


def _as_path(route: Route) -> str:
    return " ".join(str(asn) for asn in route.as_path) or "(empty)"


def _communities(route: Route) -> str:
    parts = [f"{a}:{b}" for a, b in route.communities] + [f"{a}:{b}:{c}" for a, b, c in route.large_communities]
    return " ".join(parts)


# Past this many rows, a table that is not on a terminal and too wide for the width is written one
# row per line, never wrapped (a cell longer than its column runs past the border), instead of
# wrapping cells the way rich does: rich takes about 2 ms a row, and a route must stay on one line
# to be grepped.
PLAIN_ROWS = 1000


class PlainTable:
    """A rich ``Table`` (title left, heavy head, padding 1) that renders as fast as it can be written.

    Piped and plain (no terminal, no colour), with cells of plain printable ASCII, the lines are
    built here: the same characters rich prints when the table fits the width, or for more than
    ``PLAIN_ROWS`` rows the same layout with no cell wrapped or cut. Anything else (a terminal, colour, markup or
    wide characters in a cell, a small table to wrap) is rendered by rich itself.
    """

    def __init__(self, title: str, columns: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]]) -> None:
        self.title = title
        self.columns = columns  # (header, no_wrap)
        self.rows = rows

    def rich_table(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for header, no_wrap in self.columns:
            table.add_column(header, no_wrap=no_wrap)
        for row in self.rows:
            table.add_row(*row)
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = None if console.is_terminal or console.color_system else self._plain_lines(options.max_width)
        if lines is None:
            yield self.rich_table()
            return
        for line in lines:
            yield Segment(line)
            yield Segment.line()

    def _plain_lines(self, max_width: int) -> Iterator[str] | None:
        headers = [header for header, _ in self.columns]
        if not all(_plain(cell) for cell in headers) or not _plain(self.title):
            return None
        widths = [len(header) for header in headers]
        for row in self.rows:
            for index, cell in enumerate(row):
                if not _plain(cell):
                    return None
                if len(cell) > widths[index]:
                    widths[index] = len(cell)
        width = sum(widths) + 3 * len(widths) + 1
        if width > max_width:
            if len(self.rows) <= PLAIN_ROWS:
                return None
            widths = self._narrowed(widths, width - max_width)
            width = sum(widths) + 3 * len(widths) + 1
        if len(self.title) > width:
            return None
        return self._lines(headers, widths)

    def _narrowed(self, widths: list[int], excess: int) -> list[int]:
        """Too wide: the widest wrappable columns give up the excess (down to their header); a longer
        cell then runs past its border on its own line instead of widening every row."""
        out = list(widths)
        order = sorted((i for i, (_, no_wrap) in enumerate(self.columns) if not no_wrap), key=lambda i: -widths[i])
        for index in order:
            if excess <= 0:
                break
            give = min(excess, out[index] - len(self.columns[index][0]))
            out[index] -= give
            excess -= give
        return out

    def _lines(self, headers: list[str], widths: list[int]) -> Iterator[str]:
        def rule(left: str, fill: str, middle: str, right: str) -> str:
            return left + middle.join(fill * (w + 2) for w in widths) + right

        yield self.title
        yield rule("┏", "━", "┳", "┓")
        yield "┃ " + " ┃ ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " ┃"
        yield rule("┡", "━", "╇", "┩")
        for row in self.rows:
            yield "│ " + " │ ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " │"
        yield rule("└", "─", "┴", "┘")


def _plain(cell: str) -> bool:
    """Printed by rich as is, one character a column: no markup, no emoji code, no wide character."""
    if not (cell.isascii() and cell.isprintable()) or "[" in cell:
        return False
    return ":" not in cell or _emoji_replace(cell) == cell


def expected_routes_table(expected: ExpectedRoutes, *, reasons: bool = True) -> RenderableType:
    """One row per expected route: session (node), prefix, next hop, AS path, communities, why."""
    # Addresses never wrap: a prefix split over two lines cannot be copied or grepped.
    columns = [
        ("node", False),
        ("session", True),
        ("prefix", True),
        ("next hop", True),
        ("AS path", False),
        ("communities", False),
    ]
    if reasons:
        columns.append(("why", False))
    rows: list[list[str]] = []
    for route in expected.table.sorted():
        row = [
            expected.node_of(route.session),
            route.session,
            str(route.prefix),
            route.next_hop,
            _as_path(route),
            _communities(route),
        ]
        if reasons:
            row.append(expected.explain(route))
        rows.append(row)
    title = f"Routes expected at {expected.peer.address} (Calico {expected.calico_version})"
    parts: list[RenderableType] = [PlainTable(title, columns, rows)]
    session_rows: list[list[str]] = []
    for address in expected.table_sessions():
        s = expected.sessions[address]
        session_rows.append(
            [
                s.node,
                s.session,
                s.bgp_peer,
                str(s.local_as),
                str(s.peer_as),
                "eBGP" if s.ebgp else "iBGP" + (" (route reflector)" if s.route_reflector else ""),
                "keep" if s.next_hop_keep else "self",
                ", ".join(s.filters),
            ]
        )
    session_columns = ("node", "session", "BGPPeer", "local AS", "peer AS", "type", "next hop", "filters")
    parts.append(PlainTable("Sessions", [(column, False) for column in session_columns], session_rows))
    parts.extend(Text(f"note: {note}", style="dim") for note in expected.notes)
    return Group(*parts)


def diff_table(diff: RouteDiff, *, limit: int = 200) -> RenderableType:
    summary = Table(title="Per session", title_justify="left")
    for column in ("node", "session", "expected", "present", "missing", "mismatched", "unexpected"):
        summary.add_column(column, justify="right" if column not in ("node", "session") else "left")
    for s in diff.summaries:
        style = None if s.complies and (not diff.strict or not s.unexpected) else "red"
        summary.add_row(
            s.node or "—",
            s.session,
            str(s.expected),
            str(s.present),
            str(s.missing),
            str(s.mismatched),
            str(s.unexpected),
            style=style,
        )
    findings = Table(title="Findings", title_justify="left")
    findings.add_column("")
    findings.add_column("code")
    findings.add_column("finding")
    for finding in diff.findings[:limit]:
        style = _STYLE[finding.category] if diff.fails(finding) else "dim"
        findings.add_row(_MARK[finding.category], finding.code, diff.explain(finding), style=style)
    parts: list[RenderableType] = [summary]
    if diff.findings:
        parts.append(findings)
        if len(diff.findings) > limit:
            parts.append(Text(f"… {len(diff.findings) - limit} more findings (use -o json for all)"))
    return Group(*parts)


def verify_result(result: VerifyResult) -> RenderableType:
    style = "green" if result.status == MATCH else ("yellow" if result.status == CANNOT_VERIFY else "red")
    head = Text(f"verify {result.expected.peer.address}: {result.status}", style=f"bold {style}")
    if result.reason:
        head.append(f" ({result.reason})", style=style)
    parts: list[RenderableType] = [head, Text(result.message)]
    parts.extend(Text(f"note: {note}", style="dim") for note in result.all_notes)
    if result.diff is not None:
        parts.append(diff_table(result.diff))
    return Group(*parts)
