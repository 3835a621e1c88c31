"""Route impact values: what each outside BGP peer learns differently after a change.

``bgpflat.core.plan.layover`` computes them (the desired objects laid over the observed cluster,
the one expected-route model run on both states); ``Plan.route_impact`` carries them, in saved
plans too. The counts are exact; the listed routes are capped (``MAX_LISTED`` per peer, in session
and prefix order), because a change that makes a hundred nodes re-export twenty thousand blocks is
two million routes, which no one reads and no saved plan should carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bgpflat.errors import PlanError

MAX_LISTED = 200

ADDED = "+"
WITHDRAWN = "-"
CHANGED = "~"
_WORDS = {ADDED: "to be advertised", WITHDRAWN: "withdrawn", CHANGED: "changed"}


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteChange:
    """One (session, prefix) whose paths differ: added, withdrawn, or with other attributes."""

    change: str  # ADDED | WITHDRAWN | CHANGED
    prefix: str
    session: str
    node: str
    next_hop: str  # after the change (before it, for a withdrawn route)
    next_hop_before: str | None = None  # CHANGED only
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "change": self.change,
            "prefix": self.prefix,
            "session": self.session,
            "node": self.node,
            "next_hop": self.next_hop,
            "reason": self.reason,
        }
        if self.next_hop_before is not None:
            out["next_hop_before"] = self.next_hop_before
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> RouteChange:
        if not isinstance(data, Mapping):
            raise PlanError(f"{where}: expected an object")
        values: dict[str, str] = {}
        for name in ("change", "prefix", "session", "node", "next_hop", "reason"):
            value = data.get(name, "")
            if not isinstance(value, str):
                raise PlanError(f"{where}.{name}: expected a string")
            values[name] = value
        if values["change"] not in _WORDS:
            raise PlanError(f"{where}.change: expected one of {', '.join(_WORDS)}, got {values['change']!r}")
        before = data.get("next_hop_before")
        if before is not None and not isinstance(before, str):
            raise PlanError(f"{where}.next_hop_before: expected a string")
        return cls(next_hop_before=before, **values)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerImpact:
    """What one outside peer learns differently after the change: exact counts, listed routes."""

    peer: str
    as_number: int | None
    added: int
    withdrawn: int
    changed: int
    routes: tuple[RouteChange, ...] = ()  # at most MAX_LISTED, in session and prefix order
    before_total: int = 0
    after_total: int = 0

    @property
    def total(self) -> int:
        return self.added + self.withdrawn + self.changed

    def headline(self) -> str:
        asn = f" (AS {self.as_number})" if self.as_number is not None else ""
        return (
            f"Routes to {self.peer}{asn}: +{self.added} to be advertised, "
            f"-{self.withdrawn} withdrawn, ~{self.changed} changed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "as_number": self.as_number,
            "added": self.added,
            "withdrawn": self.withdrawn,
            "changed": self.changed,
            "before_total": self.before_total,
            "after_total": self.after_total,
            "listed": len(self.routes),
            "routes": [r.to_dict() for r in self.routes],
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> PeerImpact:
        if not isinstance(data, Mapping):
            raise PlanError(f"{where}: expected an object")
        peer = data.get("peer")
        if not isinstance(peer, str):
            raise PlanError(f'{where}: missing "peer"')
        counts: dict[str, int] = {}
        for name in ("added", "withdrawn", "changed", "before_total", "after_total"):
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PlanError(f"{where}.{name}: expected a number")
            counts[name] = value
        asn = data.get("as_number")
        if asn is not None and (isinstance(asn, bool) or not isinstance(asn, int)):
            raise PlanError(f"{where}.as_number: expected a number or null")
        routes = data.get("routes") or []
        if not isinstance(routes, list):
            raise PlanError(f"{where}.routes: expected a list")
        return cls(
            peer=peer,
            as_number=asn,
            routes=tuple(RouteChange.from_dict(r, where=f"{where}.routes[{i}]") for i, r in enumerate(routes)),
            **counts,
        )


def impact_text(impacts: Sequence[PeerImpact]) -> str:
    """The route impact as ``plan`` shows it, below the object diff."""
    lines: list[str] = []
    for impact in impacts:
        lines.append(impact.headline())
        for route in impact.routes:
            hop = route.next_hop
            if route.next_hop_before is not None and route.next_hop_before != route.next_hop:
                hop = f"{route.next_hop_before} -> {route.next_hop}"
            lines.append(f"  {route.change} {route.prefix} from {route.node or route.session} via {hop}")
            if route.reason:
                lines.append(f"      {route.reason}")
        hidden = impact.total - len(impact.routes)
        if hidden > 0:
            lines.append(f"  … and {hidden} more (all of them: `bgpflat routes expected -f SPEC --peer {impact.peer}`)")
        lines.append("")
    return "\n".join(lines)
