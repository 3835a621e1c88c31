"""``bgpflat apply --gate peer:STATE_DIR`` in the scenario-D lab: real confd + BIRD per node, the
verification peer learning from every node, the flat spec applied stage by stage.

Healthy: each stage turns green (the peer learned exactly the routes of the state just written)
and the apply completes. Faulty: the router refuses the BGP session of one node (an nftables rule
in the peer's namespace), so the routes of the state just written never arrive; the gate stops,
undoes the stage it wrote, exits 1, and the API server holds the same objects as before the apply.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from rawapi import raw_api
from test_lab_flat import SCENARIO, lab_on, skip_unless_lab_can_run, wait_until

from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.topology import file_source, load_topology

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
SPEC = SCENARIO / "bgpflat.yaml"
VERIFIER_IP = "10.200.20.250"
FAULTY_NODE = "10.200.20.105"  # node-3: not an ingress node, so only the gate's peer notices
# The cluster before the change: the scenario's own BGP configuration (AS 64513, mesh on) without
# the service range; the spec adds the switch peer and the service range and turns IPIP off.
BEFORE_CONFIG = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "BGPConfiguration",
    "metadata": {"name": "default"},
    "spec": {"asNumber": 64513, "listenPort": 179, "nodeToNodeMeshEnabled": True},
}
VERIFIER = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "BGPPeer",
    "metadata": {"name": "bgpflat-verifier"},
    "spec": {"peerIP": VERIFIER_IP, "asNumber": 65000},
}
CALICO_LISTS = ("ippools", "bgppeers", "bgpconfigurations")


def bgpflat(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, env=env, timeout=600, check=False, cwd=cwd, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def calico_specs(plane: ControlPlane) -> dict[str, Any]:
    """What ``kubectl get ippools,bgppeers,bgpconfigurations`` shows of the objects: name -> spec."""
    api = raw_api(plane)
    found: dict[str, Any] = {}
    for plural in CALICO_LISTS:
        listed = api.request("GET", f"/apis/crd.projectcalico.org/v1/{plural}").body
        for item in listed.get("items", []):
            found[f"{plural}/{item['metadata']['name']}"] = item.get("spec")
    return found


def established(peer_state: Path) -> list[str]:
    """The nodes the verification peer has an established session with (none before its first snapshot)."""
    try:
        data = json.loads((peer_state / "snapshot.json").read_text())
    except (OSError, ValueError):
        return []
    return [s["peer"] for s in data.get("sessions", []) if str(s.get("state")).lower() in ("up", "established")]


def refuse_node(lab: FlatLab, address: str) -> None:
    """The faulty router: BGP from ``address`` is dropped in the peer's namespace (gone with the lab)."""
    subprocess.run(
        ["ip", "netns", "exec", lab.namespace("verifier"), "nft", "-f", "-"],
        input=(
            "table inet faulty_router {\n"
            "  chain input { type filter hook input priority 0; "
            f"ip saddr {address} tcp dport 179 drop; ip saddr {address} tcp sport 179 drop; }}\n"
            "}\n"
        ),
        text=True,
        check=True,
    )


def start_lab(plane: ControlPlane, tmp_path: Path, *, faulty: bool = False) -> tuple[FlatLab, Path]:
    skip_unless_lab_can_run()
    topology = load_topology(SCENARIO)
    objects: list[Mapping[str, Any]] = [
        *file_source(SCENARIO, service_range=topology.service_range)(),
        copy.deepcopy(BEFORE_CONFIG),
        copy.deepcopy(VERIFIER),
    ]
    lab = lab_on(plane, topology, objects, state_dir=tmp_path / "lab")
    if faulty:
        refuse_node(lab, FAULTY_NODE)
    peer_state = tmp_path / "peer"
    lab.start_daemon(
        "verifier",
        "peer",
        [
            sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())",
            "peer", "run", "--listen", VERIFIER_IP, "--local-as", "65000", "--peer-as", "64513",
            "--neighbor-range", str(topology.segment("nodes").network), "--passive",
            "--state-dir", str(peer_state),
        ],
    )  # fmt: skip
    return lab, peer_state


def apply_gated(plane: ControlPlane, tmp_path: Path, peer_state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return bgpflat(
        "apply", "-f", str(SPEC), "--yes", "--allow-crd-v1", "--kubeconfig", str(plane.kubeconfig),
        "--gate", f"peer:{peer_state}", "--gate-peer", VERIFIER_IP, "--gate-timeout", "60", "-o", "json", *extra,
        cwd=tmp_path,
    )  # fmt: skip


def test_gate_passes_each_stage_on_a_healthy_lab(kube_v1: ControlPlane, tmp_path: Path) -> None:
    lab, peer_state = start_lab(kube_v1, tmp_path)
    try:
        # As an operator would: the verification peer up and learning before the apply starts.
        wait_until(lambda: len(established(peer_state)) == 3, timeout=60, what="the peer's three sessions")
        started = time.monotonic()
        run = apply_gated(kube_v1, tmp_path, peer_state)
        took = time.monotonic() - started
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
        report = json.loads(run.stdout)
        gate = report["gate"]
        assert gate["status"] == "passed", gate
        stages = {s["stage"]: s for s in gate["stages"]}
        assert list(stages) == ["peers", "service-advertisement", "pools"]
        assert all(s["passed"] and s["matched"] == s["expected"] > 0 for s in stages.values())
        # The service range arrives from all three nodes once its stage is written.
        assert stages["service-advertisement"]["expected"] == stages["peers"]["expected"] + 3
        assert "every block of default-pool is learned with its node as next hop" in run.stderr
        seconds = ", ".join(f"{name} {s['seconds_until_green']:.1f} s" for name, s in stages.items())
        print(f"\ngated apply in {took:.1f} s; seconds until green: {seconds}")
        specs = calico_specs(kube_v1)
        assert specs["ippools/default-pool"]["ipipMode"] == "Never"
        assert "bgppeers/peer-switch" in specs
    finally:
        lab.down()


def test_gate_stops_and_undoes_the_stage_when_the_router_misses_a_node(kube_v1: ControlPlane, tmp_path: Path) -> None:
    lab, peer_state = start_lab(kube_v1, tmp_path, faulty=True)
    try:
        # The healthy nodes' sessions first, so that the refused node is the only thing missing.
        wait_until(lambda: len(established(peer_state)) == 2, timeout=60, what="the peer's two healthy sessions")
        before = calico_specs(kube_v1)
        run = apply_gated(kube_v1, tmp_path, peer_state, "--gate-timeout", "15")
        assert run.returncode == 1, f"{run.stdout}\n{run.stderr}"
        report = json.loads(run.stdout)
        gate = report["gate"]
        assert gate["status"] == "stopped"
        stopped = gate["stopped_at"]
        assert stopped == "peers"
        assert gate["undo"]["error"] is None
        assert "missing or wrong, by node:" in run.stderr and "node-3:" in run.stderr
        assert f"Gate: stage {stopped} was undone; nothing of the apply is left" in run.stderr
        assert "bgpflat rollback " in run.stderr
        # Nothing half-applied: the objects are as they were before the apply.
        assert calico_specs(kube_v1) == before
        later = [r for r in report["results"] if r["stage"] != stopped]
        assert all(r["outcome"] == "not-attempted" for r in later)
    finally:
        lab.down()
