"""Gated apply: after each stage, wait until an outside peer learned exactly the routes of the state
just written; before a stage that turns encapsulation off, require the pool's blocks delivered.

``RouteGate`` is a ``StageVerifier`` (``apply_plan(verify=gate)``): apply writes a stage, reads it
back, then calls the gate, which reads the cluster as it now is, computes the expected routes
of that state with the one route model, and polls its ``LearnedSource`` (the verification peer's
state directory today; any source of learned routes fits) until they match, bounded by
``timeout``. A gate that does not turn green raises ``GateStopped`` (a ``VerifyError``), which
stops the apply there; ``undo_stage`` then writes the stage just written back as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.calico import parse_path
from bgpflat.core.plan.gate import encapsulation_turned_off, grouped_lines, missing_by_node, undelivered_blocks
from bgpflat.core.plan.model import Action, FieldChange, Plan, ResourceChange, Stage
from bgpflat.core.plan.report import ALREADY, APPLIED, ApplyReport
from bgpflat.core.routes.advertise import AdvertisementModel
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer
from bgpflat.core.routes.verdict import MATCH, LearnedState, VerifyResult, evaluate
from bgpflat.errors import BgpflatError, VerifyError
from bgpflat.workflows.ports import ObjectApi, Progress, quiet
from bgpflat.workflows.verify import LearnedSource

STOP = "stop"
ROLLBACK = "rollback"


class GateStopped(VerifyError):
    """The gate did not turn green: the apply stops after the stage ``stage``."""

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass(frozen=True, slots=True, kw_only=True)
class StageGate:
    """The gate's verdict on one stage: how long until green (None: it never was)."""

    stage: str
    passed: bool
    seconds: float
    matched: int
    expected: int
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "passed": self.passed,
            "seconds_until_green": round(self.seconds, 2) if self.passed else None,
            "waited_seconds": round(self.seconds, 2),
            "matched": self.matched,
            "expected": self.expected,
            "message": self.message,
        }


def _matched(result: VerifyResult) -> tuple[int, int]:
    """(routes learned as expected, routes expected), by (session, prefix)."""
    expected = len({k for k, paths in result.expected.table.grouped().items() if paths})
    if result.diff is None:
        return 0, expected
    counts = result.diff.counts()
    return counts["present"], expected


@dataclass(slots=True, kw_only=True)
class RouteGate:
    """The ``StageVerifier`` of ``apply --gate``; ``results`` holds one ``StageGate`` per stage."""

    plan: Plan
    read_cluster: Callable[[], Sequence[dict[str, Any]]]  # the live cluster, as a snapshot holds it
    source: LearnedSource
    peer: str
    timeout: float = 120.0
    interval: float = 1.0
    options: ModelOptions = field(default_factory=ModelOptions)
    progress: Progress = quiet
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    results: list[StageGate] = field(default_factory=list)

    @property
    def stopped(self) -> StageGate | None:
        return next((r for r in self.results if not r.passed), None)

    def to_dict(self) -> dict[str, Any]:
        stopped = self.stopped
        return {
            "peer": self.peer,
            "status": "stopped" if stopped is not None else "passed",
            "stopped_at": stopped.stage if stopped is not None else None,
            "stages": [r.to_dict() for r in self.results],
        }

    # -- the StageVerifier ------------------------------------------------------------------------

    def __call__(self, stage: Stage, *, api: ObjectApi) -> None:
        cluster = ClusterState.from_objects(self.read_cluster())
        expected = AdvertisementModel(cluster, self.options).expected_routes(OutsidePeer(address=self.peer))
        self._wait_green(stage.name, expected)
        following = self._next(stage)
        if following is not None:
            self._precheck(following, cluster, after=stage.name)

    def before_apply(self) -> None:
        """The encapsulation check for a first stage that turns encapsulation off (nothing precedes it)."""
        if self.plan.stages:
            first = self.plan.stages[0]
            if encapsulation_turned_off(first):
                self._precheck(first, ClusterState.from_objects(self.read_cluster()), after=None)

    # -- inside -----------------------------------------------------------------------------------

    def _next(self, stage: Stage) -> Stage | None:
        names = [s.name for s in self.plan.stages]
        index = names.index(stage.name) if stage.name in names else len(names)
        return self.plan.stages[index + 1] if index + 1 < len(names) else None

    def _read(self) -> LearnedState | None:
        try:
            return self.source.read()
        except BgpflatError as exc:
            self.progress(f"  gate: cannot read the learned routes yet ({exc})")
            return None

    def _wait_green(self, name: str, expected: ExpectedRoutes) -> None:
        started = self.clock()
        last: VerifyResult | None = None
        shown: tuple[int, int] | None = None
        shown_at = started
        while True:
            learned = self._read()
            elapsed = self.clock() - started
            if learned is not None and not expected.sessions and not learned.routes:
                # No node peers with the peer yet (its BGPPeer comes in a later stage): nothing
                # is expected and nothing is learned, which is what equal means here.
                self.progress(f"  gate {name}: no node peers with {self.peer} yet; nothing expected, nothing learned")
                self.results.append(StageGate(stage=name, passed=True, seconds=elapsed, matched=0, expected=0))
                return
            if learned is not None:
                last, _ = evaluate(expected=expected, learned=learned, strict=True)
                matched, total = _matched(last)
                # A line when the count moves, and every 5 s while it does not: alive, not noisy.
                if (matched, total) != shown or self.clock() - shown_at >= 5 or last.status == MATCH:
                    self.progress(f"  gate {name}: {elapsed:.1f}s, {matched}/{total} routes as expected")
                    shown, shown_at = (matched, total), self.clock()
                if last.status == MATCH:
                    self.results.append(
                        StageGate(stage=name, passed=True, seconds=elapsed, matched=matched, expected=total)
                    )
                    return
            if elapsed >= self.timeout:
                break
            self.sleep(max(0.0, min(self.interval, self.timeout - elapsed)))
        matched, total = _matched(last) if last is not None else (0, len(expected.table))
        lines = [f"the routes {self.peer} learned did not match the state after stage {name} within {self.timeout:g} s"]
        if last is not None and last.diff is not None:
            groups = missing_by_node(last.diff)
            if groups:
                lines.append("missing or wrong, by node:")
                lines.extend(grouped_lines(groups))
        elif last is not None:
            lines.append(last.message)
        message = "\n".join(lines)
        self.results.append(
            StageGate(
                stage=name,
                passed=False,
                seconds=self.clock() - started,
                matched=matched,
                expected=total,
                message=message,
            )
        )
        raise GateStopped(message, stage=name)

    def _precheck(self, stage: Stage, cluster: ClusterState, *, after: str | None) -> None:
        pools = encapsulation_turned_off(stage)
        if not pools:
            return
        learned = self._read()
        if learned is None:
            message = f"stage {stage.name} turns encapsulation off, and the routes {self.peer} learned cannot be read"
            self.results.append(
                StageGate(
                    stage=after or f"before {stage.name}",
                    passed=False,
                    seconds=0.0,
                    matched=0,
                    expected=0,
                    message=message,
                )
            )
            raise GateStopped(message, stage=after or "")
        missing = undelivered_blocks(cluster, pools, learned.routes)
        if not missing:
            self.progress(f"  gate: every block of {', '.join(pools)} is learned with its node as next hop")
            return
        count = sum(len(v) for v in missing.values())
        message = "\n".join(
            [
                f"stage {stage.name} turns encapsulation off for {', '.join(pools)}, but {self.peer} has not "
                f"learned {count} block(s) with a next hop that delivers them (the node or one in its subnet):",
                *grouped_lines(missing),
            ]
        )
        # Recorded against the stage just written (or before any write), which is what is undone.
        name = after or f"before {stage.name}"
        self.results.append(
            StageGate(stage=name, passed=False, seconds=0.0, matched=0, expected=count, message=message)
        )
        raise GateStopped(message, stage=after or "")


# --- undoing the stage just written ----------------------------------------------------------------


def undo_stage(plan: Plan, report: ApplyReport, stage_name: str) -> Plan:
    """A plan that writes ``stage_name``'s objects back as they were before it, guarded by the
    resourceVersions the apply left (anyone's later edit makes it stale, never overwritten)."""
    stage = next((s for s in plan.stages if s.name == stage_name), None)
    if stage is None:
        return Plan(identity=plan.identity, cluster=plan.cluster)
    written = {r.key: r for r in report.results if r.stage == stage_name and r.outcome in (APPLIED, ALREADY)}
    changes: list[ResourceChange] = []
    versions: dict[str, str | None] = {}
    for change in reversed(stage.changes):
        result = written.get(change.key)
        if result is None or result.outcome is not APPLIED:
            continue
        reverse = _reverse(change, result.resource_version)
        if reverse is None:
            continue
        changes.append(reverse)
        versions[change.key] = result.resource_version
    if not changes:
        return Plan(identity=plan.identity, cluster=plan.cluster)
    undo = Stage(name=stage.name, title=f"undo: {stage.title}", changes=tuple(changes))
    return Plan(stages=(undo,), observed_versions=versions, identity=plan.identity, cluster=plan.cluster)


def _reverse(change: ResourceChange, rv: str | None) -> ResourceChange | None:
    if change.action is Action.CREATE:
        return ResourceChange(
            action=Action.DELETE,
            api_version=change.api_version,
            kind=change.kind,
            name=change.name,
            namespace=change.namespace,
            stage=change.stage,
            fields=tuple(FieldChange(path=f.path, before=f.after, after=None) for f in change.fields),
            manifest=change.manifest,
            resource_version=rv,
        )
    if change.action is Action.UPDATE and change.kind != "Installation":
        fields = tuple(FieldChange(path=f.path, before=f.after, after=f.before) for f in change.fields)
        patch: dict[str, Any] = {}
        for f in fields:
            parts = parse_path(f.path)
            if not parts or any(not isinstance(part, str) for part in parts):
                return None  # a list entry: a merge patch cannot name it; the backup restores it
            node = patch
            for part in parts[:-1]:
                node = node.setdefault(str(part), {})
            node[str(parts[-1])] = f.after  # None: the field was absent, and null removes it again
        return ResourceChange(
            action=Action.UPDATE,
            api_version=change.api_version,
            kind=change.kind,
            name=change.name,
            namespace=change.namespace,
            stage=change.stage,
            fields=fields,
            patch=patch,
            resource_version=rv,
        )
    return None  # a deletion (prune) or an operator Installation list: restored from the backup only


def record_undo(header: dict[str, Any], undo: ApplyReport) -> dict[str, Any]:
    """The apply's backup header once the undo is written: the undone objects' resourceVersions
    are the undo's, so that ``bgpflat rollback`` of the apply still tells its writes from others'."""
    versions = dict(header.get("appliedVersions") or {})
    for result in undo.results:
        if result.outcome is APPLIED and result.resource_version:
            versions[result.key] = result.resource_version
        elif result.outcome is APPLIED and result.action == Action.DELETE:
            versions.pop(result.key, None)
    return {**header, "appliedVersions": dict(sorted(versions.items()))}
