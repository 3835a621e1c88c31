"""The two inputs of ``make_plan``: what the user wants (``DesiredState``) and what is there (``ObservedState``).

``DesiredState`` comes from ``spec.load.load_desired`` (a flat spec or native Calico manifests): validated
models plus the networks the address-plan checks need. ``ObservedState`` is filled by whoever reads
the cluster (the Kubernetes adapter, or a snapshot file), from object dicts as the API serves them::

    ObservedState(
        resources=tuple(ObservedResource.from_manifest(obj) for obj in calico_objects),
        nodes=tuple(ObservedNode.from_manifest(node) for node in core_v1_nodes),
        installation=ObservedInstallation.from_manifest(inst) if inst else None,
        identity={"context": ..., "server": ..., "clusterID": ..., "apiGroup": ..., "calicoVersion": ...},
    )

``resources`` holds the cluster's IPPools, BGPPeers, BGPConfigurations and BGPFilters (v3 form, or
v1 with the same spec); other kinds are ignored. ``identity`` is copied into the plan untouched so
that ``apply`` can refuse a plan made for another cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.calico import (
    MANAGED_BY_LABEL,
    SPEC_FIELDS,
    BGPFilter,
    BGPPeer,
    CalicoResource,
    IPPool,
    WritableResource,
    parse_as_number,
    parse_resource,
)
from bgpflat.core.calico.node import ANNOTATION_AS, ANNOTATION_IPV4, ANNOTATION_IPV6
from bgpflat.core.net.prefixes import Prefix
from bgpflat.errors import SpecError


def _frozen_map(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}


def resource_key(kind: str, name: str) -> str:
    """``IPPool/default-pool``: how plans, findings and messages name an object."""
    return f"{kind}/{name}"


# --- observed --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedResource:
    """One Calico object as read from the cluster; ``manifest`` is kept whole (unknown fields too)."""

    kind: str
    name: str
    manifest: Mapping[str, Any]
    resource_version: str | None = None
    managed_by: str | None = None

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], *, resource_version: str | None = None) -> ObservedResource:
        metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
        if not isinstance(metadata, Mapping) or not isinstance(manifest.get("kind"), str):
            raise SpecError("an observed object needs kind and metadata", fix="pass objects as the API serves them")
        labels = metadata.get("labels")
        owner = labels.get(MANAGED_BY_LABEL) if isinstance(labels, Mapping) else None
        if owner is None and manifest.get("kind") in SPEC_FIELDS:
            # A crd.projectcalico.org/v1 object keeps its v3 labels in an annotation (calico-facts §2.1).
            try:
                owner = parse_resource(manifest).labels.get(MANAGED_BY_LABEL)
            except SpecError:
                owner = None
        rv = resource_version if resource_version is not None else metadata.get("resourceVersion")
        return cls(
            kind=str(manifest["kind"]),
            name=str(metadata.get("name", "")),
            manifest=manifest,
            resource_version=None if rv is None else str(rv),
            managed_by=None if owner is None else str(owner),
        )

    @property
    def key(self) -> str:
        return resource_key(self.kind, self.name)

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.manifest.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    def model(self) -> CalicoResource:
        """The object as a model (lenient: Calico's cross-field rules are not applied)."""
        return parse_resource(self.manifest)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedNode:
    """The Calico view of a Kubernetes Node (calico-facts §2.4): labels, BGP address with prefix length, AS."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ipv4_address: str | None = None  # as annotated, with prefix length: "10.200.20.103/24"
    ipv6_address: str | None = None
    as_number: int | None = None

    @classmethod
    def from_manifest(cls, node: Mapping[str, Any]) -> ObservedNode:
        metadata = node.get("metadata") if isinstance(node, Mapping) else None
        if not isinstance(metadata, Mapping):
            raise SpecError("a Node needs metadata", fix="pass Nodes as the API serves them")
        annotations = _frozen_map(metadata.get("annotations"))
        asn: int | None = None
        if annotations.get(ANNOTATION_AS):
            try:
                asn = parse_as_number(annotations[ANNOTATION_AS])
            except SpecError:
                asn = None
        return cls(
            name=str(metadata.get("name", "")),
            labels=_frozen_map(metadata.get("labels")),
            ipv4_address=annotations.get(ANNOTATION_IPV4) or None,
            ipv6_address=annotations.get(ANNOTATION_IPV6) or None,
            as_number=asn,
        )

    @property
    def ipv4_subnet(self) -> Prefix | None:
        """The node's subnet (address with host bits cleared); None if not annotated or unparsable."""
        if not self.ipv4_address or "/" not in self.ipv4_address:
            return None
        try:
            return Prefix.parse(self.ipv4_address, strict=False)
        except SpecError:
            return None

    @property
    def ipv4(self) -> str | None:
        return self.ipv4_address.split("/", 1)[0] if self.ipv4_address else None

    @property
    def as_checked(self) -> str:
        """What a plan's checks read of the node, on one line. A saved plan records it per node:
        Nodes' resourceVersions move with every status heartbeat, so they cannot tell a node whose
        address, AS or labels changed (or a node that joined) from one that only reported in."""
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())) or "-"
        return (
            f"ipv4={self.ipv4_address or '-'} ipv6={self.ipv6_address or '-'} "
            f"as={self.as_number if self.as_number is not None else '-'} labels={labels}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedInstallation:
    """The tigera-operator ``operator.tigera.io/v1 Installation`` (usually named ``default``)."""

    name: str
    manifest: Mapping[str, Any]
    resource_version: str | None = None

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], *, resource_version: str | None = None) -> ObservedInstallation:
        metadata = manifest.get("metadata") if isinstance(manifest, Mapping) else None
        if not isinstance(metadata, Mapping):
            raise SpecError("an Installation needs metadata", fix="pass it as the API serves it")
        rv = resource_version if resource_version is not None else metadata.get("resourceVersion")
        return cls(
            name=str(metadata.get("name", "default")),
            manifest=manifest,
            resource_version=None if rv is None else str(rv),
        )

    @property
    def ip_pools(self) -> list[Mapping[str, Any]]:
        spec = self.manifest.get("spec")
        network = spec.get("calicoNetwork") if isinstance(spec, Mapping) else None
        pools = network.get("ipPools") if isinstance(network, Mapping) else None
        return [p for p in pools if isinstance(p, Mapping)] if isinstance(pools, list) else []


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservedState:
    resources: tuple[ObservedResource, ...] = ()
    nodes: tuple[ObservedNode, ...] = ()
    installation: ObservedInstallation | None = None
    identity: Mapping[str, str] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> ObservedResource | None:
        for resource in self.resources:
            if resource.kind == kind and resource.name == name:
                return resource
        return None

    def of_kind(self, kind: str) -> tuple[ObservedResource, ...]:
        return tuple(sorted((r for r in self.resources if r.kind == kind), key=lambda r: r.name))

    def filters(self) -> tuple[BGPFilter, ...]:
        out = []
        for resource in self.of_kind("BGPFilter"):
            try:
                model = resource.model()
            except SpecError:
                continue
            if isinstance(model, BGPFilter):
                out.append(model)
        return tuple(out)

    @classmethod
    def from_objects(
        cls,
        objects: tuple[Mapping[str, Any], ...] | list[Mapping[str, Any]],
        *,
        identity: Mapping[str, str] | None = None,
    ) -> ObservedState:
        """From a snapshot's object dicts: Calico kinds, Nodes and the Installation; others ignored."""
        resources: list[ObservedResource] = []
        nodes: list[ObservedNode] = []
        installation: ObservedInstallation | None = None
        for obj in objects:
            kind = obj.get("kind")
            api = str(obj.get("apiVersion", ""))
            if kind in SPEC_FIELDS and api.startswith(("projectcalico.org/", "crd.projectcalico.org/")):
                resources.append(ObservedResource.from_manifest(obj))
            elif kind == "Node" and api == "v1":
                nodes.append(ObservedNode.from_manifest(obj))
            elif kind == "Installation" and api.startswith("operator.tigera.io/"):
                installation = ObservedInstallation.from_manifest(obj)
        return cls(
            resources=tuple(sorted(resources, key=lambda r: (r.kind, r.name))),
            nodes=tuple(sorted(nodes, key=lambda n: n.name)),
            installation=installation,
            identity=dict(identity or {}),
        )


# --- desired ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Networks:
    """The address plan outside Calico's own objects (checked for overlaps with pools and services)."""

    nodes: tuple[Prefix, ...] = ()
    office: tuple[Prefix, ...] = ()
    vpn: tuple[Prefix, ...] = ()
    service_cluster_ip_range: tuple[Prefix, ...] = ()  # the API server's range, advertised or not


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterTarget:
    """Which cluster a spec is for; the CLI compares it with the kube context before changing anything."""

    name: str | None = None
    context: str | None = None
    environment: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DesiredState:
    """What the user wants: validated Calico models, the networks the address-plan checks read, and
    the cluster the spec names (if it names one)."""

    resources: tuple[WritableResource, ...] = ()
    networks: Networks = Networks()
    cluster: ClusterTarget | None = None
    # "IPPool/default-pool" -> "bgpflat.yaml:12", for messages that point back at the input.
    origins: Mapping[str, str] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> WritableResource | None:
        for resource in self.resources:
            if resource.kind == kind and resource.name == name:
                return resource
        return None

    @property
    def pools(self) -> tuple[IPPool, ...]:
        return tuple(r for r in self.resources if isinstance(r, IPPool))

    @property
    def peers(self) -> tuple[BGPPeer, ...]:
        return tuple(r for r in self.resources if isinstance(r, BGPPeer))
