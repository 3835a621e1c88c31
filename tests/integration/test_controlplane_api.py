"""The local control plane is a real Kubernetes API: CRUD, conflicts, validation, discovery, IPs."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from rawapi import official_client, raw_api

from bgpflat.lab.controlplane.crds import CALICO_GROUPS
from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration


def _json(value: object) -> dict[str, Any]:
    """The kubernetes client returns custom objects as plain JSON dicts, typed as ``object``."""
    assert isinstance(value, dict)
    return value


def _pool_coordinates(plane: ControlPlane) -> tuple[str, str, str]:
    return CALICO_GROUPS[plane.flavour], plane.flavour, "ippools"


def _pool(plane: ControlPlane, name: str, cidr: str, **spec: Any) -> dict[str, Any]:
    group, version, _ = _pool_coordinates(plane)
    return {
        "apiVersion": f"{group}/{version}",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {"cidr": cidr, "blockSize": 26, "ipipMode": "Never", "vxlanMode": "Never", **spec},
    }


def test_ippool_create_get_list_merge_patch(kube: ControlPlane) -> None:
    group, version, plural = _pool_coordinates(kube)
    with official_client(kube) as api_client:
        api = client.CustomObjectsApi(api_client)
        created = _json(api.create_cluster_custom_object(group, version, plural, _pool(kube, "office", "10.50.0.0/16")))
        assert created["metadata"]["resourceVersion"]

        fetched = _json(api.get_cluster_custom_object(group, version, plural, "office"))
        assert fetched["spec"]["cidr"] == "10.50.0.0/16"
        listed = _json(api.list_cluster_custom_object(group, version, plural))
        assert [item["metadata"]["name"] for item in listed["items"]] == ["office"]

        # A dict body is sent as a JSON merge patch: the fields not named stay as they were.
        change = {"spec": {"natOutgoing": True}}
        patched = _json(api.patch_cluster_custom_object(group, version, plural, "office", change))
        assert patched["spec"]["natOutgoing"] is True
        assert patched["spec"]["cidr"] == "10.50.0.0/16"
        assert patched["spec"]["blockSize"] == 26
        assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_update_with_stale_resource_version_is_a_conflict(kube: ControlPlane) -> None:
    group, version, plural = _pool_coordinates(kube)
    with official_client(kube) as api_client:
        api = client.CustomObjectsApi(api_client)
        api.create_cluster_custom_object(group, version, plural, _pool(kube, "stale", "10.51.0.0/16"))
        first_read = _json(api.get_cluster_custom_object(group, version, plural, "stale"))
        second_read = _json(api.get_cluster_custom_object(group, version, plural, "stale"))

        first_read["spec"]["natOutgoing"] = True
        api.replace_cluster_custom_object(group, version, plural, "stale", first_read)

        second_read["spec"]["disabled"] = True  # still carries the old resourceVersion
        with pytest.raises(ApiException) as caught:
            api.replace_cluster_custom_object(group, version, plural, "stale", second_read)
        assert caught.value.status == 409
        assert _json(api.get_cluster_custom_object(group, version, plural, "stale"))["spec"].get("disabled") is None


def test_schema_violation_is_unprocessable(kube: ControlPlane) -> None:
    group, version, plural = _pool_coordinates(kube)
    with official_client(kube) as api_client:
        api = client.CustomObjectsApi(api_client)
        bad = _pool(kube, "bad", "10.52.0.0/16", blockSize="twenty-six")
        with pytest.raises(ApiException) as caught:
            api.create_cluster_custom_object(group, version, plural, bad)
        assert caught.value.status == 422
        assert "blockSize" in str(caught.value.body)
        bad_enum = _pool(kube, "bad", "10.52.0.0/16", assignmentMode="Sometimes")
        with pytest.raises(ApiException) as caught:
            api.create_cluster_custom_object(group, version, plural, bad_enum)
        assert caught.value.status == 422
        assert "assignmentMode" in str(caught.value.body)


def _cidr_is_immutable_in_schema(plane: ControlPlane) -> bool:
    group, _, plural = _pool_coordinates(plane)
    crd = raw_api(plane).must("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{group}")
    version = next(v for v in crd["spec"]["versions"] if v["name"] == plane.flavour)
    cidr = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["cidr"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    field_rules = [r.get("rule", "") for r in cidr.get("x-kubernetes-validations", [])]
    spec_rules = [r.get("rule", "") for r in spec.get("x-kubernetes-validations", [])]
    on_field = any(r.replace(" ", "") == "self==oldSelf" for r in field_rules)
    return on_field or any("oldSelf.cidr" in r for r in spec_rules)


def test_cidr_change_follows_the_installed_crd_rules(kube: ControlPlane) -> None:
    """Calico v3.32+ CRDs refuse a CIDR change with CEL (422); older ones store it (calico-facts §1.1)."""
    group, version, plural = _pool_coordinates(kube)
    with official_client(kube) as api_client:
        api = client.CustomObjectsApi(api_client)
        api.create_cluster_custom_object(group, version, plural, _pool(kube, "moving", "10.53.0.0/16"))
        change = {"spec": {"cidr": "10.54.0.0/16"}}
        if _cidr_is_immutable_in_schema(kube):
            with pytest.raises(ApiException) as caught:
                api.patch_cluster_custom_object(group, version, plural, "moving", change)
            assert caught.value.status == 422
            unchanged = _json(api.get_cluster_custom_object(group, version, plural, "moving"))
            assert unchanged["spec"]["cidr"] == "10.53.0.0/16"
        else:
            # No CEL rule: a raw write skips Calico's validation, which is why bgpflat validates itself.
            patched = _json(api.patch_cluster_custom_object(group, version, plural, "moving", change))
            assert patched["spec"]["cidr"] == "10.54.0.0/16"


def _served_groups(plane: ControlPlane) -> dict[str, list[str]]:
    with official_client(plane) as api_client:
        groups = client.ApisApi(api_client).get_api_versions().groups
    return {g.name: [v.version for v in g.versions] for g in groups}


def test_discovery_v1_flavour(kube_v1: ControlPlane) -> None:
    groups = _served_groups(kube_v1)
    assert groups["crd.projectcalico.org"] == ["v1"]
    assert groups["operator.tigera.io"] == ["v1"]
    assert "projectcalico.org" not in groups  # no Calico API server, no native v3 CRDs
    with official_client(kube_v1) as api_client:
        resources = client.CustomObjectsApi(api_client).get_api_resources("crd.projectcalico.org", "v1").resources
    names = {r.name for r in resources}
    wanted = {"ippools", "bgppeers", "bgpconfigurations", "bgpfilters", "ipamblocks", "blockaffinities"}
    wanted |= {"ipamconfigs", "felixconfigurations", "clusterinformations", "caliconodestatuses"}
    assert wanted <= names
    assert all(not r.namespaced for r in resources if r.name in wanted)


def test_discovery_v3_flavour(kube_v3: ControlPlane) -> None:
    groups = _served_groups(kube_v3)
    assert groups["projectcalico.org"] == ["v3"]
    assert groups["operator.tigera.io"] == ["v1"]
    assert "crd.projectcalico.org" not in groups  # Calico's docs forbid installing both
    with official_client(kube_v3) as api_client:
        resources = client.CustomObjectsApi(api_client).get_api_resources("projectcalico.org", "v3").resources
    assert {"ippools", "bgppeers", "bgpconfigurations"} <= {r.name for r in resources}


def test_installation_crd_accepts_an_installation(kube: ControlPlane) -> None:
    installation: dict[str, Any] = {
        "apiVersion": "operator.tigera.io/v1",
        "kind": "Installation",
        "metadata": {"name": "default"},
        "spec": {"calicoNetwork": {"ipPools": [{"cidr": "10.55.0.0/16", "encapsulation": "VXLAN"}]}},
    }
    with official_client(kube) as api_client:
        api = client.CustomObjectsApi(api_client)
        api.create_cluster_custom_object("operator.tigera.io", "v1", "installations", installation)
        got = _json(api.get_cluster_custom_object("operator.tigera.io", "v1", "installations", "default"))
        assert got["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] == "VXLAN"
        installation["metadata"]["name"] = "other"
        installation["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] = "Tunnel"
        with pytest.raises(ApiException) as caught:  # the operator's CRD carries the enum
            api.create_cluster_custom_object("operator.tigera.io", "v1", "installations", installation)
        assert caught.value.status == 422


def _service(name: str, cluster_ip: str | None = None) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(cluster_ip=cluster_ip, ports=[client.V1ServicePort(port=80)]),
    )


def _cluster_ip(service: client.V1Service) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    assert service.spec is not None and service.spec.cluster_ip is not None
    return ipaddress.ip_address(service.spec.cluster_ip)


def test_service_gets_a_cluster_ip_from_the_configured_range(kube_v1: ControlPlane) -> None:
    service_range = ipaddress.ip_network(kube_v1.state.service_cluster_ip_range)
    with official_client(kube_v1) as api_client:
        core = client.CoreV1Api(api_client)
        built_in = core.read_namespaced_service("kubernetes", "default")
        assert _cluster_ip(built_in) == next(service_range.hosts())
        allocated = core.create_namespaced_service("default", _service("web"))
        assert _cluster_ip(allocated) in service_range
        with pytest.raises(ApiException) as caught:
            core.create_namespaced_service("default", _service("outside", "192.0.2.77"))
        assert caught.value.status == 422


def test_nodes_keep_calico_annotations(kube_v1: ControlPlane) -> None:
    annotations = {"projectcalico.org/IPv4Address": "10.200.20.103/24", "projectcalico.org/ASNumber": "64512"}
    node = client.V1Node(metadata=client.V1ObjectMeta(name="worker-1", annotations=annotations))
    with official_client(kube_v1) as api_client:
        core = client.CoreV1Api(api_client)
        core.create_node(node)
        got = core.read_node("worker-1")
    assert got.metadata is not None and got.metadata.annotations is not None
    assert got.metadata.annotations["projectcalico.org/IPv4Address"] == "10.200.20.103/24"
