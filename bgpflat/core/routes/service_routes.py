"""Service IP advertisement (calico-facts §3.4): which static routes each node holds for services.

Two kinds of static routes, computed once for the whole cluster:

* global ("aggregate") ranges, held by every node without the exclude label;
* per-service host routes (/32, /128), held by the nodes ``advertiseThisService`` picks.

Release differences are decided by the Calico version (``(major, minor, patch)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bgpflat.core.net.prefix_index import PrefixIndex
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.cluster import ClusterState, EndpointRef, Service
from bgpflat.core.routes.expected import SERVICE_ANY, SERVICE_LOCAL, SERVICE_RANGE, SERVICE_SINGLE, Why
from bgpflat.errors import SpecError

ServiceRoute = tuple[Prefix, Why]


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStatics:
    """Global ranges (every non-excluded node) and per-service host routes (by node, or all)."""

    ranges: tuple[tuple[Prefix, str], ...] = ()  # (prefix, which setting)
    every_node: tuple[tuple[Prefix, str, str], ...] = ()  # (host prefix, rule, service key)
    by_node: Mapping[str, tuple[tuple[Prefix, str, str], ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def for_node(self, node: str) -> list[ServiceRoute]:
        routes: list[ServiceRoute] = [
            (prefix, Why(SERVICE_RANGE, node, detail=setting)) for prefix, setting in self.ranges
        ]
        for prefix, rule, service in (*self.every_node, *self.by_node.get(node, ())):
            routes.append((prefix, Why(rule, node, detail=service)))
        return routes


def _single(prefix: Prefix) -> bool:
    return prefix.is_host


def service_statics(cluster: ClusterState, calico: tuple[int, int, int]) -> ServiceStatics:
    config = cluster.bgp_configuration
    if config is None:
        return ServiceStatics()
    notes: list[str] = []
    cluster_cidrs = config.service_cluster_ips
    external = config.service_external_ips
    balancer = config.service_load_balancer_ips
    aggregation_disabled = calico >= (3, 31, 0) and config.service_load_balancer_aggregation == "Disabled"
    if config.service_load_balancer_aggregation == "Disabled" and calico < (3, 31, 0):
        notes.append("serviceLoadBalancerAggregation is ignored before Calico v3.31")

    ranges: list[tuple[Prefix, str]] = [(p, "serviceClusterIPs") for p in cluster_cidrs]
    # v3.30.0 (#9422) stopped advertising single-address serviceExternalIPs globally.
    ranges += [(p, "serviceExternalIPs") for p in external if calico < (3, 30, 0) or not _single(p)]
    if not aggregation_disabled:
        # v3.28.0 already keeps /32 LB entries out of the global set; the first such release is
        # unknown (calico-facts §4 item 3), so older releases are modelled with the #6074 bug.
        ranges += [(p, "serviceLoadBalancerIPs") for p in balancer if calico < (3, 28, 0) or not _single(p)]
    unique_ranges = tuple(dict.fromkeys(ranges))

    external_index = PrefixIndex((p, True) for p in external)
    balancer_index = PrefixIndex((p, True) for p in balancer)
    single_external = {p for p in external if _single(p)}
    single_balancer = {p for p in balancer if _single(p)}

    every: list[tuple[Prefix, str, str]] = []
    by_node: dict[str, list[tuple[Prefix, str, str]]] = {}
    all_clusterips = calico >= (3, 31, 0)
    for service in cluster.services:
        if service.type not in ("ClusterIP", "NodePort", "LoadBalancer") or service.headless:
            continue
        addresses = _service_addresses(service, bool(cluster_cidrs), all_clusterips, external_index, balancer_index)
        etp_local = service.type in ("NodePort", "LoadBalancer") and service.external_traffic_policy == "Local"
        if etp_local:
            for node in _nodes_with_ready_endpoints(cluster, service, calico):
                by_node.setdefault(node, []).extend((a, SERVICE_LOCAL, service.key) for a in addresses)
            continue
        if aggregation_disabled:
            if _has_endpoints(cluster, service, calico):
                every.extend((a, SERVICE_ANY, service.key) for a in addresses)
            continue
        if service.type == "ClusterIP":
            continue  # no ETP: the global ranges are all it gets (see calico-facts §3.4 corner case)
        if not _has_endpoint_object(cluster, service, calico):
            continue  # confd's setRouteForSvc returns before deciding (routes.go)
        singles: list[Prefix] = []
        lb_candidates = [service.load_balancer_ip] if service.load_balancer_ip else []
        if calico >= (3, 31, 5):
            lb_candidates += list(service.ingress_ips)  # PR #11917
        if service.type == "LoadBalancer":
            singles += [a for a in (_host(ip) for ip in lb_candidates) if a is not None and a in single_balancer]
        if calico >= (3, 30, 0):
            singles += [a for a in (_host(ip) for ip in service.external_ips) if a is not None and a in single_external]
        if singles:
            # One single-address match makes confd advertise the Service, and then it sets every
            # route of the Service (getAllRoutesForService): its cluster IPs when serviceClusterIPs
            # is set, and each external and LB ingress IP inside an allowed range, not only the match.
            every.extend((a, SERVICE_SINGLE, service.key) for a in addresses)
    return ServiceStatics(
        ranges=unique_ranges,
        every_node=tuple(dict.fromkeys(every)),
        by_node={node: tuple(dict.fromkeys(routes)) for node, routes in sorted(by_node.items())},
        notes=tuple(notes),
    )


def _host(text: str) -> Prefix | None:
    try:
        return Prefix.host(text)
    except SpecError:  # an unparsable IP in a Service is skipped, as confd does
        return None


def _service_addresses(
    service: Service,
    advertise_cluster_ips: bool,
    all_cluster_ips: bool,
    external: PrefixIndex[bool],
    balancer: PrefixIndex[bool],
) -> list[Prefix]:
    addresses: list[Prefix] = []
    if advertise_cluster_ips:
        # v3.31+ uses every spec.clusterIPs entry (dual stack); earlier only spec.clusterIP.
        texts: Sequence[str] = (
            (service.cluster_ips or (service.cluster_ip or "",)) if all_cluster_ips else (service.cluster_ip or "",)
        )
        addresses += [a for a in (_host(t) for t in texts if t and t != "None") if a is not None]
    addresses += [a for a in (_host(t) for t in service.external_ips) if a is not None and external.covers(a)]
    addresses += [a for a in (_host(t) for t in service.ingress_ips) if a is not None and balancer.covers(a)]
    return list(dict.fromkeys(addresses))


def _counted_families(service: Service, calico: tuple[int, int, int]) -> set[int | None]:
    """The endpoint families confd counts for ``service`` (an unknown family always counts).

    Up to v3.31.3 an endpoint address counts when its family is that of ``spec.clusterIP``; from
    v3.31.4 (#11503, also v3.32.0) an EndpointSlice counts when its addressType is one of
    ``spec.ipFamilies``. An IPv6 slice of an IPv4 Service is ignored either way (seen in the
    conformance lab with v3.31.0: no ETP Local /128 from its nodes).
    """
    if calico >= (3, 31, 4) and service.ip_families:
        return {None, *(_FAMILIES[f] for f in service.ip_families if f in _FAMILIES)}
    texts = (service.cluster_ip or "",) if calico < (3, 31, 4) else service.cluster_ips
    return {None, *(6 if ":" in text else 4 for text in texts if text)}


_FAMILIES = {"IPv4": 4, "IPv6": 6}


def _nodes_with_ready_endpoints(cluster: ClusterState, service: Service, calico: tuple[int, int, int]) -> list[str]:
    """Nodes with an endpoint Calico counts, by release (calico-facts §3.4).

    ≤v3.30 reads Endpoints (ready addresses only; derived from the slices when a snapshot has no
    Endpoints); v3.31 reads EndpointSlices without checking ``ready``; v3.32+ skips endpoints with
    ``ready: false`` (the release that added the check is not pinned down: UNCONFIRMED). Only
    endpoints of a family the Service counts (``_counted_families``) make a node local.
    """
    families = _counted_families(service, calico)
    refs: tuple[EndpointRef, ...]
    if calico < (3, 31, 0):
        refs = cluster.endpoints.get(service.key) or cluster.slice_endpoints.get(service.key, ())
        nodes = {ref.node for ref in refs if ref.ready is not False and ref.family in families}
    elif calico < (3, 32, 0):
        nodes = {ref.node for ref in cluster.slice_endpoints.get(service.key, ()) if ref.family in families}
    else:
        nodes = {
            ref.node
            for ref in cluster.slice_endpoints.get(service.key, ())
            if ref.ready is not False and ref.family in families
        }
    nodes.discard("")  # an endpoint that names no node is local to none
    return sorted(nodes)


def _has_endpoint_object(cluster: ClusterState, service: Service, calico: tuple[int, int, int]) -> bool:
    """Is there an EndpointSlice (v3.31+) or Endpoints (up to v3.30) for the Service, empty or not?

    Without one confd's ``setRouteForSvc`` returns before ``advertiseThisService`` is asked. A
    cluster's controllers write one for every Service with a selector; a snapshot without any
    Endpoints is read through its slices, as ``_nodes_with_ready_endpoints`` does.
    """
    if calico < (3, 31, 0) and cluster.endpoints:
        return service.key in cluster.endpoints
    return service.key in cluster.slice_endpoints


def _has_endpoints(cluster: ClusterState, service: Service, calico: tuple[int, int, int]) -> bool:
    """Aggregation Disabled: does the Service have an endpoint Calico counts, on any node or none?

    confd's ``advertiseThisService`` accepts a non-Local Service at its first endpoint address,
    whether or not the endpoint names a node (v3.31.0 routes.go): the apiserver's own
    ``default/kubernetes`` Service, whose endpoints name no node, is advertised from every node
    (seen in the conformance lab with confd v3.31.0 and BIRD 1.6).
    """
    families = _counted_families(service, calico)
    refs = [ref for ref in cluster.slice_endpoints.get(service.key, ()) if ref.family in families]
    if calico < (3, 32, 0):
        return bool(refs)
    return any(ref.ready is not False for ref in refs)
