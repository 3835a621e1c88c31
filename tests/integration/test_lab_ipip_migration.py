"""The ipip-migration lab shows the risk bgpflat's plan warns about, with real daemons.

Nodes in two subnets behind one routed ToR. With encapsulation already off but no BGPPeer yet
(the wrong order, calico-facts §5.3), a pod in rack A cannot reach a pod in rack B: the packet
leaves unencapsulated for a ToR with no route to the pod block. Same-rack traffic still works.
Adding the per-rack BGPPeers of ``labs/ipip-migration/bgpflat.yaml`` (with keepOriginalNextHop)
gives the ToR every block with the owning node as next hop, and cross-rack pod traffic, office →
pod and ``http://whoami`` from the office all work.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from test_lab_flat import lab_on, skip_unless_lab_can_run, wait_until

from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.lab.controlplane.seed import seed_objects
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.topology import file_source, load_topology

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

SCENARIO = Path(__file__).resolve().parents[2] / "labs" / "ipip-migration"
RACK_A_POD = "pod-default-whoami-6b8f7d9c4-kq2vx"  # 10.244.10.5 on rack-a-1
RACK_B_POD_IP = "10.244.30.9"  # whoami on rack-b-1
RACK_A_DNS_POD_IP = "10.244.20.3"  # coredns on rack-a-2 (serves HTTP too)
BLOCKS = {"10.244.10.0/26": ["10.60.1.11"], "10.244.20.0/26": ["10.60.1.12"], "10.244.30.0/26": ["10.60.2.11"]}


def _objects(*, peers: bool) -> list[Mapping[str, Any]]:
    topology = load_topology(SCENARIO)
    out: list[Mapping[str, Any]] = []
    for obj in file_source(SCENARIO, service_range=topology.service_range)():
        copied = copy.deepcopy(dict(obj))
        if copied["kind"] == "IPPool":
            copied["spec"]["ipipMode"] = "Never"
        out.append(copied)
    out.append(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": True, "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]},
        }
    )
    if peers:
        for rack, tor in (("rack-a", "10.60.1.1"), ("rack-b", "10.60.2.1")):
            out.append(
                {
                    "apiVersion": "projectcalico.org/v3",
                    "kind": "BGPPeer",
                    "metadata": {"name": f"tor-{rack}"},
                    "spec": {
                        "peerIP": tor,
                        "asNumber": 65100,
                        "nodeSelector": f"topology.kubernetes.io/zone == '{rack}'",
                        "keepOriginalNextHop": True,
                    },
                }
            )
    return out


def test_encapsulation_off_needs_the_tor_routes_first(kube_v1: ControlPlane, tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    topology = load_topology(SCENARIO)
    lab = lab_on(kube_v1, topology, _objects(peers=False), state_dir=tmp_path / "state")
    try:
        print(f"\nipip-migration lab up in {lab.info['up_seconds']:.2f} s")
        # Mesh up across the racks (multihop through the ToR), so every node knows every block.
        wait_until(
            lambda: "10.244.30.0/26" in lab.birdc("rack-a-1", "show", "route"),
            timeout=20,
            what="rack-a-1 to learn rack B's block over the mesh",
        )
        same_rack = lab.http_get(RACK_A_POD, f"http://{RACK_A_DNS_POD_IP}/")
        assert same_rack.ok, f"same-rack pod traffic must work without the ToR: {same_rack.error}"
        cross_rack = lab.http_get(RACK_A_POD, f"http://{RACK_B_POD_IP}/", timeout=1.5)
        assert not cross_rack.ok, "cross-rack pod traffic worked although the ToR has no pod routes"
        assert lab.tor_bgp_routes() == {}

        started = time.monotonic()
        peers = [o for o in _objects(peers=True) if o["kind"] == "BGPPeer"]
        seed_objects(kube_v1.client(), peers, flavour=kube_v1.flavour)  # each node's confd reloads its BIRD
        wanted = {**BLOCKS, "10.96.0.0/12": ["10.60.1.11", "10.60.1.12", "10.60.2.11"]}
        wait_until(lambda: lab.tor_bgp_routes() == wanted, timeout=20, what="the ToR to learn every block")
        print(f"peers created: ToR complete {time.monotonic() - started:.2f} s later")
        # BIRD (rendered from the objects) and bgpflat's export model agree, next hop keep included.
        for tor_address in ("10.60.1.1", "10.60.2.1"):
            expected = expected_routes(cluster=ClusterState.from_objects(_objects(peers=True)), peer=tor_address)
            predicted = {(str(r.prefix), r.session, r.next_hop, r.as_path) for r in expected.table}
            learned = {path for path in lab.tor_bgp_paths() if path[1] in {r.session for r in expected.table}}
            assert learned == predicted, tor_address

        cross_rack = lab.http_get(RACK_A_POD, f"http://{RACK_B_POD_IP}/")
        assert cross_rack.ok and "whoami-6b8f7d9c4-zt7wn" in cross_rack.body, cross_rack.error
        office = lab.http_get("developer", f"http://{RACK_B_POD_IP}/")
        assert office.ok, office.error
        by_name = lab.http_get("developer", "http://whoami/")
        assert by_name.ok and "whoami-6b8f7d9c4" in by_name.body, by_name.error
    finally:
        lab.down()
