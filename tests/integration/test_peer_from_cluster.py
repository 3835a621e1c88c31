"""``bgpflat peer run --from-cluster`` against a real kube-apiserver with Calico's CRDs (v1 and v3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bgpflat.peer.cluster import read_cluster_objects, select_neighbors

sys.path.insert(0, str(Path(__file__).parent))
from netns import wait_for
from rawapi import official_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VERIFIER = "10.0.0.100"


def seed(kube: Any) -> None:
    from kubernetes import client

    api = official_client(kube)
    core = client.CoreV1Api(api)
    for name, address, labels, asn in (
        ("node-a", "10.0.0.11/24", {"rack": "a"}, None),
        ("node-b", "10.0.0.12/24", {"rack": "b"}, None),
        ("node-c", "10.0.0.13/24", {"rack": "b"}, "64600"),
    ):
        annotations = {"projectcalico.org/IPv4Address": address}
        if asn:
            annotations["projectcalico.org/ASNumber"] = asn
        core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": annotations},
            }
        )
    group, version = ("projectcalico.org", "v3") if kube.flavour == "v3" else ("crd.projectcalico.org", "v1")
    custom = client.CustomObjectsApi(api)
    custom.create_cluster_custom_object(
        group,
        version,
        "bgppeers",
        {
            "apiVersion": f"{group}/{version}",
            "kind": "BGPPeer",
            "metadata": {"name": "verifier"},
            "spec": {"peerIP": VERIFIER, "asNumber": 65001, "nodeSelector": "rack == 'b'"},
        },
    )
    custom.create_cluster_custom_object(
        group,
        version,
        "bgpconfigurations",
        {
            "apiVersion": f"{group}/{version}",
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {"asNumber": 64700},
        },
    )


def test_reads_the_cluster_and_selects_the_nodes(kube: Any) -> None:
    seed(kube)
    peering = select_neighbors(
        objects=read_cluster_objects(kubeconfig=str(kube.kubeconfig)), local_addresses=[VERIFIER]
    )
    assert peering.bgp_peers == ("verifier",) and peering.local_as == 65001
    assert [(n.address, n.peer_as, n.description) for n in peering.neighbors] == [
        ("10.0.0.12", 64700, "node-b"),
        ("10.0.0.13", 64600, "node-c"),
    ]


def test_peer_run_from_cluster(kube: Any, tmp_path: Path) -> None:
    seed(kube)
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from bgpflat.cli import main; sys.exit(main())",
            "peer",
            "run",
            "--listen",
            VERIFIER,
            "--from-cluster",
            "--kubeconfig",
            str(kube.kubeconfig),
            "--state-dir",
            str(state_dir),
            "--exabgp",
            "/bin/sleep 60",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (state_dir / "peer.sock").exists() or proc.poll() is not None, timeout=30, what="the peer to start"
        )
        conf = (state_dir / "exabgp.conf").read_text()
        assert "local-as 65001;" in conf
        assert "neighbor 10.0.0.12 {" in conf and "neighbor 10.0.0.13 {" in conf and "10.0.0.11" not in conf
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "2 node(s) selected by BGPPeer verifier" in stderr
