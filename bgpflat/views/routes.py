"""rich renderables for expected route tables, route diffs and verify results."""

from __future__ import annotations

from rich.console import Group, RenderableType
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


def expected_routes_table(expected: ExpectedRoutes, *, reasons: bool = True) -> RenderableType:
    """One row per expected route: session (node), prefix, next hop, AS path, communities, why."""
    table = Table(
        title=f"Routes expected at {expected.peer.address} (Calico {expected.calico_version})", title_justify="left"
    )
    # Addresses never wrap: a prefix split over two lines cannot be copied or grepped.
    table.add_column("node")
    table.add_column("session", no_wrap=True)
    table.add_column("prefix", no_wrap=True)
    table.add_column("next hop", no_wrap=True)
    table.add_column("AS path")
    table.add_column("communities")
    if reasons:
        table.add_column("why")
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
        table.add_row(*row)
    parts: list[RenderableType] = [table]
    sessions = Table(title="Sessions", title_justify="left")
    for column in ("node", "session", "BGPPeer", "local AS", "peer AS", "type", "next hop", "filters"):
        sessions.add_column(column)
    for address in expected.table_sessions():
        s = expected.sessions[address]
        sessions.add_row(
            s.node,
            s.session,
            s.bgp_peer,
            str(s.local_as),
            str(s.peer_as),
            "eBGP" if s.ebgp else "iBGP" + (" (route reflector)" if s.route_reflector else ""),
            "keep" if s.next_hop_keep else "self",
            ", ".join(s.filters),
        )
    parts.append(sessions)
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
    parts.extend(Text(f"note: {note}", style="dim") for note in (*result.notes, *result.expected.notes))
    if result.diff is not None:
        parts.append(diff_table(result.diff))
    return Group(*parts)
