"""Outside services (``bgpflat external``): Services, EndpointSlices and Endpoints.

``ServiceApi`` has the same single-object surface as ``CalicoApi`` (``identity``, ``get``,
``create``, ``patch``, ``delete``), so the one apply engine, its guards and ``rollback`` write
these kinds too; the URL paths of the namespaced kinds live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from bgpflat.adapters.kube.client import FIELD_MANAGER, MERGE_PATCH, KubeClient
from bgpflat.adapters.kube.config import Target
from bgpflat.core.plan.identity import ClusterIdentity
from bgpflat.errors import KubeError, KubeNotFound

# kind -> (apiVersion, collection path with {ns})
SERVICE_KINDS: Mapping[str, tuple[str, str]] = {
    "Service": ("v1", "/api/v1/namespaces/{ns}/services"),
    "Endpoints": ("v1", "/api/v1/namespaces/{ns}/endpoints"),
    "EndpointSlice": ("discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
}
# Kubernetes 1.21 made discovery.k8s.io/v1 EndpointSlices GA; older clusters get Endpoints.
SLICE_MINOR = 21


def _service_path(kind: str, namespace: str, name: str | None = None) -> str:
    if kind not in SERVICE_KINDS:
        raise KubeError(f"bgpflat external does not handle kind {kind!r}")
    if not namespace:
        raise KubeError(f"{kind}/{name}: a namespaced object needs its namespace")
    base = SERVICE_KINDS[kind][1].format(ns=quote(namespace, safe=""))
    return base if name is None else f"{base}/{quote(name, safe='')}"


class ServiceApi:
    """One cluster, for outside services: namespaced reads and guarded writes of three core kinds."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._identity: ClusterIdentity | None = None

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> ServiceApi:
        return cls(KubeClient.connect(kubeconfig=kubeconfig, context=context))

    @property
    def target(self) -> Target:
        return self.client.target

    def close(self) -> None:
        self.client.close()

    def identity(self) -> ClusterIdentity:
        """What a saved plan and a backup record to recognise this cluster (no Calico API involved)."""
        if self._identity is None:
            self._identity = ClusterIdentity(
                context=self.target.context, server=self.target.server, cluster_id=self.client.cluster_uid()
            )
        return self._identity

    def serves_endpoint_slices(self) -> bool:
        """False only for a server older than 1.21 (no discovery.k8s.io/v1)."""
        version = self.client.request("GET", "/version", action="read the server version") or {}
        digits = "".join(c for c in str(version.get("minor", "")) if c.isdigit())
        return not (str(version.get("major")) == "1" and bool(digits) and int(digits) < SLICE_MINOR)

    def _typed(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {**obj, "apiVersion": SERVICE_KINDS[kind][0], "kind": kind}

    def list_labelled(self, kind: str, selector: str, *, namespace: str = "") -> list[dict[str, Any]]:
        """Objects of ``kind`` matching a label selector, in one namespace or (``""``) in all."""
        if namespace:
            path = _service_path(kind, namespace)
        else:
            api_version, collection = SERVICE_KINDS[kind]
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            path = f"{prefix}/{collection.rsplit('/', 1)[1]}"
        found = self.client.request(
            "GET", path, query={"labelSelector": selector}, action=f"list {kind} objects labelled {selector}"
        )
        return [self._typed(kind, item) for item in (found or {}).get("items") or []]

    def get(self, kind: str, name: str, *, namespace: str = "") -> dict[str, Any] | None:
        try:
            data = self.client.request(
                "GET", _service_path(kind, namespace, name), action=f"read {kind}/{namespace}/{name}"
            )
        except KubeNotFound:
            return None
        return self._typed(kind, data)

    def _query(self, *, dry_run: bool) -> dict[str, Any]:
        return {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}

    def create(self, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        kind = str(manifest["kind"])
        meta = manifest.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
        data = self.client.request(
            "POST",
            _service_path(kind, namespace),
            query=self._query(dry_run=dry_run),
            body=dict(manifest),
            action=f"create {kind}/{namespace}/{name}",
        )
        return dict(data or {})

    def patch(
        self,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str,
        dry_run: bool,
        namespace: str = "",
    ) -> dict[str, Any]:
        """JSON merge-patch guarded by ``metadata.resourceVersion``: 409 if anyone wrote since."""
        body = dict(patch)
        body["metadata"] = {**dict(body.get("metadata") or {}), "resourceVersion": resource_version}
        data = self.client.request(
            "PATCH",
            _service_path(kind, namespace, name),
            query=self._query(dry_run=dry_run),
            body=body,
            content_type=MERGE_PATCH,
            action=f"update {kind}/{namespace}/{name}",
        )
        return dict(data or {})

    def delete(self, kind: str, name: str, *, resource_version: str, dry_run: bool, namespace: str = "") -> None:
        """DELETE with a resourceVersion precondition, so a changed object is never removed."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
        self.client.request(
            "DELETE",
            _service_path(kind, namespace, name),
            query=self._query(dry_run=dry_run),
            body=body,
            action=f"delete {kind}/{namespace}/{name}",
        )
