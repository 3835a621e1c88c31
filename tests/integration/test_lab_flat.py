"""Scenario D in network namespaces: the flat network works, and undoing it takes it away again.

The lab runs real daemons: per Calico node Calico's own confd, watching a real kube-apiserver that
holds the cluster's objects *after* bgpflat's change (ipipMode Never, BGPPeer ``peer-switch`` to
the ToR for the ingress nodes, BGPConfiguration ``default`` with AS 64513 and the service range),
and the BIRD 1.6 it configures; an FRR ToR, pods serving HTTP, kube-proxy-like DNAT, the cluster
DNS and the office resolver. From the office developer host we then do what a developer would:
HTTP to a pod IP, to a service cluster IP, and to ``http://whoami`` through the office resolver
with search domain ``default.svc.cluster.local``. Deleting the BGPPeer from the API server (confd
re-renders, ``birdc configure``) must withdraw the routes and the reachability.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.lab.conformance.baseline import Baseline
from bgpflat.lab.controlplane.seed import ensure_service_cidr, for_flavour, seed_objects
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.follower import api_source
from bgpflat.lab.fabric.topology import Topology, file_source, load_topology

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

SCENARIO = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
POD_BLOCKS = {"10.233.65.0/24", "10.233.92.0/24", "10.233.110.0/24"}
SERVICE_RANGE = "10.233.0.0/18"
INGRESS_NODES = {"10.200.20.103", "10.200.20.104"}
WHOAMI_PODS = {"whoami-7d4b9c6f5-2xk8p", "whoami-7d4b9c6f5-9qzrt"}
DAEMONS = ("bird", "birdc", "vtysh", "dnsmasq", "nft", "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd")

PEER_SWITCH = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "BGPPeer",
    "metadata": {"name": "peer-switch"},
    "spec": {
        "asNumber": 65200,
        "peerIP": "10.200.20.254",
        "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'",
    },
}
DEFAULT_CONFIG = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "BGPConfiguration",
    "metadata": {"name": "default"},
    "spec": {
        "asNumber": 64513,
        "listenPort": 179,
        "nodeToNodeMeshEnabled": True,
        "serviceClusterIPs": [{"cidr": SERVICE_RANGE}],
    },
}


def skip_unless_lab_can_run() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root to create network namespaces")
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path(d).exists()]
    if missing:
        pytest.skip(f"the lab needs {', '.join(missing)} (apt-get install bird frr dnsmasq nftables)")


def after_apply(objects: list[Mapping[str, Any]], *, with_peer: bool = True) -> list[Mapping[str, Any]]:
    """The scenario's objects as bgpflat's flat spec leaves them."""
    out: list[Mapping[str, Any]] = []
    for obj in objects:
        copied = copy.deepcopy(dict(obj))
        if copied["kind"] == "IPPool":
            copied["spec"]["ipipMode"] = "Never"
        out.append(copied)
    out.append(copy.deepcopy(DEFAULT_CONFIG))
    if with_peer:
        out.append(copy.deepcopy(PEER_SWITCH))
    return out


def lab_on(
    plane: ControlPlane, topology: Topology, objects: list[Mapping[str, Any]], *, state_dir: Path, **kwargs: Any
) -> FlatLab:
    """Seed ``objects`` into ``plane`` (with the scenario's service range) and build the lab on it."""
    kube = plane.client()
    if topology.service_range:
        ensure_service_cidr(kube, cidr=topology.service_range, name=f"bgpflat-{topology.name}")
    seed_objects(kube, objects, flavour=plane.flavour, scenario=topology.name)
    source = api_source(kube, plane.flavour)
    return FlatLab.up(topology, source, kubeconfig=plane.kubeconfig, state_dir=state_dir, **kwargs)


def delete_object(plane: ControlPlane, obj: Mapping[str, Any]) -> None:
    """Delete ``obj`` from the API server, as ``kubectl delete`` would."""
    served = for_flavour(obj, plane.flavour)
    meta = served["metadata"]
    assert plane.client().delete_object(
        str(served["apiVersion"]), str(served["kind"]), str(meta["name"]), namespace=meta.get("namespace")
    ), f"{served['kind']}/{meta['name']} was not there to delete"


def wait_until(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


@pytest.fixture(scope="module")
def plane(control_plane_v1: ControlPlane) -> Iterator[ControlPlane]:
    """The session's v1 server, left as this module found it."""
    kube = control_plane_v1.client()
    baseline = Baseline.capture(kube)
    yield control_plane_v1
    baseline.restore(kube)
    kube.close()


@pytest.fixture(scope="module")
def lab(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlatLab]:
    skip_unless_lab_can_run()
    topology = load_topology(SCENARIO)
    objects = after_apply(list(file_source(SCENARIO, service_range=topology.service_range)()))
    started = time.monotonic()
    flat = lab_on(plane, topology, objects, state_dir=tmp_path_factory.mktemp("lab") / "state")
    up_seconds = time.monotonic() - started
    try:
        wanted = {prefix: sorted(INGRESS_NODES) for prefix in POD_BLOCKS | {SERVICE_RANGE}}
        wait_until(lambda: flat.tor_bgp_routes() == wanted, timeout=30, what="the ToR to learn the cluster")
        green = time.monotonic() - started
        print(f"\nlab up: {up_seconds:.2f} s; ToR has every block and the service range {green:.2f} s after start")
        yield flat
    finally:
        flat.down()


def test_tor_learns_every_pod_block_and_the_service_range_from_the_ingress_nodes(lab: FlatLab) -> None:
    routes = lab.tor_bgp_routes()
    assert set(routes) == POD_BLOCKS | {SERVICE_RANGE}, routes
    # Full mesh + eBGP ToR: each ingress node re-advertises every block with itself as next hop
    # (calico-facts §3.3); node-3 has no session with the switch.
    for prefix, hops in routes.items():
        assert set(hops) == INGRESS_NODES, (prefix, hops)
    sessions = lab.tor_sessions()
    assert {a for a, state in sessions.items() if state == "Established"} == INGRESS_NODES, sessions


def test_every_node_runs_the_config_calicos_confd_rendered(lab: FlatLab) -> None:
    protocols = {node.name: lab.birdc(node.name, "show", "protocols") for node in lab.nodes}
    for name, text in protocols.items():
        mesh = [line for line in text.splitlines() if line.startswith("Mesh_")]
        assert len(mesh) == 2 and all("Established" in line for line in mesh), (name, text)
    assert "Node_10_200_20_254" in protocols["node-1"] and "Node_10_200_20_254" in protocols["node-2"]
    assert "Node_10_200_20_254" not in protocols["node-3"]


def test_office_reaches_a_pod_a_cluster_ip_and_a_service_name(lab: FlatLab) -> None:
    pod = lab.http_get("developer", "http://10.233.110.7/")
    assert pod.ok, pod.error
    assert "Hostname: whoami-7d4b9c6f5-9qzrt" in pod.body

    assert {p["name"] for p in lab.info.get("pods", [])} >= WHOAMI_PODS
    whoami_ip = _cluster_ip(lab, "default", "whoami")
    by_ip = lab.http_get("developer", f"http://{whoami_ip}/")
    assert by_ip.ok, by_ip.error
    assert any(f"Hostname: {name}" in by_ip.body for name in WHOAMI_PODS), by_ip.body

    by_name = lab.http_get("developer", "http://whoami/")
    assert by_name.ok, f"http://whoami via the office resolver: {by_name.error}"
    assert any(f"Hostname: {name}" in by_name.body for name in WHOAMI_PODS), by_name.body
    took = f"pod {pod.seconds:.2f} s, cluster IP {by_ip.seconds:.2f} s, name {by_name.seconds:.2f} s"
    print(f"\nHTTP from the office: {took}")


def test_bird_rendered_from_the_objects_agrees_with_bgpflats_expected_routes(lab: FlatLab) -> None:
    """Two independent derivations: real Calico (confd + BIRD) vs bgpflat's export model."""
    objects = after_apply(list(file_source(SCENARIO, service_range=lab.topology.service_range)()))
    expected = expected_routes(cluster=ClusterState.from_objects(objects), peer="10.200.20.254").table
    predicted = {(str(r.prefix), r.session, r.next_hop, r.as_path) for r in expected}
    assert lab.tor_bgp_paths() == predicted


def test_removing_the_peer_withdraws_the_routes_and_the_reachability(lab: FlatLab, plane: ControlPlane) -> None:
    started = time.monotonic()
    delete_object(plane, PEER_SWITCH)
    wait_until(lambda: not lab.tor_bgp_routes(), timeout=15, what="the ToR to drop the cluster's routes")
    print(f"\nBGPPeer deleted: routes withdrawn {time.monotonic() - started:.2f} s later")
    # confd re-rendered the ingress nodes' configs and BIRD reloaded them: the session is gone.
    for node in ("node-1", "node-2"):
        assert "Node_10_200_20_254" not in lab.birdc(node, "show", "protocols"), node
    for url in ("http://10.233.110.7/", f"http://{_cluster_ip(lab, 'default', 'whoami')}/", "http://whoami/"):
        result = lab.http_get("developer", url, timeout=1.5)
        assert not result.ok, f"{url} still answers after the peer was removed: {result.body}"


def _cluster_ip(lab: FlatLab, namespace: str, name: str) -> str:
    objects = file_source(SCENARIO, service_range=lab.topology.service_range)()
    for obj in objects:
        meta = obj.get("metadata") or {}
        if obj.get("kind") == "Service" and meta.get("namespace") == namespace and meta.get("name") == name:
            return str(obj["spec"]["clusterIP"])
    raise AssertionError(f"no Service {namespace}/{name}")
