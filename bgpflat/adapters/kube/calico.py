"""Calico's API on one cluster: which flavour serves it, and ``CalicoApi``, the surface the workflows use.

Calico objects are always handed out as ``projectcalico.org/v3`` manifests, whatever the cluster
serves; when only ``crd.projectcalico.org/v1`` is served, reads and writes go through the storage
conversion of ``bgpflat.adapters.kube.storage``, so the core never sees the storage form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from bgpflat.adapters.kube.client import FIELD_MANAGER, MERGE_PATCH, KubeClient
from bgpflat.adapters.kube.config import Target
from bgpflat.adapters.kube.storage import V1, V1_GROUP, V3, V3_GROUP, v1_metadata_patch, v1_to_v3, v3_to_v1
from bgpflat.core.plan.identity import ClusterIdentity
from bgpflat.errors import KubeError, KubeForbidden, KubeNotFound

OPERATOR_API = "operator.tigera.io/v1"
INSTALLATION_PATH = "/apis/operator.tigera.io/v1/installations/default"

# Calico kind -> plural, for the kinds bgpflat reads or writes through the Calico groups.
CALICO_PLURALS = {
    "IPPool": "ippools",
    "BGPPeer": "bgppeers",
    "BGPConfiguration": "bgpconfigurations",
    "BGPFilter": "bgpfilters",
    "ClusterInformation": "clusterinformations",
}
# IPAM kinds live in crd.projectcalico.org/v1 whenever that group exists (the Calico API server
# does not serve IPAMBlock); with native v3 CRDs they are projectcalico.org/v3.
IPAM_PLURALS = {"IPAMBlock": "ipamblocks", "BlockAffinity": "blockaffinities", "IPAMConfig": "ipamconfigs"}
V3_IPAM_PLURALS = {
    "IPAMBlock": "ipamblocks",
    "BlockAffinity": "blockaffinities",
    "IPAMConfiguration": "ipamconfigurations",
}
# Core objects the expected-route computation reads besides Nodes: (apiVersion, kind, path).
SERVICE_LISTS = (
    ("v1", "Service", "/api/v1/services"),
    ("discovery.k8s.io/v1", "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices"),
)
# Nodes as metadata only: labels and annotations are all Calico reads from a Node (calico-facts
# §2.4), and skipping status (images, conditions) makes a 5,000-node list several times smaller.
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"


class ApiFlavour(StrEnum):
    """How the cluster serves Calico resources (calico-facts §2.5)."""

    V3_APISERVER = "v3-apiserver"  # aggregated Calico API server over v1 storage
    V3_CRD = "v3-crd"  # native projectcalico.org/v3 CRDs
    V1_CRD = "v1-crd"  # only crd.projectcalico.org/v1: no Calico validation or defaulting

    @property
    def api_version(self) -> str:
        return V1 if self is ApiFlavour.V1_CRD else V3


def detect_flavour(client: KubeClient, *, override: str = "auto") -> ApiFlavour:
    """Which API serves Calico resources (Calico's own rule, calico-facts §2.5)."""
    groups = client.served_groups()
    has_v3 = "v3" in groups.get(V3_GROUP, [])
    has_v1 = "v1" in groups.get(V1_GROUP, [])
    server = client.target.server
    if override == "v1":
        if not has_v1:
            raise KubeNotFound(f"--calico-api v1: {V1} is not served by {server}")
        return ApiFlavour.V1_CRD
    if override == "v3" and not has_v3:
        raise KubeNotFound(
            f"--calico-api v3: {V3} is not served by {server} "
            "(install the Calico API server or native v3 CRDs, or use --calico-api v1 --allow-crd-v1)"
        )
    if has_v3:
        needed = {"ippools", "bgppeers", "bgpconfigurations"}
        missing = needed - client.served_resources(V3)
        if missing:
            raise KubeNotFound(f"{V3} is served but lacks {', '.join(sorted(missing))}")
        if not has_v1:
            return ApiFlavour.V3_CRD
        # Both groups: Calico's rule says API-server mode; the APIService confirms it when we
        # may read it (the docs warn against installing both CRD sets, which looks the same).
        try:
            client.request(
                "GET",
                "/apis/apiregistration.k8s.io/v1/apiservices/v3.projectcalico.org",
                action="read APIService v3.projectcalico.org",
            )
        except KubeNotFound:
            return ApiFlavour.V3_CRD
        except KubeForbidden:
            pass
        return ApiFlavour.V3_APISERVER
    if has_v1:
        return ApiFlavour.V1_CRD
    raise KubeNotFound(f"Calico is not installed on {server}: neither {V3} nor {V1} is served")


def _calico_path(flavour: ApiFlavour, kind: str, name: str | None = None) -> str:
    plural = CALICO_PLURALS.get(kind)
    if plural is None:
        raise KubeError(f"bgpflat does not handle Calico kind {kind!r}")
    base = f"/apis/{flavour.api_version}/{plural}"
    return base if name is None else f"{base}/{quote(name, safe='')}"


def _write_query(*, dry_run: bool) -> dict[str, Any]:
    return {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}


class CalicoApi:
    """One cluster with its Calico API flavour fixed: the surface the workflows use.

    Built with a flavour (``connect`` discovers it at once), or without one: then the flavour is
    discovered on first use, so a caller can name the cluster before anything is asked of it.
    """

    def __init__(self, client: KubeClient, flavour: ApiFlavour | None = None, *, calico_api: str = "auto") -> None:
        self.client = client
        self._flavour = flavour
        self._calico_api = calico_api
        self._identity: ClusterIdentity | None = None

    @classmethod
    def connect(
        cls, *, kubeconfig: str | None = None, context: str | None = None, calico_api: str = "auto"
    ) -> CalicoApi:
        client = KubeClient.connect(kubeconfig=kubeconfig, context=context)
        try:
            return cls(client, detect_flavour(client, override=calico_api))
        except BaseException:
            client.close()
            raise

    @property
    def flavour(self) -> ApiFlavour:
        if self._flavour is None:
            self._flavour = detect_flavour(self.client, override=self._calico_api)
        return self._flavour

    @property
    def target(self) -> Target:
        return self.client.target

    def close(self) -> None:
        self.client.close()

    # -- reading --------------------------------------------------------------------------------

    def list_calico(self, kind: str, *, flavour: ApiFlavour | None = None) -> list[dict[str, Any]]:
        """Calico objects of one kind as v3 manifests, sorted by name."""
        flavour = flavour or self.flavour
        try:
            items = list(self.client.list_kind(flavour.api_version, kind, CALICO_PLURALS[kind]))
        except KubeNotFound:
            return []  # BGPFilter is absent before Calico v3.26
        if flavour is ApiFlavour.V1_CRD:
            items = [v1_to_v3(i) for i in items]
        return sorted(items, key=lambda o: str(o["metadata"]["name"]))

    def get_calico(self, kind: str, name: str, *, flavour: ApiFlavour | None = None) -> dict[str, Any] | None:
        """One Calico object as a v3 manifest, or None if it does not exist."""
        flavour = flavour or self.flavour
        try:
            data = self.client.request("GET", _calico_path(flavour, kind, name), action=f"read {kind}/{name}")
        except KubeNotFound:
            return None
        data.setdefault("apiVersion", flavour.api_version)
        data.setdefault("kind", kind)
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

    def list_ipam(self) -> Iterator[dict[str, Any]]:
        """IPAMBlocks, BlockAffinities and IPAMConfig, from whichever group stores them."""
        if "v1" in self.client.served_groups().get(V1_GROUP, []):
            version, plurals = V1, IPAM_PLURALS
        else:
            version, plurals = V3, V3_IPAM_PLURALS
        for kind, plural in plurals.items():
            try:
                yield from self.client.list_kind(version, kind, plural)
            except KubeNotFound:
                continue

    def get_installation(self) -> dict[str, Any] | None:
        """The Tigera operator's ``Installation default``, or None on a manifest install."""
        try:
            data = self.client.request("GET", INSTALLATION_PATH, action="read Installation/default")
        except (KubeNotFound, KubeForbidden):
            return None
        data.setdefault("apiVersion", OPERATOR_API)
        data.setdefault("kind", "Installation")
        return dict(data)

    def list_nodes(self) -> Iterator[dict[str, Any]]:
        for item in self.client.list_path("/api/v1/nodes", action="list Nodes", accept=_METADATA_ONLY):
            item["apiVersion"] = "v1"
            item["kind"] = "Node"
            metadata = item.get("metadata") or {}
            metadata.pop("managedFields", None)
            yield item

    def calico_version(self) -> str:
        """calico/node's version from ClusterInformation (v1 storage holds it if v3 does not show it)."""
        info = self.get_calico("ClusterInformation", "default")
        if (
            info is None
            and self.flavour is not ApiFlavour.V1_CRD
            and "v1" in self.client.served_groups().get(V1_GROUP, [])
        ):
            info = self.get_calico("ClusterInformation", "default", flavour=ApiFlavour.V1_CRD)
        return str(((info or {}).get("spec") or {}).get("calicoVersion") or "")

    def identity(self) -> ClusterIdentity:
        """What a saved plan records to recognise this cluster, and what plan output shows."""
        if self._identity is None:
            self._identity = ClusterIdentity(
                context=self.target.context,
                server=self.target.server,
                cluster_id=self.client.cluster_uid(),
                api_group=self.flavour.api_version,
                api_flavour=str(self.flavour),
                calico_version=self.calico_version(),
            )
        return self._identity

    def read_state(self) -> list[dict[str, Any]]:
        """What ``plan`` compares against: Calico objects, Nodes (metadata) and the Installation."""
        objects: list[dict[str, Any]] = []
        for kind in ("IPPool", "BGPPeer", "BGPConfiguration", "BGPFilter"):
            objects.extend(self.list_calico(kind))
        objects.extend(self.list_nodes())
        installation = self.get_installation()
        if installation is not None:
            objects.append(installation)
        return objects

    def read_everything(self) -> Iterator[dict[str, Any]]:
        """What a snapshot holds: ``read_state`` plus everything expected routes are computed from.

        A generator, page by page, so that a snapshot streams to disk instead of sitting in memory.
        """
        installation = self.get_installation()
        if installation is not None:
            yield installation
        yield from self.list_calico("ClusterInformation")
        for kind in ("BGPConfiguration", "IPPool", "BGPPeer", "BGPFilter"):
            yield from self.list_calico(kind)
        yield from self.list_nodes()
        yield from self.list_ipam()
        for api_version, kind, path in SERVICE_LISTS:
            for item in self.client.list_path(path, action=f"list {kind}s"):
                item["apiVersion"] = api_version
                item["kind"] = kind
                yield item

    # ``namespace``: the workflows' single-object surface is shared with namespaced kinds
    # (``ServiceApi``); every kind here is cluster-wide, so it is always "".
    def get(self, kind: str, name: str, *, namespace: str = "") -> dict[str, Any] | None:
        if kind == "Installation":
            installation = self.get_installation()
            if installation is not None and installation["metadata"]["name"] != name:
                return None
            return installation
        return self.get_calico(kind, name)

    # -- writing --------------------------------------------------------------------------------

    def create(self, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """POST a new object (v3 manifest); AlreadyExists comes back as ``KubeConflict``."""
        flavour = self.flavour
        kind = str(manifest["kind"])
        name = str(manifest["metadata"]["name"])
        body = v3_to_v1(manifest) if flavour is ApiFlavour.V1_CRD else dict(manifest)
        if flavour is not ApiFlavour.V1_CRD:
            body["apiVersion"] = V3
        data = self.client.request(
            "POST",
            _calico_path(flavour, kind),
            query=_write_query(dry_run=dry_run),
            body=body,
            action=f"create {kind}/{name}",
        )
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

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
        if kind == "Installation":
            return self._patch_installation(patch, resource_version=resource_version, dry_run=dry_run)
        flavour = self.flavour
        body = dict(patch)
        if flavour is ApiFlavour.V1_CRD and "metadata" in body:
            current = self.client.request("GET", _calico_path(flavour, kind, name), action=f"read {kind}/{name}")
            body = v1_metadata_patch(patch=body, current_v1=current)
        metadata = dict(body.get("metadata") or {})
        metadata["resourceVersion"] = resource_version
        body["metadata"] = metadata
        data = self.client.request(
            "PATCH",
            _calico_path(flavour, kind, name),
            query=_write_query(dry_run=dry_run),
            body=body,
            content_type=MERGE_PATCH,
            action=f"update {kind}/{name}",
        )
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

    def _patch_installation(self, patch: Mapping[str, Any], *, resource_version: str, dry_run: bool) -> dict[str, Any]:
        """Merge-patch ``Installation default`` (operator-managed pools), guarded by resourceVersion."""
        body = dict(patch)
        metadata = dict(body.get("metadata") or {})
        metadata["resourceVersion"] = resource_version
        body["metadata"] = metadata
        data = self.client.request(
            "PATCH",
            INSTALLATION_PATH,
            query=_write_query(dry_run=dry_run),
            body=body,
            content_type=MERGE_PATCH,
            action="update Installation/default",
        )
        return dict(data)

    def delete(self, kind: str, name: str, *, resource_version: str, dry_run: bool, namespace: str = "") -> None:
        """DELETE with a resourceVersion precondition, so a changed object is never removed."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
        if dry_run:
            body["dryRun"] = ["All"]
        self.client.request(
            "DELETE",
            _calico_path(self.flavour, kind, name),
            query={"dryRun": "All" if dry_run else None},
            body=body,
            action=f"delete {kind}/{name}",
        )
