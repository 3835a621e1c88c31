"""Calico models -> ``projectcalico.org/v3`` manifests, and the canonical value of each spec field.

``to_manifest`` writes the fields a model's source set plus those that differ from Calico's
defaults. ``normalize_spec_value`` gives the value Calico acts on (defaults applied, CIDRs and AS
numbers canonical, selectors re-printed), so that ``ipipMode: ""`` and a missing ``ipipMode``
compare equal to ``Never`` and a plan never shows a change Calico would not see.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bgpflat.core.calico.models import (
    API_V3,
    SPEC_FIELDS,
    BGPConfiguration,
    BGPFilterRule,
    BGPPeer,
    CalicoResource,
    IPPool,
    PeerAddress,
    SecretKeyRef,
    parse_as_number,
    parse_peer_ip,
)
from bgpflat.core.calico.schema import (
    BGPConfigurationSpec,
    BGPFilterRuleSpec,
    BGPFilterSpec,
    BGPPeerSpec,
    CalicoSpec,
    CIDREntry,
    IPPoolSpec,
    Manifest,
    ObjectMeta,
    PrefixLength,
    SecretSource,
)
from bgpflat.core.net.prefixes import Prefix, canonical_address
from bgpflat.core.net.selector import parse_selector
from bgpflat.errors import SpecError, ValidationError

# --- model -> manifest ---------------------------------------------------------------------------


def _cidrs(prefixes: Sequence[Prefix]) -> list[CIDREntry]:
    return [{"cidr": str(p)} for p in prefixes]


def _secret_json(ref: SecretKeyRef | None) -> SecretSource | None:
    return None if ref is None else {"secretKeyRef": {"name": ref.name, "key": ref.key}}


def _spec_values(resource: CalicoResource) -> CalicoSpec:
    """Every spec field of ``resource`` as manifest JSON (None where unset).

    Each kind's dict is typed with its ``schema`` TypedDict, so a misspelt field fails mypy.
    """
    if isinstance(resource, IPPool):
        pool: IPPoolSpec = {
            "cidr": str(resource.cidr),
            "blockSize": resource.block_size,
            "ipipMode": resource.ipip_mode,
            "vxlanMode": resource.vxlan_mode,
            "natOutgoing": resource.nat_outgoing,
            "disabled": resource.disabled,
            "disableBGPExport": resource.disable_bgp_export,
            "nodeSelector": resource.node_selector,
            "namespaceSelector": resource.namespace_selector,
            "allowedUses": list(resource.allowed_uses),
            "assignmentMode": resource.assignment_mode,
        }
        return pool
    if isinstance(resource, BGPPeer):
        peer_ip = None if resource.peer_ip is None else str(PeerAddress(resource.peer_ip, resource.peer_port))
        peer: BGPPeerSpec = {
            "node": resource.node,
            "nodeSelector": resource.node_selector,
            "peerIP": peer_ip,
            "asNumber": resource.as_number,
            "localASNumber": resource.local_as_number,
            "peerSelector": resource.peer_selector,
            "keepOriginalNextHop": resource.keep_original_next_hop,
            "nextHopMode": resource.next_hop_mode,
            "password": _secret_json(resource.password_secret),
            "sourceAddress": resource.source_address,
            "maxRestartTime": resource.max_restart_time,
            "keepaliveTime": resource.keepalive_time,
            "numAllowedLocalASNumbers": resource.num_allowed_local_as_numbers,
            "ttlSecurity": resource.ttl_security,
            "reachableBy": resource.reachable_by,
            "filters": list(resource.filters),
            "localWorkloadSelector": resource.local_workload_selector,
            "reversePeering": resource.reverse_peering,
        }
        return peer
    if isinstance(resource, BGPConfiguration):
        config: BGPConfigurationSpec = {
            "logSeverityScreen": resource.log_severity_screen,
            "nodeToNodeMeshEnabled": resource.node_to_node_mesh_enabled,
            "asNumber": resource.as_number,
            "serviceClusterIPs": _cidrs(resource.service_cluster_ips),
            "serviceExternalIPs": _cidrs(resource.service_external_ips),
            "serviceLoadBalancerIPs": _cidrs(resource.service_load_balancer_ips),
            "serviceLoadBalancerAggregation": resource.service_load_balancer_aggregation,
            "communities": [{"name": c.name, "value": c.value} for c in resource.communities],
            "prefixAdvertisements": [
                {"cidr": str(a.cidr), "communities": list(a.communities)} for a in resource.prefix_advertisements
            ],
            "listenPort": resource.listen_port,
            "nodeMeshPassword": _secret_json(resource.node_mesh_password),
            "nodeMeshMaxRestartTime": resource.node_mesh_max_restart_time,
            "bindMode": resource.bind_mode,
            "ignoredInterfaces": list(resource.ignored_interfaces),
            "localWorkloadPeeringIPV4": resource.local_workload_peering_ipv4,
            "localWorkloadPeeringIPV6": resource.local_workload_peering_ipv6,
            "programClusterRoutes": resource.program_cluster_routes,
            "ipv4NormalRoutePriority": resource.ipv4_normal_route_priority,
            "ipv6NormalRoutePriority": resource.ipv6_normal_route_priority,
        }
        return config

    def rules(items: Sequence[BGPFilterRule]) -> list[BGPFilterRuleSpec]:
        out = []
        for rule in items:
            entry: BGPFilterRuleSpec = {"action": rule.action}
            if rule.cidr is not None:
                entry["cidr"] = str(rule.cidr)
            if rule.match_operator:
                entry["matchOperator"] = rule.match_operator
            if rule.prefix_length_min is not None or rule.prefix_length_max is not None:
                length: PrefixLength = {}
                if rule.prefix_length_min is not None:
                    length["min"] = rule.prefix_length_min
                if rule.prefix_length_max is not None:
                    length["max"] = rule.prefix_length_max
                entry["prefixLength"] = length
            if rule.source:
                entry["source"] = rule.source
            if rule.interface:
                entry["interface"] = rule.interface
            out.append(entry)
        return out

    bgp_filter: BGPFilterSpec = {
        "exportV4": rules(resource.export_v4),
        "importV4": rules(resource.import_v4),
        "exportV6": rules(resource.export_v6),
        "importV6": rules(resource.import_v6),
    }
    return bgp_filter


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def spec_json(resource: CalicoResource) -> dict[str, Any]:
    """The spec as manifest JSON: fields the source set explicitly, plus those that differ from Calico's default."""
    # Read by field name from here on: the kind's keys come from SPEC_FIELDS.
    values: Mapping[str, Any] = _spec_values(resource)
    explicit: frozenset[str] = getattr(resource, "explicit", frozenset())
    spec: dict[str, Any] = {}
    for key in SPEC_FIELDS[resource.kind]:
        if key not in values:
            continue
        value = values[key]
        if key in explicit:
            if value is not None:
                spec[key] = value
            continue
        if _is_empty(value):
            continue
        if value is False:
            continue
        if normalize_spec_value(resource.kind, key, value, spec=values) == normalize_spec_value(
            resource.kind, key, None, spec=values
        ):
            continue
        spec[key] = value
    if isinstance(resource, IPPool):
        spec["cidr"] = str(resource.cidr)
    return spec


def to_manifest(resource: CalicoResource) -> Manifest:
    """A ``projectcalico.org/v3`` manifest with only the fields that are set."""
    metadata: ObjectMeta = {"name": resource.name}
    if resource.labels:
        metadata["labels"] = dict(resource.labels)
    if resource.annotations:
        metadata["annotations"] = dict(resource.annotations)
    return {"apiVersion": API_V3, "kind": resource.kind, "metadata": metadata, "spec": spec_json(resource)}


# --- canonical field values for comparison -------------------------------------------------------

_DEFAULTS: Mapping[tuple[str, str], Any] = {
    ("IPPool", "ipipMode"): "Never",
    ("IPPool", "vxlanMode"): "Never",
    ("IPPool", "natOutgoing"): False,
    ("IPPool", "disabled"): False,
    ("IPPool", "disableBGPExport"): False,
    ("IPPool", "nodeSelector"): "all()",
    ("IPPool", "allowedUses"): ["Tunnel", "Workload"],
    ("IPPool", "assignmentMode"): "Automatic",
    ("BGPPeer", "keepOriginalNextHop"): False,
    ("BGPPeer", "filters"): [],
    ("BGPPeer", "sourceAddress"): "UseNodeIP",
    ("BGPConfiguration", "nodeToNodeMeshEnabled"): True,
    ("BGPConfiguration", "asNumber"): 64512,
    ("BGPConfiguration", "listenPort"): 179,
    ("BGPConfiguration", "logSeverityScreen"): "Info",
    ("BGPConfiguration", "serviceClusterIPs"): [],
    ("BGPConfiguration", "serviceExternalIPs"): [],
    ("BGPConfiguration", "serviceLoadBalancerIPs"): [],
    ("BGPConfiguration", "communities"): [],
    ("BGPConfiguration", "prefixAdvertisements"): [],
    ("BGPConfiguration", "ignoredInterfaces"): [],
    ("BGPConfiguration", "serviceLoadBalancerAggregation"): "Enabled",
    ("BGPConfiguration", "bindMode"): "None",
}


def spec_default(kind: str, key: str, spec: Mapping[str, Any] | None = None) -> Any:
    """Calico's default for a spec field (``None`` if it has none)."""
    if kind == "IPPool" and key == "blockSize":
        cidr = (spec or {}).get("cidr")
        return 122 if isinstance(cidr, str) and ":" in cidr else 26
    return _DEFAULTS.get((kind, key))


def _canonical_selector(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return str(parse_selector(value))
    except SpecError:
        return value


def _canonical_cidr_entries(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    out = set()
    for item in value:
        cidr = item.get("cidr") if isinstance(item, Mapping) else None
        try:
            text = str(Prefix.parse(cidr, strict=False)) if isinstance(cidr, str) else json.dumps(item, sort_keys=True)
            out.add(text)
        except SpecError:
            out.add(json.dumps(item, sort_keys=True))
    return sorted(out)


def normalize_spec_value(kind: str, key: str, value: Any, *, spec: Mapping[str, Any] | None = None) -> Any:
    """The value Calico acts on, as canonical JSON: defaults applied, text forms canonicalised.

    Two values are the same change-wise iff their normalized forms are equal. Values that do not
    parse are returned as they are (they then differ from any valid value).
    """
    if value is None or value == "" or (value == [] and key != "filters"):
        default = spec_default(kind, key, spec)
        if default is not None:
            value = default
        elif value == "" or value == []:
            value = None
    if value is None:
        return None
    try:
        if key == "cidr":
            return str(Prefix.parse(value, strict=False))
        if key in ("asNumber", "localASNumber"):
            return parse_as_number(value)
        if key == "peerIP":
            return str(parse_peer_ip(value))
        if key == "reachableBy":
            return canonical_address(value)
    except (SpecError, ValidationError, TypeError):
        return value
    if key in ("nodeSelector", "peerSelector", "namespaceSelector", "localWorkloadSelector"):
        return _canonical_selector(value)
    if key in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs"):
        return _canonical_cidr_entries(value)
    if key == "allowedUses" and isinstance(value, list):
        return sorted({str(v) for v in value})
    if key in ("listenPort", "blockSize", "ttlSecurity") and isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, Mapping):
        return json.loads(json.dumps(value, sort_keys=True))
    return value
