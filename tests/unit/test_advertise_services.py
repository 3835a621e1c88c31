"""Service IP advertisement (calico-facts §3.4), one small cluster per rule, with version boundaries."""

from __future__ import annotations

from typing import Any

from test_advertise import ADDR, BLOCK, base, expect, from_node, node, seen

CLUSTER_RANGE = {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}


def service(
    name: str,
    *,
    type: str = "LoadBalancer",
    cluster_ip: str = "10.96.0.10",
    etp: str | None = None,
    external_ips: tuple[str, ...] = (),
    ingress: tuple[str, ...] = (),
    lb_ip: str | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip]}
    if etp:
        spec["externalTrafficPolicy"] = etp
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    status = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}} if ingress else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
        "status": status,
    }


def endpoints_slice(name: str, nodes: dict[str, bool | None], namespace: str = "default") -> dict[str, Any]:
    endpoints = []
    for index, (node_name, ready) in enumerate(sorted(nodes.items())):
        entry: dict[str, Any] = {"addresses": [f"10.244.9.{index + 1}"], "nodeName": node_name}
        if ready is not None:
            entry["conditions"] = {"ready": ready}
        endpoints.append(entry)
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-x", "namespace": namespace, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
    }


def cluster(
    config: dict[str, Any], *extra: dict[str, Any], calico: str = "v3.30.7", mesh: bool = False
) -> list[dict[str, Any]]:
    return [*base(mesh=mesh, config=config, calico=calico), *extra]


def test_service_cluster_ip_range_from_every_node() -> None:
    result = expect(cluster(CLUSTER_RANGE))
    assert {n for n in "abc" if "10.96.0.0/12" in from_node(result, n)} == {"a", "b", "c"}
    route = next(r for r in result.table if str(r.prefix) == "10.96.0.0/12" and r.session == ADDR["a"])
    assert result.explain(route).startswith("service range (serviceClusterIPs) of a")


def test_excluded_node_advertises_no_service_route_at_all() -> None:
    objects = cluster(CLUSTER_RANGE, service("web", etp="Local"), endpoints_slice("web", {"a": True}), mesh=True)
    objects[1] = node("a", labels={"node.kubernetes.io/exclude-from-external-load-balancers": "true"})
    result = expect(objects)
    assert from_node(result, "a") == set(BLOCK.values())  # not even b's copies over the mesh
    assert "10.96.0.10/32" not in {str(r.prefix) for r in result.table}  # its endpoint node is excluded
    assert "10.96.0.0/12" in from_node(result, "b")


def test_cluster_ip_host_routes_only_for_etp_local_and_only_from_nodes_with_endpoints() -> None:
    objects = cluster(
        CLUSTER_RANGE,
        service("web", etp="Local"),
        endpoints_slice("web", {"b": True}),
        service("plain", type="ClusterIP", cluster_ip="10.96.0.11"),
        endpoints_slice("plain", {"a": True}),
    )
    result = expect(objects)
    host_routes = {(n, p, h) for n, p, h in seen(result) if p.endswith("/32")}
    assert host_routes == {("b", "10.96.0.10/32", "b")}
    route = next(r for r in result.table if str(r.prefix) == "10.96.0.10/32")
    assert "with a ready local endpoint on b (externalTrafficPolicy Local)" in result.explain(route)


def test_without_service_cluster_ips_cluster_ips_are_never_advertised() -> None:
    objects = cluster({}, service("web", etp="Local"), endpoints_slice("web", {"b": True}))
    assert all(not str(r.prefix).startswith("10.96.") for r in expect(objects).table)


def test_mesh_reexports_another_nodes_local_host_route_inside_own_range() -> None:
    # The #5235 symptom: with the mesh and an eBGP peer, every node sends b's /32 with itself as next hop.
    objects = cluster(CLUSTER_RANGE, service("web", etp="Local"), endpoints_slice("web", {"b": True}), mesh=True)
    result = expect(objects)
    assert {(n, h) for n, p, h in seen(result) if p == "10.96.0.10/32"} == {("a", "a"), ("b", "b"), ("c", "c")}


def test_endpoint_readiness_by_release() -> None:
    svc = service("web", etp="Local")
    slices = endpoints_slice("web", {"a": False, "b": True, "c": None})
    nodes_with = {}
    for release in ("v3.30.7", "v3.31.0", "v3.32.0"):
        result = expect(cluster(CLUSTER_RANGE, svc, slices, calico=release))
        nodes_with[release] = {n for n in "abc" if "10.96.0.10/32" in from_node(result, n)}
    assert nodes_with == {"v3.30.7": {"b", "c"}, "v3.31.0": {"a", "b", "c"}, "v3.32.0": {"b", "c"}}


def test_endpoints_object_is_what_releases_before_v3_31_read() -> None:
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {
                "addresses": [{"ip": "10.244.0.70", "nodeName": "b"}],
                "notReadyAddresses": [{"ip": "10.244.0.5", "nodeName": "a"}],
            }
        ],
    }
    objects = cluster(CLUSTER_RANGE, service("web", etp="Local"), endpoints, endpoints_slice("web", {"c": True}))
    result = expect(objects)
    assert {n for n in "abc" if "10.96.0.10/32" in from_node(result, n)} == {"b"}


def test_external_ips_range_global_and_single_address_entries_by_release() -> None:
    config = {"serviceExternalIPs": [{"cidr": "198.51.100.0/24"}, {"cidr": "203.0.113.7/32"}]}
    svc = service("web", type="NodePort", etp="Cluster", external_ips=("203.0.113.7", "198.51.100.9", "192.0.2.1"))
    # The empty EndpointSlice the EndpointSlice controller writes for a Service with a selector.
    new = expect(cluster(config, svc, endpoints_slice("web", {}), calico="v3.30.0"))
    # The single-address match advertises the Service: every external IP in an allowed range gets
    # its /32 (getAllRoutesForService), 198.51.100.9 too; 192.0.2.1 is in none.
    assert from_node(new, "a") == {BLOCK["a"], "198.51.100.0/24", "203.0.113.7/32", "198.51.100.9/32"}
    route = next(r for r in new.table if str(r.prefix) == "203.0.113.7/32" and r.session == ADDR["a"])
    assert "matching a single-address range" in new.explain(route)
    old = expect(cluster(config, svc, endpoints_slice("web", {}), calico="v3.29.3"))
    assert from_node(old, "a") == {BLOCK["a"], "198.51.100.0/24", "203.0.113.7/32"}
    old_route = next(r for r in old.table if str(r.prefix) == "203.0.113.7/32" and r.session == ADDR["a"])
    assert old.explain(old_route).startswith("service range (serviceExternalIPs)")


def test_a_single_address_match_advertises_the_cluster_ip_too_and_needs_an_endpoints_object() -> None:
    """Lab (random seed 489317029, situation 11): a NodePort Service, ETP Cluster, whose external IP
    matched a /32 serviceExternalIPs entry was sent with its cluster IP /32 as well: once
    ``advertiseThisService`` says yes, confd sets every route of the Service (routes.go,
    ``getAllRoutesForService``). Without any EndpointSlice ``setRouteForSvc`` returns first."""
    config = {**CLUSTER_RANGE, "serviceExternalIPs": [{"cidr": "203.0.113.7/32"}]}
    svc = service("web", type="NodePort", etp="Cluster", external_ips=("203.0.113.7",))
    result = expect(cluster(config, svc, endpoints_slice("web", {}), calico="v3.31.0"))
    assert {"203.0.113.7/32", "10.96.0.10/32"} <= from_node(result, "c")
    without_slice = expect(cluster(config, svc, calico="v3.31.0"))
    assert not {"203.0.113.7/32", "10.96.0.10/32"} & from_node(without_slice, "c")


def test_clusterip_service_with_only_a_single_address_external_ip_is_not_advertised_on_v3_30() -> None:
    config = {"serviceExternalIPs": [{"cidr": "203.0.113.7/32"}]}
    svc = service("web", type="ClusterIP", external_ips=("203.0.113.7",))
    assert "203.0.113.7/32" not in from_node(expect(cluster(config, svc)), "a")


def test_etp_local_external_and_load_balancer_ips_only_inside_the_allow_lists() -> None:
    config = {
        **CLUSTER_RANGE,
        "serviceExternalIPs": [{"cidr": "198.51.100.0/24"}],
        "serviceLoadBalancerIPs": [{"cidr": "192.0.2.0/24"}],
    }
    svc = service(
        "web", etp="Local", external_ips=("198.51.100.9", "203.0.113.1"), ingress=("192.0.2.10", "100.64.0.1")
    )
    result = expect(cluster(config, svc, endpoints_slice("web", {"c": True})))
    assert {p for n, p, _ in seen(result) if n == "c" and p.endswith("/32")} == {
        "10.96.0.10/32",
        "198.51.100.9/32",
        "192.0.2.10/32",
    }
    assert {p for p in from_node(result, "a") if p.endswith("/32")} == set()


def test_load_balancer_single_address_entry_by_release() -> None:
    config = {"serviceLoadBalancerIPs": [{"cidr": "192.0.2.0/24"}, {"cidr": "192.0.2.200/32"}]}
    from_status = service("lb", etp="Cluster", ingress=("192.0.2.200",))
    # A controller sets the ingress; spec.loadBalancerIP is the deprecated request for it.
    from_spec = service("lb2", cluster_ip="10.96.0.12", etp="Cluster", lb_ip="192.0.2.200", ingress=("192.0.2.200",))
    slices = (endpoints_slice("lb", {}), endpoints_slice("lb2", {}))
    before = expect(cluster(config, from_status, *slices, calico="v3.31.4"))
    assert "192.0.2.200/32" not in from_node(before, "a")  # only spec.loadBalancerIP was checked
    assert "192.0.2.0/24" in from_node(before, "a")
    after = expect(cluster(config, from_status, *slices, calico="v3.31.5"))
    assert {n for n in "abc" if "192.0.2.200/32" in from_node(after, n)} == {"a", "b", "c"}
    spec_match = expect(cluster(config, from_spec, *slices, calico="v3.30.7"))
    assert {n for n in "abc" if "192.0.2.200/32" in from_node(spec_match, n)} == {"a", "b", "c"}
    # The routes come from status.loadBalancer.ingress only (getAllRoutesForService): a matching
    # spec.loadBalancerIP with no ingress yet advertises the Service with no LB route.
    spec_only = service("lb2", cluster_ip="10.96.0.12", etp="Cluster", lb_ip="192.0.2.200")
    assert "192.0.2.200/32" not in from_node(expect(cluster(config, spec_only, *slices, calico="v3.30.7")), "a")


def test_single_address_load_balancer_entry_was_global_before_v3_28() -> None:
    config = {"serviceLoadBalancerIPs": [{"cidr": "192.0.2.200/32"}]}
    old = expect(cluster(config, calico="v3.27.5"))
    assert "192.0.2.200/32" in from_node(old, "a")
    assert "192.0.2.200/32" not in from_node(expect(cluster(config, calico="v3.28.0")), "a")


def test_load_balancer_aggregation_disabled() -> None:
    config = {
        **CLUSTER_RANGE,
        "serviceLoadBalancerIPs": [{"cidr": "192.0.2.0/24"}],
        "serviceLoadBalancerAggregation": "Disabled",
    }
    objects = cluster(
        config,
        service("lb", etp="Cluster", ingress=("192.0.2.10",)),
        endpoints_slice("lb", {"a": True}),
        service("quiet", cluster_ip="10.96.0.13", ingress=("192.0.2.11",)),
        endpoints_slice("quiet", {}),
        calico="v3.31.0",
    )
    result = expect(objects)
    for name in "abc":
        assert from_node(result, name) == {BLOCK[name], "10.96.0.0/12", "10.96.0.10/32", "192.0.2.10/32"}
    old = expect(cluster(config, calico="v3.30.7"))
    assert "192.0.2.0/24" in from_node(old, "a")
    assert any("serviceLoadBalancerAggregation is ignored" in note for note in old.notes)


def test_headless_and_external_name_services_are_never_advertised() -> None:
    headless = service("db", type="ClusterIP", cluster_ip="None", etp=None)
    external = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    }
    config = {**CLUSTER_RANGE, "serviceLoadBalancerAggregation": "Disabled"}
    result = expect(cluster(config, headless, endpoints_slice("db", {"a": True}), external, calico="v3.31.0"))
    assert from_node(result, "a") == {BLOCK["a"], "10.96.0.0/12"}


def test_route_reflector_accepts_learned_load_balancer_host_routes() -> None:
    # Aggregation off: no LB range static anywhere. b's ETP Local /32 reaches the iBGP peer only
    # through the route reflector a (step 7 of the export filter), with b as next hop.
    config = {"serviceLoadBalancerIPs": [{"cidr": "192.0.2.0/24"}], "serviceLoadBalancerAggregation": "Disabled"}
    from test_advertise import bgp_peer

    objects = [
        *base(config=config, calico="v3.31.0", peer=bgp_peer(asNumber=64512)),
        service("lb", etp="Local", ingress=("192.0.2.10",)),
        endpoints_slice("lb", {"b": True}),
    ]
    objects[1] = node("a", rr="1.0.0.1")
    result = expect(objects)
    assert {(n, h) for n, p, h in seen(result) if p == "192.0.2.10/32"} == {("a", "b"), ("b", "b")}


def test_endpoints_naming_no_node_count_only_as_existing_endpoints() -> None:
    # default/kubernetes: its EndpointSlice (written by the apiserver) names no node.
    config = {**CLUSTER_RANGE, "serviceLoadBalancerAggregation": "Disabled"}
    api = service("kubernetes", type="ClusterIP", cluster_ip="10.96.0.1")
    api_slice = endpoints_slice("kubernetes", {"": True})
    del api_slice["endpoints"][0]["nodeName"]
    local = service("web", etp="Local")
    local_slice = endpoints_slice("web", {"": True})
    del local_slice["endpoints"][0]["nodeName"]
    result = expect(cluster(config, api, api_slice, local, local_slice, calico="v3.31.0"))
    assert {n for n in "abc" if "10.96.0.1/32" in from_node(result, n)} == {"a", "b", "c"}
    assert all("10.96.0.10/32" not in from_node(result, n) for n in "abc")  # Local: on no node


def test_a_node_re_exports_another_nodes_host_route_outside_every_range_only_if_it_has_its_own() -> None:
    # Aggregation off, ETP Local: the /32 is a static route of the nodes with an endpoint (b, c)
    # and of no range. Over the mesh to an eBGP peer, c also sends b's copy (its own static route
    # lets it out, next hop self: the same route with a second reason); a, with no endpoint and no
    # reflector, refuses both copies.
    config = {"serviceLoadBalancerIPs": [{"cidr": "192.0.2.0/24"}], "serviceLoadBalancerAggregation": "Disabled"}
    objects = [
        *base(config=config, calico="v3.31.0"),
        service("lb", etp="Local", ingress=("192.0.2.10",)),
        endpoints_slice("lb", {"b": True, "c": True}),
    ]
    result = expect(objects)
    assert {(n, h) for n, p, h in seen(result) if p == "192.0.2.10/32"} == {("b", "b"), ("c", "c")}
    from_c = next(r for r in result.table if str(r.prefix) == "192.0.2.10/32" and r.session == ADDR["c"])
    assert sorted((why.owner, why.path) for why in result.why(from_c)) == [("b", "mesh"), ("c", "local")]
