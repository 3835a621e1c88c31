"""The shape of the Kubernetes and Calico manifests bgpflat writes, as TypedDicts.

A dict literal typed with one of these is checked by mypy key by key, so a misspelt Calico field
(``natOutgoin``) fails the type check instead of reaching a cluster, where Calico would drop it or,
through a v1 CRD, break calico-node. The known spec fields per kind (``SPEC_FIELDS``) and the
metadata the API server fills in (``SERVER_METADATA``) are read from these classes, so the field
names are written once.

Manifests that come *in* (files, the API server) are not these types: until ``parse_resource`` has
checked them they are ``Mapping[str, Any]``, because claiming a shape the input may not have would
hide exactly the mistakes the parser reports.

Spec values may be ``None``: ``render`` first lists every field with ``None`` where the model has no
value, then drops those from the manifest it writes.
"""

from __future__ import annotations

from typing import Any, NotRequired, Required, TypedDict


class ObjectMeta(TypedDict, total=False):
    """``metadata``: what a client sets, then what the API server fills in (``SERVER_METADATA``)."""

    name: Required[str]
    namespace: str
    labels: dict[str, str]
    annotations: dict[str, str]
    resourceVersion: str
    uid: str
    creationTimestamp: str
    generation: int
    managedFields: list[dict[str, Any]]
    selfLink: str
    deletionTimestamp: str
    deletionGracePeriodSeconds: int
    finalizers: list[str]
    ownerReferences: list[dict[str, Any]]


# The keys of ObjectMeta a client sets; the others are the server's.
CLIENT_METADATA = ("name", "namespace", "labels", "annotations")


class Manifest(TypedDict):
    """A Kubernetes object as bgpflat writes it (``to_manifest``, ``render_manifests``, a plan's
    create): ``apiVersion``, ``kind``, ``metadata`` with at least the name, and ``spec``."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: NotRequired[dict[str, Any]]


class CIDREntry(TypedDict):
    cidr: str


class SecretKeySelector(TypedDict):
    name: str
    key: str


class SecretSource(TypedDict):
    """``password`` / ``nodeMeshPassword``: the key of a Secret in calico-node's namespace."""

    secretKeyRef: SecretKeySelector


class CommunitySpec(TypedDict):
    name: str
    value: str


class PrefixAdvertisementSpec(TypedDict):
    cidr: str
    communities: list[str]


class PrefixLength(TypedDict, total=False):
    min: int
    max: int


class BGPFilterRuleSpec(TypedDict, total=False):
    action: Required[str]
    cidr: str
    matchOperator: str
    prefixLength: PrefixLength
    source: str
    interface: str


# The classes below list the spec fields in Calico's order, which is also the order bgpflat writes
# them in and names them in messages.


class IPPoolSpec(TypedDict, total=False):
    cidr: Required[str]
    blockSize: int | None
    ipipMode: str
    vxlanMode: str
    natOutgoing: bool
    disabled: bool
    disableBGPExport: bool
    nodeSelector: str
    namespaceSelector: str | None
    allowedUses: list[str]
    assignmentMode: str | None


# Calico v2 spellings still read (and converted) in an IPPool, never written.
IPPOOL_LEGACY_FIELDS = ("ipip", "nat-outgoing")


class BGPPeerSpec(TypedDict, total=False):
    node: str | None
    nodeSelector: str | None
    peerIP: str | None
    asNumber: int | None
    localASNumber: int | None
    peerSelector: str | None
    keepOriginalNextHop: bool
    nextHopMode: str | None
    password: SecretSource | None
    sourceAddress: str | None
    maxRestartTime: str | None
    keepaliveTime: str | None
    numAllowedLocalASNumbers: int | None
    ttlSecurity: int | None
    reachableBy: str | None
    filters: list[str]
    localWorkloadSelector: str | None
    reversePeering: str | None


class BGPConfigurationSpec(TypedDict, total=False):
    logSeverityScreen: str | None
    nodeToNodeMeshEnabled: bool | None
    asNumber: int | None
    serviceClusterIPs: list[CIDREntry]
    serviceExternalIPs: list[CIDREntry]
    serviceLoadBalancerIPs: list[CIDREntry]
    serviceLoadBalancerAggregation: str | None
    communities: list[CommunitySpec]
    prefixAdvertisements: list[PrefixAdvertisementSpec]
    listenPort: int | None
    nodeMeshPassword: SecretSource | None
    nodeMeshMaxRestartTime: str | None
    bindMode: str | None
    ignoredInterfaces: list[str]
    localWorkloadPeeringIPV4: str | None
    localWorkloadPeeringIPV6: str | None
    programClusterRoutes: str | None
    ipv4NormalRoutePriority: int | None
    ipv6NormalRoutePriority: int | None


class BGPFilterSpec(TypedDict, total=False):
    exportV4: list[BGPFilterRuleSpec]
    importV4: list[BGPFilterRuleSpec]
    exportV6: list[BGPFilterRuleSpec]
    importV6: list[BGPFilterRuleSpec]


CalicoSpec = IPPoolSpec | BGPPeerSpec | BGPConfigurationSpec | BGPFilterSpec
