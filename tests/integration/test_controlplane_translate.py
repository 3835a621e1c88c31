"""The Calico v3 <-> v1 translation the seeder applies (pure; no server needed)."""

from __future__ import annotations

import json

from bgpflat.lab.controlplane.seed import (
    METADATA_ANNOTATION,
    calico_v1_to_v3,
    calico_v3_to_v1,
    for_flavour,
    load_scenario,
)

V3_PEER = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "BGPPeer",
    "metadata": {
        "name": "tor",
        "labels": {"site": "office", "projectcalico.org/managed": "x"},
        "annotations": {"operator.tigera.io/hash": "abc", "owner": "netops"},
    },
    "spec": {"peerIP": "10.200.20.254", "asNumber": 65200, "nodeSelector": "has(node-role.kubernetes.io/ingress)"},
}


def test_v3_to_v1_keeps_spec_and_moves_metadata_into_the_annotation() -> None:
    v1 = calico_v3_to_v1(V3_PEER)
    assert v1["apiVersion"] == "crd.projectcalico.org/v1"
    assert v1["spec"] == V3_PEER["spec"]
    assert v1["metadata"]["labels"] == {"projectcalico.org/managed": "x"}
    assert v1["metadata"]["annotations"]["operator.tigera.io/hash"] == "abc"
    assert "owner" not in v1["metadata"]["annotations"]
    # libcalico-go stores the whole v3 metadata (Calico-owned keys too), Go-marshalled.
    assert v1["metadata"]["annotations"][METADATA_ANNOTATION] == (
        '{"creationTimestamp":null,"labels":{"projectcalico.org/managed":"x","site":"office"},'
        '"annotations":{"operator.tigera.io/hash":"abc","owner":"netops"}}'
    )


def test_round_trip_restores_the_v3_object() -> None:
    back = calico_v1_to_v3(calico_v3_to_v1(V3_PEER))
    assert back == V3_PEER


def test_v1_without_metadata_annotation_keeps_its_own_labels() -> None:
    v1 = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BlockAffinity",
        "metadata": {"name": "node-1-10-233-65-0-24", "labels": {"a": "b"}},
        "spec": {"cidr": "10.233.65.0/24", "node": "node-1", "state": "confirmed", "deleted": "false"},
    }
    v3 = calico_v1_to_v3(v1)
    assert v3["metadata"] == {"name": "node-1-10-233-65-0-24", "labels": {"a": "b"}}
    assert v3["spec"]["deleted"] is False  # a string in v1, a boolean in v3


def test_non_calico_objects_pass_through_unchanged() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "annotations": {"a": "b"}}}
    assert for_flavour(node, "v1") == node
    assert for_flavour(node, "v3") == node


def test_reference_scenario_loads() -> None:
    scenario = load_scenario("calico-bgp")
    assert scenario.service_cluster_ip_range == "10.233.0.0/18"
    kinds = {o["kind"] for o in scenario.objects}
    assert {"Node", "IPPool", "IPAMBlock", "BlockAffinity", "Service", "EndpointSlice"} <= kinds
    pool = next(o for o in scenario.objects if o["kind"] == "IPPool")
    stored = json.loads(for_flavour(pool, "v1")["metadata"]["annotations"][METADATA_ANNOTATION])
    assert stored == {"creationTimestamp": None}
