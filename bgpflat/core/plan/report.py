"""What an apply (or a rollback) did, change by change: a value the workflows return and the views
render, so neither has to know the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bgpflat.core.plan.identity import ClusterIdentity


class Outcome(StrEnum):
    """What became of one change; the value is what reports (``-o json``) show."""

    APPLIED = "applied"
    ALREADY = "already-done"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_ATTEMPTED = "not-attempted"
    DRY_RUN = "dry-run"


APPLIED = Outcome.APPLIED
ALREADY = Outcome.ALREADY
FAILED = Outcome.FAILED
UNKNOWN = Outcome.UNKNOWN
NOT_ATTEMPTED = Outcome.NOT_ATTEMPTED
DRY_RUN = Outcome.DRY_RUN


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeResult:
    stage: str
    action: str  # a plan ``Action``, or a rollback's ``RollbackAction``
    key: str
    outcome: Outcome
    resource_version: str | None = None
    retries: int = 0
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "action": self.action,
            "object": self.key,
            "outcome": self.outcome,
            "resource_version": self.resource_version,
            "retries": self.retries,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplyReport:
    results: tuple[ChangeResult, ...]
    dry_run: bool
    backup: str | None = None
    error: str | None = None  # why apply stopped early; None when every stage went through
    identity: ClusterIdentity = field(default_factory=ClusterIdentity)

    @property
    def completed(self) -> bool:
        return self.error is None

    @property
    def written(self) -> tuple[ChangeResult, ...]:
        return tuple(r for r in self.results if r.outcome == APPLIED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "completed": self.completed,
            "dry_run": self.dry_run,
            "backup": self.backup,
            "error": self.error,
            "identity": self.identity.to_dict(),
            "results": [r.to_dict() for r in self.results],
        }
