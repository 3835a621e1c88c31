"""Outside services as changes in a ``Plan``: the same plan, saved-plan checks and apply as Calico's.

``make_external_plan(desired=…, observed=…)`` compares the desired manifests with what the cluster
holds (a mapping from object key to the object as served, or None) over the fields bgpflat owns
(``OWNED``) and returns a ``Plan`` in three stages: Services, then their EndpointSlices (or
Endpoints), then deletions (endpoint objects before their Service). Objects not labelled
``app.kubernetes.io/managed-by: bgpflat`` are never taken over.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from bgpflat.core.calico import MANAGED_BY_LABEL
from bgpflat.core.external.manifests import (
    EXTERNAL_KINDS,
    OWNED,
    is_managed,
    manifest_key,
    owned_patch,
    owned_value,
    same_owned,
)
from bgpflat.core.plan.model import (
    EXTERNAL_STAGES,
    Action,
    FieldChange,
    Plan,
    ResourceChange,
    Stage,
    split_key,
)
from bgpflat.errors import PlanError

# The format ``bgpflat external plan --out`` wrote before external services joined the plan.
LEGACY_PLAN_KIND = "bgpflat-external-plan"
_TITLES = dict(EXTERNAL_STAGES)


def _version(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


def _change(action: Action, source: Mapping[str, Any], *, stage: str, **extra: Any) -> ResourceChange:
    """A change to the object ``source`` names (the desired manifest, or the object as served)."""
    meta = source.get("metadata") or {}
    return ResourceChange(
        action=action,
        api_version=str(source.get("apiVersion") or "v1"),
        kind=str(source.get("kind")),
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        stage=stage,
        **extra,
    )


def _delete(obj: Mapping[str, Any]) -> ResourceChange:
    return _change(
        Action.DELETE,
        obj,
        stage="deletions",
        manifest=copy.deepcopy(dict(obj)),
        resource_version=_version(obj),
    )


def make_external_plan(
    *,
    desired: Sequence[Mapping[str, Any]],
    observed: Mapping[str, Mapping[str, Any] | None],
    related: Sequence[Mapping[str, Any]] = (),
    managed_services: Sequence[Mapping[str, Any]] | None = None,
) -> Plan:
    """Create what is missing, update owned fields that differ; refuse objects someone else owns.

    ``related`` are the endpoint objects the cluster holds for the Services concerned (EndpointSlices
    labelled with their names, Endpoints named like them); those bgpflat manages but the file no
    longer asks for (an address family dropped, a Service turned ExternalName) are deleted, last.
    ``managed_services`` (prune) are the Services labelled as bgpflat's anywhere in the cluster:
    those the file no longer lists are deleted after their endpoint objects, so no orphan remains.
    """
    wanted = {manifest_key(m) for m in desired}
    seen: dict[str, str | None] = {key: _version(obj) for key, obj in observed.items()}
    stale: list[ResourceChange] = []
    for obj in related:
        key = manifest_key(obj)
        seen.setdefault(key, _version(obj))
        if key not in wanted and is_managed(obj):
            stale.append(_delete(obj))
    pruned: list[ResourceChange] = []
    for obj in managed_services or ():
        service = {**obj, "apiVersion": "v1", "kind": "Service"}
        key = manifest_key(service)
        seen.setdefault(key, _version(obj))
        if key not in wanted and is_managed(obj):
            pruned.append(_delete(service))
    by_stage: dict[str, list[ResourceChange]] = {"services": [], "endpoints": []}
    unchanged: list[ResourceChange] = []
    for manifest in desired:
        key = manifest_key(manifest)
        kind = str(manifest["kind"])
        stage = "services" if kind == "Service" else "endpoints"
        current = observed.get(key)
        if current is None:
            fields = tuple(
                FieldChange(path=path, before=None, after=copy.deepcopy(owned_value(manifest, path)))
                for path in OWNED[kind]
                if owned_value(manifest, path) is not None
            )
            by_stage[stage].append(_change(Action.CREATE, manifest, stage=stage, fields=fields, manifest=manifest))
            continue
        if not is_managed(current):
            theirs = ((current.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL)
            raise PlanError(
                f"{key} exists and is not managed by bgpflat (label {MANAGED_BY_LABEL}={theirs!r}); "
                "bgpflat will not take it over (fix: rename the entry, or delete or label that object yourself)"
            )
        differing = [
            path
            for path in OWNED[kind]
            if not same_owned(kind, path, owned_value(manifest, path), owned_value(current, path))
        ]
        if not differing:
            unchanged.append(_change(Action.NO_OP, manifest, stage="", resource_version=_version(current)))
            continue
        fields = tuple(
            FieldChange(
                path=path,
                before=copy.deepcopy(owned_value(current, path)),
                after=copy.deepcopy(owned_value(manifest, path)),
            )
            for path in differing
        )
        by_stage[stage].append(
            _change(
                Action.UPDATE,
                manifest,
                stage=stage,
                fields=fields,
                patch=owned_patch(kind, manifest, differing),
                resource_version=_version(current),
            )
        )
    by_stage["deletions"] = [*sorted(stale, key=lambda c: c.key), *sorted(pruned, key=lambda c: c.key)]
    stages = tuple(
        Stage(name=name, title=_TITLES[name], changes=tuple(by_stage[name]))
        for name, _ in EXTERNAL_STAGES
        if by_stage[name]
    )
    return Plan(
        stages=stages,
        unchanged=tuple(unchanged),
        observed_versions=dict(sorted(seen.items())),
        prune=managed_services is not None,
    )


def is_external_plan(plan: Plan) -> bool:
    """Made by ``bgpflat external plan``: every object it read or writes is a Service or endpoints."""
    kinds = {split_key(key)[0] for key in plan.observed_versions} | {c.kind for c in plan.changes}
    return bool(kinds) and kinds <= set(EXTERNAL_KINDS)


def listing_order(change: ResourceChange) -> tuple[int, str, str, str]:
    """The order the file asks for objects in: Services, then each Service's endpoint objects."""
    owner = change.name.rsplit("-", 1)[0] if change.kind == "EndpointSlice" else change.name
    return (0 if change.kind == "Service" else 1, change.namespace, owner, change.name)


def restore_patch(kind: str, saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that puts back the owned fields of a backed-up object ({} if they are as saved)."""
    differing = [
        path for path in OWNED[kind] if not same_owned(kind, path, owned_value(saved, path), owned_value(current, path))
    ]
    return owned_patch(kind, saved, differing) if differing else {}


def refuse_legacy_plan(data: Any, *, file: str) -> None:
    """One line for a plan saved in the format before external services joined the plan."""
    if isinstance(data, Mapping) and data.get("kind") == LEGACY_PLAN_KIND:
        raise PlanError(
            f"{file}: this plan is in the old external format ({LEGACY_PLAN_KIND}), which this bgpflat no "
            "longer applies; external plans are now bgpflat plans (format_version 1, with backups and "
            "rollback): make it again with `bgpflat external plan --out`"
        )
