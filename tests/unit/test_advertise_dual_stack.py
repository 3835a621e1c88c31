"""Dual-stack corners of the export model that the IPv6 conformance cells showed (confd v3.31.0 + bird6).

* confd counts a Service's endpoints only in the Service's own family: an IPv6 EndpointSlice of
  an IPv4 Service makes no node local (up to v3.31.3 by ``spec.clusterIP``, from v3.31.4 by
  ``spec.ipFamilies``);
* a single-address match advertises the whole Service: its cluster IP too when
  serviceClusterIPs is set, whatever family the matching address has;
* one outside speaker with an address per family is the union of both expectations.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_advertise import ADDR, PEER, affinity, base, bgp_peer, expect, from_node, pool
from test_advertise_services import CLUSTER_RANGE, service

from bgpflat.core.routes.advertise import expected_routes_for_peers
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import OutsidePeer, merge_expected

EXTERNAL = {"serviceExternalIPs": [{"cidr": "198.51.100.0/24"}, {"cidr": "203.0.113.7/32"}]}


def slice_of(name: str, node_name: str, *, family: str) -> dict[str, Any]:
    address = "fd10::9" if family == "IPv6" else "10.244.9.9"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-{family}",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": family,
        "endpoints": [{"addresses": [address], "nodeName": node_name, "conditions": {"ready": True}}],
    }


def dual(svc: dict[str, Any]) -> dict[str, Any]:
    """``svc`` as a dual-stack Service (PreferDualStack, IPv4 first)."""
    svc["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
    svc["spec"]["clusterIPs"] = [svc["spec"]["clusterIP"], "fd00:96::10"]
    return svc


@pytest.mark.parametrize("calico", ["v3.31.0", "v3.31.4", "v3.32.0"])
def test_an_ipv6_slice_of_an_ipv4_service_makes_no_node_local(calico: str) -> None:
    svc = service("web", etp="Local", external_ips=("198.51.100.9",))
    svc["spec"]["ipFamilies"] = ["IPv4"]
    config = {**CLUSTER_RANGE, **EXTERNAL}
    result = expect([*base(config=config, calico=calico), svc, slice_of("web", "b", family="IPv6")])
    assert not {p for n in "abc" for p in from_node(result, n) if p.endswith("/32")}
    both = expect([*base(config=config, calico=calico), svc, slice_of("web", "b", family="IPv4")])
    assert {p for p in from_node(both, "b") if p.endswith("/32")} == {"10.96.0.10/32", "198.51.100.9/32"}


def test_a_dual_stack_service_counts_its_ipv6_slice_from_v3_31_4() -> None:
    config = {**CLUSTER_RANGE, **EXTERNAL}

    def local_on_b(calico: str) -> set[str]:
        svc = dual(service("web", etp="Local", external_ips=("198.51.100.9",)))
        result = expect([*base(config=config, calico=calico), svc, slice_of("web", "b", family="IPv6")])
        return {p for p in from_node(result, "b") if p.endswith("/32")}

    assert local_on_b("v3.31.3") == set()  # spec.clusterIP is IPv4: the IPv6 endpoint does not count
    assert local_on_b("v3.31.4") == {"10.96.0.10/32", "198.51.100.9/32"}  # #11503: by spec.ipFamilies


def test_a_single_address_match_advertises_the_cluster_ip_too() -> None:
    # Seen in the lab: an ETP Cluster Service whose IPv6 external IP matched a /128 entry had its
    # IPv4 cluster IP sent by bird from every node, though only an IPv6 range was configured.
    config = {"serviceClusterIPs": [{"cidr": "fd00:96::/112"}], "serviceExternalIPs": [{"cidr": "203.0.113.7/32"}]}
    svc = service("web", etp="Cluster", external_ips=("203.0.113.7",))
    # confd decides only for a Service with an endpoints object (routes.go setRouteForSvc).
    result = expect([*base(config=config, calico="v3.31.0"), svc, slice_of("web", "a", family="IPv4")])
    for name in "abc":
        assert {"10.96.0.10/32", "203.0.113.7/32"} <= from_node(result, name)
    without = expect([*base(config=config, calico="v3.31.0"), svc])
    assert "10.96.0.10/32" not in from_node(without, "a")
    route = next(r for r in result.table if str(r.prefix) == "10.96.0.10/32" and r.session == ADDR["a"])
    assert "matching a single-address range" in result.explain(route)


def test_a_dual_stack_peer_expects_the_union_of_its_families() -> None:
    objects = base(calico="v3.31.0", peer=bgp_peer())
    for index in (1, 2, 3):  # the Nodes a, b, c
        objects[index]["metadata"]["annotations"]["projectcalico.org/IPv6Address"] = f"fd77::{index}/64"
    objects += [
        pool("pods-v6", "fd10::/48", blockSize=122),
        *(affinity(n, f"fd10:0:0:{i}::/122") for i, n in enumerate("abc", start=1)),
        bgp_peer("tor-v6", peerIP="fd77::fe"),
    ]
    parts = expected_routes_for_peers(
        cluster=ClusterState.from_objects(objects), peers=[OutsidePeer(address=PEER), OutsidePeer(address="fd77::fe")]
    )
    merged = merge_expected(parts)
    assert set(merged.sessions) == {*ADDR.values(), "fd77::1", "fd77::2", "fd77::3"}
    assert {str(r.prefix) for r in merged.table if r.session == "fd77::1"} == {
        "fd10:0:0:1::/122",
        "fd10:0:0:2::/122",
        "fd10:0:0:3::/122",
    }
    assert len(merged.table) == len(parts[0].table) + len(parts[1].table) == 18
    assert merged.peer.address == PEER
    assert merge_expected(parts[:1]) is parts[0]
    with pytest.raises(ValueError, match="share sessions"):
        merge_expected([parts[0], parts[0]])
