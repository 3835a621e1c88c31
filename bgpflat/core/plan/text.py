"""Plans as terraform-like text: stages, ``+ ~ -`` per object with field before/after, findings, summary.

Plain text with no colour, for logs, CI and golden tests; ``bgpflat.render`` draws the same with rich.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from typing import Any

from bgpflat.core.plan.impact import impact_text
from bgpflat.core.plan.model import Action, Plan, ResourceChange

_SYMBOLS = {"create": "+", "update": "~", "delete": "-", "no-op": " "}


def _value(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def render_plan_text(plan: Plan, *, show_unchanged: bool = False) -> str:
    """Terraform-like text: stages, ``+ ~ -`` per object with field before/after, findings, summary line."""
    lines: list[str] = []
    cluster = plan.cluster or {}
    target = plan.identity.context or cluster.get("context")
    if target or plan.identity.server:
        where = f"context {target}" if target else "cluster"
        server = plan.identity.server
        lines.append(f"Target: {where}" + (f" ({server})" if server else ""))
        lines.append("")
    if not plan.stages:
        lines.append("No changes. The cluster matches the spec.")
        lines.append("")
    total = len(plan.stages)
    for number, stage in enumerate(plan.stages, start=1):
        lines.append(f"Stage {number}/{total}: {stage.name} — {stage.title}")
        for change in stage.changes:
            symbol = _SYMBOLS[change.action]
            header = f"  {symbol} {change.kind} {change.name}"
            extras = []
            if change.note:
                extras.append(change.note)
            if change.chained:
                extras.append("after the earlier write")
            if extras:
                header += f"  ({'; '.join(extras)})"
            lines.append(header)
            for fc in change.fields:
                if change.action is Action.CREATE:
                    lines.append(f"      + {fc.path}: {_value(fc.after)}")
                elif change.action is Action.DELETE:
                    lines.append(f"      - {fc.path}: {_value(fc.before)}")
                elif fc.before is None:
                    lines.append(f"      + {fc.path}: {_value(fc.after)}")
                elif fc.after is None:
                    lines.append(f"      - {fc.path}: {_value(fc.before)}")
                else:
                    lines.append(f"      ~ {fc.path}: {_value(fc.before)} -> {_value(fc.after)}")
        lines.append("")
    if plan.route_impact:
        lines.append(impact_text(plan.route_impact))
    if show_unchanged and plan.unchanged:
        lines.append("Unchanged: " + ", ".join(c.key for c in plan.unchanged))
        lines.append("")
    if plan.findings:
        lines.append("Findings:")
        for finding in plan.findings:
            lines.extend(_wrapped(f"{finding.severity}: [{finding.code}] {finding.message}", "  ", "      "))
            if finding.fix:
                lines.extend(_wrapped(f"fix: {finding.fix}", "      ", "           "))
        lines.append("")
    lines.append(str(plan.summary))
    if plan.blocking:
        lines.append(f"Blocked: {len(plan.blocking)} error finding(s) must be fixed before apply.")
    return "\n".join(lines) + "\n"


# Findings run to several hundred characters; wrapped here (not by the terminal) so that a log, a
# pull-request comment and a terminal all show the fix indented under its finding.
FINDING_WIDTH = 100


def _wrapped(text: str, first: str, rest: str) -> list[str]:
    # Addresses, selectors and commands are never split: only spaces break a line.
    return textwrap.wrap(
        text,
        FINDING_WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def changes_for(plan: Plan, key: str) -> Iterable[ResourceChange]:
    """All changes of one object (``IPPool/default-pool``), in apply order."""
    return (c for c in plan.changes if c.key == key)
