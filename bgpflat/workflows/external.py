"""``bgpflat external plan|apply``: outside services as selectorless Services in the cluster.

The same shape as the Calico plan/apply: read the objects the file names, compare the fields
bgpflat owns, then write Services before their EndpointSlices with ``resourceVersion``
preconditions, ``fieldManager=bgpflat`` and optional server-side dry run. The Kubernetes adapter's
``KubeClient.request`` is the only I/O this needs (any object with that method will do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bgpflat.core.external import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    ExternalChange,
    ExternalPlan,
    ExternalService,
    desired_manifests,
    make_external_plan,
    moved_since,
    object_key,
)
from bgpflat.errors import KubeNotFound, PlanError, StalePlanError
from bgpflat.workflows.guards import check_same_cluster, rv_of

FIELD_MANAGER = "bgpflat"
# Kubernetes 1.21 made discovery.k8s.io/v1 EndpointSlices GA; older clusters get Endpoints.
SLICE_MINOR = 21
_PATHS = {
    "Service": ("/api/v1/namespaces/{ns}/services", "v1"),
    "Endpoints": ("/api/v1/namespaces/{ns}/endpoints", "v1"),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices", "discovery.k8s.io/v1"),
}


class RestClient(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        action: str,
    ) -> Any: ...


def _collection(key: str) -> tuple[str, str]:
    kind, namespace, name = key.split("/", 2)
    path, _ = _PATHS[kind]
    return path.format(ns=namespace), name


def wants_legacy_endpoints(client: RestClient, *, mode: str) -> bool:
    """``auto``: Endpoints only when the server is older than 1.21 (no discovery.k8s.io/v1)."""
    if mode != "auto":
        return mode == "endpoints"
    version = client.request("GET", "/version", action="read the server version") or {}
    digits = "".join(c for c in str(version.get("minor", "")) if c.isdigit())
    return str(version.get("major")) == "1" and bool(digits) and int(digits) < SLICE_MINOR


def plan_external(
    client: RestClient, services: Sequence[ExternalService], *, legacy_endpoints: bool, prune: bool = False
) -> ExternalPlan:
    """Read what the file's objects are now and plan; ``prune`` also deletes bgpflat's Services
    (anywhere in the cluster) that the file no longer lists, with their endpoint objects."""
    desired = desired_manifests(services, legacy_endpoints=legacy_endpoints)
    observed = {key: _read(client, key) for key in map(object_key, desired)}
    owners = [(s.namespace, s.name) for s in services]
    managed: list[dict[str, Any]] | None = None
    if prune:
        found = client.request(
            "GET",
            "/api/v1/services",
            query={"labelSelector": f"{MANAGED_BY_LABEL}={MANAGED_BY}"},
            action="list the Services bgpflat manages",
        )
        managed = [{**item, "apiVersion": "v1", "kind": "Service"} for item in (found or {}).get("items") or []]
        described = {s.key for s in services}
        for item in managed:
            meta = item.get("metadata") or {}
            if f"{meta.get('namespace')}/{meta.get('name')}" not in described:
                owners.append((str(meta.get("namespace")), str(meta.get("name"))))
    related = _related(client, owners, known=observed)
    return make_external_plan(
        desired=desired, observed=observed, related=related, managed_services=managed, legacy_endpoints=legacy_endpoints
    )


def _related(
    client: RestClient, owners: Sequence[tuple[str, str]], *, known: Mapping[str, Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The endpoint objects the cluster holds for these Services, by (namespace, name), for
    stale-object cleanup; an Endpoints object already read for the plan (``known``) is not read again."""
    out: list[dict[str, Any]] = []
    for namespace, name in owners:
        slices, _ = _collection(f"EndpointSlice/{namespace}/-")
        selector = f"{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        found = client.request(
            "GET", slices, query={"labelSelector": selector}, action=f"list EndpointSlices of {namespace}/{name}"
        )
        for item in (found or {}).get("items") or []:
            out.append({**item, "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"})
        key = f"Endpoints/{namespace}/{name}"
        item = known[key] if key in known else _read(client, key)
        if item is not None:
            out.append({**item, "apiVersion": "v1", "kind": "Endpoints"})
    return out


def _read(client: RestClient, key: str) -> Mapping[str, Any] | None:
    """The object ``Kind/namespace/name`` as served, or None when it does not exist."""
    collection, name = _collection(key)
    try:
        found: Mapping[str, Any] | None = client.request("GET", f"{collection}/{name}", action=f"read {key}")
    except KubeNotFound:
        return None
    return found


def current_versions(client: RestClient, keys: Sequence[str]) -> dict[str, str | None]:
    """The resourceVersion of each object now (None: it does not exist)."""
    return {key: rv_of(_read(client, key)) for key in keys}


def check_saved_plan(client: RestClient, plan: ExternalPlan, *, target: Mapping[str, str]) -> None:
    """Refuse a saved plan made for another cluster, or one the cluster has moved away from."""
    check_same_cluster(plan.target, target)
    moved = moved_since(plan, current_versions(client, sorted(plan.observed)))
    if moved:
        raise StalePlanError(
            "plan is stale: the cluster changed since the plan was made: "
            + "; ".join(moved)
            + " (fix: run `bgpflat external plan` again and review the new plan)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalResult:
    key: str
    action: str
    resource_version: str | None


def apply_external(client: RestClient, plan: ExternalPlan, *, dry_run: bool = False) -> tuple[ExternalResult, ...]:
    """Write the plan's changes in order; a conflict stops the run (re-plan and try again)."""
    query = {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}
    results = []
    for change in plan.changes:
        if change.action == "no-op":
            continue
        results.append(_write(client, change, query))
    return tuple(results)


def _write(client: RestClient, change: ExternalChange, query: Mapping[str, Any]) -> ExternalResult:
    collection, name = _collection(change.key)
    if change.action == "create":
        written = client.request(
            "POST", collection, query=query, body=dict(change.manifest), action=f"create {change.key}"
        )
    elif change.action == "update":
        if change.resource_version is None:
            raise PlanError(f"{change.key}: no resourceVersion to guard the update; re-run plan")
        body = dict(change.manifest)
        body["metadata"] = {**dict(body.get("metadata") or {}), "resourceVersion": change.resource_version}
        written = client.request(
            "PATCH",
            f"{collection}/{name}",
            query=query,
            body=body,
            content_type="application/merge-patch+json",
            action=f"update {change.key}",
        )
    elif change.action == "delete":
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if change.resource_version is not None:
            options["preconditions"] = {"resourceVersion": change.resource_version}
        client.request("DELETE", f"{collection}/{name}", query=query, body=options, action=f"delete {change.key}")
        return ExternalResult(key=change.key, action=change.action, resource_version=None)
    else:
        raise PlanError(f"unknown action {change.action!r} for {change.key}")
    rv = ((written or {}).get("metadata") or {}).get("resourceVersion")
    return ExternalResult(key=change.key, action=change.action, resource_version=None if rv is None else str(rv))
