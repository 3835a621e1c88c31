"""Each lab node's BIRD 1.6 configuration, rendered from raw Kubernetes/Calico objects the way confd does.

calico/node does not compute routes: confd turns the datastore into three BIRD files
(``bird.cfg``, ``bird_aggr.cfg``, ``bird_ipam.cfg``, templates of Calico v3.30) and BIRD does the
rest. The lab does the same, so that what the fabric learns comes from a real BIRD running a
confd-shaped config — a derivation independent of bgpflat's expected-route model
(``bgpflat.core.routes.advertise``), with which this module deliberately shares no code. ``verify`` then
compares two independent answers.

Input is the object list as the API server serves it (``projectcalico.org/v3`` or
``crd.projectcalico.org/v1`` Calico objects, core ``Node``/``Service``/``Secret``, discovery
``EndpointSlice``, IPAM ``BlockAffinity``). What follows confd (v3.30 unless noted):

* static blackholes for the node's affine blocks that are not ``pending`` (``/32`` blocks
  excepted), ``calico_aggr`` accepting a confirmed block and rejecting what lies beneath it;
* ``/staticroutes``: the global service ranges (``serviceClusterIPs``, non-single
  ``serviceExternalIPs``/``serviceLoadBalancerIPs``) unless the node carries
  ``node.kubernetes.io/exclude-from-external-load-balancers=true``, and per-service ``/32``s from
  ``advertiseThisService`` (ETP Local with a ready local endpoint; ETP Cluster single-address
  entries); ``/rejectcidrs`` keep learned service routes out of the kernel;
* ``calico_export_to_bgp_peers(internal)``: disableBGPExport rejects, tunnel-route and BPF rejects,
  communities, aggregation, static routes, route-reflector LB ranges, pool accepts;
* the node-to-node mesh (``passive on`` towards peers whose address compares higher, with Go's
  *string* comparison as the template does), global, node-specific and reverse peerings as
  ``updatePeersV1`` emits them, with ``ttl security``/``multihop``, ``next hop keep``/``self``,
  ``rr client``, ``allow local as``, graceful-restart time, passwords from Secrets and
  ``reachableBy`` static routes;
* BGPFilters compiled to BIRD functions (``bgpFilterBIRDFuncs``), called first in each peer's
  import and export filter.

Stock BIRD 1.6 lacks the Calico fork's ``krt_tunnel`` attribute, so ``calico_kernel_programming``
keeps the per-pool structure without it: the lab's nodes share one L2 segment and route to remote
blocks natively, IPIP or not.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.net.selector import parse_selector
from bgpflat.errors import SpecError

Obj = Mapping[str, Any]

GLOBAL_AS_DEFAULT = "64512"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CALICO_METADATA_ANNOTATION = "projectcalico.org/metadata"
_MAX_BIRD_SYMBOL = 64


# -- reading raw objects ---------------------------------------------------------------------------
def _spec(obj: Obj) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _labels(obj: Obj) -> dict[str, str]:
    """Labels as Calico reads them: v1 Calico objects keep user labels in a JSON annotation."""
    meta = _meta(obj)
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    packed = (meta.get("annotations") or {}).get(CALICO_METADATA_ANNOTATION)
    if packed and str(obj.get("apiVersion", "")).startswith("crd.projectcalico.org/"):
        with contextlib.suppress(ValueError, AttributeError):
            labels.update({str(k): str(v) for k, v in (json.loads(packed).get("labels") or {}).items()})
    return labels


def _of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return sorted((o for o in objects if o.get("kind") == kind), key=_name)


def _go_duration_seconds(text: str) -> int:
    """``maxRestartTime`` is a Go duration (``"2m30s"``); confd writes it as rounded seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(h|ms|m|s|us|µs|ns)", str(text))
    if not parts:
        raise SpecError(f"{text!r} is not a duration")
    return round(sum(float(number) * units[unit] for number, unit in parts))


def _asn_text(value: Any) -> str:
    """An AS number as confd writes it: plain, or ``a.b`` asdot turned into asplain."""
    text = str(value).strip()
    if "." in text:
        high, low = text.split(".", 1)
        return str((int(high) << 16) + int(low))
    return str(int(text))


@dataclass(frozen=True, slots=True, kw_only=True)
class _Node:
    name: str
    labels: Mapping[str, str]
    ipv4: str  # address only; "" when the node has none
    ipv4_network: str  # the node's subnet from the annotation's prefix length
    asn: str | None
    rr_cluster_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class _Pool:
    cidr: Prefix
    ipip_mode: str
    vxlan_mode: str
    disable_bgp_export: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Peer:
    """One peering in confd's ``bgpPeer`` JSON shape (``client.go``)."""

    ip: str
    port: int
    as_num: str
    source_addr: str
    restart_time: str
    rr_cluster_id: str
    password: str
    keep_next_hop: bool
    next_hop_mode: str
    calico_node: bool
    ttl_security: int
    filters: tuple[str, ...]
    num_allow_local_as: int
    reachable_by: str
    local_as: str

    @property
    def key(self) -> str:
        """libcalico's ``combineIPAndPort``: the default port 179 is left out of the key."""
        return f"{self.ip}-{self.port}" if self.port not in (0, 179) else self.ip


def _node_from(obj: Obj) -> _Node:
    meta = _meta(obj)
    annotations = meta.get("annotations") or {}
    spec_bgp = _spec(obj).get("bgp") or {}
    address = str(annotations.get("projectcalico.org/IPv4Address") or spec_bgp.get("ipv4Address") or "")
    ipv4, network = "", ""
    if address:
        ip_text, _, length = address.partition("/")
        ipv4 = Prefix.host(ip_text).network_address
        network = str(Prefix.parse(f"{ipv4}/{length or 32}", strict=False))
    asn = annotations.get("projectcalico.org/ASNumber") or spec_bgp.get("asNumber")
    return _Node(
        name=_name(obj),
        labels=_labels(obj),
        ipv4=ipv4,
        ipv4_network=network,
        asn=_asn_text(asn) if asn not in (None, "") else None,
        rr_cluster_id=str(
            annotations.get("projectcalico.org/RouteReflectorClusterID")
            or spec_bgp.get("routeReflectorClusterID")
            or ""
        ),
    )


# -- the datastore view confd works from -----------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class CalicoDatastore:
    """The parts of the cluster confd reads, indexed once for rendering every node."""

    nodes: tuple[_Node, ...]
    pools: tuple[_Pool, ...]
    default_config: Mapping[str, Any]
    node_configs: Mapping[str, Mapping[str, Any]]
    peers: tuple[Obj, ...]
    filters: tuple[Obj, ...]
    affinities: tuple[Obj, ...]
    services: tuple[Obj, ...]
    slices: tuple[Obj, ...]
    secrets: tuple[Obj, ...] = field(default=())

    @classmethod
    def from_objects(cls, objects: Iterable[Obj]) -> CalicoDatastore:
        objects = list(objects)
        configs = {_name(o): _spec(o) for o in _of_kind(objects, "BGPConfiguration")}
        pools = []
        for obj in _of_kind(objects, "IPPool"):
            spec = _spec(obj)
            cidr = Prefix.parse(str(spec.get("cidr")), strict=False)
            if cidr.version != 4:
                continue
            pools.append(
                _Pool(
                    cidr=cidr,
                    ipip_mode=str(spec.get("ipipMode") or "Never"),
                    vxlan_mode=str(spec.get("vxlanMode") or "Never"),
                    disable_bgp_export=bool(spec.get("disableBGPExport")),
                )
            )
        return cls(
            nodes=tuple(_node_from(o) for o in _of_kind(objects, "Node")),
            pools=tuple(pools),
            default_config=configs.get("default", {}),
            node_configs={k.removeprefix("node."): v for k, v in configs.items() if k.startswith("node.")},
            peers=tuple(_of_kind(objects, "BGPPeer")),
            filters=tuple(_of_kind(objects, "BGPFilter")),
            affinities=tuple(_of_kind(objects, "BlockAffinity")),
            services=tuple(_of_kind(objects, "Service")),
            slices=tuple(_of_kind(objects, "EndpointSlice")),
            secrets=tuple(_of_kind(objects, "Secret")),
        )

    # global values, with confd's defaults
    @property
    def global_as(self) -> str:
        value = self.default_config.get("asNumber")
        return _asn_text(value) if value not in (None, "") else GLOBAL_AS_DEFAULT

    @property
    def mesh_enabled(self) -> bool:
        value = self.default_config.get("nodeToNodeMeshEnabled")
        return True if value is None else bool(value)

    def node(self, name: str) -> _Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise SpecError(f"no Node {name!r} among the objects")

    def node_as(self, node: _Node) -> str:
        return node.asn or self.global_as

    def listen_port(self, node_name: str) -> int:
        """Per-node ``node.<name>`` listenPort, else the global one, else 0 (BIRD's default, 179)."""
        for spec in (self.node_configs.get(node_name, {}), self.default_config):
            if spec.get("listenPort"):
                return int(spec["listenPort"])
        return 0

    def nodes_matching(self, selector: str) -> list[_Node]:
        parsed = parse_selector(selector)
        return [n for n in self.nodes if parsed.matches(n.labels)]

    def secret_value(self, ref: Mapping[str, Any] | None) -> str:
        if not ref:
            return ""
        for secret in self.secrets:
            if _name(secret) != ref.get("name"):
                continue
            data = secret.get("data") or {}
            if ref.get("key") in data:
                try:
                    return base64.b64decode(str(data[ref["key"]])).decode()
                except (binascii.Error, UnicodeDecodeError):
                    return ""
            string_data = secret.get("stringData") or {}
            return str(string_data.get(ref.get("key"), ""))
        return ""


# -- peerings (client.go updatePeersV1) ------------------------------------------------------------
def _split_peer_ip(text: str) -> tuple[str, int]:
    """``ip``, ``ip:port`` or ``[v6]:port``."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return host, int(port or 0)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, 0


def _peer_fields(ds: CalicoDatastore, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``setPeerConfigFieldsFromV3Resource`` plus the fields every emitted peering copies."""
    restart = spec.get("maxRestartTime")
    return {
        "source_addr": str(spec.get("sourceAddress") or "UseNodeIP"),
        "restart_time": str(_go_duration_seconds(restart)) if restart else "",
        "password": ds.secret_value((spec.get("password") or {}).get("secretKeyRef")),
        "ttl_security": int(spec.get("ttlSecurity") or 0),
        "filters": tuple(str(f) for f in spec.get("filters") or ()),
        "reachable_by": str(spec.get("reachableBy") or ""),
        "next_hop_mode": str(spec.get("nextHopMode") or ""),
        "local_as": _asn_text(spec["localASNumber"]) if spec.get("localASNumber") not in (None, "") else "",
    }


def _node_as_peer(ds: CalicoDatastore, node: _Node, spec: Mapping[str, Any]) -> _Peer | None:
    """``nodeAsBGPPeers`` for IPv4: another Calico node as the far end."""
    if not node.ipv4:
        return None
    fields = _peer_fields(ds, spec)
    return _Peer(
        ip=node.ipv4,
        port=ds.listen_port(node.name),
        as_num=ds.node_as(node),
        rr_cluster_id=node.rr_cluster_id,
        keep_next_hop=False,
        calico_node=False,
        num_allow_local_as=0,
        **fields,
    )


def peerings(ds: CalicoDatastore) -> tuple[dict[str, _Peer], dict[str, dict[str, _Peer]]]:
    """Global peerings and node-specific peerings per node, keyed like confd's v1 peer keys."""
    global_peers: dict[str, _Peer] = {}
    node_peers: dict[str, dict[str, _Peer]] = {}
    node_ips = {n.ipv4 for n in ds.nodes if n.ipv4}

    def emit(local: str | None, peer: _Peer) -> None:
        if local is None:
            global_peers.setdefault(peer.key, peer)
            return
        if peer.key in global_peers:
            return  # a global peering to the same IP and port wins
        node_peers.setdefault(local, {}).setdefault(peer.key, peer)

    for global_pass in (True, False):
        for obj in ds.peers:
            spec = _spec(obj)
            node_selector, node_name = str(spec.get("nodeSelector") or ""), str(spec.get("node") or "")
            if global_pass != (not node_selector and not node_name):
                continue
            if node_selector:
                locals_ = [n.name for n in ds.nodes_matching(node_selector)]
            else:
                locals_ = [node_name] if node_name else []
            if spec.get("localWorkloadSelector"):
                continue  # peers with workloads on the node: nothing in the lab runs BGP in a pod
            peers: list[_Peer] = []
            if spec.get("peerSelector"):
                for other in ds.nodes_matching(str(spec["peerSelector"])):
                    candidate = _node_as_peer(ds, other, spec)
                    if candidate is not None:
                        peers.append(candidate)
            else:
                host, port = _split_peer_ip(str(spec.get("peerIP") or ""))
                if not host or ":" in host:
                    continue
                host = Prefix.host(host).network_address
                asn = _asn_text(spec.get("asNumber") or 0)
                if port == 0:
                    # A peer that is a Calico node is reached on that node's listen port.
                    matching = [n for n in ds.nodes if n.ipv4 == host and ds.node_as(n) == asn]
                    if matching:
                        port = ds.listen_port(matching[0].name)
                peers.append(
                    _Peer(
                        ip=host,
                        port=port,
                        as_num=asn,
                        rr_cluster_id="",
                        keep_next_hop=bool(spec.get("keepOriginalNextHop")),
                        calico_node=host in node_ips,
                        num_allow_local_as=int(spec.get("numAllowedLocalASNumbers") or 0),
                        **_peer_fields(ds, spec),
                    )
                )
            for peer in peers:
                if global_pass:
                    emit(None, peer)
                else:
                    for local in locals_:
                        emit(local, peer)

    # Reverse peerings: a BGPPeer whose far end is a Calico node makes that node peer back.
    for obj in ds.peers:
        spec = _spec(obj)
        if spec.get("localWorkloadSelector"):
            continue
        if spec.get("peerSelector"):
            reverse_locals = ds.nodes_matching(str(spec["peerSelector"]))
        else:
            host, port = _split_peer_ip(str(spec.get("peerIP") or ""))
            if not host or ":" in host:
                continue
            asn = _asn_text(spec.get("asNumber") or 0)
            reverse_locals = [
                n
                for n in ds.nodes
                if n.ipv4 == host and ds.node_as(n) == asn and (port == 0 or ds.listen_port(n.name) in (port, 0))
            ]
        if not reverse_locals:
            continue
        if spec.get("nodeSelector"):
            far_ends = ds.nodes_matching(str(spec["nodeSelector"]))
        elif spec.get("node"):
            far_ends = [n for n in ds.nodes if n.name == spec["node"]]
        else:
            far_ends = list(ds.nodes)
        for far in far_ends:
            reverse = _node_as_peer(ds, far, spec)
            if reverse is None:
                continue
            for local_node in reverse_locals:
                emit(local_node.name, reverse)
    return global_peers, node_peers


# -- services (routes.go, client.go updateGlobalRoutes) --------------------------------------------
def _cidrs(spec: Mapping[str, Any], key: str) -> list[str]:
    """The IPv4 CIDRs of a BGPConfiguration list (bird.cfg is the IPv4 config; bird6 is not rendered)."""
    return [
        str(item["cidr"])
        for item in spec.get(key) or ()
        if isinstance(item, Mapping) and item.get("cidr") and ":" not in str(item["cidr"])
    ]


def _is_single(cidr: str) -> bool:
    return Prefix.parse(cidr, strict=False).is_host


def _inside(address: str, cidrs: Sequence[str]) -> bool:
    try:
        host = Prefix.host(address)
    except SpecError:
        return False
    return any(Prefix.parse(c, strict=False).contains(host) for c in cidrs)


def _inside_single(address: str, cidrs: Sequence[str]) -> bool:
    return _inside(address, [c for c in cidrs if _is_single(c)])


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRoutes:
    static: tuple[str, ...]  # /staticroutes: blackholes the node originates
    reject: tuple[str, ...]  # /rejectcidrs: never programmed into the kernel when learned


def service_routes(ds: CalicoDatastore, node: _Node) -> ServiceRoutes:
    """The service routes confd gives ``node`` (only the ``default`` BGPConfiguration counts)."""
    spec = ds.default_config
    cluster = _cidrs(spec, "serviceClusterIPs")
    external = _cidrs(spec, "serviceExternalIPs")
    balancer = _cidrs(spec, "serviceLoadBalancerIPs")
    aggregate_lb = str(spec.get("serviceLoadBalancerAggregation") or "Enabled") != "Disabled"
    global_cidrs = [
        *cluster,
        *(c for c in external if not _is_single(c)),
        *(c for c in balancer if aggregate_lb and not _is_single(c)),
    ]
    excluded = node.labels.get(EXCLUDE_LABEL) == "true"
    static: set[str] = set() if excluded else {str(Prefix.parse(c, strict=False)) for c in global_cidrs}
    if not excluded:
        for svc in ds.services:
            static.update(_per_service_routes(ds, svc, node, cluster=cluster, external=external, balancer=balancer))
    return ServiceRoutes(
        static=tuple(sorted(static, key=_key_order)),
        reject=tuple(sorted({str(Prefix.parse(c, strict=False)) for c in global_cidrs}, key=_key_order)),
    )


def _per_service_routes(
    ds: CalicoDatastore,
    svc: Obj,
    node: _Node,
    *,
    cluster: Sequence[str],
    external: Sequence[str],
    balancer: Sequence[str],
) -> list[str]:
    spec = _spec(svc)
    kind = str(spec.get("type") or "ClusterIP")
    cluster_ip = str(spec.get("clusterIP") or "")
    if kind not in ("ClusterIP", "NodePort", "LoadBalancer") or cluster_ip in ("", "None"):
        return []
    etp = str(spec.get("externalTrafficPolicy") or ("Cluster" if kind != "ClusterIP" else ""))
    advertise = False
    if etp == "Cluster":
        if kind == "LoadBalancer" and _inside_single(str(spec.get("loadBalancerIP") or ""), balancer):
            advertise = True
        if kind in ("LoadBalancer", "NodePort") and any(
            _inside_single(str(ip), external) for ip in spec.get("externalIPs") or ()
        ):
            advertise = True
    elif etp == "Local":
        advertise = _has_local_endpoint(ds, svc, node.name, v6=":" in cluster_ip)
    if not advertise:
        return []
    addresses: list[str] = [cluster_ip] if cluster else []
    addresses += [str(ip) for ip in spec.get("externalIPs") or () if _inside(str(ip), external)]
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    addresses += [str(i["ip"]) for i in ingress if i.get("ip") and _inside(str(i["ip"]), balancer)]
    return [str(Prefix.host(a)) for a in addresses if ":" not in a]


def _has_local_endpoint(ds: CalicoDatastore, svc: Obj, node_name: str, *, v6: bool) -> bool:
    namespace = _meta(svc).get("namespace") or "default"
    for eps in ds.slices:
        meta = _meta(eps)
        if (meta.get("namespace") or "default") != namespace:
            continue
        if (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) != _name(svc):
            continue
        for endpoint in eps.get("endpoints") or ():
            ready = (endpoint.get("conditions") or {}).get("ready")
            if ready is False or endpoint.get("nodeName") != node_name:
                continue
            if any((":" in str(a)) == v6 for a in endpoint.get("addresses") or ()):
                return True
    return False


def _key_order(cidr: str) -> str:
    """confd lists ``/staticroutes`` keys (``a.b.c.d-len``) in Go's sorted string order."""
    return cidr.replace("/", "-")


# -- BGPFilter functions (template_funcs.go) -------------------------------------------------------
_OPERATORS = {"Equal": "=", "NotEqual": "!=", "In": "~", "NotIn": "!~"}


def filter_function_name(filter_name: str, direction: str, version: str = "4") -> str:
    """``BGPFilterFunctionName``: quoted, truncated with a hash past BIRD's 64-character limit."""
    pieces_len = len(f"bgp__{direction}FilterV{version}")
    max_len = _MAX_BIRD_SYMBOL - pieces_len
    name = filter_name
    if len(name) > max_len:
        digest = hashlib.sha256(name.encode()).hexdigest().upper()[:16]
        name = f"{name[: max_len - 17]}_{digest}"
    return f"'bgp_{name}_{direction}FilterV{version}'"


def _filter_rule(rule: Mapping[str, Any]) -> str:
    action = str(rule.get("action") or "")
    if action not in ("Accept", "Reject"):
        raise SpecError(f"BGPFilter rule has action {action!r}; expected Accept or Reject")
    statement = f"{action.lower()};"
    conditions = []
    if rule.get("cidr"):
        operator = _OPERATORS.get(str(rule.get("matchOperator") or ""))
        if operator is None:
            raise SpecError(f"BGPFilter rule for {rule['cidr']} has matchOperator {rule.get('matchOperator')!r}")
        cidr = str(rule["cidr"])
        length = rule.get("prefixLength")
        if isinstance(length, Mapping):
            prefix = Prefix.parse(cidr, strict=False)
            low = max(prefix.length, int(length.get("min", prefix.length)))
            high = min(prefix.max_length, int(length.get("max", prefix.max_length)))
            cidr = f"[ {cidr}{{{low},{high}}} ]"
        conditions.append(f"(net {operator} {cidr})")
    if rule.get("source"):
        if rule["source"] != "RemotePeers":
            raise SpecError(f"BGPFilter rule has source {rule['source']!r}; only RemotePeers exists")
        conditions.append("((defined(source))&&(source ~ [ RTS_BGP ]))")
    if rule.get("interface"):
        conditions.append(f'((defined(ifname))&&(ifname ~ "{rule["interface"]}"))')
    if conditions:
        return f"if ({'&&'.join(conditions)}) then {{ {statement} }}"
    return statement


def filter_functions(filters: Iterable[Obj]) -> list[str]:
    """``bgpFilterBIRDFuncs(…, 4)``: one import and one export function per BGPFilter with v4 rules."""
    lines: list[str] = []
    for obj in filters:
        spec, name = _spec(obj), _name(obj)
        imports, exports = spec.get("importV4") or [], spec.get("exportV4") or []
        if not imports and not exports:
            continue
        lines.append(f"# v4 BGPFilter {name}")
        for direction, rules in (("import", imports), ("export", exports)):
            if not rules:
                continue
            lines.append(f"function {filter_function_name(name, direction)}() {{")
            lines.extend(f"  {_filter_rule(rule)}" for rule in rules)
            lines.append("}")
    return lines or ["# No v4 BGPFilters configured"]


# -- rendering -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BirdConfig:
    """The three files confd writes for one node; ``bird.cfg`` includes the other two."""

    node: str
    bird_cfg: str
    bird_aggr_cfg: str
    bird_ipam_cfg: str

    def files(self) -> dict[str, str]:
        return {"bird.cfg": self.bird_cfg, "bird_aggr.cfg": self.bird_aggr_cfg, "bird_ipam.cfg": self.bird_ipam_cfg}


def _debug_line(ds: CalicoDatastore, node_name: str) -> str:
    level = str(ds.node_configs.get(node_name, {}).get("logSeverityScreen") or "")
    level = level or str(ds.default_config.get("logSeverityScreen") or "info")
    level = level.lower() if level.lower() in ("debug", "info") else "none"
    if level == "debug":
        return "  debug all;\n"
    return "" if level == "none" else "  debug { states };\n"


def _communities(ds: CalicoDatastore, node_name: str) -> str:
    node_spec = ds.node_configs.get(node_name, {})
    # A node-specific list, even an empty one, replaces the global list for that node.
    spec = node_spec if node_spec.get("prefixAdvertisements") is not None else ds.default_config
    defined = {str(c.get("name")): str(c.get("value")) for c in spec.get("communities") or ()}
    out = ["function apply_communities ()", "{"]
    for adv in spec.get("prefixAdvertisements") or ():
        cidr = str(adv.get("cidr") or "")
        if ":" in cidr:
            continue
        values = set()
        for community in adv.get("communities") or ():
            text = str(community)
            values.add(text if re.fullmatch(r"\d+:\d+(:\d+)?", text) else defined.get(text, ""))
        out.append(f"      if ( net ~ {cidr} ) then {{")
        for value in sorted(v for v in values if v):
            parts = value.split(":")
            if len(parts) == 2:
                out.append(f"          bgp_community.add(({parts[0]}, {parts[1]}));")
            else:
                out.append(f"          bgp_large_community.add(({parts[0]}, {parts[1]}, {parts[2]}));")
        out.append("      }")
    out.append("}")
    return "\n".join(out) + "\n"


def _affinities_for(ds: CalicoDatastore, node_name: str) -> list[tuple[str, str]]:
    """(cidr, state) of the node's host affinities; confd drops ``pending`` ones as it caches them."""
    found = []
    for obj in ds.affinities:
        spec = _spec(obj)
        if spec.get("node") != node_name or str(spec.get("type") or "host") != "host":
            continue
        if str(spec.get("deleted")).lower() == "true":
            continue
        state = str(spec.get("state") or "")
        if state == "pending":
            continue
        cidr = Prefix.parse(str(spec.get("cidr")), strict=False)
        if cidr.version == 4:
            found.append((str(cidr), state))
    return sorted(found, key=lambda item: _key_order(item[0]))


def _peer_block(
    *,
    kind: str,
    peer: _Peer,
    node: _Node,
    node_as: str,
    node_cluster_id: str,
    filters_present: Mapping[str, Mapping[str, Any]],
    passive_for_calico_node: bool,
) -> str:
    ident = peer.ip.replace(".", "_") + (f"_port_{peer.port}" if peer.port else "")
    lines = [f"protocol bgp {kind}_{ident} from bgp_template {{"]
    if peer.ttl_security:
        lines += ["  ttl security on;", f"  multihop {peer.ttl_security};"]
    else:
        lines += ["  ttl security off;", "  multihop;"]
    port = f"port {peer.port} " if peer.port else ""
    lines.append(f"  neighbor {peer.ip} {port}as {peer.as_num};")
    if peer.local_as:
        lines.append(f"  local as {peer.local_as};")  # BGPPeer localASNumber (v3.31+)
    if peer.source_addr == "UseNodeIP":
        lines.append(f"  source address {node.ipv4};  # The local address we use for the TCP connection")
    lines.append("  import filter {")
    for name in peer.filters:
        if name in filters_present and filters_present[name].get("importV4"):
            lines.append(f"    {filter_function_name(name, 'import')}();")
    lines.append(
        '    accept; # Prior to introduction of BGP Filters we used "import all" so use default accept behaviour'
    )
    lines.append("  };")
    lines.append("  export filter {")
    for name in peer.filters:
        if name in filters_present and filters_present[name].get("exportV4"):
            lines.append(f"    {filter_function_name(name, 'export')}();")
    internal = "true" if peer.as_num == node_as else "false"
    lines += [
        f"    calico_export_to_bgp_peers({internal});",
        "    reject;",
        "  };  # Only want to export routes for workloads.",
    ]
    if passive_for_calico_node and peer.calico_node and peer.ip > node.ipv4:
        lines.append("  passive on; # Peering is unidirectional, peer will connect to us.")
    if peer.restart_time:
        lines.append(f"  graceful restart time {peer.restart_time};")
    if peer.as_num == node_as and node_cluster_id and peer.rr_cluster_id != node_cluster_id:
        lines += ["  rr client;", f"  rr cluster id {node_cluster_id};"]
    if peer.password:
        lines.append(f'  password "{peer.password}";')
    # nextHopMode (v3.31+) wins; the older keepOriginalNextHop applies to eBGP only.
    if peer.next_hop_mode == "Keep" or (not peer.next_hop_mode and peer.as_num != node_as and peer.keep_next_hop):
        lines.append("  next hop keep;")
    elif peer.next_hop_mode == "Self":
        lines.append("  next hop self;")
    if peer.num_allow_local_as:
        lines.append(f"  allow local as {peer.num_allow_local_as};")
    lines.append("}")
    return "\n".join(lines)


def render_node(
    objects_or_store: Iterable[Obj] | CalicoDatastore,
    node_name: str,
    *,
    include_dir: str = "",
    log_target: str | None = None,
    router_id: str | None = None,
) -> BirdConfig:
    """The BIRD config calico/node's confd would write for ``node_name``.

    ``include_dir`` makes the includes absolute (BIRD resolves relative includes against its
    working directory); ``log_target`` (a file, or ``"stderr"``) adds a ``log`` line, which confd
    leaves to the container's default; ``router_id`` stands for ``CALICO_ROUTER_ID`` (``"hash"`` or an address).
    """
    ds = (
        objects_or_store
        if isinstance(objects_or_store, CalicoDatastore)
        else CalicoDatastore.from_objects(objects_or_store)
    )
    node = ds.node(node_name)
    return BirdConfig(
        node=node_name,
        bird_cfg=_render_bird_cfg(ds, node, include_dir=include_dir, log_target=log_target, router_id=router_id),
        bird_aggr_cfg=_render_aggr(ds, node),
        bird_ipam_cfg=_render_ipam(ds, node),
    )


def _hash_router_id(node_name: str) -> str:
    digest = hashlib.sha256(node_name.encode()).digest()
    first = digest[0] - 32 if digest[0] > 223 else digest[0]
    return f"{first}.{digest[1]}.{digest[2]}.{digest[3]}"


def _render_bird_cfg(
    ds: CalicoDatastore, node: _Node, *, include_dir: str, log_target: str | None, router_id: str | None
) -> str:
    debug = _debug_line(ds, node.name)
    prefix = f"{include_dir.rstrip('/')}/" if include_dir else ""
    rid = _hash_router_id(node.name) if router_id == "hash" else (router_id or node.ipv4)
    out = [_communities(ds, node.name), "# Generated by confd", f'include "{prefix}bird_aggr.cfg";']
    out.append(f'include "{prefix}bird_ipam.cfg";')
    if log_target:
        out.append("log stderr all;" if log_target == "stderr" else f'log "{log_target}" all;')
    out.append(f"router id {rid};")
    bind_mode = str(ds.default_config.get("bindMode") or "")
    listen = f" address {node.ipv4}" if bind_mode == "NodeIP" and node.ipv4 else ""
    if ds.listen_port(node.name):
        listen += f" port {ds.listen_port(node.name)}"
    if listen:
        out.append(f"listen bgp{listen};")
    out.append(
        "\n# Configure synchronization between routing tables and kernel.\n"
        "protocol kernel {\n"
        "  learn;             # Learn all alien routes from the kernel\n"
        "  persist;           # Don't remove routes on bird shutdown\n"
        "  scan time 2;       # Scan kernel routing table every 2 seconds\n"
        "  import all;\n"
        "  export filter calico_kernel_programming; # Default is export none\n"
        "  graceful restart;  # Turn on graceful restart to reduce potential flaps in routes\n"
        "  merge paths on;    # Allow export multipath routes (ECMP)\n"
        "}\n\n"
        "# Watch interface up/down events.\n"
        f"protocol device {{\n{debug}  scan time 2;    # Scan interfaces every 2 seconds\n}}\n"
    )
    ignored = [str(i) for i in ds.default_config.get("ignoredInterfaces") or ()]
    interfaces = "".join(f'-"{i}", ' for i in ignored) + '-"cali*", -"kube-ipvs*", "*"'
    # cali* are workload interfaces (their routes come from the kernel protocol); kube-ipvs0 holds
    # every cluster IP in IPVS mode, and service IPs are advertised through static routes instead.
    out.append(f"protocol direct {{\n{debug}  interface {interfaces};\n}}\n")
    if not node.ipv4:
        out.append("# IPv4 disabled on this node.")
        return "\n".join(out) + "\n"
    node_as = ds.node_as(node)
    out.append(
        "# Template for all BGP clients\n"
        "template bgp bgp_template {\n"
        f"{debug}"
        '  description "Connection to BGP peer";\n'
        f"  local as {node_as};\n"
        "  gateway recursive; # This should be the default, but just in case.\n"
        "  add paths on;\n"
        "  graceful restart;  # See comment in kernel section about graceful restart.\n"
        "  connect delay time 2;\n"
        "  connect retry time 5;\n"
        "  error wait time 5,30;\n"
        "}\n"
    )
    out.append("# -------------- BGP Filters ------------------")
    out.extend(filter_functions(ds.filters))
    out.append("\n# ------------- Node-to-node mesh -------------")
    out.append(_render_mesh(ds, node))
    filters_present = {_name(f): _spec(f) for f in ds.filters}
    global_peers, node_peers = peerings(ds)
    # The template's two peer sections differ only in their words, their etcd-style key and
    # passive mode, which the v3.30 template sets for global peers only.
    sections = (
        ("Global", "Global peers", global_peers, "/bgp/v1/global/peer_v4", True),
        ("Node", "Node-specific peers", node_peers.get(node.name, {}), f"/bgp/v1/host/{node.name}/peer_v4", False),
    )
    for kind, title, peers, key_prefix, passive in sections:
        out.append(f"\n# ------------- {title} -------------")
        if not peers:
            out.append(f"# No {title.lower()} configured.")
        for key in sorted(peers):
            peer = peers[key]
            out.append(f"# For peer {key_prefix}/{key}")
            if peer.ip == node.ipv4:
                out.append(f"# Skipping ourselves ({node.ipv4})")
                continue
            out.append(
                _peer_block(
                    kind=kind,
                    peer=peer,
                    node=node,
                    node_as=node_as,
                    node_cluster_id=node.rr_cluster_id,
                    filters_present=filters_present,
                    passive_for_calico_node=passive,
                )
            )
    return "\n".join(out) + "\n"


def _render_mesh(ds: CalicoDatastore, node: _Node) -> str:
    if node.rr_cluster_id:
        return (
            f"# This node ({node.name}) is configured as a route reflector with cluster ID "
            f"{node.rr_cluster_id};\n# ignore node-to-node mesh setting."
        )
    if not ds.mesh_enabled:
        return "# Node-to-node mesh disabled"
    spec = ds.default_config
    restart = spec.get("nodeMeshMaxRestartTime")
    password = ds.secret_value((spec.get("nodeMeshPassword") or {}).get("secretKeyRef"))
    blocks = []
    for other in ds.nodes:  # confd's lsdir lists hosts by name
        if not other.ipv4:
            continue
        blocks.append(f"# For peer /bgp/v1/host/{other.name}/ip_addr_v4")
        if other.ipv4 == node.ipv4:
            blocks.append(f"# Skipping ourselves ({node.ipv4})")
            continue
        if other.rr_cluster_id:
            blocks.append(
                f"# Skipping {other.ipv4} ({other.name}) as it is a route reflector "
                f"with cluster ID {other.rr_cluster_id}"
            )
            continue
        port = ds.listen_port(other.name)
        lines = [
            f"protocol bgp Mesh_{other.ipv4.replace('.', '_')} from bgp_template {{",
            f"  neighbor {other.ipv4} {f'port {port} ' if port else ''}as {ds.node_as(other)};",
            f"  source address {node.ipv4};  # The local address we use for the TCP connection",
            "  import all;        # Import all routes, since we don't know what the upstream",
            "                     # topology is and therefore have to trust the ToR/RR.",
            "  export filter {",
            "    calico_export_to_bgp_peers(true);",
            "    reject;",
            "  };  # Only want to export routes for workloads.",
        ]
        # The template compares the addresses as strings (Go's gt); keeping that makes exactly the
        # same side passive as on a real cluster, where a lexical order is still a total order.
        if other.ipv4 > node.ipv4:
            lines.append("  passive on; # Mesh is unidirectional, peer will connect to us.")
        if restart:
            lines.append(f"  graceful restart time {_go_duration_seconds(restart)};")
        if password:
            lines.append(f'  password "{password}";')
        lines.append("}")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def _render_aggr(ds: CalicoDatastore, node: _Node) -> str:
    blocks = _affinities_for(ds, node.name)
    services = service_routes(ds, node)
    global_peers, node_peers = peerings(ds)
    out = ["# Generated by confd", "protocol static {"]
    added = False
    host_blocks = [cidr for cidr, _ in blocks if not cidr.endswith("/32")]
    if blocks:
        added = True
        out.append("   # IP blocks for this host.")
        out.extend(f"   route {cidr} blackhole;" for cidr in host_blocks)
    if services.static:
        added = True
        out.append("   # Static routes.")
        out.extend(f"   route {cidr} blackhole;" for cidr in services.static)
    for title, peers in (
        ("global BGP peers", global_peers),
        ("node specific BGP peers", node_peers.get(node.name, {})),
    ):
        reachable = [peers[k] for k in sorted(peers) if peers[k].reachable_by]
        if reachable:
            added = True
            out.append(f"   # Static routes needed for {title}.")
            out.extend(f"   route {p.ip}/32 via {p.reachable_by};" for p in reachable)
    if not added:
        out.append("   # No IP blocks or static routes for this host.")
    out.append("}")
    out.append("")
    out.append("# Aggregation of routes on this host; export the block, nothing beneath it.")
    out.append("function calico_aggr ()")
    out.append("{")
    for cidr, state in blocks:
        if state:
            out.append(f"      # Block {cidr} is {state}")
            if state != "confirmed":
                continue
        else:
            out.append(f"      # Block {cidr} is implicitly confirmed.")
        out.append(f"      if ( net = {cidr} ) then {{ accept; }}")
        out.append(f"      if ( net ~ {cidr} ) then {{ reject; }}")
    out.append("}")
    return "\n".join(out) + "\n"


def _render_ipam(ds: CalicoDatastore, node: _Node) -> str:
    pools = sorted(ds.pools, key=lambda p: str(p.cidr).replace("/", "-"))
    services = service_routes(ds, node)
    out = ["# Generated by confd", "function reject_disabled_pools ()", "{"]
    out.extend(f"  if ( net ~ {p.cidr} ) then {{ reject; }}" for p in pools if p.disable_bgp_export)
    out.append("}")
    out.append(
        """
function reject_tunnel_routes () {
  # Don't export tunnel routes to other nodes, Felix programs them.
  if (defined(ifname)) then {
     if ((ifname ~ "*.cali") || (ifname ~ "*.calico")) then {
        reject;
     }
  }
}

function reject_local_routes () {
  # Don't export local routes learned via BPF as they should never leave the node.
  if (defined(ifname)) then {
     if (ifname ~ "bpf*.cali") then {
        reject;
     }
  }
}

function calico_export_to_bgp_peers(bool internal_peer) {
  # filter code terminates when it calls `accept;` or `reject;`,
  # call reject_disabled_pools() first, then reject_tunnel_routes(),
  # then apply_communities() and then calico_aggr()
  reject_disabled_pools();
  if (internal_peer) then {
    reject_tunnel_routes();
  }
  reject_local_routes();
  apply_communities();
  calico_aggr();"""
    )
    if services.static:
        out.append("\n  # Export static routes.")
        out.extend(f"  if ( net ~ {cidr} ) then {{ accept; }}" for cidr in services.static)
    lb_ranges = [c for c in _cidrs(ds.default_config, "serviceLoadBalancerIPs") if ":" not in c]
    if node.rr_cluster_id and lb_ranges:
        out.append("\n  # Configured as a RR - accept any routes within configured LB service IP ranges")
        out.extend(f"  if ( net ~ {cidr} ) then {{ accept; }}" for cidr in lb_ranges)
    for pool in pools:
        if pool.disable_bgp_export:
            out.append(f"  # Skip {pool.cidr} as BGP export is disabled for it")
        else:
            out.append(f"  if ( net ~ {pool.cidr} ) then {{\n    accept;\n  }}")
    out.append("}")
    out.append("")
    out.append("filter calico_kernel_programming {")
    if services.reject:
        out.append("\n  # Don't program static routes into kernel.")
        out.extend(f"  if ( net ~ {cidr} ) then {{ reject; }}" for cidr in services.reject)
    if node.ipv4_network:
        for pool in pools:
            out.append(f"  if ( net ~ {pool.cidr} ) then {{")
            if pool.vxlan_mode != "Never":
                out.append("    # Don't program VXLAN routes into the kernel - these are handled by Felix.")
                out.append("    reject;")
            else:
                # Calico's BIRD sets krt_tunnel = "tunl0" here for IPIP pools (CrossSubnet: only
                # when bgp_next_hop is outside this node's subnet); stock BIRD 1.6 has no such
                # attribute, so the route is programmed natively.
                out.append(f"    # ipipMode {pool.ipip_mode}")
                out.append("    accept;")
            out.append("  }")
    out.append("  accept;")
    out.append("}")
    return "\n".join(out) + "\n"
