"""Undoing an apply from its backup, without overwriting anyone's later edit."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bgpflat.core.external import EXTERNAL_KINDS, restore_patch
from bgpflat.core.plan.planner import ClusterIdentity, object_key, split_key
from bgpflat.core.plan.report import APPLIED, DRY_RUN, FAILED, NOT_ATTEMPTED, ApplyReport, ChangeResult
from bgpflat.errors import KubeConflict, KubeError, PlanError
from bgpflat.workflows.guards import rv_of, value_at
from bgpflat.workflows.ports import ObjectApi, Progress, quiet

SERVER_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "selfLink")

# Restored in this order, and what apply created deleted in the reverse one: a Service is put back
# before its endpoint objects and deleted after them.
_ROLLBACK_ORDER = {
    "Installation": 0,
    "IPPool": 1,
    "BGPConfiguration": 2,
    "BGPPeer": 3,
    "Service": 4,
    "EndpointSlice": 5,
    "Endpoints": 5,
}


class RollbackAction(StrEnum):
    """What rollback does to one object; the value is what its report shows."""

    RESTORE = "restore"  # patch the saved spec back
    RECREATE = "recreate"  # deleted since the backup: create it again
    DELETE = "delete"  # created by the apply


@dataclass(frozen=True, slots=True, kw_only=True)
class _RollbackStep:
    action: RollbackAction
    kind: str
    name: str
    namespace: str
    resource_version: str | None
    body: Mapping[str, Any]

    @property
    def key(self) -> str:
        return object_key(self.kind, self.name, self.namespace)


def _restore_patch(kind: str, saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that makes ``current``'s spec equal the saved one (extra keys nulled)."""
    if kind in EXTERNAL_KINDS:
        return restore_patch(kind, saved, current)
    if kind == "Installation":
        return {"spec": {"calicoNetwork": {"ipPools": copy.deepcopy(value_at(saved, "spec.calicoNetwork.ipPools"))}}}
    saved_spec = dict(saved.get("spec") or {})
    current_spec = current.get("spec") or {}
    spec: dict[str, Any] = {k: copy.deepcopy(v) for k, v in saved_spec.items() if current_spec.get(k) != v}
    spec.update({k: None for k in current_spec if k not in saved_spec})
    return {"spec": spec} if spec else {}


def _recreate_manifest(saved: Mapping[str, Any]) -> dict[str, Any]:
    manifest = copy.deepcopy(dict(saved))
    manifest["metadata"] = {k: v for k, v in (saved.get("metadata") or {}).items() if k not in SERVER_METADATA}
    manifest.pop("status", None)
    return manifest


def rollback(
    api: ObjectApi,
    *,
    header: Mapping[str, Any],
    objects: Sequence[Mapping[str, Any]],
    dry_run: bool = False,
    force: bool = False,
    progress: Progress = quiet,
) -> ApplyReport:
    """Put back the objects of a backup and delete what the apply created, guarded throughout.

    Each object must still be as the apply left it (``appliedVersions`` in the backup); an object
    edited since is refused before anything is written, unless ``force``. Writes then carry the
    resourceVersion just read, so an edit racing with the rollback is not overwritten either.
    """
    identity = api.identity()
    made = ClusterIdentity.from_header(header)
    if not made.same_cluster(identity):
        raise PlanError(
            f"wrong cluster: the backup was taken from {made.describe()}, the target is "
            f"{identity.describe()}; pass the right --context"
        )
    applied: Mapping[str, Any] = header.get("appliedVersions") or {}
    steps: list[_RollbackStep] = []
    refused: list[str] = []

    def guard(key: str, current: Mapping[str, Any]) -> None:
        left = applied.get(key)
        now = rv_of(current)
        if left is not None and now != str(left) and not force:
            refused.append(f"{key} changed after the apply (resourceVersion {left} -> {now})")

    def saved_key(saved: Mapping[str, Any]) -> str:
        meta = saved.get("metadata") or {}
        return object_key(str(saved.get("kind")), str(meta.get("name")), str(meta.get("namespace") or ""))

    for saved in sorted(objects, key=lambda o: (_ROLLBACK_ORDER.get(str(o.get("kind")), 9), saved_key(o))):
        key = saved_key(saved)
        kind, namespace, name = split_key(key)
        current = api.get(kind, name, namespace=namespace)
        if current is None:
            steps.append(
                _RollbackStep(
                    action=RollbackAction.RECREATE,
                    kind=kind,
                    name=name,
                    namespace=namespace,
                    resource_version=None,
                    body=_recreate_manifest(saved),
                )
            )
            continue
        guard(key, current)
        patch = _restore_patch(kind, saved, current)
        if patch:
            steps.append(
                _RollbackStep(
                    action=RollbackAction.RESTORE,
                    kind=kind,
                    name=name,
                    namespace=namespace,
                    resource_version=rv_of(current),
                    body=patch,
                )
            )
    created = sorted(str(k) for k in header.get("created") or ())
    for key in sorted(created, key=lambda k: (-_ROLLBACK_ORDER.get(split_key(k)[0], 9), k)):
        kind, namespace, name = split_key(key)
        current = api.get(kind, name, namespace=namespace)
        if current is None:
            continue
        guard(key, current)
        steps.append(
            _RollbackStep(
                action=RollbackAction.DELETE,
                kind=kind,
                name=name,
                namespace=namespace,
                resource_version=rv_of(current),
                body={},
            )
        )
    if refused:
        raise PlanError(
            "rollback refused, nothing was changed: "
            + "; ".join(refused)
            + ". Someone edited these after the apply; rolling back would lose their edit "
            "(re-run with --force to overwrite)"
        )

    results: list[ChangeResult] = []
    error: str | None = None
    for step in steps:
        try:
            written: Mapping[str, Any] | None = None
            if step.action is RollbackAction.RECREATE:
                written = api.create(step.body, dry_run=dry_run)
            elif step.action is RollbackAction.RESTORE:
                assert step.resource_version is not None
                written = api.patch(
                    step.kind,
                    step.name,
                    step.body,
                    resource_version=step.resource_version,
                    dry_run=dry_run,
                    namespace=step.namespace,
                )
            else:
                assert step.resource_version is not None
                api.delete(
                    step.kind,
                    step.name,
                    resource_version=step.resource_version,
                    dry_run=dry_run,
                    namespace=step.namespace,
                )
        except KubeConflict as exc:
            error = f"{step.key} was changed by someone else during the rollback; not overwritten ({exc})"
        except KubeError as exc:
            error = str(exc)
        if error is not None:
            results.append(
                ChangeResult(stage="rollback", action=step.action, key=step.key, outcome=FAILED, message=error)
            )
            done = {r.key for r in results}
            results.extend(
                ChangeResult(stage="rollback", action=s.action, key=s.key, outcome=NOT_ATTEMPTED)
                for s in steps
                if s.key not in done
            )
            break
        outcome = DRY_RUN if dry_run else APPLIED
        results.append(
            ChangeResult(
                stage="rollback",
                action=step.action,
                key=step.key,
                outcome=outcome,
                resource_version=rv_of(written),
            )
        )
        progress(f"  {step.action} {step.key}: {outcome}")
    return ApplyReport(results=tuple(results), dry_run=dry_run, error=error, identity=identity)
