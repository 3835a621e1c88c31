"""Load a lab scenario's cluster state into a running API server.

A scenario is a directory ``labs/<name>/`` with ``scenario.yaml`` (metadata, including
``serviceClusterIPRange``) and ``cluster.yaml`` (Kubernetes objects, multi-document or one
``kind: List``, as the API serves them or as ``bgpflat snapshot`` writes them).

Seeding:

* translates Calico objects to the API the server serves (``projectcalico.org/v3`` ↔
  ``crd.projectcalico.org/v1``, same spec; metadata converted the way Calico's KDD backend does);
* drops server-set metadata (uid, resourceVersion, managedFields…) so snapshots load too;
* creates objects in dependency order (namespaces, Calico config, pools, peers, nodes, IPAM,
  services, endpoint slices), then writes ``status`` through the status subresource where the
  server keeps it separate (Node addresses, LoadBalancer ingress);
* leaves out cluster IPs the file does not give, so the server allocates them;
* makes the scenario's service range usable: if no ServiceCIDR covers it, a ServiceCIDR
  ``bgpflat-<scenario>`` is created and marked Ready (see ``ensure_service_cidr``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bgpflat.adapters.kube import KubeClient
from bgpflat.core.calico.models import SERVER_METADATA
from bgpflat.errors import KubeConflict, KubeError, LabError
from bgpflat.lab.controlplane.crds import STORAGE_FLAVOUR, Flavour
from bgpflat.lab.go_build import shipped_path

JsonObject = dict[str, Any]

CALICO_V3 = "projectcalico.org/v3"
CALICO_V1 = "crd.projectcalico.org/v1"
METADATA_ANNOTATION = "projectcalico.org/metadata"
SERVICE_CIDR_API = "networking.k8s.io/v1"

# Created first to last; kinds not listed go after these, before nothing depends on them.
CREATE_ORDER = (
    "Namespace",
    "ClusterInformation",
    "FelixConfiguration",
    "IPAMConfig",
    "IPAMConfiguration",
    "KubeControllersConfiguration",
    "IPPool",
    "IPReservation",
    "BGPConfiguration",
    "BGPFilter",
    "Secret",
    "BGPPeer",
    "Node",
    "BlockAffinity",
    "IPAMBlock",
    "IPAMHandle",
    "Service",
    "Endpoints",
)
LAST = ("EndpointSlice",)

# Objects the API server maintains itself; snapshots contain them, seeding must not fight them.
SERVER_OWNED = {
    ("Service", "default", "kubernetes"),
    ("Endpoints", "default", "kubernetes"),
    ("EndpointSlice", "default", "kubernetes"),
}
# SERVER_METADATA also lists finalizers and owner references, which clients set: seeding keeps them.
SERVER_SET_METADATA = tuple(name for name in SERVER_METADATA if name not in ("finalizers", "ownerReferences"))


def labs_dir() -> Path:
    """``labs/`` of the source checkout or the installed wheel (``BGPFLAT_LABS_DIR`` overrides)."""
    explicit = os.environ.get("BGPFLAT_LABS_DIR")
    return Path(explicit) if explicit else shipped_path("labs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    directory: Path
    metadata: Mapping[str, Any]
    objects: tuple[JsonObject, ...]

    @property
    def service_cluster_ip_range(self) -> str | None:
        value = self.metadata.get("serviceClusterIPRange")
        return str(value) if value else None


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by name (``labs/<name>``) or by directory path."""
    candidate = Path(name_or_path)
    if not candidate.is_dir() and not labs_dir().is_dir():
        raise LabError(
            f"no scenario {name_or_path!r}: the scenarios directory {labs_dir()} is missing (a source checkout or "
            "the bgpflat wheel has it); pass a scenario directory, or set BGPFLAT_LABS_DIR"
        )
    directory = candidate if candidate.is_dir() else labs_dir() / str(name_or_path)
    cluster_file = directory / "cluster.yaml"
    if not cluster_file.is_file():
        known = sorted(p.name for p in labs_dir().glob("*") if (p / "cluster.yaml").is_file())
        raise LabError(f"no scenario {name_or_path!r} (looked for {cluster_file}); known: {', '.join(known) or 'none'}")
    meta_file = directory / "scenario.yaml"
    try:
        metadata = yaml.safe_load(meta_file.read_text()) if meta_file.is_file() else {}
        documents = list(yaml.safe_load_all(cluster_file.read_text()))
    except yaml.YAMLError as exc:
        raise LabError(f"{directory}: not valid YAML: {exc}") from exc
    objects: list[JsonObject] = []
    for index, doc in enumerate(documents):
        if doc is None:
            continue
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise LabError(f"{cluster_file}: document {index} is not a Kubernetes object")
        if doc["kind"] == "List" or str(doc["kind"]).endswith("List"):
            objects.extend(doc.get("items") or [])
        else:
            objects.append(doc)
    return Scenario(
        name=str((metadata or {}).get("name") or directory.name),
        directory=directory,
        metadata=metadata or {},
        objects=tuple(objects),
    )


# -- Calico API translation ------------------------------------------------------------------------
def _is_calico_owned(key: str) -> bool:
    """Calico keeps these keys on the v1 object itself (libcalico-go ``isOurs``)."""
    return "projectcalico.org/" in key or "operator.tigera.io/" in key


def calico_v3_to_v1(obj: Mapping[str, Any]) -> JsonObject:
    """A ``projectcalico.org/v3`` object as Calico's KDD backend stores it in ``crd.projectcalico.org/v1``.

    Follows libcalico-go ``ConvertCalicoResourceToK8sResource``: the v3 metadata (labels and
    annotations included) is stored as JSON in the ``projectcalico.org/metadata`` annotation; only
    Calico-owned labels and annotations stay on the v1 object itself. The spec is unchanged.
    """
    out = copy.deepcopy(dict(obj))
    meta = dict(out.get("metadata") or {})
    labels: dict[str, str] = dict(meta.get("labels") or {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    # Go marshals ObjectMeta with a null creationTimestamp and sorted map keys.
    stored: dict[str, Any] = {"creationTimestamp": None}
    if labels:
        stored["labels"] = dict(sorted(labels.items()))
    if annotations:
        stored["annotations"] = dict(sorted(annotations.items()))
    v1_meta: dict[str, Any] = {"name": meta["name"]}
    if meta.get("namespace"):
        v1_meta["namespace"] = meta["namespace"]
    own_labels = {k: v for k, v in labels.items() if _is_calico_owned(k)}
    if own_labels:
        v1_meta["labels"] = own_labels
    v1_meta["annotations"] = {
        METADATA_ANNOTATION: json.dumps(stored, separators=(",", ":")),
        **{k: v for k, v in annotations.items() if _is_calico_owned(k)},
    }
    out["apiVersion"] = CALICO_V1
    out["metadata"] = v1_meta
    return out


def calico_v1_to_v3(obj: Mapping[str, Any]) -> JsonObject:
    """The reverse of ``calico_v3_to_v1`` (libcalico-go ``ConvertK8sResourceToCalicoResource``).

    Labels and annotations from the metadata annotation are merged over the v1 object's own; the
    metadata annotation itself is dropped. BlockAffinity ``spec.deleted`` is a string in v1 and a
    boolean in v3.
    """
    out = copy.deepcopy(dict(obj))
    meta = dict(out.get("metadata") or {})
    labels: dict[str, str] = dict(meta.get("labels") or {})
    annotations: dict[str, str] = dict(meta.get("annotations") or {})
    stored_text = annotations.pop(METADATA_ANNOTATION, None)
    if stored_text:
        try:
            stored = json.loads(stored_text)
        except json.JSONDecodeError as exc:
            raise LabError(
                f"{out.get('kind')} {meta.get('name')}: bad {METADATA_ANNOTATION} annotation: {exc}"
            ) from exc
        labels.update(stored.get("labels") or {})
        annotations.update(stored.get("annotations") or {})
    new_meta: dict[str, Any] = {"name": meta["name"]}
    if meta.get("namespace"):
        new_meta["namespace"] = meta["namespace"]
    if labels:
        new_meta["labels"] = labels
    if annotations:
        new_meta["annotations"] = annotations
    out["apiVersion"] = CALICO_V3
    out["metadata"] = new_meta
    if out.get("kind") == "BlockAffinity" and isinstance((out.get("spec") or {}).get("deleted"), str):
        out["spec"]["deleted"] = out["spec"]["deleted"].lower() == "true"
    return out


def for_flavour(obj: Mapping[str, Any], flavour: Flavour) -> JsonObject:
    """``obj`` in the Calico API the server serves; non-Calico objects pass through."""
    api_version = obj.get("apiVersion")
    # Behind Calico's API server the objects live in the v1 CRDs: seeded there, as calico-node and
    # the IPAM write them, and read back through projectcalico.org/v3.
    flavour = STORAGE_FLAVOUR[flavour]
    if flavour == "v1" and api_version == CALICO_V3:
        return calico_v3_to_v1(obj)
    if flavour == "v3" and api_version == CALICO_V1:
        return calico_v1_to_v3(obj)
    return copy.deepcopy(dict(obj))


def block_affinity_labels(node: str, cidr: str, affinity_type: str = "host") -> dict[str, str]:
    """The labels Calico's IPAM puts on a ``BlockAffinity`` (libcalico-go ``EnsureBlockAffinityLabels``).

    Since v3.31 confd lists a node's block affinities with a label selector on these, so an
    affinity created without them is invisible to it: no blackhole route, no aggregation.
    """
    digest = hashlib.sha3_256(node.encode()).digest()
    return {
        "projectcalico.org/hostname-hash": base64.b32encode(digest).decode().rstrip("="),
        "projectcalico.org/affinity-type": affinity_type,
        "projectcalico.org/ip-version": "6" if ":" in cidr else "4",
    }


def with_ipam_labels(obj: JsonObject) -> JsonObject:
    """A ``BlockAffinity`` as Calico's IPAM stores it: with its labels (confd finds it by them)."""
    if obj.get("kind") != "BlockAffinity":
        return obj
    meta = obj.setdefault("metadata", {})
    spec = obj.get("spec") or {}
    labels = block_affinity_labels(
        str(spec.get("node", "")), str(spec.get("cidr", "")), str(spec.get("type") or "host")
    )
    meta["labels"] = {**labels, **(meta.get("labels") or {})}
    return obj


# -- creation ---------------------------------------------------------------------------------------
def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def _order(obj: Mapping[str, Any]) -> int:
    kind = str(obj.get("kind"))
    if kind in CREATE_ORDER:
        return CREATE_ORDER.index(kind)
    if kind in LAST:
        return len(CREATE_ORDER) + 1 + LAST.index(kind)
    return len(CREATE_ORDER)


def _clean(obj: Mapping[str, Any]) -> tuple[JsonObject, JsonObject | None]:
    """The object to POST (no server-set metadata, no status) and its status, if any."""
    body = copy.deepcopy(dict(obj))
    meta = body.setdefault("metadata", {})
    for name in SERVER_SET_METADATA:
        meta.pop(name, None)
    status = body.pop("status", None)
    if body.get("kind") == "Service":
        # An empty clusterIP means "allocate one"; so does leaving it out. ClusterIPs follows.
        spec = body.get("spec") or {}
        if not spec.get("clusterIP"):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
    return body, status or None


@dataclass(slots=True)
class SeedResult:
    """What seeding created, in creation order, and the cluster IPs the server handed out."""

    scenario: str
    created: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    cluster_ips: dict[str, str] = field(default_factory=dict)
    """``namespace/name`` -> cluster IP of every Service seeded."""
    service_cidr: str | None = None
    """The ServiceCIDR object created for the scenario's range, if one was needed."""


def ensure_service_cidr(kube: KubeClient, *, cidr: str, name: str, timeout: float = 30.0) -> str | None:
    """Make ``cidr`` allocatable; return the name of a ServiceCIDR created for it, None if covered.

    The server's own range (``--service-cluster-ip-range``) appears as the ServiceCIDR
    ``kubernetes``. Another range needs its own ServiceCIDR; kube-controller-manager would mark
    it Ready, and none runs here, so the status is written directly. Addresses the scenario does
    not fix are then allocated from any Ready range, so start the server with the scenario's range
    (``lab control-plane up --scenario``) when the allocated addresses must fall inside it.
    """
    wanted = ipaddress.ip_network(cidr)
    try:
        existing = kube.list_objects(SERVICE_CIDR_API, "ServiceCIDR")
    except KubeError as exc:
        raise LabError(f"listing ServiceCIDRs: {exc}") from exc
    for item in existing:
        for text in (item.get("spec") or {}).get("cidrs", []):
            have = ipaddress.ip_network(text)
            if have.version == wanted.version and (
                int(have.network_address) <= int(wanted.network_address)
                and int(wanted.broadcast_address) <= int(have.broadcast_address)
            ):
                return None
    body = {
        "apiVersion": SERVICE_CIDR_API,
        "kind": "ServiceCIDR",
        "metadata": {"name": name},
        "spec": {"cidrs": [str(wanted)]},
    }
    try:
        created = kube.create_object(body)
        created["status"] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "CreatedByBgpflatLab",
                    "message": "marked ready by the lab seeder (no kube-controller-manager runs)",
                    "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ]
        }
        kube.replace_status({"apiVersion": SERVICE_CIDR_API, "kind": "ServiceCIDR", **created})
    except KubeError as exc:
        raise LabError(f"creating ServiceCIDR {name} ({cidr}): {exc}") from exc
    # The allocator learns about new ranges through a watch; wait until it hands out addresses.
    probe = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bgpflat-cidr-probe", "namespace": "default"},
        "spec": {"clusterIP": str(next(iter(wanted.hosts()))), "ports": [{"port": 1}]},
    }
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kube.create_object(probe, dry_run=True)
        except KubeError:
            time.sleep(0.1)
        else:
            return name
    raise LabError(f"ServiceCIDR {name} ({cidr}) created but the API server does not allocate from it")


def seed_objects(
    kube: KubeClient, objects: Iterable[Mapping[str, Any]], *, flavour: Flavour, scenario: str = "objects"
) -> SeedResult:
    """Create ``objects`` (translated to ``flavour``) in dependency order."""
    result = SeedResult(scenario=scenario)
    translated = [with_ipam_labels(for_flavour(o, flavour)) for o in objects]
    namespaces = {str(o["metadata"]["namespace"]) for o in translated if (o.get("metadata") or {}).get("namespace")}
    declared = {o["metadata"]["name"] for o in translated if o.get("kind") == "Namespace"}
    for ns in sorted(namespaces - declared):
        translated.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for obj in sorted(translated, key=_order):  # sorted() is stable: file order within a kind
        key = _key(obj)
        if key in SERVER_OWNED:
            result.skipped.append(key)
            continue
        body, status = _clean(obj)
        try:
            created = kube.create_object(body)
        except KubeError as exc:
            if isinstance(exc, KubeConflict) and body["kind"] == "Namespace":
                result.skipped.append(key)
                continue
            if isinstance(exc, KubeConflict) and body["kind"] == "ClusterInformation":
                # Calico's API server writes its own at start-up, as calico-node does in a
                # cluster; the scenario's (its Calico version) replaces it.
                kube.delete_object(body["apiVersion"], body["kind"], str(body["metadata"]["name"]))
                created = kube.create_object(body)
            else:
                raise LabError(f"creating {body['kind']} {'/'.join(k for k in key[1:] if k)} failed: {exc}") from exc
        if status and kube.resource(body["apiVersion"], body["kind"]).has_status:
            created["status"] = status
            try:
                kube.replace_status({"apiVersion": body["apiVersion"], "kind": body["kind"], **created})
            except KubeError as exc:
                raise LabError(f"writing the status of {'/'.join(k for k in key if k)}: {exc}") from exc
        result.created.append(key)
        if body["kind"] == "Service":
            result.cluster_ips[f"{key[1]}/{key[2]}"] = str((created.get("spec") or {}).get("clusterIP", ""))
    return result


def seed_scenario(kube: KubeClient, scenario: Scenario | str | Path, *, flavour: Flavour) -> SeedResult:
    """Seed a scenario (object, name or directory) into the server behind ``kube``."""
    loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    service_cidr = None
    if loaded.service_cluster_ip_range:
        service_cidr = ensure_service_cidr(kube, cidr=loaded.service_cluster_ip_range, name=f"bgpflat-{loaded.name}")
    result = seed_objects(kube, loaded.objects, flavour=flavour, scenario=loaded.name)
    result.service_cidr = service_cidr
    return result
