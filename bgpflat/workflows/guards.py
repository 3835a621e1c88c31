"""What is checked before anything is written: right cluster, writable API, nothing moved since the
plan, and nothing sent that the plan does not show."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bgpflat.core.calico import API_V1, normalize_spec_value, parse_path
from bgpflat.core.external import EXTERNAL_KINDS, same_owned
from bgpflat.core.external.manifests import is_managed, written_besides_owned
from bgpflat.core.plan.layover import merge_patch
from bgpflat.core.plan.planner import Action, ClusterIdentity, Plan, ResourceChange, object_key, split_key
from bgpflat.core.state.model import ObservedNode
from bgpflat.errors import PlanError, SpecError, StalePlanError
from bgpflat.workflows.ports import ObjectApi


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
        elif not self.planned_version and not self.current_version:
            what = "changed"  # a Node: compared by what the checks read, not by resourceVersion
        else:
            what = f"resourceVersion {self.planned_version} -> {self.current_version}"
        detail = f": {'; '.join(self.fields)}" if self.fields else ""
        return f"{self.key} {what}{detail}"


def value_at(obj: Mapping[str, Any] | None, path: str) -> Any:
    return _at(obj, tuple(parse_path(path)))


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


# Kinds a plan from a cluster reads in full: every object of them is in its observed_versions, so
# one missing there appeared after the plan, unseen by its checks (overlaps, peers, mesh, filters).
_READ_IN_FULL = ("IPPool", "BGPPeer", "BGPConfiguration", "BGPFilter")


def find_new(plan: Plan, listed: Iterable[Mapping[str, Any]]) -> list[Moved]:
    """Objects of the kinds the plan read in full (``listed``: what the cluster holds now) that the
    plan never saw and does not create itself, and Nodes that joined, left or changed what the
    plan's checks read of them (address, AS, labels)."""
    known = set(plan.observed_versions) | {change.key for change in plan.changes}
    new: list[Moved] = []
    nodes: dict[str, str] = {}
    for obj in listed:
        kind = str(obj.get("kind"))
        if kind == "Node":
            try:
                node = ObservedNode.from_manifest(obj)
            except SpecError:
                continue
            nodes[node.name] = node.as_checked
            continue
        key = object_key(kind, str((obj.get("metadata") or {}).get("name")))
        if kind in _READ_IN_FULL and key not in known:
            new.append(Moved(key=key, planned_version=None, current_version=rv_of(obj)))
    if plan.observed_nodes is not None:
        new += _moved_nodes(plan.observed_nodes, nodes)
    return sorted(new, key=lambda m: m.key)


def _moved_nodes(planned: Mapping[str, str], now: Mapping[str, str]) -> list[Moved]:
    moved: list[Moved] = []
    for name in sorted(set(planned) | set(now)):
        before, after = planned.get(name), now.get(name)
        if before == after:
            continue
        key = object_key("Node", name)
        if before is None:
            moved.append(Moved(key=key, planned_version=None, current_version="", fields=(str(after),)))
        elif after is None:
            moved.append(Moved(key=key, planned_version="", current_version=None))
        else:
            fields = (f"was {before} when planned, is now {after}",)
            moved.append(Moved(key=key, planned_version="", current_version="", fields=fields))
    return moved


def ensure_fresh(plan: Plan, api: ObjectApi, *, listed: Iterable[Mapping[str, Any]] | None = None) -> None:
    """Raise ``StalePlanError`` listing what moved if any observed object changed since the plan,
    or (given ``listed``, the cluster's objects now) an object the plan never saw has appeared."""
    moved = find_moved(plan, api) + (find_new(plan, listed) if listed is not None else [])
    if moved:
        raise StalePlanError(
            "plan is stale: the cluster changed since the plan was made: "
            + "; ".join(str(m) for m in moved)
            + f". Nothing was changed; run `{replan_command(split_key(moved[0].key)[0])}` again"
        )


def check_writable(identity: ClusterIdentity, *, allow_crd_v1: bool) -> None:
    """Refuse to write Calico's v1 storage CRDs unless asked to (ux-conventions §2.1)."""
    if identity.api_group == API_V1 and not allow_crd_v1:
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


def _changed_paths(before: Any, after: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The paths at which ``after`` differs from ``before`` (lists of equal length entry by entry)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            old, new = before.get(key), after.get(key)
            if key not in before and isinstance(new, Mapping):
                old = {}  # an added mapping: each of its fields is a change of its own
            elif key not in after and isinstance(old, Mapping):
                new = {}
            elif key not in before or key not in after:
                yield (*path, key)
                continue
            yield from _changed_paths(old, new, (*path, key))
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from _changed_paths(old, new, (*path, index))
    elif before != after:
        yield path


def _at(obj: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(part, int):
            obj = obj[part] if isinstance(obj, list) and part < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, Mapping) else None
    return obj


def _unshown(change: ResourceChange, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What ``after`` changes against ``before`` that the change's fields do not list (or list
    with another value)."""
    shown = {tuple(parse_path(fc.path)): fc for fc in change.fields}
    spec = after.get("spec") if isinstance(after.get("spec"), Mapping) else None
    external = change.kind in EXTERNAL_KINDS
    problems: list[str] = []
    for path in _changed_paths(before or {}, after):
        text = ".".join(str(p) for p in path)
        if external:
            # Their owned fields live outside spec too (endpoints, subsets), so a body is checked
            # whole: only the identity and the managed labels may go unshown.
            if written_besides_owned(change.kind, change.name, path, _at(after, path)):
                continue
        elif change.action is Action.CREATE and path[:1] != ("spec",):
            continue  # a create's name, labels and apiVersion are shown as the object's identity
        owner = next((shown[path[:n]] for n in range(len(path), 0, -1) if path[:n] in shown), None)
        if owner is None:
            problems.append(f"{text} (not among the fields the plan shows)")
        elif not same_value(change.kind, owner.path, value_at(after, owner.path), owner.after, spec=spec):
            problems.append(f"{owner.path} (the plan shows {show_value(owner.after)})")
    return problems


def check_sent_matches_shown(plan: Plan, api: ObjectApi) -> None:
    """Refuse a plan whose writes do more than its field changes show, before anything is written.

    A saved plan carries the bodies apply sends next to the field changes people review; a hand edit
    of one without the other must not change a field nobody saw. Each body is applied, in plan
    order, to the object as it is now (``ensure_fresh`` has made sure that is what the plan saw),
    and every field it changes must be one the plan lists, with the listed value. A delete must
    name an object bgpflat manages (label ``app.kubernetes.io/managed-by=bgpflat``), as prune does.
    Outside services' bodies may also carry their identity and managed labels
    (``core.external.manifests.written_besides_owned``).
    """
    state: dict[str, Mapping[str, Any] | None] = {}
    problems: list[str] = []
    for change in plan.changes:
        key = change.key
        if key not in state:
            state[key] = api.get(change.kind, change.name, namespace=change.namespace)
        current = state[key]
        if change.action is Action.DELETE:
            if current is not None and not is_managed(current):
                problems.append(f"{key}: would be deleted but bgpflat does not manage it")
            state[key] = None
            continue
        body = change.manifest if change.action is Action.CREATE else change.patch
        if body is None:
            continue
        after = dict(body) if change.action is Action.CREATE else merge_patch(current, body)
        problems.extend(f"{key}: would change {what}" for what in _unshown(change, current, after))
        state[key] = after
    if problems:
        raise PlanError(
            "the plan's writes do not match the changes it shows, nothing was changed: "
            + "; ".join(problems)
            + " (was the plan file edited? make the plan again with `bgpflat plan --out`)"
        )
