"""Calico's API on one cluster: which flavour serves it, and ``CalicoApi``, the surface the workflows use.

Calico objects are always handed out as ``projectcalico.org/v3`` manifests, whatever the cluster
serves; when only ``crd.projectcalico.org/v1`` is served, reads and writes go through the storage
conversion of ``bgpflat.adapters.kube.storage``, so the core never sees the storage form.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import quote

from bgpflat.adapters.collector import collector_paused
from bgpflat.adapters.kube.client import FIELD_MANAGER, MERGE_PATCH, PAGE_SIZE, WHOLE_LIST, KubeClient, api_base
from bgpflat.adapters.kube.config import Target
from bgpflat.adapters.kube.reads import in_order
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
IPAM_PLURALS = {"IPAMBlock": "ipamblocks", "BlockAffinity": "blockaffinities", "IPAMConfig": "ipamconfigs"}
V3_IPAM_PLURALS = {
    "IPAMBlock": "ipamblocks",
    "BlockAffinity": "blockaffinities",
    "IPAMConfiguration": "ipamconfigurations",
}
# Core objects the expected-route computation reads besides Nodes: (apiVersion, kind, plural).
SERVICE_LISTS = (
    ("v1", "Service", "services"),
    ("discovery.k8s.io/v1", "EndpointSlice", "endpointslices"),
)
# Nodes as metadata only: labels and annotations are all Calico reads from a Node (calico-facts
# §2.4), and skipping status (images, conditions) makes a 5,000-node list several times smaller.
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
# A watch streams single objects, so the metadata-only form is named per object there.
_METADATA_ONLY_WATCH = "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json"
READ_VERBS = ("get", "list", "watch")


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One resource the route model reads: where it is listed and watched, and how its objects
    are handed out (always as a snapshot holds them: v3 Calico manifests, Nodes as metadata)."""

    api_version: str
    kind: str
    plural: str
    name: str | None = None  # only this object (the operator's Installation "default")
    calico: bool = False  # a Calico kind: v1 storage is handed out as v3
    metadata_only: bool = False  # labels and annotations are all that is read (Nodes)
    required: bool = False  # always served; the others may be absent (no operator, older Calico)

    @property
    def path(self) -> str:
        return f"{api_base(self.api_version)}/{self.plural}"

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def accept(self, *, watch: bool = False) -> str:
        if not self.metadata_only:
            return "application/json"
        return _METADATA_ONLY_WATCH if watch else _METADATA_ONLY

    def normalise(self, item: dict[str, Any]) -> dict[str, Any]:
        """A listed or watched object as ``read_everything`` hands it out."""
        item["apiVersion"] = self.api_version
        item["kind"] = self.kind
        if self.metadata_only:
            (item.get("metadata") or {}).pop("managedFields", None)
        if self.calico and self.api_version == V1:
            return v1_to_v3(item)
        return item


def read_sources(*, calico_api_version: str, ipam_v1: bool) -> list[Source]:
    """Everything the route model reads, in snapshot order: the one list that ``read_everything``,
    the watches of ``verify --watch`` and the in-cluster ClusterRole (``read_rules``) follow.

    IPAM kinds live in crd.projectcalico.org/v1 whenever that group exists (the Calico API server
    does not serve IPAMBlock); with native v3 CRDs alone they are projectcalico.org/v3.
    """
    ipam_version, ipam_plurals = (V1, IPAM_PLURALS) if ipam_v1 else (V3, V3_IPAM_PLURALS)
    return [
        Source(api_version=OPERATOR_API, kind="Installation", plural="installations", name="default"),
        *(
            Source(api_version=calico_api_version, kind=kind, plural=CALICO_PLURALS[kind], calico=True)
            for kind in ("ClusterInformation", "BGPConfiguration", "IPPool", "BGPPeer", "BGPFilter")
        ),
        Source(api_version="v1", kind="Node", plural="nodes", metadata_only=True, required=True),
        *(Source(api_version=ipam_version, kind=kind, plural=plural) for kind, plural in ipam_plurals.items()),
        *(
            Source(api_version=api_version, kind=kind, plural=plural, required=True)
            for api_version, kind, plural in SERVICE_LISTS
        ),
    ]


def read_rules() -> dict[str, set[str]]:
    """API group -> the resources bgpflat reads (get, list, watch) on any cluster: ``read_sources``
    for every Calico flavour, plus the APIService that tells the flavours apart (``detect_flavour``).
    The in-cluster ClusterRole (deploy/) grants exactly these."""
    rules: dict[str, set[str]] = {"apiregistration.k8s.io": {"apiservices"}}
    for api_version in (V1, V3):
        for ipam_v1 in (True, False):
            for source in read_sources(calico_api_version=api_version, ipam_v1=ipam_v1):
                rules.setdefault(source.group, set()).add(source.plural)
    return rules


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

    def list_calico(
        self, kind: str, *, flavour: ApiFlavour | None = None, page_size: int = PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Calico objects of one kind as v3 manifests, sorted by name."""
        flavour = flavour or self.flavour
        try:
            items = list(self.client.list_kind(flavour.api_version, kind, CALICO_PLURALS[kind], page_size=page_size))
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

    def get_installation(self) -> dict[str, Any] | None:
        """The Tigera operator's ``Installation default``, or None on a manifest install."""
        try:
            data = self.client.request("GET", INSTALLATION_PATH, action="read Installation/default")
        except (KubeNotFound, KubeForbidden):
            return None
        data.setdefault("apiVersion", OPERATOR_API)
        data.setdefault("kind", "Installation")
        return dict(data)

    def list_nodes(self, *, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        for item in self.client.list_path(
            "/api/v1/nodes", action="list Nodes", accept=_METADATA_ONLY, page_size=page_size
        ):
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

    def read_sources(self) -> list[Source]:
        """What the route model reads from this cluster (``read_sources`` for its flavour)."""
        ipam_v1 = "v1" in self.client.served_groups().get(V1_GROUP, [])
        return read_sources(calico_api_version=self.flavour.api_version, ipam_v1=ipam_v1)

    def read_everything(self) -> Iterator[dict[str, Any]]:
        """What a snapshot holds: ``read_state`` plus everything expected routes are computed from.

        For ``plan``, ``routes expected`` and ``verify``, which hold it all in memory anyway: the
        resources are read at the same time (``reads.in_order``), each in one request.

        Why whole lists: a list with no ``resourceVersion`` is a consistent read (it shows every
        write that completed before it was sent), and since Kubernetes 1.31 the API server serves
        it from its watch cache. The continuation pages of a paginated list are not: on v1.35 each
        ``continue`` is a range read from etcd, decoded object by object on the server
        (``apiserver_storage_list_total`` counts one per page), which made 20,000 IPAMBlocks in
        pages of 500 take 2.5–5× as long as the same list in one request. Both are one read at one
        resourceVersion, so nothing is given up in consistency. ``resourceVersion=0`` would be
        cheaper still and is not used: it may be answered from a cache that has not yet seen the
        user's last write (a plan right after an apply would plan the apply again).

        The resources are read at the same time and not atomically together, exactly as one after
        another were: each list is at least as new as the moment the read began, and apply writes
        only with resourceVersion preconditions, so a change in between is caught there.
        """
        sources = self.read_sources()
        with collector_paused():  # decoded JSON has no cycles: see ``reads``
            lists = list(in_order([partial(self._read_source, source, page_size=WHOLE_LIST) for source in sources]))
        # Millions of acyclic objects that every caller keeps until it is done: kept out of the
        # collector's walks from now on (walking them cost the next step, building the observed
        # state of 5,000 nodes, 1.7 s of its 1.75 s).
        gc.freeze()
        for items in lists:
            yield from items

    def stream_everything(self, *, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """``read_everything``, one page at a time and one resource after another: for a snapshot
        written to disk as it is read, in memory bounded by a page rather than by the cluster."""
        for source in self.read_sources():
            yield from self._source_items(source, page_size=page_size)

    def _read_source(self, source: Source, *, page_size: int) -> list[dict[str, Any]]:
        return list(self._source_items(source, page_size=page_size))

    def _source_items(self, source: Source, *, page_size: int) -> Iterator[dict[str, Any]]:
        """The objects of one ``Source``, as ``read_everything`` hands them out."""
        if source.name is not None:
            installation = self.get_installation()
            if installation is not None:
                yield installation
        elif source.calico:
            yield from self.list_calico(source.kind, page_size=page_size)
        elif source.metadata_only:
            yield from self.list_nodes(page_size=page_size)
        else:
            try:
                for item in self.client.list_path(source.path, action=f"list {source.plural}", page_size=page_size):
                    yield source.normalise(item)
            except KubeNotFound:
                if source.required:
                    raise

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
