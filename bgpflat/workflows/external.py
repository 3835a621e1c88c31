"""Planning outside services against a cluster; ``apply_plan`` and ``rollback`` write them.

Reads what the file's objects are now (and, for cleanup and ``--prune``, the endpoint objects and
Services bgpflat manages), then ``make_external_plan`` compares over the fields bgpflat owns. The
result is an ordinary ``Plan``: applying it is ``workflows.apply_plan`` with the same guarantees as
for Calico objects (guarded writes, re-plan on 409, backup first, ``bgpflat rollback``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bgpflat.core.external import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    ExternalService,
    desired_manifests,
    make_external_plan,
    manifest_key,
)
from bgpflat.core.plan.model import Plan, split_key
from bgpflat.workflows.ports import ServiceReads

MANAGED = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


def wants_legacy_endpoints(api: ServiceReads, *, mode: str) -> bool:
    """``auto``: Endpoints only when the server is older than 1.21 (no discovery.k8s.io/v1)."""
    if mode != "auto":
        return mode == "endpoints"
    return not api.serves_endpoint_slices()


def plan_external(
    api: ServiceReads, services: Sequence[ExternalService], *, legacy_endpoints: bool, prune: bool = False
) -> Plan:
    """Read what the file's objects are now and plan; ``prune`` also deletes bgpflat's Services
    (anywhere in the cluster) that the file no longer lists, with their endpoint objects."""
    desired = desired_manifests(services, legacy_endpoints=legacy_endpoints)
    observed = {key: _read(api, key) for key in map(manifest_key, desired)}
    owners = [(s.namespace, s.name) for s in services]
    managed: list[dict[str, Any]] | None = None
    if prune:
        managed = api.list_labelled("Service", MANAGED)
        described = {s.key for s in services}
        for item in managed:
            meta = item.get("metadata") or {}
            if f"{meta.get('namespace')}/{meta.get('name')}" not in described:
                owners.append((str(meta.get("namespace")), str(meta.get("name"))))
    related = _related(api, owners, known=observed)
    plan = make_external_plan(desired=desired, observed=observed, related=related, managed_services=managed)
    return replace(plan, identity=api.identity())


def _related(
    api: ServiceReads, owners: Sequence[tuple[str, str]], *, known: Mapping[str, Mapping[str, Any] | None]
) -> list[Mapping[str, Any]]:
    """The endpoint objects the cluster holds for these Services, by (namespace, name), for
    stale-object cleanup; an Endpoints object already read for the plan (``known``) is not read again."""
    out: list[Mapping[str, Any]] = []
    for namespace, name in owners:
        out.extend(api.list_labelled("EndpointSlice", f"{SERVICE_NAME_LABEL}={name},{MANAGED}", namespace=namespace))
        key = f"Endpoints/{namespace}/{name}"
        item = known[key] if key in known else _read(api, key)
        if item is not None:
            out.append(item)
    return out


def _read(api: ServiceReads, key: str) -> Mapping[str, Any] | None:
    kind, namespace, name = split_key(key)
    return api.get(kind, name, namespace=namespace)
