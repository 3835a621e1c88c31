"""Plain-text, JUnit XML and Markdown views of a route diff / verify result (no rich, no I/O).

JUnit: one test case per expected BGP session (node), so CI test widgets show "node-3 failed:
2 missing" instead of one opaque failure; a run that could not verify is one test case with an
``<error>`` (not a ``<failure>``), mirroring the distinct exit code 2.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from bgpflat.core.routes.diff import SESSION, RouteDiff

if TYPE_CHECKING:
    from bgpflat.core.routes.verdict import VerifyResult


def diff_text(diff: RouteDiff, *, limit: int = 50) -> str:
    """The diff as lines a person reads: a verdict, per-session counts, then each finding."""
    counts = diff.counts()
    verdict = "routes comply" if diff.complies else "routes do not comply"
    lines = [
        f"{verdict}: {counts['present']} present, {counts['missing']} missing, "
        f"{counts['mismatched']} mismatched, {counts['unexpected']} unexpected" + (" (strict)" if diff.strict else "")
    ]
    for summary in diff.summaries:
        if summary.missing or summary.mismatched or summary.unexpected or not summary.learned:
            name = f" ({summary.node})" if summary.node else ""
            lines.append(
                f"  session {summary.session}{name}: {summary.present}/{summary.expected} present, "
                f"{summary.missing} missing, {summary.mismatched} mismatched, {summary.unexpected} unexpected"
            )
    for finding in diff.findings[:limit]:
        mark = "!" if finding.category != SESSION else "#"
        lines.append(f"  {mark} [{finding.code}] {diff.explain(finding)}")
    if len(diff.findings) > limit:
        lines.append(f"  … {len(diff.findings) - limit} more findings")
    return "\n".join(lines)


def junit_classname(peer: str) -> str:
    """``bgpflat.verify.peer-10-200-20-254``: CI tools read a class name's dots as packages, so an
    IPv4 address in it would become four nested packages (and IPv6 colons confuse some readers)."""
    return "bgpflat.verify.peer-" + peer.replace(".", "-").replace(":", "-")


def junit_xml(result: VerifyResult, *, suite: str = "bgpflat verify") -> str:
    peer = result.expected.peer.address
    classname = junit_classname(peer)
    cases: list[ET.Element] = []
    failures = errors = 0
    if result.diff is None:
        case = ET.Element("testcase", {"classname": classname, "name": f"verify routes at {peer}"})
        error = ET.SubElement(case, "error", {"type": result.reason, "message": result.message})
        error.text = result.message
        cases.append(case)
        errors = 1
    else:
        diff = result.diff
        by_session: dict[str, list[str]] = {}
        for finding in diff.findings:
            if diff.fails(finding):
                by_session.setdefault(finding.session, []).append(f"[{finding.code}] {diff.explain(finding)}")
        for summary in diff.summaries:
            label = f"session {summary.session}" + (f" ({summary.node})" if summary.node else "")
            case = ET.Element("testcase", {"classname": classname, "name": label})
            problems = by_session.get(summary.session, [])
            if problems:
                failure = ET.SubElement(
                    case,
                    "failure",
                    {
                        "type": "route-mismatch",
                        "message": f"{summary.missing} missing, {summary.mismatched} mismatched, "
                        f"{summary.unexpected} unexpected",
                    },
                )
                failure.text = "\n".join(problems)
                failures += 1
            cases.append(case)
    suite_element = ET.Element(
        "testsuite",
        {
            "name": suite,
            "tests": str(len(cases)),
            "failures": str(failures),
            "errors": str(errors),
            "time": f"{result.elapsed:.3f}",
        },
    )
    suite_element.extend(cases)
    root = ET.Element("testsuites")
    root.append(suite_element)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(result: VerifyResult, *, limit: int = 30) -> str:
    """A GitHub step-summary section: verdict, per-session table, first findings."""
    icon = {"match": "✅", "mismatch": "❌"}.get(result.status, "⚠️")
    peer = result.expected.peer.address
    lines = [f"### {icon} bgpflat verify — peer {peer}: {result.status}", "", _cell(result.message), ""]
    if result.reason:
        lines += [f"Reason: `{result.reason}`", ""]
    for note in result.all_notes:
        lines.append(f"> {_cell(note)}")
    diff = result.diff
    if diff is not None:
        lines += [
            "| session | node | expected | present | missing | mismatched | unexpected |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for s in diff.summaries:
            lines.append(
                f"| {s.session} | {s.node or '—'} | {s.expected} | {s.present} | {s.missing} | "
                f"{s.mismatched} | {s.unexpected} |"
            )
        if diff.findings:
            lines += ["", "| code | finding |", "|---|---|"]
            for finding in diff.findings[:limit]:
                lines.append(f"| `{finding.code}` | {_cell(diff.explain(finding))} |")
            if len(diff.findings) > limit:
                lines.append(f"| … | {len(diff.findings) - limit} more |")
    return "\n".join(lines) + "\n\n"
