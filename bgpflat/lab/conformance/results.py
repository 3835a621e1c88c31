"""What the conformance matrix found: one ``CellResult`` per situation, and the ``ConformanceReport``.

A cell matches when the peer learned exactly the expected routes (strict diff), the sessions each
side says exist agree, and the table converged; ``findings`` turns the differences into sentences,
``to_dict`` is the JSON ``bgpflat lab conformance -o json`` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.routes.diff import RouteDiff
from bgpflat.core.routes.table import address_sort_key
from bgpflat.lab.conformance import cases

# -- results --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CellResult:
    """One situation's verdict: the diff, and the sessions each side says exist."""

    situation: cases.Situation
    match: bool
    seconds: float
    expected_routes: int = 0
    learned_routes: int = 0
    expected_sessions: tuple[str, ...] = ()
    calico_sessions: tuple[str, ...] = ()  # nodes whose confd-rendered BIRD peers with the peer
    diff: RouteDiff | None = None
    error: str = ""
    notes: tuple[str, ...] = ()
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds per step, for tuning

    @property
    def findings(self) -> list[str]:
        """The differences as sentences (session disagreements first)."""
        out = []
        only_model = sorted(set(self.expected_sessions) - set(self.calico_sessions), key=address_sort_key)
        only_calico = sorted(set(self.calico_sessions) - set(self.expected_sessions), key=address_sort_key)
        if only_model:
            out.append(f"sessions expected but not configured by confd: {', '.join(only_model)}")
        if only_calico:
            out.append(f"sessions configured by confd but not expected: {', '.join(only_calico)}")
        if self.diff is not None:
            out.extend(self.diff.explain(f) for f in self.diff.findings)
        if self.error:
            out.append(self.error)
        return out

    def to_dict(self) -> dict[str, Any]:
        situation = self.situation
        return {
            "situation": situation.name,
            "description": situation.description,
            "peer": {
                "address": situation.peer_addresses[0],
                "addresses": list(situation.peer_addresses),  # a dual-stack peer has one per family
                "as_number": situation.peer_as,
                "type": situation.session_type,
            },
            "match": self.match,
            "seconds": round(self.seconds, 2),
            "expected_routes": self.expected_routes,
            "learned_routes": self.learned_routes,
            "sessions": {"expected": list(self.expected_sessions), "calico": list(self.calico_sessions)},
            "behaviour": situation.behaviour,
            "error": self.error,
            "notes": list(self.notes),
            "phases": {k: round(v, 2) for k, v in self.phases.items()},
            "diff": {
                "counts": self.diff.counts() if self.diff is not None else {},
                "findings": self.findings,
                "details": self.diff.to_dict()["findings"] if self.diff is not None else [],
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ConformanceReport:
    cells: tuple[CellResult, ...]
    seconds: float
    setup_seconds: float
    calico_version: str = cases.CALICO_VERSION
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def all_match(self) -> bool:
        return bool(self.cells) and all(c.match for c in self.cells)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "calico_version": self.calico_version,
            "all_match": self.all_match,
            "matched": sum(1 for c in self.cells if c.match),
            "total": len(self.cells),
            "seconds": round(self.seconds, 1),
            "setup_seconds": round(self.setup_seconds, 1),
            "cells": [c.to_dict() for c in self.cells],
        }
