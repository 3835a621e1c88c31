"""ClusterState.from_objects: the cluster facts the advertisement model reads, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_advertise import affinity, base, bgp_configuration, node

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.cluster import ClusterState, ParseMemo, parse_calico_version
from bgpflat.errors import SpecError

SCENARIO_D = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp" / "cluster.yaml"


def scenario_d() -> ClusterState:
    return ClusterState.from_objects([o for o in yaml.safe_load_all(SCENARIO_D.read_text()) if o])


def test_scenario_d_snapshot_is_read() -> None:
    state = scenario_d()
    assert state.calico_version == "v3.30.7"
    assert {n.name: n.ipv4_address for n in state.nodes.values()} == {
        "node-1": "10.200.20.103",
        "node-2": "10.200.20.104",
        "node-3": "10.200.20.105",
    }
    assert state.nodes["node-1"].ipv4_network == Prefix.parse("10.200.20.0/24")
    assert state.nodes["node-1"].labels["node-role.kubernetes.io/ingress"] == "ingress"
    assert [(str(a.cidr), a.node) for a in state.affinities] == [
        ("10.233.65.0/24", "node-1"),
        ("10.233.92.0/24", "node-2"),
        ("10.233.110.0/24", "node-3"),
    ]
    workloads = sorted((str(a.address), a.node, a.owner) for a in state.allocations if a.kind == "workload")
    assert workloads == [
        ("10.233.110.7/32", "node-3", "default/whoami-7d4b9c6f5-9qzrt"),
        ("10.233.65.10/32", "node-1", "default/whoami-7d4b9c6f5-2xk8p"),
        ("10.233.92.2/32", "node-2", "kube-system/coredns-5d78c9869d-h7lzk"),
    ]
    assert {a.kind for a in state.allocations} == {"workload", "ipipTunnelAddress"}
    assert [s.key for s in state.services] == ["default/whoami", "kube-system/kube-dns"]
    assert sorted(ref.node for ref in state.slice_endpoints["default/whoami"]) == ["node-1", "node-3"]
    # No BGPConfiguration yet: Calico's defaults apply.
    assert state.bgp_configuration is None
    assert (state.default_as_number, state.mesh_enabled) == (64512, True)


def test_node_as_and_configurations() -> None:
    state = ClusterState.from_objects(
        [
            node("a", asn=65001),
            node("b"),
            bgp_configuration(asNumber=64513),
            bgp_configuration("node.b", listenPort=1790),
            bgp_configuration("odd-name"),
        ]
    )
    assert state.node_as(state.nodes["a"]) == 65001
    assert state.node_as(state.nodes["b"]) == 64513
    assert list(state.node_configurations) == ["b"]
    assert state.notes == ("BGPConfiguration 'odd-name' is ignored by Calico (not default/node.<name>)",)


def test_v3_node_from_calicoctl_is_understood() -> None:
    v3 = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "Node",
        "metadata": {"name": "x"},
        "spec": {"bgp": {"ipv4Address": "192.0.2.4/26", "asNumber": 65010, "routeReflectorClusterID": "1.1.1.1"}},
    }
    info = ClusterState.from_objects([v3]).nodes["x"]
    assert (info.ipv4_address, info.as_number, info.is_route_reflector) == ("192.0.2.4", 65010, True)


def test_bad_objects_name_the_object_and_field() -> None:
    broken = affinity("a", "10.244.0.0/26")
    broken["spec"]["cidr"] = "10.244.0.0/99"
    where = r"objects\[1\] \(BlockAffinity a-10.244.0.0-26\)\.spec\.cidr"
    with pytest.raises(SpecError, match=where + ": .*invalid prefix"):
        ClusterState.from_objects([node("a"), broken])
    bad_node = node("a")
    bad_node["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "10.0.0.300/24"
    with pytest.raises(SpecError, match=r"objects\[0\] \(Node a\)\.metadata\.annotations.*not an IP address"):
        ClusterState.from_objects([bad_node])


def test_unknown_kinds_and_non_calico_groups_are_ignored() -> None:
    objects = [
        *base(),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}},
        {"apiVersion": "example.com/v1", "kind": "IPPool", "metadata": {"name": "not-calico"}},
    ]
    assert [p.name for p in ClusterState.from_objects(objects).pools] == ["pods"]


def test_calico_version_text() -> None:
    assert parse_calico_version("v3.30.7") == (3, 30, 7)
    assert parse_calico_version("3.31") == (3, 31, 0)
    assert parse_calico_version("master") is None


def test_a_shared_memo_reads_unchanged_objects_once_and_changed_ones_anew() -> None:
    """A plan's route impact builds the cluster before and after its changes with one memo: an
    object in both lists is read once, a changed one (a new dict) is read as it now is."""
    objects = [o for o in yaml.safe_load_all(SCENARIO_D.read_text()) if o]
    memo = ParseMemo()
    before = ClusterState.from_objects(objects, memo=memo)
    changed = [dict(o) for o in objects if o["kind"] == "Node" and o["metadata"]["name"] == "node-2"]
    changed[0]["metadata"] = {
        **changed[0]["metadata"],
        "annotations": {**changed[0]["metadata"]["annotations"], "projectcalico.org/ASNumber": "65010"},
    }
    after_objects = [changed[0] if o["kind"] == "Node" and o["metadata"]["name"] == "node-2" else o for o in objects]
    after = ClusterState.from_objects(after_objects, memo=memo)
    assert before.nodes["node-2"].as_number is None
    assert after.nodes["node-2"].as_number == 65010
    assert after.nodes["node-1"] is before.nodes["node-1"]  # read once
    assert after.allocations == before.allocations
    assert ClusterState.from_objects(after_objects) == after
