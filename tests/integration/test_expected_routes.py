"""Scenario D in a real kube-apiserver: the routes the switch should learn, read through the live API.

labs/calico-bgp/cluster.yaml is the cluster *before* bgpflat: no BGPConfiguration, no BGPPeer.
The test adds the "after" objects of docs/scenarios.md D (AS 64513, mesh on, serviceClusterIPs
10.233.0.0/18, BGPPeer peer-switch to 10.200.20.254 AS 65200 for the ingress nodes) and checks
that the switch is expected to learn every pod block plus the service range from each ingress
node, each with that node as next hop (eBGP, mesh re-export, next hop self).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy, Rule
from rawapi import raw_api

from bgpflat.adapters.kube import CalicoApi, KubeClient
from bgpflat.cli import main
from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import OutsidePeer
from bgpflat.workflows.routes import read_live_objects

pytestmark = pytest.mark.integration

SWITCH = "10.200.20.254"
INGRESS = {"10.200.20.103": "node-1", "10.200.20.104": "node-2"}
BLOCKS = {"10.233.65.0/24": "node-1", "10.233.92.0/24": "node-2", "10.233.110.0/24": "node-3"}
SERVICE_RANGE = "10.233.0.0/18"


def after_objects(api_version: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": api_version,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "asNumber": 64513,
                "listenPort": 179,
                "nodeToNodeMeshEnabled": True,
                "serviceClusterIPs": [{"cidr": SERVICE_RANGE}],
            },
        },
        {
            "apiVersion": api_version,
            "kind": "BGPPeer",
            "metadata": {"name": "peer-switch"},
            "spec": {
                "asNumber": 65200,
                "peerIP": SWITCH,
                "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'",
            },
        },
    ]


@pytest.fixture
def scenario_d(kube: Any) -> Any:
    kube.seed_scenario("calico-bgp")
    rest = raw_api(kube)
    api_version = "crd.projectcalico.org/v1" if kube.flavour == "v1" else "projectcalico.org/v3"
    for obj in after_objects(api_version):
        rest.must("POST", rest.collection_path(api_version, obj["kind"]), obj)
    return kube


def test_switch_learns_every_block_and_the_service_range_from_each_ingress_node(scenario_d: Any) -> None:
    api = CalicoApi.connect(kubeconfig=str(scenario_d.kubeconfig))
    try:
        objects = read_live_objects(api)
    finally:
        api.close()
    cluster = ClusterState.from_objects(objects)
    assert cluster.calico_version == "v3.30.7"
    result = expected_routes(cluster=cluster, peer=OutsidePeer(address=SWITCH))
    assert {s: e.node for s, e in result.sessions.items()} == INGRESS
    table = {(r.session, str(r.prefix), r.next_hop, r.as_path) for r in result.table}
    assert table == {(session, prefix, session, (64513,)) for session in INGRESS for prefix in [*BLOCKS, SERVICE_RANGE]}
    # node-3 peers with nobody outside, so its block reaches the switch only by mesh re-export.
    route = next(r for r in result.table if str(r.prefix) == "10.233.110.0/24" and r.session == "10.200.20.103")
    assert result.explain(route) == ("block of node-3, expected through mesh re-export (eBGP peer, next hop self)")


def test_cli_reads_the_live_cluster(scenario_d: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["routes", "expected", "--peer", SWITCH, "--kubeconfig", str(scenario_d.kubeconfig), "-o", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["calico_version"] == "v3.30.7"
    assert sorted({(r["node"], r["prefix"]) for r in data["routes"]}) == sorted(
        (node, prefix) for node in INGRESS.values() for prefix in [*BLOCKS, SERVICE_RANGE]
    )
    assert "reading cluster state from context" in err


def test_live_cluster_and_its_snapshot_give_the_same_routes(
    scenario_d: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(scenario_d.kubeconfig)
    snapshot = str(tmp_path / "snapshot.yaml")
    assert main(["snapshot", "--output-file", snapshot, "--kubeconfig", kubeconfig]) == 0
    capsys.readouterr()
    outputs = []
    for source in (["--kubeconfig", kubeconfig], ["--snapshot", snapshot]):
        assert main(["routes", "expected", "--peer", SWITCH, *source, "-o", "json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    live, saved = outputs
    assert live["routes"] and live == saved


def test_a_live_read_hands_out_what_a_paged_read_does_with_one_request_per_list(
    kube_v1: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    """``plan``/``routes expected``/``verify`` read each list whole and all at once; a snapshot
    reads them page by page. Both must hand out the same objects in the same order."""
    kube_v1.seed_scenario("calico-bgp")
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    with KubeClient.connect(kubeconfig=str(config)) as client:
        api = CalicoApi(client)
        api.read_sources()  # discovery first, so that the log below holds the reads alone
        del proxy.log[:]
        whole = list(api.read_everything())
        whole_requests = [path for method, path, _ in proxy.log if method == "GET"]
        del proxy.log[:]
        paged = list(api.stream_everything(page_size=2))
        paged_requests = [path for method, path, _ in proxy.log if method == "GET"]
    assert whole == paged
    assert {"Node", "IPAMBlock", "BlockAffinity", "IPPool", "Service"} <= {obj["kind"] for obj in whole}
    nodes = [obj for obj in whole if obj["kind"] == "Node"]
    assert len(nodes) > 2 and all("managedFields" not in node["metadata"] for node in nodes)
    # One request per list, none of them continued; the paged read needed several for Nodes.
    assert len(whole_requests) == len(set(whole_requests)) and not any("continue=" in p for p in whole_requests)
    assert sum("/api/v1/nodes" in path for path in paged_requests) > 1


def test_a_refused_list_is_one_clear_line_whatever_else_is_read_at_the_same_time(
    kube_v1: Any, proxy: FaultProxy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    proxy.add(Rule("GET", "/blockaffinities", status=403))
    proxy.add(Rule("GET", "/ipamblocks", drop_before=True))
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    assert main(["routes", "expected", "--peer", SWITCH, "--kubeconfig", str(config)]) == 2
    err = capsys.readouterr().err
    # IPAMBlocks come before BlockAffinities: the user hears of them, as when read one by one.
    assert "list ipamblocks: cannot reach the API server" in err and "Traceback" not in err
    assert "blockaffinities" not in err
