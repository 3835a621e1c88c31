"""Seeding lab scenarios into the real server, and the per-test reset that the fixtures rely on."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from rawapi import raw_api

from bgpflat.lab.conformance.baseline import Baseline
from bgpflat.lab.controlplane.crds import CALICO_GROUPS
from bgpflat.lab.controlplane.seed import METADATA_ANNOTATION, SeedResult, ensure_service_cidr
from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration


def test_calico_bgp_scenario_seeds_every_object(kube: ControlPlane) -> None:
    result = kube.seed_scenario("calico-bgp")
    rest = raw_api(kube)
    calico = f"/apis/{CALICO_GROUPS[kube.flavour]}/{kube.flavour}"

    pool = rest.must("GET", f"{calico}/ippools/default-pool")
    assert pool["spec"]["cidr"] == "10.233.64.0/18"
    assert pool["spec"]["ipipMode"] == "Always"
    blocks = rest.must("GET", f"{calico}/ipamblocks")["items"]
    assert sorted(b["spec"]["affinity"] for b in blocks) == ["host:node-1", "host:node-2", "host:node-3"]
    affinities = rest.must("GET", f"{calico}/blockaffinities")["items"]
    assert {a["spec"]["node"]: a["spec"]["cidr"] for a in affinities}["node-2"] == "10.233.92.0/24"
    assert rest.must("GET", f"{calico}/clusterinformations/default")["spec"]["datastoreReady"] is True

    nodes = {n["metadata"]["name"]: n["metadata"] for n in rest.must("GET", "/api/v1/nodes")["items"]}
    assert sorted(nodes) == ["node-1", "node-2", "node-3"]
    assert nodes["node-2"]["annotations"]["projectcalico.org/IPv4Address"] == "10.200.20.104/24"
    assert "node-role.kubernetes.io/ingress" in nodes["node-1"]["labels"]

    services = {
        f"{s['metadata']['namespace']}/{s['metadata']['name']}": s["spec"]
        for s in rest.must("GET", "/api/v1/services")["items"]
    }
    assert services["kube-system/kube-dns"]["clusterIP"] == "10.233.0.3"
    whoami_ip = ipaddress.ip_address(services["default/whoami"]["clusterIP"])
    assert whoami_ip in ipaddress.ip_network("10.233.0.0/18")  # allocated by the server
    assert result.cluster_ips["default/whoami"] == str(whoami_ip)
    assert "default/kubernetes" in services  # the server's own, left alone

    slices = rest.must(
        "GET", "/apis/discovery.k8s.io/v1/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dwhoami"
    )["items"]
    addresses = sorted(a for s in slices for e in s["endpoints"] for a in e["addresses"])
    assert addresses == ["10.233.110.7", "10.233.65.10"]

    kinds = [kind for kind, _, _ in result.created]
    assert kinds[0] == "ClusterInformation"  # default and kube-system exist already
    assert kinds.index("IPPool") < kinds.index("BlockAffinity") < kinds.index("EndpointSlice")
    assert kinds.index("Service") < kinds.index("EndpointSlice")


def test_v3_pool_is_stored_the_way_calico_stores_it_in_v1(kube_v1: ControlPlane, tmp_path: Path) -> None:
    scenario = tmp_path / "labelled"
    scenario.mkdir()
    pool = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "IPPool",
        "metadata": {
            "name": "labelled",
            "labels": {"team": "net", "projectcalico.org/owned": "yes"},
            "annotations": {"note": "office pool"},
        },
        "spec": {"cidr": "10.60.0.0/16"},
    }
    (scenario / "cluster.yaml").write_text(yaml.safe_dump(pool))
    kube_v1.seed_scenario(scenario)
    stored = raw_api(kube_v1).must("GET", "/apis/crd.projectcalico.org/v1/ippools/labelled")
    assert stored["metadata"]["labels"] == {"projectcalico.org/owned": "yes"}
    meta = json.loads(stored["metadata"]["annotations"][METADATA_ANNOTATION])
    assert meta["labels"] == {"projectcalico.org/owned": "yes", "team": "net"}
    assert meta["annotations"] == {"note": "office pool"}
    assert "note" not in stored["metadata"]["annotations"]


def test_scenario_with_another_service_range_gets_a_service_cidr(kube_v1: ControlPlane, tmp_path: Path) -> None:
    scenario = tmp_path / "elsewhere"
    scenario.mkdir()
    (scenario / "scenario.yaml").write_text("name: elsewhere\nserviceClusterIPRange: 10.240.0.0/24\n")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "dns", "namespace": "infra"},
        "spec": {"clusterIP": "10.240.0.10", "ports": [{"port": 53, "protocol": "UDP"}]},
    }
    (scenario / "cluster.yaml").write_text(yaml.safe_dump(service))
    result = kube_v1.seed_scenario(scenario)
    assert result.service_cidr == "bgpflat-elsewhere"
    assert result.cluster_ips == {"infra/dns": "10.240.0.10"}
    assert ("Namespace", "", "infra") in result.created  # namespaces referenced are created first


def test_seed_scenario_fixture(seed_scenario: Callable[..., SeedResult], kube_v1: ControlPlane) -> None:
    result = seed_scenario("calico-bgp")
    assert ("IPPool", "", "default-pool") in result.created
    assert raw_api(kube_v1).request("GET", "/api/v1/nodes/node-3").ok


def test_reset_removes_everything_created_after_start(kube_v1: ControlPlane) -> None:
    rest = raw_api(kube_v1)
    client = kube_v1.client()
    baseline = Baseline.capture(client)
    kube_v1.seed_scenario("calico-bgp")
    rest.must("POST", "/api/v1/namespaces", {"metadata": {"name": "scratch"}})
    rest.must("POST", "/api/v1/namespaces/scratch/configmaps", {"metadata": {"name": "c", "finalizers": ["x/y"]}})
    assert ensure_service_cidr(client, cidr="10.241.0.0/24", name="extra") == "extra"
    rest.must(
        "POST",
        "/api/v1/namespaces/scratch/services",
        {"metadata": {"name": "s"}, "spec": {"clusterIP": "10.241.0.5", "ports": [{"port": 1}]}},
    )
    assert len(baseline.extra_objects(client)) > 15

    deleted = baseline.restore(client)

    assert "v1 Namespace scratch" in deleted and "v1 ConfigMap scratch/c" in deleted
    assert baseline.extra_objects(client) == []
    client.close()
    assert rest.request("GET", "/api/v1/namespaces/scratch").status == 404
    assert rest.request("GET", "/api/v1/namespaces/default/services/kubernetes").ok
    assert rest.must("GET", "/apis/crd.projectcalico.org/v1/ippools")["items"] == []
    assert rest.request("GET", "/apis/networking.k8s.io/v1/servicecidrs/extra").status == 404
    assert rest.request("GET", "/apis/networking.k8s.io/v1/ipaddresses/10.241.0.5").status == 404
