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
    object_key,
)
from bgpflat.errors import KubeNotFound, PlanError

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


def plan_external(client: RestClient, services: Sequence[ExternalService], *, legacy_endpoints: bool) -> ExternalPlan:
    desired = desired_manifests(services, legacy_endpoints=legacy_endpoints)
    observed: dict[str, Mapping[str, Any] | None] = {}
    for manifest in desired:
        key = object_key(manifest)
        collection, name = _collection(key)
        try:
            observed[key] = client.request("GET", f"{collection}/{name}", action=f"read {key}")
        except KubeNotFound:
            observed[key] = None
    related = _related(client, services, known=observed)
    return make_external_plan(desired=desired, observed=observed, related=related)


def _related(
    client: RestClient, services: Sequence[ExternalService], *, known: Mapping[str, Mapping[str, Any] | None]
) -> list[dict[str, Any]]:
    """The endpoint objects the cluster holds for these Services (for stale-object cleanup); an
    Endpoints object already read for the plan (``known``, by key) is not read again."""
    out: list[dict[str, Any]] = []
    for service in services:
        slices, _ = _collection(f"EndpointSlice/{service.namespace}/-")
        selector = f"{SERVICE_NAME_LABEL}={service.name},{MANAGED_BY_LABEL}={MANAGED_BY}"
        found = client.request(
            "GET", slices, query={"labelSelector": selector}, action=f"list EndpointSlices of {service.key}"
        )
        for item in (found or {}).get("items") or []:
            out.append({**item, "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"})
        key = f"Endpoints/{service.namespace}/{service.name}"
        if key in known:
            item = known[key]
        else:
            endpoints, _ = _collection(key)
            try:
                item = client.request("GET", f"{endpoints}/{service.name}", action=f"read Endpoints of {service.key}")
            except KubeNotFound:
                item = None
        if item is not None:
            out.append({**item, "apiVersion": "v1", "kind": "Endpoints"})
    return out


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
