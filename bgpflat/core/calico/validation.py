"""Calico's validation rules for IPPool, BGPPeer and BGPConfiguration (calico-facts §1), client-side.

calicoctl, clientv3 and the Calico API server run these rules; a write to the
``crd.projectcalico.org/v1`` CRDs runs almost none of them (§1.1, §2.1), and native v3 CRDs only
some (as CEL). bgpflat runs all of them before every write, whatever the API flavour, so that a bad
object is refused with a message and a fix instead of breaking calico-node later (calico#5941).

Each rule raises ``ValidationError`` with the spec path (``spec.peerIP``) and the fix. The messages
are part of bgpflat's interface: tests pin them word for word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bgpflat.core.calico.models import (
    ENCAP_MODES,
    BGPConfiguration,
    BGPFilter,
    BGPPeer,
    CalicoResource,
    FieldPath,
    IPPool,
    fail,
    parse_path,
)
from bgpflat.core.net.prefixes import Prefix, parse_address
from bgpflat.core.net.selector import parse_selector
from bgpflat.errors import SpecError, ValidationError

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_GO_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
_COMMUNITY_NAME = re.compile(r"[A-Za-z0-9_-]+")
LINK_LOCAL = {4: Prefix.parse("169.254.0.0/16"), 6: Prefix.parse("fe80::/10")}
BLOCK_SIZE_RANGE = {4: (20, 32), 6: (116, 128)}
ALLOWED_USES = ("Workload", "Tunnel", "LoadBalancer")
LOG_SEVERITIES = ("Trace", "Debug", "Info", "Warning", "Error", "Fatal")
DEFAULT_ONLY_FIELDS = (
    ("nodeToNodeMeshEnabled", "node_to_node_mesh_enabled"),
    ("asNumber", "as_number"),
    ("serviceClusterIPs", "service_cluster_ips"),
    ("serviceExternalIPs", "service_external_ips"),
    ("serviceLoadBalancerIPs", "service_load_balancer_ips"),
    ("nodeMeshPassword", "node_mesh_password"),
    ("nodeMeshMaxRestartTime", "node_mesh_max_restart_time"),
)
MAX_COMMUNITIES = 500
MAX_PREFIX_ADVERTISEMENTS = 500
MAX_COMMUNITIES_PER_ADVERTISEMENT = 50
REBUILD_FIX = "create a new pool with the new value, move workloads to it, then disable and delete the old pool"


def validate(
    resource: CalicoResource,
    *,
    old: CalicoResource | None = None,
    file: str | None = None,
    path: str | None = None,
) -> None:
    """Run every Calico rule for ``resource`` (and the update rules against ``old``)."""
    base: FieldPath = parse_path(path) if path else ()
    try:
        _validate_name(resource, base)
        if isinstance(resource, IPPool):
            _validate_ippool(resource, base)
            if isinstance(old, IPPool):
                _validate_ippool_update(old, resource, base)
        elif isinstance(resource, BGPPeer):
            _validate_bgppeer(resource, base)
        elif isinstance(resource, BGPConfiguration):
            _validate_bgpconfig(resource, base)
        else:
            _validate_bgpfilter(resource, base)
    except ValidationError as exc:
        if file is not None and exc.file is None:
            raise ValidationError(exc.message, file=file, path=exc.path, line=exc.line, fix=exc.fix) from None
        raise


def _validate_name(resource: CalicoResource, base: FieldPath) -> None:
    name = resource.name
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise fail(
            f"invalid {resource.kind} name {name!r}",
            (*base, "metadata", "name"),
            fix="use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        )


def _selector(text: str | None, path: FieldPath, *, max_length: int | None = None) -> None:
    if text is None:
        return
    if max_length is not None and len(text) > max_length:
        raise fail(f"{path[-1]} is longer than {max_length} characters", path, fix="shorten the selector")
    try:
        parse_selector(text)
    except SpecError as exc:
        raise fail(f"invalid {path[-1]}: {exc.message}", path, fix=exc.fix) from None


def _enum(value: str | None, allowed: Sequence[str], path: FieldPath) -> None:
    if value is not None and value not in allowed:
        name = next(str(p) for p in reversed(path) if isinstance(p, str))
        raise fail(f"invalid {name} {value!r}", path, fix=f"use {_one_of(allowed)}")


def _one_of(allowed: Sequence[str]) -> str:
    return ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]


def _duration(value: str | None, path: FieldPath) -> None:
    if value is not None and not _GO_DURATION.fullmatch(value):
        raise fail(f"invalid duration {value!r} for {path[-1]}", path, fix="use a duration such as 120s, 2m or 1m30s")


# --- IPPool ----------------------------------------------------------------------------------------


def _validate_ippool(pool: IPPool, base: FieldPath) -> None:
    spec = (*base, "spec")
    for key in sorted(pool.deprecated):
        replacement = "ipipMode" if key == "ipip" else "natOutgoing"
        raise fail(f"{key} is deprecated and refused by Calico", (*spec, key), fix=f"use {replacement} instead")
    cidr = pool.cidr
    link_local = LINK_LOCAL[cidr.version]
    if cidr.overlaps(link_local):
        raise fail(
            f"IPPool CIDR {cidr} overlaps the link-local range {link_local}",
            (*spec, "cidr"),
            fix=f"choose a CIDR outside {link_local}",
        )
    low, high = BLOCK_SIZE_RANGE[cidr.version]
    block = pool.effective_block_size
    if not low <= block <= high:
        family = "IPv4" if cidr.version == 4 else "IPv6"
        raise fail(
            f"blockSize {block} is out of range for an {family} pool",
            (*spec, "blockSize"),
            fix=f"use a blockSize from {low} to {high}",
        )
    if not pool.disabled and cidr.length > block:
        raise fail(
            f"IPPool CIDR {cidr} is smaller than one block (blockSize {block})",
            (*spec, "blockSize"),
            fix=f"use a blockSize of at least {cidr.length}, or a larger CIDR",
        )
    _enum(pool.ipip_mode, ENCAP_MODES, (*spec, "ipipMode"))
    _enum(pool.vxlan_mode, ENCAP_MODES, (*spec, "vxlanMode"))
    if pool.ipip_mode != "Never" and pool.vxlan_mode != "Never":
        raise fail(
            "IPIP and VXLAN cannot both be enabled on one IPPool",
            (*spec, "vxlanMode"),
            fix="set ipipMode or vxlanMode to Never",
        )
    if cidr.version == 6 and pool.ipip_mode != "Never":
        raise fail(
            "IPIP is not supported on IPv6 pools",
            (*spec, "ipipMode"),
            fix="set ipipMode: Never (use vxlanMode to encapsulate IPv6)",
        )
    _selector(pool.node_selector, (*spec, "nodeSelector"))
    if pool.node_selector.strip() == "global()":
        raise fail("nodeSelector global() is not allowed on an IPPool", (*spec, "nodeSelector"), fix="use all()")
    _selector(pool.namespace_selector, (*spec, "namespaceSelector"))
    for index, use in enumerate(pool.allowed_uses):
        _enum(use, ALLOWED_USES, (*spec, "allowedUses", index))
    if "LoadBalancer" in pool.allowed_uses:
        if len(set(pool.allowed_uses)) > 1:
            raise fail(
                "allowedUses LoadBalancer cannot be combined with Workload or Tunnel",
                (*spec, "allowedUses"),
                fix="use a separate pool for LoadBalancer addresses",
            )
        if pool.encapsulated:
            raise fail(
                "a LoadBalancer pool cannot use IPIP or VXLAN",
                (*spec, "ipipMode"),
                fix="set ipipMode and vxlanMode to Never",
            )
        if pool.disable_bgp_export:
            raise fail(
                "a LoadBalancer pool cannot set disableBGPExport",
                (*spec, "disableBGPExport"),
                fix="remove disableBGPExport",
            )
        if pool.node_selector.strip() != "all()":
            raise fail(
                "a LoadBalancer pool needs nodeSelector all()", (*spec, "nodeSelector"), fix="set nodeSelector: all()"
            )
    _enum(pool.assignment_mode, ("Automatic", "Manual"), (*spec, "assignmentMode"))


def _validate_ippool_update(old: IPPool, new: IPPool, base: FieldPath) -> None:
    spec = (*base, "spec")
    if old.cidr != new.cidr:
        raise fail("IPPool CIDR cannot be modified", (*spec, "cidr"), fix=REBUILD_FIX)
    if old.effective_block_size != new.effective_block_size:
        raise fail("IPPool BlockSize cannot be modified", (*spec, "blockSize"), fix=REBUILD_FIX)
    if "LoadBalancer" in old.allowed_uses and "LoadBalancer" not in new.allowed_uses:
        raise fail(
            "allowedUses cannot change from LoadBalancer to Workload or Tunnel",
            (*spec, "allowedUses"),
            fix=REBUILD_FIX,
        )


# --- BGPPeer ---------------------------------------------------------------------------------------


def _validate_bgppeer(peer: BGPPeer, base: FieldPath) -> None:
    spec = (*base, "spec")
    for key in sorted(peer.enterprise_fields):
        raise fail(
            f"{key} is a Calico Enterprise field; Calico Open Source has no such field",
            (*spec, key),
            fix=f"remove spec.{key}",
        )
    if peer.node is not None and (len(peer.node) > 253 or not _DNS_SUBDOMAIN.fullmatch(peer.node)):
        raise fail(f"invalid node name {peer.node!r}", (*spec, "node"), fix="use the Kubernetes node name")
    _selector(peer.node_selector, (*spec, "nodeSelector"), max_length=1024)
    _selector(peer.peer_selector, (*spec, "peerSelector"))
    _selector(peer.local_workload_selector, (*spec, "localWorkloadSelector"))
    if peer.node and peer.node_selector:
        raise fail(
            "node and nodeSelector cannot both be set",
            (*spec, "nodeSelector"),
            fix="use node for one node or nodeSelector for a set of nodes",
        )
    if peer.peer_ip and peer.peer_selector:
        raise fail(
            "peerIP and peerSelector cannot both be set",
            (*spec, "peerSelector"),
            fix="use peerIP for an outside router or peerSelector for Calico nodes",
        )
    if peer.peer_selector and peer.as_number is not None:
        raise fail(
            "asNumber must be empty when peerSelector is set",
            (*spec, "asNumber"),
            fix="remove asNumber: the AS of the selected nodes is used",
        )
    if peer.local_workload_selector:
        if peer.peer_ip or peer.peer_selector:
            raise fail(
                "localWorkloadSelector cannot be combined with peerIP or peerSelector",
                (*spec, "localWorkloadSelector"),
                fix="remove peerIP and peerSelector",
            )
        if peer.as_number is None:
            raise fail(
                "localWorkloadSelector needs an asNumber", (*spec, "asNumber"), fix="set the workloads' AS number"
            )
    elif not peer.peer_ip and not peer.peer_selector:
        raise fail(
            "a BGPPeer needs a peerIP or a peerSelector",
            (*spec, "peerIP"),
            fix="set peerIP to the router's address (or peerSelector to select Calico nodes)",
        )
    if peer.peer_ip and peer.as_number is None:
        raise fail("a BGPPeer with a peerIP needs an asNumber", (*spec, "asNumber"), fix="set the peer's AS number")
    _enum(peer.next_hop_mode, ("Auto", "Self", "Keep"), (*spec, "nextHopMode"))
    if peer.next_hop_mode is not None and peer.keep_original_next_hop:
        raise fail(
            "nextHopMode cannot be combined with keepOriginalNextHop: true",
            (*spec, "keepOriginalNextHop"),
            fix="remove keepOriginalNextHop (deprecated) and use nextHopMode: Keep",
        )
    _enum(peer.source_address, ("UseNodeIP", "None"), (*spec, "sourceAddress"))
    _enum(peer.reverse_peering, ("Auto", "Manual"), (*spec, "reversePeering"))
    _duration(peer.max_restart_time, (*spec, "maxRestartTime"))
    _duration(peer.keepalive_time, (*spec, "keepaliveTime"))
    if peer.num_allowed_local_as_numbers is not None and not 0 <= peer.num_allowed_local_as_numbers <= 2**31 - 1:
        raise fail(
            "numAllowedLocalASNumbers must be 0 or more",
            (*spec, "numAllowedLocalASNumbers"),
            fix="use a small count such as 1",
        )
    if peer.ttl_security is not None and not 0 <= peer.ttl_security <= 255:
        raise fail("ttlSecurity must be 0-255 hops", (*spec, "ttlSecurity"), fix="use the hop count to the peer")
    if peer.reachable_by is not None:
        if not peer.peer_ip:
            raise fail("reachableBy needs a peerIP", (*spec, "reachableBy"), fix="set peerIP or remove reachableBy")
        if parse_address(peer.reachable_by)[0] != parse_address(peer.peer_ip)[0]:
            raise fail(
                "reachableBy and peerIP must be the same address family",
                (*spec, "reachableBy"),
                fix="use a gateway of the peer's address family",
            )
    for index, name in enumerate(peer.filters):
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            raise fail(f"invalid BGPFilter name {name!r}", (*spec, "filters", index), fix="use a BGPFilter's name")


# --- BGPConfiguration ------------------------------------------------------------------------------

_COMMUNITY_16 = re.compile(r"(\d+):(\d+)")
_COMMUNITY_32 = re.compile(r"(\d+):(\d+):(\d+)")


def community_value_ok(value: str) -> bool:
    """``aa:nn`` with 16-bit parts or ``aa:nn:mm`` with 32-bit parts (calico-facts §1.3)."""
    if match := _COMMUNITY_16.fullmatch(value):
        return all(int(part) <= 0xFFFF for part in match.groups())
    if match := _COMMUNITY_32.fullmatch(value):
        return all(int(part) <= 0xFFFFFFFF for part in match.groups())
    return False


def _validate_bgpconfig(config: BGPConfiguration, base: FieldPath) -> None:
    spec = (*base, "spec")
    name = config.name
    if name != "default" and not name.startswith("node."):
        raise fail(
            f"BGPConfiguration name {name!r} is neither 'default' nor 'node.<nodename>'; calico-node ignores it",
            (*base, "metadata", "name"),
            fix="name it default (global) or node.<nodename> (one node)",
        )
    if name != "default":
        for key, attribute in DEFAULT_ONLY_FIELDS:
            if getattr(config, attribute) not in (None, ()):
                raise fail(
                    f"{key} can only be set on the BGPConfiguration named 'default'",
                    (*spec, key),
                    fix="move it to the BGPConfiguration named default",
                )
    if config.log_severity_screen is not None and config.log_severity_screen.capitalize() not in LOG_SEVERITIES:
        raise fail(
            f"invalid logSeverityScreen {config.log_severity_screen!r}",
            (*spec, "logSeverityScreen"),
            fix=f"use {_one_of(LOG_SEVERITIES)}",
        )
    if config.listen_port is not None and not 1 <= config.listen_port <= 65535:
        raise fail(f"listenPort {config.listen_port} is out of range", (*spec, "listenPort"), fix="use 1-65535")
    _enum(config.bind_mode, ("None", "NodeIP"), (*spec, "bindMode"))
    _enum(config.service_load_balancer_aggregation, ("Enabled", "Disabled"), (*spec, "serviceLoadBalancerAggregation"))
    _enum(
        config.program_cluster_routes,
        ("Enabled", "Disabled", "EnabledIPIPOnly", "EnabledNoEncapOnly"),
        (*spec, "programClusterRoutes"),
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
        try:
            ok = parse_address(address)[0] == version
        except SpecError:
            ok = False
        if not ok:
            raise fail(
                f"{key} {address!r} is not an IPv{version} address", (*spec, key), fix=f"use an IPv{version} address"
            )
    if not config.mesh_enabled:
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
    _duration(config.node_mesh_max_restart_time, (*spec, "nodeMeshMaxRestartTime"))
    for index, interface in enumerate(config.ignored_interfaces):
        if not interface.strip():
            raise fail(
                "an ignoredInterfaces entry is empty",
                (*spec, "ignoredInterfaces", index),
                fix="name an interface (wildcards allowed) or remove the entry",
            )
    _validate_communities(config, spec)


def _validate_communities(config: BGPConfiguration, spec: FieldPath) -> None:
    if len(config.communities) > MAX_COMMUNITIES:
        raise fail(f"more than {MAX_COMMUNITIES} communities", (*spec, "communities"), fix="define fewer communities")
    names: dict[str, int] = {}
    for index, community in enumerate(config.communities):
        path = (*spec, "communities", index)
        if not _COMMUNITY_NAME.fullmatch(community.name):
            raise fail(
                f"invalid community name {community.name!r}", (*path, "name"), fix="use letters, digits, '-' and '_'"
            )
        if community.name in names:
            raise fail(f"community {community.name!r} is defined twice", (*path, "name"), fix="remove one definition")
        names[community.name] = index
        if not community_value_ok(community.value):
            raise fail(
                f"invalid community value {community.value!r}",
                (*path, "value"),
                fix="use aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)",
            )
    if len(config.prefix_advertisements) > MAX_PREFIX_ADVERTISEMENTS:
        raise fail(
            f"more than {MAX_PREFIX_ADVERTISEMENTS} prefixAdvertisements",
            (*spec, "prefixAdvertisements"),
            fix="aggregate the CIDRs",
        )
    used: set[str] = set()
    for index, advert in enumerate(config.prefix_advertisements):
        path = (*spec, "prefixAdvertisements", index, "communities")
        if len(advert.communities) > MAX_COMMUNITIES_PER_ADVERTISEMENT:
            raise fail(
                f"more than {MAX_COMMUNITIES_PER_ADVERTISEMENT} communities on {advert.cidr}",
                path,
                fix="use fewer communities per prefix",
            )
        for position, reference in enumerate(advert.communities):
            if reference in names:
                used.add(reference)
            elif not community_value_ok(reference):
                raise fail(
                    f"community {reference!r} is neither a defined community name nor a value aa:nn or aa:nn:mm",
                    (*path, position),
                    fix="define it under spec.communities or write the value",
                )
    for name, index in names.items():
        if name not in used:
            raise fail(
                f"community {name!r} is defined but not used in prefixAdvertisements",
                (*spec, "communities", index, "name"),
                fix="reference it in prefixAdvertisements[].communities or remove it",
            )


# --- BGPFilter (read-only for bgpflat; checked so that expected routes never guess) ----------------


def _validate_bgpfilter(bgp_filter: BGPFilter, base: FieldPath) -> None:
    spec = (*base, "spec")
    for key, rules in (
        ("exportV4", bgp_filter.export_v4),
        ("importV4", bgp_filter.import_v4),
        ("exportV6", bgp_filter.export_v6),
        ("importV6", bgp_filter.import_v6),
    ):
        for index, rule in enumerate(rules):
            path = (*spec, key, index)
            _enum(rule.action, ("Accept", "Reject"), (*path, "action"))
            _enum(rule.match_operator, ("Equal", "NotEqual", "In", "NotIn"), (*path, "matchOperator"))
            _enum(rule.source, ("RemotePeers",), (*path, "source"))
            if rule.cidr is not None and rule.match_operator is None:
                raise fail(
                    "a rule with a cidr needs a matchOperator",
                    (*path, "matchOperator"),
                    fix="use Equal, NotEqual, In or NotIn",
                )
