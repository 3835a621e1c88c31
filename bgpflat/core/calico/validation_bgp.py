"""Calico's rules for BGPConfiguration and BGPFilter (``validateBGPConfigurationSpec``, the BGPFilter
rule validators and the field tags of their API types); see ``validation`` for the contract."""

from __future__ import annotations

import re

from bgpflat.core.calico.checks import (
    NAME_FIX,
    Advice,
    advice,
    duration,
    enum,
    go_ip_version,
    is_name,
    one_of,
    schema_enum,
    secret_advice,
)
from bgpflat.core.calico.models import BGPConfiguration, BGPFilter, BGPFilterRule, FieldPath, fail
from bgpflat.core.calico.releases import CalicoRelease

LOG_SEVERITIES = ("Trace", "Debug", "Info", "Warning", "Error", "Fatal")
PROGRAM_CLUSTER_ROUTES = ("Enabled", "Disabled")
DEFAULT_ONLY_FIELDS = (
    ("nodeToNodeMeshEnabled", "node_to_node_mesh_enabled"),
    ("asNumber", "as_number"),
    ("serviceClusterIPs", "service_cluster_ips"),
    ("serviceExternalIPs", "service_external_ips"),
    ("serviceLoadBalancerIPs", "service_load_balancer_ips"),
    ("nodeMeshPassword", "node_mesh_password"),
    ("nodeMeshMaxRestartTime", "node_mesh_max_restart_time"),
)
_IGNORED_INTERFACE = re.compile(r"[a-zA-Z0-9_.*-]{1,15}")
_FILTER_INTERFACE = re.compile(r"[a-zA-Z0-9_.*-]{1,15}")
_STANDARD_COMMUNITY = re.compile(r"(\d+):(\d+)")
_LARGE_COMMUNITY = re.compile(r"(\d+):(\d+):(\d+)")
COMMUNITY_FIX = "use aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)"


def community_format(value: str) -> int | None:
    """The bits per part of a community written as a value (16 for ``aa:nn``, 32 for ``aa:nn:mm``), else None."""
    if _STANDARD_COMMUNITY.fullmatch(value):
        return 16
    if _LARGE_COMMUNITY.fullmatch(value):
        return 32
    return None


def community_value_ok(value: str) -> bool:
    """``aa:nn`` with 16-bit parts or ``aa:nn:mm`` with 32-bit parts (calico-facts §1.3)."""
    bits = community_format(value)
    return bits is not None and all(int(part) < 1 << bits for part in value.split(":"))


def validate_bgpconfig(config: BGPConfiguration, base: FieldPath, rules: CalicoRelease, notes: list[Advice]) -> None:
    spec = (*base, "spec")
    _config_names(config, base, notes)
    severity = config.log_severity_screen
    if severity is not None and severity not in LOG_SEVERITIES:
        # The validator wants the exact spelling; the v3.32 CRD schema takes any case ((?i) pattern).
        if rules.crd_schema and severity.capitalize() in LOG_SEVERITIES:
            notes.append(
                advice(
                    f"logSeverityScreen {severity!r} is accepted by the API server but refused by calicoctl",
                    (*spec, "logSeverityScreen"),
                    f"write {severity.capitalize()}",
                )
            )
        else:
            raise fail(
                f"invalid logSeverityScreen {severity!r}",
                (*spec, "logSeverityScreen"),
                fix=f"use {one_of(LOG_SEVERITIES)} (spelt exactly so)",
            )
    if config.listen_port is not None and not 1 <= config.listen_port <= 65535:
        raise fail(f"listenPort {config.listen_port} is out of range", (*spec, "listenPort"), fix="use 1-65535")
    schema_enum(
        config.bind_mode, ("None", "NodeIP"), (*spec, "bindMode"), kind="BGPConfiguration", rules=rules, notes=notes
    )
    schema_enum(
        config.service_load_balancer_aggregation,
        ("Enabled", "Disabled"),
        (*spec, "serviceLoadBalancerAggregation"),
        kind="BGPConfiguration",
        rules=rules,
        notes=notes,
    )
    schema_enum(
        config.program_cluster_routes,
        PROGRAM_CLUSTER_ROUTES,
        (*spec, "programClusterRoutes"),
        kind="BGPConfiguration",
        rules=rules,
        notes=notes,
    )
    for key, priority in (
        ("ipv4NormalRoutePriority", config.ipv4_normal_route_priority),
        ("ipv6NormalRoutePriority", config.ipv6_normal_route_priority),
    ):
        if priority is not None and not 1 <= priority <= 2147483646:
            raise fail(f"{key} {priority} is out of range", (*spec, key), fix="use 1-2147483646")
    for key, address, version in (
        ("localWorkloadPeeringIPV4", config.local_workload_peering_ipv4, 4),
        ("localWorkloadPeeringIPV6", config.local_workload_peering_ipv6, 6),
    ):
        if address is None:
            continue
        if go_ip_version(address) != version:
            raise fail(
                f"{key} {address!r} is not an IPv{version} address", (*spec, key), fix=f"use an IPv{version} address"
            )
    # Only an explicit false counts: an unset nodeToNodeMeshEnabled leaves the mesh as it is.
    if config.node_to_node_mesh_enabled is False:
        if config.node_mesh_password is not None:
            raise fail(
                "nodeMeshPassword cannot be set when nodeToNodeMeshEnabled is false",
                (*spec, "nodeMeshPassword"),
                fix="remove nodeMeshPassword or enable the mesh",
            )
        if config.node_mesh_max_restart_time is not None:
            raise fail(
                "nodeMeshMaxRestartTime cannot be set when nodeToNodeMeshEnabled is false",
                (*spec, "nodeMeshMaxRestartTime"),
                fix="remove nodeMeshMaxRestartTime or enable the mesh",
            )
    duration(config.node_mesh_max_restart_time, (*spec, "nodeMeshMaxRestartTime"))
    secret_advice(config.node_mesh_password, (*spec, "nodeMeshPassword"), notes)
    for index, interface in enumerate(config.ignored_interfaces):
        if interface == "*" or not _IGNORED_INTERFACE.fullmatch(interface):
            raise fail(
                f"invalid ignoredInterfaces entry {interface!r}",
                (*spec, "ignoredInterfaces", index),
                fix="name an interface: 1-15 letters, digits, '_', '.', '-', with '*' as a wildcard (not '*' alone)",
            )
    _validate_communities(config, spec, notes)


def _config_names(config: BGPConfiguration, base: FieldPath, notes: list[Advice]) -> None:
    """calico-node reads ``default`` and ``node.<name>`` only; cluster-wide fields belong to ``default``."""
    name = config.name
    if name != "default" and not name.startswith("node."):
        notes.append(
            advice(
                f"BGPConfiguration name {name!r} is neither 'default' nor 'node.<nodename>'; calico-node ignores it",
                (*base, "metadata", "name"),
                "name it default (global) or node.<nodename> (one node)",
            )
        )
    if name == "default":
        return
    # clientv3's ValidateDefaultOnlyFields: set (even to false or 0) is refused, an empty list is not.
    for key, attribute in DEFAULT_ONLY_FIELDS:
        value = getattr(config, attribute)
        if value not in (None, ()) or (key in ("asNumber", "nodeToNodeMeshEnabled") and key in config.explicit):
            raise fail(
                f"{key} can only be set on the BGPConfiguration named 'default'",
                (*base, "spec", key),
                fix="move it to the BGPConfiguration named default",
            )


# Calico stores longer lists; BIRD's configuration grows with every entry, and calico-facts §1.3
# gives these as the sizes known to work.
MAX_COMMUNITIES = 500
MAX_PREFIX_ADVERTISEMENTS = 500
MAX_COMMUNITIES_PER_ADVERTISEMENT = 50


def _validate_communities(config: BGPConfiguration, spec: FieldPath, notes: list[Advice]) -> None:
    for key, count, limit in (
        ("communities", len(config.communities), MAX_COMMUNITIES),
        ("prefixAdvertisements", len(config.prefix_advertisements), MAX_PREFIX_ADVERTISEMENTS),
    ):
        if count > limit:
            notes.append(advice(f"{count} {key}, more than {limit}", (*spec, key), "aggregate or define fewer"))
    for index, advert in enumerate(config.prefix_advertisements):
        if len(advert.communities) > MAX_COMMUNITIES_PER_ADVERTISEMENT:
            notes.append(
                advice(
                    f"more than {MAX_COMMUNITIES_PER_ADVERTISEMENT} communities on {advert.cidr}",
                    (*spec, "prefixAdvertisements", index, "communities"),
                    "use fewer communities per prefix",
                )
            )
    names: dict[str, int] = {}
    for index, community in enumerate(config.communities):
        path = (*spec, "communities", index)
        if not community.name or not is_name(community.name):
            raise fail(
                f"invalid community name {community.name!r}",
                (*path, "name"),
                fix=NAME_FIX,
            )
        if community.name in names:
            notes.append(
                advice(f"community {community.name!r} is defined twice", (*path, "name"), "remove one definition")
            )
        names.setdefault(community.name, index)
        if not community_value_ok(community.value):
            raise fail(f"invalid community value {community.value!r}", (*path, "value"), fix=COMMUNITY_FIX)
    if names and not config.prefix_advertisements:
        raise fail(
            "communities are defined but there are no prefixAdvertisements to use them",
            (*spec, "communities"),
            fix="reference them in prefixAdvertisements[].communities or remove them",
        )
    used: set[str] = set()
    for index, advert in enumerate(config.prefix_advertisements):
        path = (*spec, "prefixAdvertisements", index, "communities")
        if not advert.communities:
            raise fail(
                f"prefixAdvertisements entry {advert.cidr} has no communities",
                path,
                fix="list the communities to attach to it, or remove the entry",
            )
        for position, reference in enumerate(advert.communities):
            # Text shaped like a value is read as a value, even when a community has that name.
            if community_format(reference) is not None:
                if not community_value_ok(reference):
                    raise fail(f"invalid community value {reference!r}", (*path, position), fix=COMMUNITY_FIX)
            elif reference in names:
                used.add(reference)
            else:
                raise fail(
                    f"community {reference!r} is neither a defined community name nor a value aa:nn or aa:nn:mm",
                    (*path, position),
                    fix="define it under spec.communities or write the value",
                )
    for name, index in names.items():
        if name not in used:
            notes.append(
                advice(
                    f"community {name!r} is defined but not used in prefixAdvertisements",
                    (*spec, "communities", index, "name"),
                    "reference it in prefixAdvertisements[].communities or remove it",
                )
            )


# --- BGPFilter ---------------------------------------------------------------------------------------


def validate_bgpfilter(bgp_filter: BGPFilter, base: FieldPath, notes: list[Advice]) -> None:
    spec = (*base, "spec")
    for key, rules, version in (
        ("exportV4", bgp_filter.export_v4, 4),
        ("importV4", bgp_filter.import_v4, 4),
        ("exportV6", bgp_filter.export_v6, 6),
        ("importV6", bgp_filter.import_v6, 6),
    ):
        for index, rule in enumerate(rules):
            _validate_rule(rule, (*spec, key, index), version, notes)


def _validate_rule(rule: BGPFilterRule, path: FieldPath, version: int, notes: list[Advice]) -> None:
    if not rule.action:
        raise fail("a BGPFilter rule needs an action", (*path, "action"), fix="use Accept or Reject")
    enum(rule.action, ("Accept", "Reject"), (*path, "action"))
    if rule.cidr is not None and rule.cidr.version != version:
        raise fail(
            f"{rule.cidr} is not an IPv{version} CIDR",
            (*path, "cidr"),
            fix=f"put IPv{6 if version == 4 else 4} rules under the V{6 if version == 4 else 4} list",
        )
    enum(rule.match_operator, ("Equal", "NotEqual", "In", "NotIn"), (*path, "matchOperator"))
    enum(rule.source, ("RemotePeers",), (*path, "source"))
    if rule.interface is not None and rule.interface != "*" and not _FILTER_INTERFACE.fullmatch(rule.interface):
        raise fail(
            f"invalid interface {rule.interface!r}",
            (*path, "interface"),
            fix="use 1-15 letters, digits, '_', '.', '-', with '*' as a wildcard",
        )
    if rule.cidr is not None and rule.match_operator is None:
        raise fail(
            "a rule with a cidr needs a matchOperator", (*path, "matchOperator"), fix="use Equal, NotEqual, In or NotIn"
        )
    if rule.cidr is None and rule.match_operator is not None:
        raise fail("a rule with a matchOperator needs a cidr", (*path, "cidr"), fix="set cidr or remove matchOperator")
    has_length = rule.prefix_length_min is not None or rule.prefix_length_max is not None or rule.prefix_length_set
    if rule.cidr is None and has_length:
        raise fail("a rule with a prefixLength needs a cidr", (*path, "cidr"), fix="set cidr or remove prefixLength")
    top = 32 if version == 4 else 128
    for key, value in (("min", rule.prefix_length_min), ("max", rule.prefix_length_max)):
        if value is not None and not 0 <= value <= top:
            raise fail(f"prefixLength.{key} {value} is out of range", (*path, "prefixLength", key), fix=f"use 0-{top}")
    low, high = rule.prefix_length_min, rule.prefix_length_max
    if low is not None and high is not None and low > high:
        notes.append(
            advice(
                f"prefixLength min {low} is above max {high}: the rule matches nothing",
                (*path, "prefixLength"),
                "swap them",
            )
        )
