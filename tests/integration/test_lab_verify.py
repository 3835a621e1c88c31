"""The verification peer in the lab: ``bgpflat peer run`` in the verifier namespace, ``bgpflat verify`` green.

This is the core of ``bgpflat lab check`` without the API server: the Calico nodes' BIRD configs are
rendered from the objects after the flat spec's change plus a BGPPeer to the verifier; the peer
learns what the BIRDs really send; ``verify`` compares that with bgpflat's expected-route model
computed from the same objects (a snapshot file) and must find no difference.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_lab_flat import SCENARIO, after_apply, lab_on, skip_unless_lab_can_run

from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.topology import file_source, load_topology

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
VERIFIER = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "BGPPeer",
    "metadata": {"name": "bgpflat-verifier"},
    "spec": {"peerIP": "10.200.20.250", "asNumber": 65000},
}


def bgpflat_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())", *args]


def test_verify_passes_against_the_peer_in_the_lab(kube_v1: ControlPlane, tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    topology = load_topology(SCENARIO)
    objects: list[Mapping[str, Any]] = [
        *after_apply(list(file_source(SCENARIO, service_range=topology.service_range)())),
        copy.deepcopy(VERIFIER),
    ]
    snapshot = tmp_path / "cluster-after.yaml"
    snapshot.write_text(yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False))
    peer_state = tmp_path / "peer"
    started = time.monotonic()
    lab = lab_on(kube_v1, topology, objects, state_dir=tmp_path / "lab")
    try:
        lab.start_daemon(
            "verifier",
            "peer",
            bgpflat_argv(
                "peer",
                "run",
                "--listen",
                "10.200.20.250",
                "--local-as",
                "65000",
                "--peer-as",
                "64513",
                "--neighbor-range",
                str(topology.segment("nodes").network),
                "--passive",
                "--state-dir",
                str(peer_state),
            ),
        )
        env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}
        result = subprocess.run(
            bgpflat_argv(
                "verify",
                "--peer", "10.200.20.250",
                "--snapshot", str(snapshot),
                "--state-dir", str(peer_state),
                "--wait", "--timeout", "45", "--interval", "0.5",
                "--strict",
                "--no-github-summary",
            ),
            capture_output=True, text=True, env=env, timeout=90, check=False,
        )  # fmt: skip
        green = time.monotonic() - started
        assert result.returncode == 0, f"verify exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        print(f"\nlab up {lab.info['up_seconds']:.2f} s; verify green {green:.2f} s after the start")
        assert "0 missing, 0 mismatched, 0 unexpected" in result.stdout, result.stdout
    finally:
        lab.down()
