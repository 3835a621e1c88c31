"""Plans and apply reports for people: the core's terraform-like text, a header saying where, colour.

Colour is added line by line to the core's plain text (``render_plan_text``) so that the table
output and a golden file stay the same text; rich drops the styles when stdout is not a terminal.
"""

from __future__ import annotations

import dataclasses

from rich.text import Text

from bgpflat.core.external import listing_order
from bgpflat.core.plan.planner import Action, ClusterIdentity, Plan, render_plan_text
from bgpflat.core.plan.report import ALREADY, APPLIED, DRY_RUN, FAILED, NOT_ATTEMPTED, UNKNOWN, ApplyReport

_FLAVOURS = {
    "v3-apiserver": "projectcalico.org/v3 (Calico API server)",
    "v3-crd": "projectcalico.org/v3 (native v3 CRDs)",
    "v1-crd": "crd.projectcalico.org/v1 only (no Calico API server: no server-side validation)",
}


def header_lines(identity: ClusterIdentity) -> list[str]:
    """Where a plan was made: context, server, Calico API, Calico version (or the snapshot file)."""
    lines = []
    if identity.snapshot:
        lines.append(f"Source:  snapshot {identity.snapshot} (no cluster contacted)")
    if identity.context or identity.server:
        lines.append(f"Target:  context {identity.context or '?'}  server {identity.server or '?'}")
    api = _FLAVOURS.get(identity.api_flavour) or identity.api_group or "unknown"
    lines.append(f"Calico:  {identity.calico_version or 'version unknown'} via {api}")
    return lines


def plan_text(plan: Plan) -> str:
    """The whole table output as plain text: header, stages with field diffs, findings, summary."""
    body = render_plan_text(dataclasses.replace(plan, identity=ClusterIdentity()))
    return "\n".join(header_lines(plan.identity)) + "\n\n" + body


_STYLES = (("+", "green"), ("~", "yellow"), ("-", "red"))


def plan_renderable(plan: Plan) -> Text:
    text = Text()
    for line in plan_text(plan).splitlines():
        stripped = line.lstrip()
        style = ""
        for symbol, colour in _STYLES:
            if stripped.startswith(symbol + " "):
                style = colour
        if stripped.startswith("error:") or stripped.startswith("Blocked:"):
            style = "bold red"
        elif stripped.startswith("warning:"):
            style = "yellow"
        elif line.startswith(("Stage ", "Plan:", "Target:", "Calico:", "Source:", "Routes to ")):
            style = "bold"
        text.append(line + "\n", style=style)
    return text


_OUTCOME_WORDS = {
    APPLIED: "written",
    ALREADY: "already so",
    DRY_RUN: "accepted by server dry run",
    FAILED: "FAILED",
    UNKNOWN: "UNKNOWN",
    NOT_ATTEMPTED: "not attempted",
}


def report_text(report: ApplyReport, *, verb: str = "Apply") -> str:
    """What was written, what was not, and how to undo it."""
    lines = []
    for result in report.results:
        line = f"  {result.action:<8} {result.key:<40} {_OUTCOME_WORDS.get(result.outcome, result.outcome)}"
        if result.retries:
            line += f" (after {result.retries} conflict retr{'y' if result.retries == 1 else 'ies'})"
        lines.append(line)
        if result.message:
            lines.append(f"           {result.message}")
    written = sum(1 for r in report.results if r.outcome == APPLIED)
    if report.dry_run:
        summary = f"{verb} (server dry run): {len(report.results)} change(s) accepted, nothing stored."
    elif report.error is None:
        summary = f"{verb} complete: {written} write(s)."
    else:
        summary = f"{verb} stopped: {written} write(s) made before it stopped."
    lines.append(summary)
    if report.backup:
        lines.append(f"Backup: {report.backup}  (undo with: bgpflat rollback {report.backup})")
    return "\n".join(lines) + "\n"


_EXTERNAL_SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.NO_OP: " "}


def external_plan_text(plan: Plan) -> str:
    """``bgpflat external plan``: one line per object in the file's order (unchanged ones too), the
    fields an update writes, then the deletions, then the summary."""
    deletions = [c for c in plan.changes if c.action is Action.DELETE]
    listed = sorted(
        [c for c in plan.changes if c.action is not Action.DELETE] + list(plan.unchanged), key=listing_order
    )
    lines = []
    for change in [*listed, *deletions]:
        paths = [fc.path for fc in change.fields] if change.action is Action.UPDATE else []
        suffix = f" ({', '.join(paths)})" if paths else ""
        lines.append(f"{_EXTERNAL_SYMBOLS[change.action]} {change.key}{suffix}")
    lines.append(str(plan.summary))
    return "\n".join(lines) + "\n"
