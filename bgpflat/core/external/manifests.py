"""The Kubernetes objects an outside service becomes, and the fields of them bgpflat owns.

A selectorless Service plus one EndpointSlice per IP family (labelled ``kubernetes.io/service-name``;
any ``endpointslice.kubernetes.io/managed-by`` but the controller's keeps the EndpointSlice
controller's hands off it), or one Endpoints object before Kubernetes 1.21; an ExternalName Service
has no endpoint objects. Every object is labelled ``app.kubernetes.io/managed-by: bgpflat``, the
same label as bgpflat's Calico objects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bgpflat.core.calico import MANAGED_BY_BGPFLAT, MANAGED_BY_LABEL
from bgpflat.core.external.services import ExternalService
from bgpflat.core.plan.model import object_key
from bgpflat.core.routes.cluster import SERVICE_NAME_LABEL

MANAGED_BY = MANAGED_BY_BGPFLAT
# Any value but "endpointslice-controller.k8s.io" keeps the controller's hands off the slice.
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "bgpflat"
EXTERNAL_KINDS = ("Service", "EndpointSlice", "Endpoints")


def managed_labels(kind: str, service: str) -> dict[str, str]:
    """The labels bgpflat puts on its ``kind`` object for the outside service named ``service``."""
    labels = {MANAGED_BY_LABEL: MANAGED_BY}
    if kind == "EndpointSlice":
        labels.update({SERVICE_NAME_LABEL: service, SLICE_MANAGED_BY_LABEL: SLICE_MANAGER})
    return labels


# Written besides the owned fields, with exactly these values: a dual-stack Service's family
# policy, and the cluster IP a Service turning ExternalName must release (``owned_patch``).
_WRITTEN_UNOWNED: Mapping[str, Mapping[str, tuple[Any, ...]]] = {
    "Service": {"spec.ipFamilyPolicy": ("PreferDualStack",), "spec.clusterIP": (None,), "spec.clusterIPs": (None,)},
}


def written_besides_owned(kind: str, name: str, path: Sequence[str | int], value: Any) -> bool:
    """Whether a body's field at ``path`` with ``value`` is one bgpflat writes besides the owned
    fields (the object's identity, its managed labels, ``_WRITTEN_UNOWNED``): what a saved plan's
    body may hold that its field changes do not show."""
    dotted = ".".join(str(p) for p in path)
    if dotted in ("apiVersion", "kind", "metadata.name", "metadata.namespace"):
        return True
    if len(path) == 3 and tuple(path[:2]) == ("metadata", "labels"):  # label names hold dots themselves
        labels = managed_labels(kind, service_of(kind, name))
        return str(path[2]) in labels and labels[str(path[2])] == value
    return value in _WRITTEN_UNOWNED.get(kind, {}).get(dotted, ())


def service_manifest(service: ExternalService) -> dict[str, Any]:
    spec: dict[str, Any]
    ports = []
    for p in service.ports:
        entry: dict[str, Any] = {}
        if p.name:
            entry["name"] = p.name
        entry["protocol"] = p.protocol
        entry["port"] = p.port
        if service.external_name is None:
            entry["targetPort"] = p.target_port
        if p.app_protocol:
            entry["appProtocol"] = p.app_protocol
        ports.append(entry)
    if service.external_name is not None:
        spec = {"type": "ExternalName", "externalName": service.external_name}
        if ports:
            spec["ports"] = ports
    else:
        families = [f"IPv{v}" for v in (4, 6) if service.family_addresses(v)]
        spec = {"type": "ClusterIP", "ports": ports, "sessionAffinity": service.session_affinity or "None"}
        if len(families) > 1:
            spec["ipFamilyPolicy"] = "PreferDualStack"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": managed_labels("Service", service.name),
        },
        "spec": spec,
    }


def slice_name(service: ExternalService, version: int) -> str:
    return f"{service.name}-ipv{version}"


def service_of(kind: str, name: str) -> str:
    """The outside service bgpflat's ``kind`` object named ``name`` belongs to (``slice_name``)."""
    if kind == "EndpointSlice":
        for version in (4, 6):
            if name.endswith(f"-ipv{version}"):
                return name.removesuffix(f"-ipv{version}")
    return name


def endpoint_slice_manifests(service: ExternalService) -> list[dict[str, Any]]:
    out = []
    for version in (4, 6):
        addresses = service.family_addresses(version)
        if not addresses:
            continue
        ports = []
        for p in service.ports:
            entry: dict[str, Any] = {"name": p.name or "", "protocol": p.protocol, "port": p.target_port}
            if p.app_protocol:
                entry["appProtocol"] = p.app_protocol
            ports.append(entry)
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name(service, version),
                    "namespace": service.namespace,
                    "labels": managed_labels("EndpointSlice", service.name),
                },
                "addressType": f"IPv{version}",
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
                "ports": ports,
            }
        )
    return out


def endpoints_manifest(service: ExternalService) -> dict[str, Any]:
    """The pre-1.21 form: one Endpoints object named like the Service."""
    ports = []
    for p in service.ports:
        entry: dict[str, Any] = {"protocol": p.protocol, "port": p.target_port}
        if p.name:
            entry["name"] = p.name
        if p.app_protocol:
            entry["appProtocol"] = p.app_protocol
        ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": service.name,
            "namespace": service.namespace,
            "labels": managed_labels("Endpoints", service.name),
        },
        "subsets": [{"addresses": [{"ip": a} for a in service.addresses], "ports": ports}],
    }


def desired_manifests(services: Sequence[ExternalService], *, legacy_endpoints: bool = False) -> list[dict[str, Any]]:
    """Every object the file asks for: Services first, then EndpointSlices (or Endpoints)."""
    out = [service_manifest(s) for s in services]
    for service in services:
        if service.external_name is not None:
            continue
        out.extend([endpoints_manifest(service)] if legacy_endpoints else endpoint_slice_manifests(service))
    return out


def manifest_key(manifest: Mapping[str, Any]) -> str:
    """``Service/default/db``: the plan's key of a namespaced object."""
    meta = manifest.get("metadata") or {}
    return object_key(str(manifest.get("kind")), str(meta.get("name", "")), str(meta.get("namespace", "")))


# --- owned fields ----------------------------------------------------------------------------------

# The fields bgpflat owns per kind: compared, and written on update; everything else is the server's.
OWNED: Mapping[str, tuple[str, ...]] = {
    "Service": ("spec.type", "spec.ports", "spec.externalName", "spec.sessionAffinity", "spec.selector"),
    "EndpointSlice": ("addressType", "endpoints", "ports"),
    "Endpoints": ("subsets",),
}


def owned_value(obj: Mapping[str, Any] | None, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def normalize_owned(kind: str, path: str, value: Any) -> Any:
    """Server defaults that are not differences (the API fills in protocol, sessionAffinity…)."""
    if value is None and path == "spec.sessionAffinity":
        return "None"
    if kind == "EndpointSlice" and path == "endpoints" and isinstance(value, list):
        return sorted(
            ({"addresses": e.get("addresses"), "ready": (e.get("conditions") or {}).get("ready")} for e in value),
            key=lambda e: json.dumps(e, sort_keys=True),
        )
    if kind == "Endpoints" and path == "subsets" and isinstance(value, list):
        # Order carries no meaning in subsets, and Kubernetes' own repacking (RepackSubsets) sorts them.
        return sorted(
            (
                {
                    "addresses": sorted(
                        (a.get("ip") for a in s.get("addresses") or [] if isinstance(a, Mapping)), key=str
                    ),
                    "ports": normalize_owned("EndpointSlice", "ports", s.get("ports") or []),
                }
                for s in value
                if isinstance(s, Mapping)
            ),
            key=lambda s: json.dumps(s, sort_keys=True),
        )
    if path.endswith("ports") and isinstance(value, list):
        ports = [{k: v for k, v in p.items() if k != "nodePort"} for p in value if isinstance(p, Mapping)]
        if kind == "Service":
            # The API server fills in a Service port's targetPort (= port) and protocol (TCP).
            ports = [{"targetPort": p.get("port"), "protocol": "TCP", **p} for p in ports]
        return sorted(ports, key=lambda p: json.dumps(p, sort_keys=True))
    return value


def same_owned(kind: str, path: str, left: Any, right: Any) -> bool:
    """Whether two values of an owned field mean the same to the API server."""
    return bool(normalize_owned(kind, path, left) == normalize_owned(kind, path, right))


def owned_patch(kind: str, desired: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """The merge patch that sets ``paths`` to their values in ``desired`` (None removes a field):
    the update a plan sends, and the restore a rollback sends."""
    patch: dict[str, Any] = {"metadata": {"labels": dict((desired.get("metadata") or {}).get("labels") or {})}}
    for path in paths:
        parts = path.split(".")
        target = patch
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = owned_value(desired, path)
    if kind == "Service" and owned_value(desired, "spec.type") == "ExternalName":
        # Turning a ClusterIP Service into an ExternalName one must release its cluster IP.
        patch.setdefault("spec", {}).update({"clusterIP": None, "clusterIPs": None})
    return patch


def is_managed(obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
