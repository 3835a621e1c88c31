"""rich renderables for expected route tables, route diffs and verify results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

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

    def rich_table(self, max_width: int | None = None) -> Table:
        """The rich table. Given the width it will be drawn in, address columns keep their longest cell
        whole when that leaves the other columns at least their header's width (they wrap instead);
        on a terminal narrower still, addresses fold too (never cut)."""
        table = Table(title=self.title, title_justify="left")
        widest = [max((len(row[i]) for row in self.rows), default=0) for i in range(len(self.columns))]
        needed = 3 * len(self.columns) + 1
        for index, (header, address) in enumerate(self.columns):
            # a text column can wrap down to the longest word of its header
            needed += max(widest[index], len(header)) if address else max(map(len, header.split()), default=1)
        keep_whole = max_width is not None and needed <= max_width
        for index, (header, address) in enumerate(self.columns):
            minimum = max(widest[index], len(header)) if address and keep_whole else None
            table.add_column(header, overflow="fold", min_width=minimum)
        for row in self.rows:
            table.add_row(*row)
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = None if console.is_terminal or console.color_system else self._plain_lines(options.max_width)
        if lines is None:
            yield self.rich_table(options.max_width)
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


def drop_empty(
    columns: Sequence[tuple[str, bool]], rows: Sequence[Sequence[str]], optional: set[str]
) -> tuple[list[tuple[str, bool]], list[list[str]]]:
    """The table without the ``optional`` columns no row has anything in (communities, path IDs):
    room for the columns that say something."""
    keep = [i for i, (h, _) in enumerate(columns) if h not in optional or any(row[i] for row in rows)]
    return [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]


def add_column(table: Table, header: str, **kw: Any) -> None:
    """A column whose cells are never cut short (rich's default on a narrow terminal is ``645…``):
    text wraps at spaces, and a word longer than the column folds onto the next line."""
    table.add_column(header, overflow="fold", **kw)


def _plain(cell: str) -> bool:
    """Printed by rich as is, one character a column: no markup, no emoji code, no wide character."""
    if not (cell.isascii() and cell.isprintable()) or "[" in cell:
        return False
    return ":" not in cell or _emoji_replace(cell) == cell


def expected_routes_table(expected: ExpectedRoutes, *, wide: bool = False) -> RenderableType:
    """One row per expected route. The table (as ``kubectl get``) shows node, prefix, next hop, AS path
    and communities if any route has some: one line per route on an 80-column terminal. ``wide``
    adds the session and why each route is expected (JSON has it all)."""
    routes = expected.table.sorted()
    with_communities = wide or any(route.communities or route.large_communities for route in routes)
    # (header, address): an address column keeps its cells whole (see add_column).
    columns = [("node", False)]
    if wide:
        columns.append(("session", True))
    columns += [("prefix", True), ("next hop", True), ("AS path", False)]
    if with_communities:
        columns.append(("communities", False))
    if wide:
        columns.append(("why", False))
    rows: list[list[str]] = []
    for route in routes:
        row = [expected.node_of(route.session)]
        if wide:
            row.append(route.session)
        row += [str(route.prefix), route.next_hop, _as_path(route)]
        if with_communities:
            row.append(_communities(route))
        if wide:
            row.append(expected.explain(route))
        rows.append(row)
    title = f"Routes expected at {expected.peer.address} (Calico {expected.calico_version})"
    parts: list[RenderableType] = [PlainTable(title, columns, rows)]
    session_rows: list[list[str]] = []
    for address in expected.table_sessions():
        s = expected.sessions[address]
        row = [s.node, s.session, s.bgp_peer, str(s.local_as), str(s.peer_as)]
        row.append("eBGP" if s.ebgp else "iBGP" + (" (route reflector)" if s.route_reflector else ""))
        if wide:
            row += ["keep" if s.next_hop_keep else "self", ", ".join(s.filters)]
        session_rows.append(row)
    session_columns = [("node", False), ("session", True), ("BGPPeer", False), ("local AS", False)]
    session_columns += [("peer AS", False), ("type", False)]
    if wide:
        session_columns += [("next hop", False), ("filters", False)]
    parts.append(PlainTable("Sessions", session_columns, session_rows))
    if not wide and rows:
        parts.append(Text("(-o wide adds each route's session and why it is expected)", style="dim"))
    parts.extend(Text(f"note: {note}", style="dim") for note in expected.notes)
    return Group(*parts)


def diff_table(diff: RouteDiff, *, limit: int = 200) -> RenderableType:
    summary = Table(title="Per session", title_justify="left")
    for column in ("node", "session", "expected", "present", "missing", "mismatched", "unexpected"):
        add_column(summary, column, justify="left" if column in ("node", "session") else "right")
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
    add_column(findings, "")
    add_column(findings, "code")
    add_column(findings, "finding")
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
