"""Plan values: ``Plan``, its stages and per-object changes, and their JSON form (``format_version``).

``bgpflat.core.plan`` makes plans; this module only holds and (de)serialises them, deterministically:
the same plan always gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.checks import Finding
from bgpflat.core.state import resource_key
from bgpflat.errors import PlanError, SpecError

FORMAT_VERSION = 1
ACTIONS = ("create", "update", "delete", "no-op")
OPERATOR_API = "operator.tigera.io/v1"

STAGES: tuple[tuple[str, str], ...] = (
    ("bgp-configuration", "BGP configuration (the default BGPConfiguration first)"),
    ("peers", "BGP peers"),
    ("service-advertisement", "Service advertisement"),
    ("pools", "IP pools and encapsulation"),
    ("pools-final", "IP pool encapsulation, final step"),
    ("mesh", "Node-to-node mesh"),
    ("prune", "Deletions"),
)
STAGE_TITLES = dict(STAGES)


# --- plan values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldChange:
    """One field: its path in the object (``spec.ipipMode``) and the JSON before/after (None = absent)."""

    path: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceChange:
    """What happens to one object in one stage."""

    action: str
    api_version: str
    kind: str
    name: str
    stage: str = ""
    fields: tuple[FieldChange, ...] = ()
    patch: Mapping[str, Any] | None = None  # merge-patch body (update)
    manifest: Mapping[str, Any] | None = None  # full manifest (create; the observed object for delete)
    resource_version: str | None = None  # observed; for chained changes see ``chained``
    chained: bool = False  # an earlier stage of this plan writes this object first
    note: str | None = None

    @property
    def key(self) -> str:
        return resource_key(self.kind, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "api_version": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "stage": self.stage,
            "fields": [f.to_dict() for f in self.fields],
            "patch": self.patch,
            "manifest": self.manifest,
            "resource_version": self.resource_version,
            "chained": self.chained,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResourceChange:
        action = str(data["action"])
        if action not in ACTIONS:
            raise SpecError(f"unknown action {action!r}", fix=f"use {', '.join(ACTIONS)}")
        fields = tuple(
            FieldChange(path=str(f["path"]), before=f.get("before"), after=f.get("after"))
            for f in data.get("fields") or ()
        )
        rv = data.get("resource_version")
        note = data.get("note")
        return cls(
            action=action,
            api_version=str(data["api_version"]),
            kind=str(data["kind"]),
            name=str(data["name"]),
            stage=str(data.get("stage") or ""),
            fields=fields,
            patch=data.get("patch"),
            manifest=data.get("manifest"),
            resource_version=None if rv is None else str(rv),
            chained=bool(data.get("chained", False)),
            note=None if note is None else str(note),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    name: str
    title: str
    changes: tuple[ResourceChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    add: int
    change: int
    delete: int

    def __str__(self) -> str:
        return f"Plan: {self.add} to add, {self.change} to change, {self.delete} to delete."


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    stages: tuple[Stage, ...] = ()
    unchanged: tuple[ResourceChange, ...] = ()  # no-op entries, one per object bgpflat compared
    findings: tuple[Finding, ...] = ()
    observed_versions: Mapping[str, str | None] = field(default_factory=dict)  # key -> resourceVersion
    identity: Mapping[str, str] = field(default_factory=dict)
    cluster: Mapping[str, str | None] = field(default_factory=dict)
    prune: bool = False
    format_version: int = FORMAT_VERSION

    @property
    def changes(self) -> tuple[ResourceChange, ...]:
        """Every change in apply order."""
        return tuple(change for stage in self.stages for change in stage.changes)

    @property
    def has_changes(self) -> bool:
        return bool(self.stages)

    @property
    def summary(self) -> Summary:
        created = {c.key for c in self.changes if c.action == "create"}
        deleted = {c.key for c in self.changes if c.action == "delete"}
        updated = {c.key for c in self.changes if c.action == "update"} - created - deleted
        return Summary(add=len(created), change=len(updated), delete=len(deleted))

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    def ensure_applicable(self) -> None:
        """Raise ``PlanError`` if an ``error`` finding forbids applying this plan."""
        if self.blocking:
            lines = "; ".join(f"[{f.code}] {f.message}" for f in self.blocking)
            raise PlanError(f"the plan cannot be applied: {lines}")

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary
        return {
            "format_version": self.format_version,
            "identity": dict(self.identity),
            "cluster": dict(self.cluster),
            "prune": self.prune,
            "summary": {"add": summary.add, "change": summary.change, "delete": summary.delete},
            "stages": [
                {"name": s.name, "title": s.title, "changes": [c.to_dict() for c in s.changes]} for s in self.stages
            ],
            "unchanged": [c.to_dict() for c in self.unchanged],
            "findings": [f.to_dict() for f in self.findings],
            "observed_versions": dict(sorted(self.observed_versions.items())),
        }

    def to_json(self) -> str:
        """Deterministic JSON: same plan, same bytes."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        if not isinstance(data, Mapping):
            raise PlanError("not a bgpflat plan: expected a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise PlanError(
                f"unsupported plan format_version {version!r} (this bgpflat reads {FORMAT_VERSION}); "
                "make the plan again with this version"
            )
        try:
            stages = tuple(
                Stage(
                    name=str(s["name"]),
                    title=str(s.get("title") or STAGE_TITLES.get(str(s["name"]), "")),
                    changes=tuple(ResourceChange.from_dict(c) for c in s.get("changes") or ()),
                )
                for s in data.get("stages") or ()
            )
            return cls(
                stages=stages,
                unchanged=tuple(ResourceChange.from_dict(c) for c in data.get("unchanged") or ()),
                findings=tuple(Finding.from_dict(f) for f in data.get("findings") or ()),
                observed_versions={
                    str(k): None if v is None else str(v) for k, v in (data.get("observed_versions") or {}).items()
                },
                identity={str(k): str(v) for k, v in (data.get("identity") or {}).items()},
                cluster={str(k): None if v is None else str(v) for k, v in (data.get("cluster") or {}).items()},
                prune=bool(data.get("prune", False)),
            )
        except (KeyError, TypeError, AttributeError, SpecError) as exc:
            raise PlanError(f"not a valid bgpflat plan: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"not a bgpflat plan: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)
