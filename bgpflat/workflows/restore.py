"""Undoing an apply from its backup, without overwriting anyone's later edit."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bgpflat.core.calico.models import SERVER_METADATA
from bgpflat.core.external import EXTERNAL_KINDS, restore_patch
from bgpflat.core.plan.planner import ClusterIdentity, object_key, split_key
from bgpflat.core.plan.report import APPLIED, DRY_RUN, FAILED, NOT_ATTEMPTED, ApplyReport, ChangeResult
from bgpflat.errors import KubeConflict, KubeError, PlanError
from bgpflat.workflows.guards import rv_of, value_at
from bgpflat.workflows.ports import ObjectApi, Progress, quiet

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


@dataclass(frozen=True, slots=True)
class _Done:
    """What the backup proves the apply did."""

    created: frozenset[str]  # keys it created
    applied: Mapping[str, Any]  # key -> resourceVersion its write left
    began: frozenset[str] | None  # keys it started to write (None: every key of a finished apply)
    unconfirmed: frozenset[str]  # started, never confirmed: landed or not, the backup cannot tell
    planned: tuple[str, ...]  # the creates the plan meant to make


def _what_the_apply_did(header: Mapping[str, Any]) -> _Done:
    """A finished apply (or a backup from before writes were recorded) completed its header; one
    that was killed left only its record of writes, appended as each was made."""
    if header.get("finished") or "planned" not in header:
        return _Done(
            created=frozenset(str(k) for k in header.get("created") or ()),
            applied=header.get("appliedVersions") or {},
            began=None,
            unconfirmed=frozenset(),
            planned=(),
        )
    began: set[str] = set()
    created: set[str] = set()
    applied: dict[str, Any] = {}
    for write in header.get("writes") or ():
        if "intent" in write:
            began.add(str(write.get("key")))
        elif "done" in write:
            key = str(write.get("key"))
            applied[key] = write.get("resourceVersion")
            if write.get("done") == "create":
                created.add(key)
    return _Done(
        created=frozenset(created),
        applied={k: v for k, v in applied.items() if v is not None},
        began=frozenset(began),
        unconfirmed=frozenset(began - set(applied)),
        planned=tuple(str(k) for k in header.get("planned") or ()),
    )


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
    Of an apply that was killed, only what its recorded writes prove is undone: an object whose
    write was begun but never confirmed is left alone and named in the report (``error`` set).
    """
    identity = api.identity()
    made = ClusterIdentity.from_header(header)
    if not made.same_cluster(identity):
        raise PlanError(
            f"wrong cluster: the backup was taken from {made.describe()}, the target is "
            f"{identity.describe()}; pass the right --context"
        )
    record = _what_the_apply_did(header)
    applied = record.applied
    steps: list[_RollbackStep] = []
    refused: list[str] = []
    unproven: list[ChangeResult] = []

    def leave(action: RollbackAction, key: str, why: str) -> None:
        unproven.append(ChangeResult(stage="rollback", action=action, key=key, outcome=NOT_ATTEMPTED, message=why))

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
        if record.began is not None and key not in record.began:
            continue  # the interrupted apply never got to it: nothing of ours to undo
        kind, namespace, name = split_key(key)
        current = api.get(kind, name, namespace=namespace)
        if key in record.unconfirmed and not force:
            if current is not None and rv_of(current) == rv_of(saved):
                continue  # unchanged since the backup: the interrupted write did not land
            leave(
                RollbackAction.RESTORE if current is not None else RollbackAction.RECREATE,
                key,
                "not restored: the apply was interrupted during this write and the backup cannot tell whether "
                "it landed or someone else changed it since; compare it with the backup and fix it by hand",
            )
            continue
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
    created = sorted(record.created | {k for k in record.planned if k in record.unconfirmed})
    for key in sorted(created, key=lambda k: (-_ROLLBACK_ORDER.get(split_key(k)[0], 9), k)):
        kind, namespace, name = split_key(key)
        current = api.get(kind, name, namespace=namespace)
        if current is None:
            continue
        if key not in record.created and not force:
            leave(
                RollbackAction.DELETE,
                key,
                "not deleted: the apply was interrupted while creating it and the backup cannot prove it was "
                "this apply that created it (someone else may have); delete it yourself if it is yours",
            )
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
    if unproven:
        results.extend(unproven)
        if error is None:
            error = (
                f"left alone what the interrupted apply may not have written: {', '.join(r.key for r in unproven)} "
                "(see the report; --force undoes them anyway)"
            )
    return ApplyReport(results=tuple(results), dry_run=dry_run, error=error, identity=identity)
