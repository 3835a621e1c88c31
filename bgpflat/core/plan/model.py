"""Plan values: ``Plan``, its stages and per-object changes, and their JSON form (``format_version``).

``bgpflat.core.plan.planner`` makes plans; this module only holds and (de)serialises them, deterministically:
the same plan always gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bgpflat.core.plan.identity import ClusterIdentity
from bgpflat.core.plan.impact import PeerImpact
from bgpflat.core.state.checks import SEVERITIES, Finding
from bgpflat.core.state.model import resource_key
from bgpflat.errors import PlanError

FORMAT_VERSION = 1


class Action(StrEnum):
    """What a change does to its object; the value is what plan files and outputs show."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NO_OP = "no-op"


ACTIONS = tuple(Action)
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
# Outside services (``bgpflat external``): a Service exists before its endpoints are written, and
# endpoint objects go before their Service when both are deleted.
EXTERNAL_STAGES: tuple[tuple[str, str], ...] = (
    ("services", "Services"),
    ("endpoints", "EndpointSlices and Endpoints"),
    ("deletions", "Deletions (endpoint objects before their Service)"),
)
STAGE_TITLES = dict(STAGES + EXTERNAL_STAGES)


def object_key(kind: str, name: str, namespace: str = "") -> str:
    """``IPPool/default-pool`` for a cluster-wide object, ``Service/default/db`` for a namespaced one."""
    return f"{kind}/{namespace}/{name}" if namespace else resource_key(kind, name)


def split_key(key: str) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` of an ``object_key`` (namespace "" for cluster-wide objects);
    Kubernetes names never contain ``/``, so the number of parts tells which it is."""
    kind, _, rest = key.partition("/")
    namespace, slash, name = rest.partition("/")
    return (kind, namespace, name) if slash else (kind, "", rest)


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

    action: Action
    api_version: str
    kind: str
    name: str
    namespace: str = ""  # "" for cluster-wide objects (every Calico kind)
    stage: str = ""
    fields: tuple[FieldChange, ...] = ()
    patch: Mapping[str, Any] | None = None  # merge-patch body (update)
    manifest: Mapping[str, Any] | None = None  # full manifest (create; the observed object for delete)
    resource_version: str | None = None  # observed; for chained changes see ``chained``
    chained: bool = False  # an earlier stage of this plan writes this object first
    note: str | None = None

    def __post_init__(self) -> None:
        # Callers may pass the plain word ("update"); comparisons use ``is Action.UPDATE``.
        object.__setattr__(self, "action", Action(self.action))

    @property
    def key(self) -> str:
        return object_key(self.kind, self.name, self.namespace)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
        if self.namespace:  # absent for cluster-wide objects: Calico plans keep their bytes
            out["namespace"] = self.namespace
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "change") -> ResourceChange:
        """One change read back from a plan file; ``where`` is its JSON path, for the error."""
        change = _object(data, where)
        action = _required_str(change, "action", where)
        if action not in ACTIONS:
            raise PlanError(f"{where}: unknown action {_json(action)} (bgpflat knows {', '.join(ACTIONS)})")
        fields = []
        for i, item in enumerate(_optional_list(change, "fields", where)):
            at = f"{where}.fields[{i}]"
            entry = _object(item, at)
            fields.append(
                FieldChange(path=_required_str(entry, "path", at), before=entry.get("before"), after=entry.get("after"))
            )
        chained = change.get("chained", False)
        if not isinstance(chained, bool):
            raise PlanError(f"{where}.chained: expected true or false, got {_type_of(chained)}")
        # Refused on load, not when apply reaches them with the earlier changes already written.
        for needs, what, body in ((Action.CREATE, "a create", "manifest"), (Action.UPDATE, "an update", "patch")):
            if action == needs and change.get(body) is None:
                raise PlanError(
                    f'{where}: {what} needs its "{body}" (fix: make the plan again with `bgpflat plan --out`)'
                )
        return cls(
            action=Action(action),
            api_version=_required_str(change, "api_version", where),
            kind=_required_str(change, "kind", where),
            name=_required_str(change, "name", where),
            namespace=_optional_str(change, "namespace", where) or "",
            stage=_optional_str(change, "stage", where) or "",
            fields=tuple(fields),
            patch=_optional_object(change, "patch", where),
            manifest=_optional_object(change, "manifest", where),
            resource_version=_optional_str(change, "resource_version", where),
            chained=chained,
            note=_optional_str(change, "note", where),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    name: str
    title: str
    changes: tuple[ResourceChange, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Objects to add, change and delete (as terraform counts), and the writes apply makes: an object
    created in one stage and patched in a later one is one to add, and two writes."""

    add: int
    change: int
    delete: int
    writes: int = 0

    def __str__(self) -> str:
        text = f"Plan: {self.add} to add, {self.change} to change, {self.delete} to delete"
        # Every change listed above is counted: said when the objects alone would not add up to it.
        if self.writes > self.add + self.change + self.delete:
            text += f" ({self.writes} writes)"
        return text + "."


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What ``apply`` would do: the changes by stage, the objects left as they are, the risk findings,
    and the cluster and resourceVersions it was made against (``to_json``/``from_dict`` for files)."""

    stages: tuple[Stage, ...] = ()
    unchanged: tuple[ResourceChange, ...] = ()  # no-op entries, one per object bgpflat compared
    findings: tuple[Finding, ...] = ()
    observed_versions: Mapping[str, str | None] = field(default_factory=dict)  # key -> resourceVersion
    # Node name -> ``ObservedNode.as_checked`` when the plan was made; None in plans saved before
    # nodes were recorded (their applies cannot tell a node that changed).
    observed_nodes: Mapping[str, str] | None = None
    identity: ClusterIdentity = field(default_factory=ClusterIdentity)
    cluster: Mapping[str, str | None] = field(default_factory=dict)
    prune: bool = False
    # Per outside BGP peer: the routes it learns differently once the plan is applied
    # (``bgpflat.core.plan.layover``); empty when no peer is named or the state was not read.
    route_impact: tuple[PeerImpact, ...] = ()
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
        created = {c.key for c in self.changes if c.action is Action.CREATE}
        deleted = {c.key for c in self.changes if c.action is Action.DELETE}
        updated = {c.key for c in self.changes if c.action is Action.UPDATE} - created - deleted
        return Summary(add=len(created), change=len(updated), delete=len(deleted), writes=len(self.changes))

    @property
    def review_only(self) -> bool:
        """Made from a snapshot: it shows what would change, but no cluster's resourceVersions back
        it, so ``apply`` refuses it (``review_only`` in its JSON says so to other tools too)."""
        return bool(self.identity.snapshot)

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
            "identity": self.identity.to_dict(),
            "cluster": dict(self.cluster),
            "prune": self.prune,
            "review_only": self.review_only,
            "summary": {
                "add": summary.add,
                "change": summary.change,
                "delete": summary.delete,
                "writes": summary.writes,
            },
            "stages": [
                {"name": s.name, "title": s.title, "changes": [c.to_dict() for c in s.changes]} for s in self.stages
            ],
            "unchanged": [c.to_dict() for c in self.unchanged],
            "findings": [f.to_dict() for f in self.findings],
            "observed_versions": dict(sorted(self.observed_versions.items())),
            **({} if self.observed_nodes is None else {"observed_nodes": dict(sorted(self.observed_nodes.items()))}),
            "route_impact": [i.to_dict() for i in self.route_impact],
        }

    def to_json(self) -> str:
        """Deterministic JSON: same plan, same bytes."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """A plan read back from its JSON form. Every refusal is a ``PlanError`` naming the JSON path
        (``stages[0].changes[2]: missing "kind"``): saved plans get truncated and hand-edited, and a
        bare ``KeyError`` text would not tell anyone which entry is wrong."""
        if not isinstance(data, Mapping):
            raise PlanError("not a bgpflat plan: expected a JSON object")
        if "format_version" not in data:
            raise PlanError('not a bgpflat plan: missing "format_version"')
        version = data["format_version"]
        # bool is an int in Python, so ``true`` would otherwise pass for version 1.
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise PlanError(
                f"format_version {_json(version)} is not supported (this bgpflat reads {FORMAT_VERSION}) "
                "(fix: make the plan again with `bgpflat plan --out`)"
            )
        stages = []
        for i, item in enumerate(_optional_list(data, "stages", "")):
            at = f"stages[{i}]"
            stage = _object(item, at)
            name = _required_str(stage, "name", at)
            changes = tuple(
                ResourceChange.from_dict(c, where=f"{at}.changes[{j}]")
                for j, c in enumerate(_optional_list(stage, "changes", at))
            )
            title = _optional_str(stage, "title", at) or STAGE_TITLES.get(name, "")
            stages.append(Stage(name=name, title=title, changes=changes))
        prune = data.get("prune", False)
        if not isinstance(prune, bool):
            raise PlanError(f"prune: expected true or false, got {_type_of(prune)}")
        return cls(
            stages=tuple(stages),
            unchanged=tuple(
                ResourceChange.from_dict(c, where=f"unchanged[{i}]")
                for i, c in enumerate(_optional_list(data, "unchanged", ""))
            ),
            findings=tuple(_finding(f, f"findings[{i}]") for i, f in enumerate(_optional_list(data, "findings", ""))),
            observed_versions=_observed_versions(data),
            observed_nodes=(
                {k: str(v) for k, v in _string_map(data, "observed_nodes", nullable=False).items()}
                if "observed_nodes" in data
                else None
            ),
            identity=ClusterIdentity.from_dict(_string_map(data, "identity", nullable=False)),
            cluster=_string_map(data, "cluster", nullable=True),
            prune=prune,
            # Absent in plans saved before route impact existed: they load with none.
            route_impact=tuple(
                PeerImpact.from_dict(item, where=f"route_impact[{i}]")
                for i, item in enumerate(_optional_list(data, "route_impact", ""))
            ),
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"not a bgpflat plan: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)


# --- reading a plan back: structural checks with the JSON path in every message ------------------
#
# Optional keys stay optional (absent or null means the default) so small hand-written plans in
# tests and older files keep loading; a key that is present must have the right JSON type, because
# ``str()``/``bool()`` coercion would silently turn a hand-edit like ``"prune": "no"`` into True.


def _json(value: Any) -> str:
    """A value as it looks in the file (``"explode"``, ``7``, ``null``), not as Python prints it."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {_json(value)}"
    if isinstance(value, str):
        return f"the string {_json(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PlanError(f"{where}: expected an object, got {_type_of(value)}")
    return value


def _required_str(data: Mapping[str, Any], key: str, where: str) -> str:
    if key not in data:
        raise PlanError(f'{where}: missing "{key}"' if where else f'missing "{key}"')
    value = data[key]
    if not isinstance(value, str):
        raise PlanError(f"{_join(where, key)}: expected a string, got {_type_of(value)}")
    return value


def _optional_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise PlanError(f"{_join(where, key)}: expected a string, got {_type_of(value)}")
    return value


def _optional_list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PlanError(f"{_join(where, key)}: expected a list, got {_type_of(value)}")
    return value


def _optional_object(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    return _object(value, _join(where, key))


def _string_map(data: Mapping[str, Any], key: str, *, nullable: bool) -> dict[str, str | None]:
    mapping = _optional_object(data, key, "") or {}
    out: dict[str, str | None] = {}
    for name, value in mapping.items():
        if not (isinstance(value, str) or (nullable and value is None)):
            wanted = "a string or null" if nullable else "a string"
            raise PlanError(f"{key}[{_json(name)}]: expected {wanted}, got {_type_of(value)}")
        out[str(name)] = value
    return out


def _finding(value: Any, where: str) -> Finding:
    # Finding.from_dict trusts its input; check here so a bad entry is named, not a KeyError.
    finding = _object(value, where)
    for key in ("code", "severity", "message"):
        _required_str(finding, key, where)
    if finding["severity"] not in SEVERITIES:
        raise PlanError(
            f"{where}: unknown severity {_json(finding['severity'])} (bgpflat knows {', '.join(SEVERITIES)})"
        )
    _optional_str(finding, "fix", where)
    subjects = _optional_list(finding, "subjects", where)
    for i, subject in enumerate(subjects):
        if not isinstance(subject, str):
            raise PlanError(f"{where}.subjects[{i}]: expected a string, got {_type_of(subject)}")
    return Finding.from_dict(finding)


def _observed_versions(data: Mapping[str, Any]) -> dict[str, str | None]:
    versions = _string_map(data, "observed_versions", nullable=True)
    for key in versions:
        kind, _, name = split_key(key)
        if not kind or not name:
            raise PlanError(f"observed_versions[{_json(key)}]: expected Kind/name or Kind/namespace/name")
    return versions
