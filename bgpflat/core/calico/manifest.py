"""Calico manifests -> models (``calico_render`` goes the other way).

``parse_resource`` reads what the API serves (v3, or v1 with the same spec; a v1 object's v3 labels
sit in the ``projectcalico.org/metadata`` annotation, calico-facts §2.1). With ``strict`` it also
refuses what must not be written: unknown fields, a namespace, Calico Enterprise fields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from bgpflat.core.calico.checks import Advice
from bgpflat.core.calico.models import (
    API_V1,
    API_V3,
    CALICO_API_VERSIONS,
    ENTERPRISE_PEER_FIELDS,
    SERVER_METADATA,
    SPEC_FIELDS,
    BGPConfiguration,
    BGPFilter,
    BGPFilterRule,
    BGPPeer,
    CalicoResource,
    CommunityDefinition,
    FieldPath,
    IPPool,
    PrefixAdvertisement,
    SecretKeyRef,
    _list,
    _mapping,
    _opt_bool,
    _opt_int,
    _opt_str,
    _str,
    _string_map,
    fail,
    parse_as_number,
    parse_cidr,
    parse_path,
    parse_peer_ip,
    unknown_field_error,
)
from bgpflat.core.calico.releases import CalicoRelease
from bgpflat.core.net.prefixes import Prefix, canonical_address
from bgpflat.errors import SpecError

TOP_LEVEL_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")
METADATA_KEYS = ("name", "labels", "annotations", *SERVER_METADATA)
_V1_METADATA_ANNOTATION = "projectcalico.org/metadata"


def parse_resource(
    manifest: Mapping[str, Any],
    *,
    file: str | None = None,
    path: str | None = None,
    strict: bool = False,
) -> CalicoResource:
    """Manifest -> model. ``SpecError`` if it cannot be represented; ``strict`` for input to write."""
    base: FieldPath = parse_path(path) if path else ()
    try:
        return _parse(manifest, base, strict)
    except SpecError as exc:
        if file is not None and exc.file is None:
            raise type(exc)(exc.message, file=file, path=exc.path, line=exc.line, fix=exc.fix) from None
        raise


def parse_and_validate(
    manifest: Mapping[str, Any],
    *,
    file: str | None = None,
    path: str | None = None,
    old: CalicoResource | None = None,
    release: CalicoRelease | None = None,
) -> CalicoResource:
    """Strict parse plus every Calico rule (and immutability against ``old``): input bgpflat will write."""
    return check_manifest(manifest, file=file, path=path, old=old, release=release)[0]


def check_manifest(
    manifest: Mapping[str, Any],
    *,
    file: str | None = None,
    path: str | None = None,
    old: CalicoResource | None = None,
    release: CalicoRelease | None = None,
) -> tuple[CalicoResource, tuple[Advice, ...]]:
    """``parse_and_validate`` that also returns bgpflat's warnings about what Calico accepts."""
    from bgpflat.core.calico.validation import validate

    resource = parse_resource(manifest, file=file, path=path, strict=True)
    return resource, validate(resource, old=old, file=file, path=path, release=release)


def _parse(manifest: Mapping[str, Any], base: FieldPath, strict: bool) -> CalicoResource:
    if not isinstance(manifest, Mapping):
        raise fail(f"expected a Calico resource (a mapping), got {type(manifest).__name__}", base)
    api_version = manifest.get("apiVersion")
    kind = manifest.get("kind")
    if kind is None:
        raise fail("the object has no kind", (*base, "kind"), fix="set kind: IPPool, BGPPeer or BGPConfiguration")
    if not isinstance(kind, str) or kind not in SPEC_FIELDS:
        raise fail(
            f"unsupported kind {kind!r}",
            (*base, "kind"),
            fix="bgpflat handles IPPool, BGPPeer and BGPConfiguration (and reads BGPFilter)",
        )
    allowed_versions = (API_V3,) if strict else CALICO_API_VERSIONS
    if api_version not in allowed_versions:
        fix = f"use apiVersion: {API_V3}"
        if api_version == API_V1:
            fix += f" (the spec is the same; bgpflat writes {API_V3} only)"
        raise fail(f"unsupported apiVersion {api_version!r} for {kind}", (*base, "apiVersion"), fix=fix)
    if strict:
        for key in manifest:
            if key not in TOP_LEVEL_KEYS:
                raise unknown_field_error(str(key), TOP_LEVEL_KEYS, base)
    metadata = _mapping(manifest.get("metadata"), (*base, "metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise fail(f"{kind} has no metadata.name", (*base, "metadata", "name"), fix="set metadata.name")
    if strict:
        if metadata.get("namespace"):
            raise fail(
                f"{kind} is cluster-scoped and cannot have a namespace",
                (*base, "metadata", "namespace"),
                fix="remove metadata.namespace",
            )
        for key in metadata:
            if key not in (*METADATA_KEYS, "namespace"):
                raise unknown_field_error(str(key), METADATA_KEYS[:3], (*base, "metadata"))
    labels = _string_map(metadata.get("labels"), (*base, "metadata", "labels"))
    annotations = _string_map(metadata.get("annotations"), (*base, "metadata", "annotations"))
    if api_version == API_V1 and _V1_METADATA_ANNOTATION in annotations:
        labels, annotations = _v1_metadata(labels, annotations)
    spec_path = (*base, "spec")
    spec = _mapping(manifest.get("spec"), spec_path)
    known = SPEC_FIELDS[kind]
    for key in spec:
        if key in known:
            continue
        if kind == "BGPPeer" and key in ENTERPRISE_PEER_FIELDS:
            if strict:
                raise fail(
                    f"{key} is a Calico Enterprise field; Calico Open Source has no such field",
                    (*spec_path, str(key)),
                    fix=f"remove spec.{key}",
                )
            continue
        if strict:
            raise unknown_field_error(str(key), known, spec_path)
    if strict:
        _strict_values(kind, spec, spec_path)
    common = {"name": name, "labels": labels, "annotations": annotations}
    parser = _PARSERS[kind]
    return parser(spec, spec_path, common)


BGPFILTER_RULE_KEYS = ("action", "cidr", "matchOperator", "prefixLength", "source", "interface")
_CIDR_LISTS = ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs")


_EXACT_TEXT_FIELDS = {
    "BGPPeer": ("peerIP", "asNumber", "localASNumber", "reachableBy"),
    "BGPConfiguration": ("asNumber",),
}
_INTEGER_FIELDS = {
    "IPPool": ("blockSize",),
    "BGPPeer": ("ttlSecurity", "numAllowedLocalASNumbers"),
    "BGPConfiguration": ("listenPort", "ipv4NormalRoutePriority", "ipv6NormalRoutePriority"),
}


def _strict_values(kind: str, spec: Mapping[str, Any], spec_path: FieldPath) -> None:
    """What reading lets pass but Calico refuses on a write: numbers written as strings (Go does not
    decode "26" into an int), CIDRs with host bits set where Calico wants a network (its ``net``
    rule), and unknown keys inside BGPFilter rules (a rule that lost a misspelt condition would match
    more than meant)."""
    for key in _EXACT_TEXT_FIELDS.get(kind, ()):
        value = spec.get(key)
        if isinstance(value, str) and (value != value.strip() or "%" in value):
            raise fail(
                f"{key} {value!r} has spaces or a zone Calico does not read",
                (*spec_path, key),
                fix="write the bare value, without spaces or %zone",
            )
    for key in _CIDR_LISTS if kind == "BGPConfiguration" else ():
        for index, item in enumerate(_list(spec.get(key), (*spec_path, key))):
            cidr = item.get("cidr") if isinstance(item, Mapping) else None
            if isinstance(cidr, str) and cidr != cidr.strip():
                raise fail(f"{cidr!r} has spaces around it", (*spec_path, key, index, "cidr"), fix="remove the spaces")
    for key in _INTEGER_FIELDS.get(kind, ()):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise fail(f"{key} must be a number, got {value!r}", (*spec_path, key), fix="write the number unquoted")
    if kind == "BGPConfiguration":
        for key in _CIDR_LISTS:
            for index, item in enumerate(_list(spec.get(key), (*spec_path, key))):
                if isinstance(item, Mapping) and item.get("cidr") not in (None, ""):
                    parse_cidr(item["cidr"], path=(*spec_path, key, index, "cidr"))
        for index, item in enumerate(_list(spec.get("prefixAdvertisements"), (*spec_path, "prefixAdvertisements"))):
            if isinstance(item, Mapping) and item.get("cidr") is not None:
                parse_cidr(item["cidr"], path=(*spec_path, "prefixAdvertisements", index, "cidr"))
    if kind == "BGPFilter":
        for list_key in ("exportV4", "importV4", "exportV6", "importV6"):
            for index, item in enumerate(_list(spec.get(list_key), (*spec_path, list_key))):
                rule_path = (*spec_path, list_key, index)
                rule = _mapping(item, rule_path)
                for key in rule:
                    if key not in BGPFILTER_RULE_KEYS:
                        raise unknown_field_error(str(key), BGPFILTER_RULE_KEYS, rule_path)
                length = _mapping(rule.get("prefixLength"), (*rule_path, "prefixLength"))
                for key in length:
                    if key not in ("min", "max"):
                        raise unknown_field_error(str(key), ("min", "max"), (*rule_path, "prefixLength"))
                if rule.get("cidr") not in (None, ""):
                    parse_cidr(rule["cidr"], path=(*rule_path, "cidr"))


def decode_v1_metadata(text: object) -> tuple[dict[str, str], dict[str, str]] | None:
    """The labels and annotations a v1 object keeps in ``projectcalico.org/metadata``; None when the
    annotation is not what Calico writes there (a JSON object whose ``labels`` and ``annotations``
    map strings to strings). Anyone can write the annotation, so it is read as untrusted input."""
    try:
        stored = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(stored, dict):
        return None
    out: list[dict[str, str]] = []
    for key in ("labels", "annotations"):
        extra = stored.get(key) or {}
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            return None
        out.append({str(k): v for k, v in extra.items()})
    return out[0], out[1]


def has_unreadable_v1_metadata(manifest: Mapping[str, Any]) -> bool:
    """Whether an object (in the v3 view) still carries a ``projectcalico.org/metadata`` annotation
    that ``decode_v1_metadata`` refused: its labels and annotations there were not read."""
    metadata = manifest.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    return isinstance(annotations, Mapping) and _V1_METADATA_ANNOTATION in annotations


def _v1_metadata(labels: Mapping[str, str], annotations: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    stored = decode_v1_metadata(annotations[_V1_METADATA_ANNOTATION])
    if stored is None:
        return dict(labels), dict(annotations)
    merged_labels = {**labels, **stored[0]}
    merged_annotations = {k: v for k, v in annotations.items() if k != _V1_METADATA_ANNOTATION}
    merged_annotations.update(stored[1])
    return dict(sorted(merged_labels.items())), dict(sorted(merged_annotations.items()))


def _explicit(spec: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(str(key) for key in spec)


def _selector_text(value: object, path: FieldPath) -> str | None:
    text = _opt_str(value, path)
    if text is None:
        return None
    return text


def _secret(value: object, path: FieldPath) -> SecretKeyRef | None:
    """A ``password``-style secret reference. Calico stores one without a name or key (calico-node
    then finds no secret and sets no password): it is kept as is, and validation warns."""
    if value is None:
        return None
    outer = _mapping(value, path)
    ref = _mapping(outer.get("secretKeyRef"), (*path, "secretKeyRef"))
    name = _str(ref.get("name", ""), (*path, "secretKeyRef", "name"))
    key = _str(ref.get("key", ""), (*path, "secretKeyRef", "key"))
    return SecretKeyRef(name, key)


_ZERO_AS = re.compile(r"0+(\.0+)?")


def _opt_as_number(value: object, path: FieldPath) -> int | None:
    """An optional AS number; 0 (also written "0" or "0.0") is Go's unset, as Calico reads it."""
    if value in (None, 0, "") or (isinstance(value, str) and _ZERO_AS.fullmatch(value.strip())):
        return None
    return parse_as_number(value, path=path)


def _cidr_list(value: object, path: FieldPath) -> tuple[Prefix, ...]:
    out: list[Prefix] = []
    for index, item in enumerate(_list(value, path)):
        entry = _mapping(item, (*path, index))
        out.append(parse_cidr(entry.get("cidr"), path=(*path, index, "cidr"), strict=False))
    return tuple(out)


def _str_list(value: object, path: FieldPath) -> tuple[str, ...]:
    return tuple(_str(item, (*path, index)) for index, item in enumerate(_list(value, path)))


def _parse_ippool(spec: Mapping[str, Any], path: FieldPath, common: dict[str, Any]) -> IPPool:
    if spec.get("cidr") is None:
        raise fail("IPPool needs a cidr", (*path, "cidr"), fix="set spec.cidr, e.g. 10.244.0.0/16")
    cidr = parse_cidr(spec["cidr"], path=(*path, "cidr"))
    deprecated: set[str] = set()
    ipip_mode = _opt_str(spec.get("ipipMode"), (*path, "ipipMode")) or None
    nat = _opt_bool(spec.get("natOutgoing"), (*path, "natOutgoing"))
    legacy_ipip = spec.get("ipip")
    if legacy_ipip is not None:
        deprecated.add("ipip")
        if isinstance(legacy_ipip, Mapping) and legacy_ipip.get("enabled") and ipip_mode is None:
            mode = legacy_ipip.get("mode")
            ipip_mode = "CrossSubnet" if mode in ("cross-subnet", "CrossSubnet") else "Always"
    legacy_nat = spec.get("nat-outgoing")
    if legacy_nat is not None:
        if legacy_nat is not False:
            deprecated.add("nat-outgoing")
        if legacy_nat is True and nat is None:
            nat = True
    uses = _str_list(spec.get("allowedUses"), (*path, "allowedUses"))
    return IPPool(
        cidr=cidr,
        # 0 is how Go spells "unset": Calico gives the pool the default block size.
        block_size=_opt_int(spec.get("blockSize"), (*path, "blockSize")) or None,
        ipip_mode=ipip_mode or "Never",
        vxlan_mode=_opt_str(spec.get("vxlanMode"), (*path, "vxlanMode")) or "Never",
        nat_outgoing=bool(nat),
        disabled=bool(_opt_bool(spec.get("disabled"), (*path, "disabled"))),
        disable_bgp_export=bool(_opt_bool(spec.get("disableBGPExport"), (*path, "disableBGPExport"))),
        node_selector=_selector_text(spec.get("nodeSelector"), (*path, "nodeSelector")) or "all()",
        namespace_selector=_selector_text(spec.get("namespaceSelector"), (*path, "namespaceSelector")),
        allowed_uses=uses or ("Workload", "Tunnel"),
        assignment_mode=_opt_str(spec.get("assignmentMode"), (*path, "assignmentMode")),
        explicit=_explicit(spec),
        deprecated=frozenset(deprecated),
        **common,
    )


def _parse_bgppeer(spec: Mapping[str, Any], path: FieldPath, common: dict[str, Any]) -> BGPPeer:
    peer_ip: str | None = None
    peer_port: int | None = None
    if spec.get("peerIP") not in (None, ""):
        address = parse_peer_ip(spec["peerIP"], path=(*path, "peerIP"))
        peer_ip, peer_port = address.ip, address.port
    reachable = _opt_str(spec.get("reachableBy"), (*path, "reachableBy")) or None
    if reachable is not None:
        try:
            reachable = canonical_address(reachable)
        except SpecError:
            raise fail(
                f"reachableBy {reachable!r} is not an IP address",
                (*path, "reachableBy"),
                fix="set the gateway address toward the peer",
            ) from None
    as_number = spec.get("asNumber")
    local_as = spec.get("localASNumber")
    enterprise = frozenset(str(k) for k in spec if k in ENTERPRISE_PEER_FIELDS)
    return BGPPeer(
        node=_opt_str(spec.get("node"), (*path, "node")) or None,
        node_selector=_selector_text(spec.get("nodeSelector"), (*path, "nodeSelector")) or None,
        peer_ip=peer_ip,
        peer_port=peer_port,
        as_number=_opt_as_number(as_number, (*path, "asNumber")),
        local_as_number=_opt_as_number(local_as, (*path, "localASNumber")),
        peer_selector=_selector_text(spec.get("peerSelector"), (*path, "peerSelector")) or None,
        keep_original_next_hop=bool(_opt_bool(spec.get("keepOriginalNextHop"), (*path, "keepOriginalNextHop"))),
        next_hop_mode=_opt_str(spec.get("nextHopMode"), (*path, "nextHopMode")) or None,
        source_address=_opt_str(spec.get("sourceAddress"), (*path, "sourceAddress")) or None,
        filters=_str_list(spec.get("filters"), (*path, "filters")),
        ttl_security=_opt_int(spec.get("ttlSecurity"), (*path, "ttlSecurity")),
        reachable_by=reachable,
        max_restart_time=_opt_str(spec.get("maxRestartTime"), (*path, "maxRestartTime")) or None,
        keepalive_time=_opt_str(spec.get("keepaliveTime"), (*path, "keepaliveTime")) or None,
        num_allowed_local_as_numbers=_opt_int(
            spec.get("numAllowedLocalASNumbers"), (*path, "numAllowedLocalASNumbers")
        ),
        password_secret=_secret(spec.get("password"), (*path, "password")),
        local_workload_selector=_selector_text(spec.get("localWorkloadSelector"), (*path, "localWorkloadSelector"))
        or None,
        reverse_peering=_opt_str(spec.get("reversePeering"), (*path, "reversePeering")) or None,
        explicit=_explicit(spec),
        enterprise_fields=enterprise,
        **common,
    )


def _parse_bgpconfig(spec: Mapping[str, Any], path: FieldPath, common: dict[str, Any]) -> BGPConfiguration:
    communities: list[CommunityDefinition] = []
    for index, item in enumerate(_list(spec.get("communities"), (*path, "communities"))):
        entry = _mapping(item, (*path, "communities", index))
        communities.append(
            CommunityDefinition(
                _str(entry.get("name", ""), (*path, "communities", index, "name")),
                _str(entry.get("value", ""), (*path, "communities", index, "value")),
            )
        )
    adverts: list[PrefixAdvertisement] = []
    for index, item in enumerate(_list(spec.get("prefixAdvertisements"), (*path, "prefixAdvertisements"))):
        entry_path = (*path, "prefixAdvertisements", index)
        entry = _mapping(item, entry_path)
        adverts.append(
            PrefixAdvertisement(
                parse_cidr(entry.get("cidr"), path=(*entry_path, "cidr"), strict=False),
                _str_list(entry.get("communities"), (*entry_path, "communities")),
            )
        )
    as_number = spec.get("asNumber")
    return BGPConfiguration(
        as_number=_opt_as_number(as_number, (*path, "asNumber")),
        node_to_node_mesh_enabled=_opt_bool(spec.get("nodeToNodeMeshEnabled"), (*path, "nodeToNodeMeshEnabled")),
        service_cluster_ips=_cidr_list(spec.get("serviceClusterIPs"), (*path, "serviceClusterIPs")),
        service_external_ips=_cidr_list(spec.get("serviceExternalIPs"), (*path, "serviceExternalIPs")),
        service_load_balancer_ips=_cidr_list(spec.get("serviceLoadBalancerIPs"), (*path, "serviceLoadBalancerIPs")),
        service_load_balancer_aggregation=_opt_str(
            spec.get("serviceLoadBalancerAggregation"), (*path, "serviceLoadBalancerAggregation")
        )
        or None,
        communities=tuple(communities),
        prefix_advertisements=tuple(adverts),
        listen_port=_opt_int(spec.get("listenPort"), (*path, "listenPort")) or None,
        log_severity_screen=_opt_str(spec.get("logSeverityScreen"), (*path, "logSeverityScreen")) or None,
        ignored_interfaces=_str_list(spec.get("ignoredInterfaces"), (*path, "ignoredInterfaces")),
        node_mesh_password=_secret(spec.get("nodeMeshPassword"), (*path, "nodeMeshPassword")),
        node_mesh_max_restart_time=_opt_str(spec.get("nodeMeshMaxRestartTime"), (*path, "nodeMeshMaxRestartTime"))
        or None,
        bind_mode=_opt_str(spec.get("bindMode"), (*path, "bindMode")) or None,
        local_workload_peering_ipv4=_opt_str(spec.get("localWorkloadPeeringIPV4"), (*path, "localWorkloadPeeringIPV4"))
        or None,
        local_workload_peering_ipv6=_opt_str(spec.get("localWorkloadPeeringIPV6"), (*path, "localWorkloadPeeringIPV6"))
        or None,
        program_cluster_routes=_opt_str(spec.get("programClusterRoutes"), (*path, "programClusterRoutes")) or None,
        ipv4_normal_route_priority=_opt_int(spec.get("ipv4NormalRoutePriority"), (*path, "ipv4NormalRoutePriority")),
        ipv6_normal_route_priority=_opt_int(spec.get("ipv6NormalRoutePriority"), (*path, "ipv6NormalRoutePriority")),
        explicit=_explicit(spec),
        **common,
    )


def _parse_rule(item: object, path: FieldPath) -> BGPFilterRule:
    rule = _mapping(item, path)
    cidr = rule.get("cidr")
    length = _mapping(rule.get("prefixLength"), (*path, "prefixLength"))
    return BGPFilterRule(
        action=_str(rule.get("action", ""), (*path, "action")),
        cidr=None if cidr in (None, "") else parse_cidr(cidr, path=(*path, "cidr"), strict=False),
        match_operator=_opt_str(rule.get("matchOperator"), (*path, "matchOperator")) or None,
        prefix_length_min=_opt_int(length.get("min"), (*path, "prefixLength", "min")),
        prefix_length_max=_opt_int(length.get("max"), (*path, "prefixLength", "max")),
        prefix_length_set=rule.get("prefixLength") is not None,
        unmodelled=tuple(sorted(str(key) for key in rule if key not in BGPFILTER_RULE_KEYS)),
        source=_opt_str(rule.get("source"), (*path, "source")) or None,
        interface=_opt_str(rule.get("interface"), (*path, "interface")) or None,
    )


def _parse_bgpfilter(spec: Mapping[str, Any], path: FieldPath, common: dict[str, Any]) -> BGPFilter:
    def rules(key: str) -> tuple[BGPFilterRule, ...]:
        return tuple(_parse_rule(item, (*path, key, i)) for i, item in enumerate(_list(spec.get(key), (*path, key))))

    return BGPFilter(
        export_v4=rules("exportV4"),
        import_v4=rules("importV4"),
        export_v6=rules("exportV6"),
        import_v6=rules("importV6"),
        **common,
    )


_PARSERS: Mapping[str, Callable[[Mapping[str, Any], FieldPath, dict[str, Any]], CalicoResource]] = {
    "IPPool": _parse_ippool,
    "BGPPeer": _parse_bgppeer,
    "BGPConfiguration": _parse_bgpconfig,
    "BGPFilter": _parse_bgpfilter,
}
