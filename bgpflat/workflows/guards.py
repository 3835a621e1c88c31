"""What is checked before anything is written: right cluster, writable API, nothing moved since the plan."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bgpflat.core.calico import normalize_spec_value, parse_path
from bgpflat.core.external import EXTERNAL_KINDS, same_owned
from bgpflat.core.plan.planner import Action, ClusterIdentity, Plan, ResourceChange, split_key
from bgpflat.errors import PlanError, StalePlanError
from bgpflat.workflows.ports import ObjectApi

V1_API_GROUP = "crd.projectcalico.org/v1"


def check_plan_target(plan: Plan, current: ClusterIdentity) -> None:
    """Refuse a plan made for another cluster, from a snapshot, or for another Calico API."""
    made = plan.identity
    if made.snapshot:
        raise PlanError(
            f"this plan was made from the snapshot {made.snapshot}, not from a cluster; "
            "run `bgpflat plan` against the cluster to get a plan that can be applied"
        )

    check_same_cluster(made, current)
    if made.api_group and current.api_group and made.api_group != current.api_group:
        raise StalePlanError(
            f"plan is stale: it was made through {made.api_group}, the cluster now serves "
            f"{current.api_group}; make the plan again"
        )
    wanted = (plan.cluster or {}).get("context")
    if wanted and current.context and wanted != current.context:
        raise PlanError(f"the plan's spec is for context {wanted!r} but the target is {current.context!r}")


def check_same_cluster(made: ClusterIdentity, current: ClusterIdentity) -> None:
    """Refuse a saved plan made for another cluster (``ClusterIdentity.same_cluster``)."""
    if not made.same_cluster(current):
        raise PlanError(
            f"wrong cluster: the plan was made for {made.describe()}, but the target is {current.describe()}; "
            "pass the --context the plan was made for, or make a new plan"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Moved:
    """An object that changed between plan and apply."""

    key: str
    planned_version: str | None
    current_version: str | None
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.planned_version is None:
            what = "was created since the plan"
        elif self.current_version is None:
            what = "was deleted since the plan"
        else:
            what = f"resourceVersion {self.planned_version} -> {self.current_version}"
        detail = f": {'; '.join(self.fields)}" if self.fields else ""
        return f"{self.key} {what}{detail}"


def value_at(obj: Mapping[str, Any] | None, path: str) -> Any:
    value: Any = obj
    for part in parse_path(path):
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and part < len(value) else None
        else:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return None
    return value


def replan_command(kind: str) -> str:
    """The command that makes a new plan for objects of ``kind``."""
    return "bgpflat external plan" if kind in EXTERNAL_KINDS else "bgpflat plan"


def same_value(kind: str, path: str, left: Any, right: Any, *, spec: Mapping[str, Any] | None = None) -> bool:
    """Whether two values of a field mean the same to the cluster (its defaults are no difference)."""
    if kind in EXTERNAL_KINDS:
        return same_owned(kind, path, left, right)
    parts = parse_path(path)
    if kind in ("IPPool", "BGPPeer", "BGPConfiguration") and len(parts) == 2 and parts[0] == "spec":
        key = str(parts[1])
        return bool(normalize_spec_value(kind, key, left, spec=spec) == normalize_spec_value(kind, key, right))
    return bool(left == right)


def find_moved(plan: Plan, api: ObjectApi) -> list[Moved]:
    """Objects whose resourceVersion differs from the plan's, with the owned fields that moved."""
    moved: list[Moved] = []
    keys = dict(plan.observed_versions)
    for change in plan.changes:
        keys.setdefault(change.key, None)  # created by the plan: must still be absent
    first: dict[str, ResourceChange] = {}
    for change in plan.changes:
        first.setdefault(change.key, change)
    for key in sorted(keys):
        kind, namespace, name = split_key(key)
        current = api.get(kind, name, namespace=namespace)
        now = None if current is None else str((current.get("metadata") or {}).get("resourceVersion") or "")
        if now == keys[key]:
            continue
        fields: list[str] = []
        planned = first.get(key)
        if planned is not None and current is not None and planned.action is not Action.CREATE:
            spec = current.get("spec") if isinstance(current.get("spec"), Mapping) else None
            for fc in planned.fields:
                value = value_at(current, fc.path)
                if not same_value(kind, fc.path, value, fc.before, spec=spec):
                    fields.append(f"{fc.path} was {show_value(fc.before)} when planned, is now {show_value(value)}")
        moved.append(Moved(key=key, planned_version=keys[key], current_version=now, fields=tuple(fields)))
    return moved


def show_value(value: Any) -> str:

    return "(absent)" if value is None else json.dumps(value, sort_keys=True)


def ensure_fresh(plan: Plan, api: ObjectApi) -> None:
    """Raise ``StalePlanError`` listing what moved if any observed object changed since the plan."""
    moved = find_moved(plan, api)
    if moved:
        raise StalePlanError(
            "plan is stale: the cluster changed since the plan was made: "
            + "; ".join(str(m) for m in moved)
            + f". Nothing was changed; run `{replan_command(split_key(moved[0].key)[0])}` again"
        )


def check_writable(identity: ClusterIdentity, *, allow_crd_v1: bool) -> None:
    """Refuse to write Calico's v1 storage CRDs unless asked to (ux-conventions §2.1)."""
    if identity.api_group == V1_API_GROUP and not allow_crd_v1:
        raise PlanError(
            "this cluster serves Calico only as crd.projectcalico.org/v1 (no Calico API server, no v3 CRDs): "
            "writes there skip Calico's own validation and defaulting; bgpflat validates client-side, but "
            "refuses unless you pass --allow-crd-v1 (or install the Calico API server)"
        )


def rv_of(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return None if value is None else str(value)
