"""ClusterState: what bgpflat needs to know about a cluster to predict its BGP advertisements.

Built from Kubernetes objects as the API serves them (a live read or a snapshot file) by
``ClusterState.from_objects``; the core does no I/O, so the objects arrive already loaded. Calico
objects are parsed by ``bgpflat.core.calico``; Nodes, Services, EndpointSlices and the IPAM kinds
are read here, keeping only the fields calico-facts §3 depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import compress, repeat
from operator import is_not
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

from bgpflat.core.calico import BGPConfiguration, BGPFilter, BGPPeer, IPPool, parse_as_number, parse_resource
from bgpflat.core.calico.node import ANNOTATION_AS, ANNOTATION_IPIP, ANNOTATION_IPV4, ANNOTATION_IPV6, ANNOTATION_RR
from bgpflat.core.calico.releases import ASSUMED_CALICO_VERSION as ASSUMED_CALICO_VERSION
from bgpflat.core.calico.releases import parse_calico_version as parse_calico_version
from bgpflat.core.net.prefixes import Prefix, canonical_address, parse_address
from bgpflat.errors import SpecError

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_CALICO_KINDS = {"IPPool", "BGPPeer", "BGPConfiguration", "BGPFilter"}
_CALICO_GROUPS = ("projectcalico.org/", "crd.projectcalico.org/")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInfo:
    """A node's BGP identity (calico-facts §2.4) and labels."""

    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    ipv4_address: str | None = None  # the IP of projectcalico.org/IPv4Address
    ipv4_network: Prefix | None = None  # its subnet (the annotation's prefix length)
    ipv6_address: str | None = None
    as_number: int | None = None  # projectcalico.org/ASNumber
    rr_cluster_id: str | None = None
    ipip_tunnel_address: str | None = None

    @property
    def excluded_from_load_balancers(self) -> bool:
        # Calico checks the label's presence with value "true" (routes.go), as kube-proxy does.
        return self.labels.get(EXCLUDE_LABEL, "").lower() == "true"

    @property
    def is_route_reflector(self) -> bool:
        return bool(self.rr_cluster_id)

    def bgp_address(self, version: int) -> str | None:
        """The address the node runs BGP from in IP ``version`` (None: no BGP in that family)."""
        return self.ipv4_address if version == 4 else self.ipv6_address


@dataclass(frozen=True, slots=True, kw_only=True)
class Affinity:
    """A BlockAffinity: block ``cidr`` is affine to ``node``."""

    cidr: Prefix
    node: str
    state: str = "confirmed"
    deleted: bool = False
    type: str = "host"


class Allocation(NamedTuple):
    """One allocated address of an IPAM block and who holds it."""

    address: Prefix  # host prefix (/32 or /128)
    node: str
    kind: str  # "workload", or the secondary type (ipipTunnelAddress, …)
    owner: str  # namespace/pod, or the handle
    block: Prefix


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    cidr: Prefix
    affinity: str | None  # "host:<node>", "virtual:load-balancer", or None


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    cluster_ip: str | None = None  # spec.clusterIP ("None" for headless)
    cluster_ips: tuple[str, ...] = ()  # spec.clusterIPs
    external_ips: tuple[str, ...] = ()
    load_balancer_ip: str | None = None  # deprecated spec.loadBalancerIP
    ingress_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip
    external_traffic_policy: str | None = None
    ip_families: tuple[str, ...] = ()  # spec.ipFamilies ("IPv4", "IPv6"), filled in by the API server

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def headless(self) -> bool:
        return not self.cluster_ip or self.cluster_ip == "None"


class EndpointRef(NamedTuple):
    node: str  # "" when the endpoint names no node
    ready: bool | None  # None: the condition was not reported ("unknown", treated as ready)
    # 4 or 6: the EndpointSlice's addressType, else the address's family the way confd tells it
    # (a colon makes it IPv6); None when not known (then it counts for any Service).
    family: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterState:
    """Everything the advertisement model reads, indexed by name."""

    nodes: Mapping[str, NodeInfo] = field(default_factory=dict)
    pools: tuple[IPPool, ...] = ()
    peers: tuple[BGPPeer, ...] = ()
    filters: Mapping[str, BGPFilter] = field(default_factory=dict)
    bgp_configuration: BGPConfiguration | None = None  # the `default` object
    node_configurations: Mapping[str, BGPConfiguration] = field(default_factory=dict)  # node.<name>
    affinities: tuple[Affinity, ...] = ()
    blocks: tuple[Block, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    services: tuple[Service, ...] = ()
    # service key -> endpoints, from EndpointSlices (v3.31+) and from Endpoints (≤v3.30)
    slice_endpoints: Mapping[str, tuple[EndpointRef, ...]] = field(default_factory=dict)
    endpoints: Mapping[str, tuple[EndpointRef, ...]] = field(default_factory=dict)
    calico_version: str | None = None
    strict_affinity: bool | None = None
    notes: tuple[str, ...] = ()

    @property
    def default_as_number(self) -> int:
        config = self.bgp_configuration
        return config.effective_as_number if config is not None else 64512

    @property
    def mesh_enabled(self) -> bool:
        config = self.bgp_configuration
        return config.mesh_enabled if config is not None else True

    def node_as(self, node: NodeInfo) -> int:
        """The node's AS: its own annotation, else the default BGPConfiguration, else 64512."""
        return node.as_number if node.as_number is not None else self.default_as_number

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]], *, memo: ParseMemo | None = None) -> ClusterState:
        """Build the state from Kubernetes objects (dicts as served); unknown kinds are ignored.

        ``memo``: shared by builds over mostly the same objects (the cluster before and after a
        plan), so that an object in both is read once.
        """
        return _Builder(memo or ParseMemo(keep=False)).build(objects)


class ParseMemo:
    """What the bulk objects of a cluster (Nodes, IPAM blocks, affinities) were read as, by object.

    A plan's route impact builds the cluster twice, before and after its changes, from lists that
    share all but the changed objects: with one memo the tens of thousands of IPAM blocks of a
    large cluster are read once. An object is known by identity, and kept alive here so that its
    identity cannot pass to another object.
    """

    __slots__ = ("_keep", "_parsed", "cidrs")

    def __init__(self, *, keep: bool = True) -> None:
        self._parsed: dict[int, tuple[Mapping[str, Any], Any]] = {}
        self._keep = keep  # False: a single build, which would only pay for the index
        # Block CIDRs parsed once: each block's BlockAffinity and IPAMBlock share one object,
        # which halves the block prefixes every garbage collection walks in a large cluster.
        self.cidrs: dict[str, Prefix] = {}

    def read(self, obj: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], _Parsed]) -> _Parsed:
        """``parse(obj)``, or what it gave for this very object before."""
        found = self._parsed.get(id(obj))
        if found is not None and found[0] is obj:
            parsed: _Parsed = found[1]
            return parsed
        parsed = parse(obj)
        if self._keep:
            self._parsed[id(obj)] = (obj, parsed)
        return parsed


_Parsed = TypeVar("_Parsed")


# --- building ------------------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _where(index: int, obj: Mapping[str, Any]) -> str:
    return f"objects[{index}] ({obj.get('kind')} {_meta(obj).get('name', '?')})"


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value if isinstance(v, str) and v)


class _Builder:
    def __init__(self, memo: ParseMemo) -> None:
        self.memo = memo
        self.nodes: dict[str, NodeInfo] = {}
        self.pools: list[IPPool] = []
        self.peers: list[BGPPeer] = []
        self.filters: dict[str, BGPFilter] = {}
        self.default_config: BGPConfiguration | None = None
        self.node_configs: dict[str, BGPConfiguration] = {}
        self.affinities: list[Affinity] = []
        self.blocks: list[Block] = []
        self.allocations: list[Allocation] = []
        self.services: list[Service] = []
        self.slices: dict[str, list[EndpointRef]] = {}
        self.endpoints: dict[str, list[EndpointRef]] = {}
        self.version: str | None = None
        self.strict_affinity: bool | None = None
        self.notes: list[str] = []

    def build(self, objects: Iterable[Mapping[str, Any]]) -> ClusterState:
        for index, obj in enumerate(objects):
            if not isinstance(obj, Mapping):
                raise SpecError("expected a Kubernetes object (a mapping)", path=f"objects[{index}]")
            kind = obj.get("kind")
            api = str(obj.get("apiVersion") or "")
            try:
                self._one(kind, api, obj, index)
            except SpecError as exc:
                if exc.path and exc.path.startswith("objects["):
                    raise
                where = _where(index, obj)
                raise SpecError(
                    exc.message,
                    file=exc.file,
                    path=f"{where}.{exc.path}" if exc.path else where,
                    line=exc.line,
                    fix=exc.fix,
                ) from None
        return ClusterState(
            nodes=MappingProxyType(dict(sorted(self.nodes.items()))),
            pools=tuple(sorted(self.pools, key=lambda p: p.name)),
            peers=tuple(sorted(self.peers, key=lambda p: p.name)),
            filters=MappingProxyType(dict(sorted(self.filters.items()))),
            bgp_configuration=self.default_config,
            node_configurations=MappingProxyType(dict(sorted(self.node_configs.items()))),
            affinities=tuple(self.affinities),
            blocks=tuple(self.blocks),
            allocations=tuple(self.allocations),
            services=tuple(sorted(self.services, key=lambda s: (s.namespace, s.name))),
            slice_endpoints=MappingProxyType({k: tuple(v) for k, v in sorted(self.slices.items())}),
            endpoints=MappingProxyType({k: tuple(v) for k, v in sorted(self.endpoints.items())}),
            calico_version=self.version,
            strict_affinity=self.strict_affinity,
            notes=tuple(self.notes),
        )

    def _one(self, kind: object, api: str, obj: Mapping[str, Any], index: int) -> None:
        calico = api.startswith(_CALICO_GROUPS)
        if kind in _CALICO_KINDS and calico:
            self._calico(obj)
        elif kind == "Node":
            self._node(obj, calico)
        elif kind == "BlockAffinity" and calico:
            self._affinity(obj)
        elif kind == "IPAMBlock" and calico:
            self._block(obj)
        elif kind == "Service" and api == "v1":
            self._service(obj)
        elif kind == "EndpointSlice" and api.startswith("discovery.k8s.io/"):
            self._slice(obj)
        elif kind == "Endpoints" and api == "v1":
            self._endpoints(obj)
        elif kind == "ClusterInformation" and calico:
            version = _spec(obj).get("calicoVersion")
            if isinstance(version, str) and version:
                self.version = version
        elif kind in ("IPAMConfig", "IPAMConfiguration") and calico:
            strict = _spec(obj).get("strictAffinity")
            if isinstance(strict, bool):
                self.strict_affinity = strict

    def _calico(self, obj: Mapping[str, Any]) -> None:
        resource = parse_resource(obj)
        if isinstance(resource, IPPool):
            self.pools.append(resource)
        elif isinstance(resource, BGPPeer):
            self.peers.append(resource)
        elif isinstance(resource, BGPFilter):
            self.filters[resource.name] = resource
        elif isinstance(resource, BGPConfiguration):
            if resource.name == "default":
                self.default_config = resource
            elif resource.name.startswith("node."):
                self.node_configs[resource.name[len("node.") :]] = resource
            else:
                # confd logs "Bad value" and ignores other names (calico-facts §1.3).
                self.notes.append(f"BGPConfiguration {resource.name!r} is ignored by Calico (not default/node.<name>)")

    def _node(self, obj: Mapping[str, Any], calico: bool) -> None:
        node = self.memo.read(obj, partial(_node_info, calico=calico))
        if node.name in self.nodes and calico:
            return  # the core v1 Node is the source of truth in KDD; a v3 copy adds nothing
        self.nodes[node.name] = node

    def _cidr(self, value: object) -> Prefix:
        found = self.memo.cidrs.get(value) if isinstance(value, str) else None
        if found is None:
            found = _cidr(value, "spec.cidr")
            self.memo.cidrs[str(value)] = found
        return found

    def _affinity(self, obj: Mapping[str, Any]) -> None:
        self.affinities.append(self.memo.read(obj, self._parse_affinity))

    def _parse_affinity(self, obj: Mapping[str, Any]) -> Affinity:
        spec = _spec(obj)
        deleted = spec.get("deleted")
        return Affinity(
            cidr=self._cidr(spec.get("cidr")),
            node=str(spec.get("node") or ""),
            state=str(spec.get("state") or "confirmed"),
            deleted=deleted is True or str(deleted).lower() == "true",
            type=str(spec.get("type") or "host"),
        )

    def _block(self, obj: Mapping[str, Any]) -> None:
        block, allocations = self.memo.read(obj, self._parse_block)
        self.blocks.append(block)
        self.allocations.extend(allocations)

    def _parse_block(self, obj: Mapping[str, Any]) -> tuple[Block, list[Allocation]]:
        spec = _spec(obj)
        cidr = self._cidr(spec.get("cidr"))
        affinity = spec.get("affinity")
        if affinity is not None and not isinstance(affinity, str):
            # str(42) would make a block of no node that the model then quietly leaves out.
            raise SpecError(
                f"expected text like 'host:node-1', got {affinity!r}", path="spec.affinity", fix="host:<node name>"
            )
        allocations = spec.get("allocations") or []
        attributes = spec.get("attributes") or []
        if not isinstance(allocations, list) or not isinstance(attributes, list):
            raise SpecError("allocations and attributes must be lists", path="spec.allocations")
        out: list[Allocation] = []
        version, base, host_length = cidr.version, cidr.value, cidr.max_length
        # Named tuples made by tuple.__new__ in C: their own __new__ is a Python call per address.
        new_tuple: Any = tuple.__new__
        # Most of a block's addresses are free (None): the used offsets picked out in one C pass.
        for offset in compress(range(len(allocations)), map(is_not, allocations, repeat(None))):
            attr_index = allocations[offset]
            if not isinstance(attr_index, int) or not 0 <= attr_index < len(attributes):
                raise SpecError(f"allocation {offset} points at no attribute", path=f"spec.allocations[{offset}]")
            attribute = attributes[attr_index] or {}
            secondary = attribute.get("secondary") or {}
            node = secondary.get("node")
            if not node:
                continue  # no node recorded: nothing tells which kernel holds the route
            kind = str(secondary.get("type") or "workload")
            pod = secondary.get("pod")
            owner = f"{secondary.get('namespace', '')}/{pod}" if pod else str(attribute.get("handle_id") or "")
            address = new_tuple(Prefix, (version, base + offset, host_length))
            out.append(new_tuple(Allocation, (address, str(node), kind, owner, cidr)))
        return Block(cidr=cidr, affinity=affinity or None), out

    def _service(self, obj: Mapping[str, Any]) -> None:
        meta, spec = _meta(obj), _spec(obj)
        status = obj.get("status") or {}
        ingress = ((status.get("loadBalancer") or {}).get("ingress")) or []
        self.services.append(
            Service(
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta.get("name") or ""),
                type=str(spec.get("type") or "ClusterIP"),
                cluster_ip=str(spec["clusterIP"]) if spec.get("clusterIP") else None,
                cluster_ips=_strings(spec.get("clusterIPs")),
                ip_families=_strings(spec.get("ipFamilies")),
                external_ips=_strings(spec.get("externalIPs")),
                load_balancer_ip=str(spec["loadBalancerIP"]) if spec.get("loadBalancerIP") else None,
                ingress_ips=tuple(str(i["ip"]) for i in ingress if isinstance(i, Mapping) and i.get("ip")),
                external_traffic_policy=str(spec["externalTrafficPolicy"])
                if spec.get("externalTrafficPolicy")
                else None,
            )
        )

    def _slice(self, obj: Mapping[str, Any]) -> None:
        meta = _meta(obj)
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service:
            return
        key = f"{meta.get('namespace') or 'default'}/{service}"
        refs = self.slices.setdefault(key, [])
        family = _SLICE_FAMILIES.get(str(obj.get("addressType") or ""))
        for endpoint in obj.get("endpoints") or []:
            addresses = endpoint.get("addresses")
            if not addresses:
                continue  # confd walks the addresses: an endpoint without one counts for nothing
            # No nodeName (the apiserver's own default/kubernetes, endpoints outside the cluster):
            # local to no node, but the Service still "has endpoints" (aggregation Disabled).
            node = endpoint.get("nodeName") or ""
            ready = (endpoint.get("conditions") or {}).get("ready")
            refs.append(
                EndpointRef(str(node), ready if isinstance(ready, bool) else None, family or _family(addresses[0]))
            )

    def _endpoints(self, obj: Mapping[str, Any]) -> None:
        meta = _meta(obj)
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        refs = self.endpoints.setdefault(key, [])
        for subset in obj.get("subsets") or []:
            for address in subset.get("addresses") or []:
                if address.get("nodeName"):
                    refs.append(EndpointRef(str(address["nodeName"]), True, _family(address.get("ip"))))
            for address in subset.get("notReadyAddresses") or []:
                if address.get("nodeName"):
                    refs.append(EndpointRef(str(address["nodeName"]), False, _family(address.get("ip"))))


_SLICE_FAMILIES = {"IPv4": 4, "IPv6": 6}


def _family(address: object) -> int | None:
    """An endpoint address's family as confd tells it: IPv6 when it holds a colon."""
    if not isinstance(address, str) or not address:
        return None
    return 6 if ":" in address else 4


def _node_info(obj: Mapping[str, Any], calico: bool) -> NodeInfo:
    """A Node as the model reads it: a core v1 Node, or a projectcalico.org/v3 one (``calico``)."""
    meta = _meta(obj)
    name = str(meta.get("name") or "")
    if not name:
        raise SpecError("a Node has no name", path="metadata.name")
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    if calico:
        # A projectcalico.org/v3 Node (calicoctl output): BGP data in spec.bgp.
        bgp = _spec(obj).get("bgp") or {}
        ipv4, ipv6 = bgp.get("ipv4Address"), bgp.get("ipv6Address")
        asn, rr, ipip = bgp.get("asNumber"), bgp.get("routeReflectorClusterID"), bgp.get("ipv4IPIPTunnelAddr")
    else:
        annotations = meta.get("annotations") or {}
        ipv4, ipv6 = annotations.get(ANNOTATION_IPV4), annotations.get(ANNOTATION_IPV6)
        asn, rr = annotations.get(ANNOTATION_AS), annotations.get(ANNOTATION_RR)
        ipip = annotations.get(ANNOTATION_IPIP)
    address4, network4 = _interface_address(ipv4, f'metadata.annotations["{ANNOTATION_IPV4}"]')
    address6, _ = _interface_address(ipv6, f'metadata.annotations["{ANNOTATION_IPV6}"]')
    return NodeInfo(
        name=name,
        labels=MappingProxyType(dict(sorted(labels.items()))),
        ipv4_address=address4,
        ipv4_network=network4,
        ipv6_address=address6,
        as_number=None if asn in (None, "") else parse_as_number(asn, path=("metadata", "annotations", ANNOTATION_AS)),
        rr_cluster_id=str(rr) if rr else None,
        ipip_tunnel_address=canonical_address(str(ipip)) if ipip else None,
    )


def _cidr(value: object, path: str) -> Prefix:
    if not isinstance(value, str):
        raise SpecError(f"expected a CIDR, got {value!r}", path=path)
    try:
        return Prefix.parse(value, strict=False)
    except SpecError as exc:
        raise SpecError(exc.message, path=path, fix=exc.fix) from None


def _interface_address(value: object, path: str) -> tuple[str | None, Prefix | None]:
    """``10.0.0.5/24`` -> ("10.0.0.5", 10.0.0.0/24); a bare address gets a host prefix."""
    if value in (None, ""):
        return None, None
    if not isinstance(value, str):
        raise SpecError(f"expected an address like 10.0.0.5/24, got {value!r}", path=path)
    address, _, _ = value.partition("/")
    try:
        version, number = parse_address(address)
        network = Prefix.parse(value, strict=False)
    except SpecError as exc:
        raise SpecError(exc.message, path=path, fix="write the node address as ip/prefix-length") from None
    del version, number
    return canonical_address(address), network


def calico_version(text: str | None) -> tuple[str, tuple[int, int, int], str | None]:
    """The Calico version to follow, parsed: ``text`` if understood, else the assumed one and a
    note saying so."""
    parsed = parse_calico_version(text)
    if parsed is not None and text:
        return text, parsed, None
    if text:
        note = f"Calico version {text!r} not understood; assuming {ASSUMED_CALICO_VERSION}"
    else:
        note = f"Calico version unknown (no ClusterInformation); assuming {ASSUMED_CALICO_VERSION}"
    assumed = parse_calico_version(ASSUMED_CALICO_VERSION)
    assert assumed is not None
    return ASSUMED_CALICO_VERSION, assumed, note
