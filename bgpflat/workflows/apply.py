"""Applying a plan to a cluster, stage by stage.

The rules ``apply_plan`` keeps, whatever happens on the wire:

* A saved plan is applied only to the cluster it was made for (kube-system UID, else server URL)
  and only if no object it observed has changed since (``StalePlanError`` names what moved).
* What is sent is what the plan shows: a write that would change a field the plan does not list,
  or delete an object bgpflat does not manage, refuses the plan before anything is written.
* Every write is guarded: merge patches and deletes carry the resourceVersion the plan saw (or the
  one this apply's previous write returned); a create fails if the object appeared meanwhile.
* On a 409 the object is re-read and the change re-planned against it: if the fields this change
  owns still hold the values the plan started from, the write is retried (bounded); if they
  already hold the planned values, the change is counted as done; otherwise apply stops and
  reports, because someone else's edit must never be overwritten.
* Everything about to change is written to a backup file before the first write. Each write is
  recorded in it as it happens (appended and fsynced: intent before, resourceVersion after), and
  the file is completed at the end, so that ``rollback`` can refuse to undo over somebody's later
  edit and, after a kill, deletes only objects this apply provably created.
* Ctrl-C/SIGTERM (``interrupted``) stop at the next safe point, between two writes, with the same
  report as any other stop.
* After each stage the written objects are read back and checked, and a verifier hook runs (the
  BGP peer waits there once it exists). A stop at any point returns an ``ApplyReport`` saying what
  was written, what was not, and which backup restores it: nothing is left half-applied unreported.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.calico import parse_path, parse_resource, validate
from bgpflat.core.plan.layover import merge_patch
from bgpflat.core.plan.planner import Action, Plan, ResourceChange, Stage
from bgpflat.core.plan.report import (
    ALREADY,
    APPLIED,
    DRY_RUN,
    FAILED,
    NOT_ATTEMPTED,
    UNKNOWN,
    ApplyReport,
    ChangeResult,
    Outcome,
)
from bgpflat.errors import (
    BgpflatError,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeUnavailable,
    PlanError,
    SpecError,
    VerifyError,
)
from bgpflat.workflows.guards import (
    check_plan_target,
    check_sent_matches_shown,
    check_writable,
    ensure_fresh,
    replan_command,
    rv_of,
    same_value,
    show_value,
    value_at,
)
from bgpflat.workflows.ports import (
    BackupWriter,
    ObjectApi,
    Progress,
    StageVerifier,
    never_interrupted,
    no_verification,
    quiet,
)

MAX_CONFLICT_RETRIES = 3


class _Stop(BgpflatError):
    """Internal: ends the apply loop with a result for the change that could not be made."""

    def __init__(self, result: ChangeResult) -> None:
        super().__init__(result.message or result.outcome)
        self.result = result


def _validate_write(change: ResourceChange, current: Mapping[str, Any] | None) -> None:
    """Calico's rules on the object as it will be after this write (the server may not check them)."""
    if change.kind not in ("IPPool", "BGPPeer", "BGPConfiguration"):
        return
    if change.action is Action.CREATE and change.manifest is not None:
        validate(parse_resource(change.manifest, path=change.key))
    elif change.action is Action.UPDATE and current is not None and change.patch is not None:
        merged = merge_patch(current, change.patch)
        merged["apiVersion"] = "projectcalico.org/v3"
        old = parse_resource(current, path=change.key)
        validate(parse_resource(merged, path=change.key), old=old)


def _conflict_verdict(change: ResourceChange, current: Mapping[str, Any]) -> str:
    """After a 409: 'done' (fields already as planned), 'retry' (owned fields untouched) or 'moved'."""
    spec = current.get("spec") if isinstance(current.get("spec"), Mapping) else None
    if change.kind == "Installation":
        # The ipPools list is patched whole: retry only if applying our field changes to what is
        # there now gives exactly the list we would send, i.e. nobody touched any other entry.
        rebuilt = copy.deepcopy(dict(current))
        for fc in change.fields:
            parts = parse_path(fc.path)
            node: Any = rebuilt
            for part in parts[:-1]:
                node = node[part] if isinstance(part, int) else node.setdefault(part, {})
            node[parts[-1]] = copy.deepcopy(fc.after)
        wanted = value_at(change.patch, "spec.calicoNetwork.ipPools")
        if value_at(current, "spec.calicoNetwork.ipPools") == wanted:
            return "done"
        return "retry" if value_at(rebuilt, "spec.calicoNetwork.ipPools") == wanted else "moved"
    values = [(fc, value_at(current, fc.path)) for fc in change.fields]
    if all(same_value(change.kind, fc.path, value, fc.after, spec=spec) for fc, value in values):
        return "done"
    if all(same_value(change.kind, fc.path, value, fc.before, spec=spec) for fc, value in values):
        return "retry"
    return "moved"


@dataclass(slots=True)
class _Run:
    api: ObjectApi
    dry_run: bool
    progress: Progress
    versions: dict[str, str] = field(default_factory=dict)  # resourceVersion our last write left
    created: set[str] = field(default_factory=set)
    results: list[ChangeResult] = field(default_factory=list)

    def result(
        self,
        change: ResourceChange,
        outcome: Outcome,
        *,
        rv: str | None = None,
        retries: int = 0,
        message: str | None = None,
    ) -> ChangeResult:
        return ChangeResult(
            stage=change.stage,
            action=change.action,
            key=change.key,
            outcome=outcome,
            resource_version=rv,
            retries=retries,
            message=message,
        )

    def write(self, change: ResourceChange) -> ChangeResult:
        api, key = self.api, change.key
        if self.dry_run and change.chained and key in self.created:
            return self.result(change, DRY_RUN, message="follows a create that a dry run does not store")
        rv = self.versions.get(key) if change.chained else change.resource_version
        if rv is None and change.action is not Action.CREATE:
            rv = self.versions.get(key) or change.resource_version
        retries = 0
        while True:
            current = None
            if change.action is Action.UPDATE:
                current = api.get(change.kind, change.name, namespace=change.namespace)
                if current is None:
                    raise _Stop(
                        self.result(
                            change,
                            FAILED,
                            message=f"{key} was deleted by someone else; nothing of this change was written",
                        )
                    )
            try:
                _validate_write(change, current)
            except SpecError as exc:
                raise _Stop(self.result(change, FAILED, message=f"client-side validation refused it: {exc}")) from None
            try:
                written = self._send(change, rv)
            except KubeConflict as exc:
                outcome = self._after_conflict(change, exc, retries)
                if isinstance(outcome, ChangeResult):
                    return outcome
                # Retried with the resourceVersion of the object the verdict was made on: an edit
                # landing after that read makes the retry conflict again instead of being overwritten.
                retries += 1
                rv = outcome
                continue
            except KubeUnavailable as exc:
                raise _Stop(self._after_failure(change, exc)) from None
            except KubeNotFound:
                if change.action is not Action.DELETE:
                    raise _Stop(self.result(change, FAILED, message=f"{key} no longer exists")) from None
                # A retried DELETE whose first attempt landed: the object is gone, as planned.
                return self.result(change, ALREADY, message="already deleted")
            except KubeError as exc:
                raise _Stop(self.result(change, FAILED, message=str(exc))) from None
            new_rv = rv_of(written)
            if new_rv:
                self.versions[key] = new_rv
            if change.action is Action.CREATE:
                self.created.add(key)
            return self.result(change, DRY_RUN if self.dry_run else APPLIED, rv=new_rv, retries=retries)

    def _send(self, change: ResourceChange, rv: str | None) -> dict[str, Any] | None:
        api = self.api
        if change.action is Action.CREATE:
            assert change.manifest is not None
            return api.create(change.manifest, dry_run=self.dry_run)
        if rv is None:
            raise KubeError(f"{change.key}: no resourceVersion to guard the write with; make the plan again")
        if change.action is Action.UPDATE:
            assert change.patch is not None
            return api.patch(
                change.kind,
                change.name,
                change.patch,
                resource_version=rv,
                dry_run=self.dry_run,
                namespace=change.namespace,
            )
        if change.action is Action.DELETE:
            api.delete(change.kind, change.name, resource_version=rv, dry_run=self.dry_run, namespace=change.namespace)
            return None
        raise PlanError(f"{change.key}: unknown action {change.action!r}")

    def _after_conflict(self, change: ResourceChange, exc: KubeConflict, retries: int) -> ChangeResult | str:
        """The resourceVersion to retry with (that of the object just judged); a result when done;
        raises ``_Stop`` otherwise."""
        key = change.key
        current = self.api.get(change.kind, change.name, namespace=change.namespace)
        if change.action is Action.CREATE:
            raise _Stop(
                self.result(
                    change,
                    FAILED,
                    message=f"{key} was created by someone else while applying; "
                    f"not overwritten. Run `{replan_command(change.kind)}` again",
                )
            )
        if current is None:
            raise _Stop(self.result(change, FAILED, message=f"{key} was deleted by someone else while applying"))
        if change.action is Action.DELETE:
            raise _Stop(
                self.result(
                    change,
                    FAILED,
                    message=f"{key} was changed by someone else; not deleted. "
                    f"Run `{replan_command(change.kind)}` again",
                )
            )
        verdict = _conflict_verdict(change, current)
        if verdict == "done":
            rv = rv_of(current)
            if rv:
                self.versions[key] = rv
            return self.result(
                change, ALREADY, rv=rv, retries=retries, message="someone else made the same change meanwhile"
            )
        judged_rv = rv_of(current)
        if verdict == "retry" and retries < MAX_CONFLICT_RETRIES and judged_rv:
            self.progress(f"  {key} changed meanwhile (fields bgpflat owns did not); retrying")
            return judged_rv
        moved = [
            f"{fc.path} is now {show_value(value_at(current, fc.path))} (planned from {show_value(fc.before)})"
            for fc in change.fields
            if not same_value(change.kind, fc.path, value_at(current, fc.path), fc.before)
        ]
        why = "; ".join(moved) if moved else f"still conflicting after {retries} retries"
        raise _Stop(
            self.result(
                change,
                FAILED,
                retries=retries,
                message=f"{key} was edited by someone else while applying ({why}); "
                f"their edit was kept and this change was not written. Run `{replan_command(change.kind)}` again",
            )
        )

    def _after_failure(self, change: ResourceChange, exc: KubeUnavailable) -> ChangeResult:
        """The connection failed mid-write: find out by reading whether the write landed."""
        try:
            current = self.api.get(change.kind, change.name, namespace=change.namespace)
        except KubeError:
            return self.result(
                change,
                UNKNOWN,
                message=f"{exc}; whether this write landed is unknown (the API server could not be read back)",
            )
        landed = False
        if change.action is Action.CREATE:
            landed = current is not None
        elif change.action is Action.DELETE:
            landed = current is None
        elif current is not None:
            spec = current.get("spec") if isinstance(current.get("spec"), Mapping) else None
            landed = all(
                same_value(change.kind, fc.path, value_at(current, fc.path), fc.after, spec=spec)
                for fc in change.fields
            )
        if landed:
            rv = rv_of(current)
            if rv:
                self.versions[change.key] = rv
            return self.result(change, APPLIED, rv=rv, message=f"{exc}; read back afterwards: this write did land")
        if exc.reason == "Timeout":
            # A request that timed out is still in the server's hands and may land after this read.
            return self.result(
                change,
                UNKNOWN,
                message=f"{exc}; read back afterwards: not landed yet, but it still may; "
                f"run `{replan_command(change.kind)}` to see where it stands before applying again",
            )
        return self.result(change, FAILED, message=f"{exc}; read back afterwards: this write did not land")


def _check_stage(run: _Run, stage: Stage) -> None:
    """Read back what the stage wrote; raise ``VerifyError`` if the cluster does not show it."""
    problems: list[str] = []
    for change in stage.changes:
        current = run.api.get(change.kind, change.name, namespace=change.namespace)
        if change.action is Action.DELETE:
            if current is not None:
                problems.append(f"{change.key} still exists")
            continue
        if current is None:
            problems.append(f"{change.key} is missing")
            continue
        spec = current.get("spec") if isinstance(current.get("spec"), Mapping) else None
        for fc in change.fields:
            value = value_at(current, fc.path)
            if not same_value(change.kind, fc.path, value, fc.after, spec=spec):
                problems.append(f"{change.key} {fc.path} is {show_value(value)}, expected {show_value(fc.after)}")
    if problems:
        raise VerifyError(f"stage {stage.name} did not take effect: {'; '.join(problems)}")


class _Interrupted(BgpflatError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"interrupted by {reason}")
        self.reason = reason


def _record_done(
    journal: Callable[[dict[str, Any]], None] | None, change: ResourceChange, result: ChangeResult
) -> None:
    """Record in the backup a write that is known to have landed (or found already made)."""
    if journal is not None and result.outcome in (APPLIED, ALREADY):
        journal({"done": str(change.action), "key": change.key, "resourceVersion": result.resource_version})


def backup_objects(plan: Plan, api: ObjectApi) -> tuple[list[dict[str, Any]], list[str]]:
    """The current objects every change will touch, and the keys the plan creates."""
    objects: list[dict[str, Any]] = []
    created: list[str] = []
    seen: set[str] = set()
    for change in plan.changes:
        if change.key in seen:
            continue
        seen.add(change.key)
        if change.action is Action.CREATE:
            created.append(change.key)
            continue
        current = api.get(change.kind, change.name, namespace=change.namespace)
        if current is not None:
            objects.append(current)
    return objects, created


def apply_plan(
    plan: Plan,
    api: ObjectApi,
    *,
    backup: BackupWriter | None,
    dry_run: bool = False,
    verify: StageVerifier = no_verification,
    progress: Progress = quiet,
    allow_crd_v1: bool = False,
    taken_at: dt.datetime | None = None,
    interrupted: Callable[[], str | None] = never_interrupted,
) -> ApplyReport:
    """Apply ``plan`` stage by stage; see the module docstring for the guarantees.

    Refusals before any write (wrong cluster, stale plan, blocking findings, v1-only cluster) raise;
    anything that stops the apply after that returns a report with ``error`` set.
    """
    plan.ensure_applicable()
    identity = api.identity()
    check_plan_target(plan, identity)
    check_writable(identity, allow_crd_v1=allow_crd_v1)
    ensure_fresh(plan, api)
    check_sent_matches_shown(plan, api)
    run = _Run(api=api, dry_run=dry_run, progress=progress)
    if not plan.has_changes:
        return ApplyReport(results=(), dry_run=dry_run, identity=identity)

    backup_path: str | None = None
    header: dict[str, Any] = {}
    backed_up: list[dict[str, Any]] = []
    if not dry_run and backup is not None:
        backed_up, created = backup_objects(plan, api)
        header = {
            "backup": True,
            **identity.to_header(),
            "takenAt": (taken_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            # What the plan means to create; only the recorded writes prove what was created.
            "planned": created,
            "created": [],
            "appliedVersions": {},
            "complete": False,
            # Set once apply has ended (done or stopped): ``created``/``appliedVersions`` are then final.
            "finished": False,
        }
        backup_path = backup(header=header, objects=backed_up, path=None)
        progress(f"Backup of {len(backed_up)} object(s) (rollback with `bgpflat rollback {backup_path}`)")

    journal: Callable[[dict[str, Any]], None] | None = None
    writes: list[dict[str, Any]] = []
    if backup_path is not None and backup is not None:
        writer, where = backup, backup_path

        def journal(write: dict[str, Any]) -> None:
            writer.record(where, write)
            writes.append(write)

    error: str | None = None
    stages = plan.stages
    for number, stage in enumerate(stages, start=1):
        progress(f"Stage {number}/{len(stages)}: {stage.name} — {stage.title}")
        try:
            for change in stage.changes:
                reason = interrupted()
                if reason is not None:
                    raise _Interrupted(reason)
                if journal is not None:
                    journal({"intent": str(change.action), "key": change.key})
                try:
                    result = run.write(change)
                except _Stop as stop:
                    _record_done(journal, change, stop.result)
                    raise
                _record_done(journal, change, result)
                run.results.append(result)
                progress(
                    f"  {change.action} {change.key}: {result.outcome}"
                    + (f" ({result.message})" if result.message else "")
                )
            if not dry_run:
                _check_stage(run, stage)
                verify(stage, api=api)
        except _Stop as stop:
            run.results.append(stop.result)
            error = stop.result.message or stop.result.outcome
        except (VerifyError, KubeError) as exc:
            error = str(exc)
        except _Interrupted as stop:
            error = f"interrupted by {stop.reason}; stopped before the next write"
        if error is not None:
            attempted = {(r.stage, r.key) for r in run.results}
            for later in stages[number - 1 :]:
                for change in later.changes:
                    if (later.name, change.key) not in attempted:
                        run.results.append(run.result(change, NOT_ATTEMPTED))
            break

    if backup_path is not None and backup is not None:
        # Completed with what apply left behind, so that rollback can tell our writes from later edits.
        header["appliedVersions"] = dict(sorted(run.versions.items()))
        header["created"] = sorted(run.created)
        header["complete"] = error is None
        header["finished"] = True
        backup(header=header, objects=backed_up, path=backup_path, writes=writes)
    return ApplyReport(results=tuple(run.results), dry_run=dry_run, backup=backup_path, error=error, identity=identity)
