"""``bgpflat verify`` end to end: two BIRD nodes configured like calico/node, in a full mesh, each
with an eBGP session to the verification peer (``bgpflat peer run``, ExaBGP with ADD-PATH).

The expected table comes from a cluster snapshot describing the same two nodes; BIRD is the
ground truth. With the mesh and an eBGP peer, each node sends both blocks (the other one by mesh
re-export, next hop self) and the service range. Removing a block from one node's BIRD must turn
the verdict into a mismatch that names the block and the node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from netns import Lab, Netns, calico_bird_conf, skip_unless_root_and, wait_for, write_bird_statics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PEER = "10.0.0.100"
NODES = {"node-1": ("10.0.1.1", "10.244.0.0/26"), "node-2": ("10.0.2.2", "10.244.0.64/26")}
SERVICES = "10.96.0.0/12"


def bgpflat_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())", *args]


def bgpflat_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}


def cluster_snapshot() -> list[dict[str, Any]]:
    v3, v1 = "projectcalico.org/v3", "crd.projectcalico.org/v1"
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": v1,
            "kind": "ClusterInformation",
            "metadata": {"name": "default"},
            "spec": {"calicoVersion": "v3.30.7"},
        },
        {
            "apiVersion": v3,
            "kind": "IPPool",
            "metadata": {"name": "pods"},
            "spec": {"cidr": "10.244.0.0/16", "blockSize": 26, "nodeSelector": "all()"},
        },
        {
            "apiVersion": v3,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "asNumber": 64512,
                "nodeToNodeMeshEnabled": True,
                "serviceClusterIPs": [{"cidr": SERVICES}],
                "prefixAdvertisements": [{"cidr": "10.244.0.0/26", "communities": ["64512:100", "64512:1:2"]}],
            },
        },
        {
            "apiVersion": v3,
            "kind": "BGPPeer",
            "metadata": {"name": "verifier"},
            "spec": {"peerIP": PEER, "asNumber": 65000},
        },
    ]
    for name, (address, block) in NODES.items():
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "annotations": {"projectcalico.org/IPv4Address": f"{address}/24"}},
            }
        )
        objects.append(
            {
                "apiVersion": v1,
                "kind": "BlockAffinity",
                "metadata": {"name": f"{name}-block"},
                "spec": {"cidr": block, "node": name, "state": "confirmed", "deleted": "false", "type": "host"},
            }
        )
    return objects


@dataclass
class Setup:
    nodes: dict[str, Netns]
    bird_dirs: dict[str, Path]
    state_dir: Path
    snapshot: Path
    tmp: Path

    def verify(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            bgpflat_argv(
                "verify", "--peer", PEER, "--snapshot", str(self.snapshot), "--state-dir", str(self.state_dir), *extra
            ),
            env=bgpflat_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def birdc(self, name: str, *args: str) -> str:
        return self.nodes[name].run("birdc", "-s", str(self.bird_dirs[name] / "bird.ctl"), *args).stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    skip_unless_root_and("bird", "birdc")
    tmp = tmp_path_factory.mktemp("verify-bird")
    snapshot = tmp / "cluster.yaml"
    snapshot.write_text(yaml.safe_dump_all(cluster_snapshot()))
    with Lab() as lab:
        peer = lab.netns("peer")
        peer.run("ip", "addr", "add", f"{PEER}/32", "dev", "lo")
        peer.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        nodes: dict[str, Netns] = {}
        bird_dirs: dict[str, Path] = {}
        for index, (name, (address, block)) in enumerate(NODES.items(), start=1):
            ns = nodes[name] = lab.netns(f"n{index}")
            gateway = address.rsplit(".", 1)[0] + ".100"
            lab.veth(ns, f"n{index}-p", [f"{address}/24"], peer, f"p-n{index}", [f"{gateway}/24"])
            ns.run("ip", "route", "add", "default", "via", gateway)
            other = next(a for n, (a, _) in NODES.items() if n != name)
            bird_dirs[name] = tmp / name
            conf = calico_bird_conf(
                directory=bird_dirs[name],
                router_id=address,
                local_as=64512,
                peers=[
                    (f"Mesh_{other.replace('.', '_')}", other, address, 64512),
                    (f"Global_{PEER.replace('.', '_')}", PEER, address, 65000),
                ],
                blocks=(block,),
                service_cidrs=(SERVICES,),
            )
            lab.start(
                ns,
                ["bird", "-f", "-c", str(conf), "-s", str(bird_dirs[name] / "bird.ctl")],
                log=tmp / f"{name}.bird.out",
            )
        state_dir = tmp / "state"
        lab.start(
            peer,
            bgpflat_argv(
                "peer",
                "run",
                "--local-as",
                "65000",
                "--listen",
                PEER,
                "--neighbor",
                ",".join(a for a, _ in NODES.values()),
                "--peer-as",
                "64512",
                "--hold-time",
                "9",
                "--state-dir",
                str(state_dir),
            ),
            log=tmp / "peer.out",
            env=bgpflat_env(),
        )
        wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=30, what="the peer endpoint")
        _wait_for_the_mesh(nodes, bird_dirs)
        yield Setup(nodes, bird_dirs, state_dir, snapshot, tmp)


def _wait_for_the_mesh(nodes: dict[str, Netns], bird_dirs: dict[str, Path]) -> None:
    """Until the two nodes' mesh session is Established: the verdicts below are about what BIRD
    re-exports from it. A first connect that raced the other node's start leaves BIRD waiting out
    its connect-retry time (120 s), so a session not up is restarted every 10 s meanwhile."""
    mesh = {name: f"Mesh_{next(a for n, (a, _) in NODES.items() if n != name).replace('.', '_')}" for name in NODES}

    def birdc(name: str, *args: str) -> str:
        return nodes[name].run("birdc", "-s", str(bird_dirs[name] / "bird.ctl"), *args).stdout

    deadline = time.monotonic() + 90
    nudged = time.monotonic()
    while not all("Established" in birdc(name, "show", "protocols", mesh[name]) for name in NODES):
        assert time.monotonic() < deadline, {name: birdc(name, "show", "protocols", mesh[name]) for name in NODES}
        if time.monotonic() - nudged > 10:
            for name in NODES:
                if "Established" not in birdc(name, "show", "protocols", mesh[name]):
                    birdc(name, "restart", mesh[name])
            nudged = time.monotonic()
        time.sleep(0.5)


def test_verify_matches_what_bird_really_sends(setup: Setup) -> None:
    done = setup.verify("--wait", "--timeout", "90", "--interval", "1", "--settle", "15", "-o", "json")
    result = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["status"] == "match" and result["converged"]
    counts = result["diff"]["counts"]
    assert (counts["present"], counts["missing"], counts["unexpected"], counts["mismatched"]) == (6, 0, 0, 0)


def test_paths_per_prefix_under_add_path_match_the_reasons(setup: Setup) -> None:
    """How many paths BIRD sends per prefix with ADD-PATH (calico-facts §7 open item), observed.

    BIRD sends the service range twice on each session — its own static and the copy learned over
    the mesh, both rewritten to next hop self — and every other prefix once. The model's reasons
    per expected route count the same paths. (The diff compares distinct paths, so the verdict
    does not depend on this count.)
    """
    from bgpflat.core.routes.advertise import expected_routes
    from bgpflat.core.routes.cluster import ClusterState
    from bgpflat.peer.endpoint import fetch

    expected = expected_routes(cluster=ClusterState.from_objects(cluster_snapshot()), peer=PEER)
    predicted = {(r.session, str(r.prefix)): len(expected.why(r)) for r in expected.table}

    def paths() -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for route in fetch(f"unix:{setup.state_dir / 'peer.sock'}", "/routes")["routes"]:
            key = (route["session"], route["prefix"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    # Wait for the mesh copies (they follow End-of-RIB), then give BIRD time to send any extra path.
    wait_for(lambda: sum(paths().values()) >= sum(predicted.values()), timeout=60, what="the mesh copies")
    time.sleep(2)
    observed = paths()
    assert observed == predicted
    assert {prefix: count for (_, prefix), count in observed.items()} == {
        "10.244.0.0/26": 1,
        "10.244.0.64/26": 1,
        SERVICES: 2,
    }


def test_a_block_withdrawn_by_bird_is_reported_missing(setup: Setup) -> None:
    write_bird_statics(setup.bird_dirs["node-2"], blocks=(), service_cidrs=(SERVICES,))
    setup.birdc("node-2", "configure")
    try:

        def mismatch() -> dict[str, Any] | None:
            done = setup.verify("-o", "json")
            data = json.loads(done.stdout)
            return data if done.returncode == 1 and data["diff"]["counts"]["missing"] == 2 else None

        data = wait_for(mismatch, timeout=30, interval=0.5, what="the withdrawn block to be missing")
        texts = [f["explanation"] for f in data["diff"]["findings"] if f["code"] == "route-missing"]
        assert texts == [
            "10.244.0.64/26 missing via 10.0.1.1 (node-1): block of node-2, expected through mesh re-export "
            "(eBGP peer, next hop self)",
            "10.244.0.64/26 missing via 10.0.2.2 (node-2): block of node-2, originated by the node itself "
            "(eBGP peer, next hop self)",
        ]
    finally:
        write_bird_statics(setup.bird_dirs["node-2"], blocks=(NODES["node-2"][1],), service_cidrs=(SERVICES,))
        setup.birdc("node-2", "configure")
