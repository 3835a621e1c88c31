"""Calico's own API server behind the lab's kube-apiserver (``--calico-api apiserver``), seen with kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bgpflat.lab.controlplane import aggregated
from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

KUBECTL = shutil.which("kubectl")
BAD_POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: both-tunnels}
spec: {cidr: 10.70.0.0/16, ipipMode: Always, vxlanMode: Always}
"""
GOOD_POOL = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: office}
spec: {cidr: 10.70.0.0/16}
"""


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(plane.kubeconfig), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for whoever adopted it does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_aggregated_api_is_available(kube_apiserver: ControlPlane) -> None:
    shown = kubectl(kube_apiserver, "get", "apiservice", aggregated.APISERVICE_NAME, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    conditions = {c["type"]: c["status"] for c in json.loads(shown.stdout)["status"]["conditions"]}
    assert conditions["Available"] == "True"
    endpoints = kubectl(
        kube_apiserver, "get", "endpoints", "-n", aggregated.NAMESPACE, aggregated.SERVICE, "-o", "json"
    )
    address = json.loads(endpoints.stdout)["subsets"][0]["addresses"][0]["ip"]
    assert not address.startswith("127.")  # Kubernetes refuses loopback endpoints


def test_calico_refuses_an_invalid_pool_and_defaults_a_valid_one(kube_apiserver: ControlPlane) -> None:
    refused = kubectl(kube_apiserver, "create", "-f", "-", stdin=BAD_POOL)
    assert refused.returncode != 0
    assert 'The IPPool "both-tunnels" is invalid' in refused.stderr
    assert "Cannot enable both VXLAN and IPIP on the same IPPool" in refused.stderr

    created = kubectl(kube_apiserver, "create", "-f", "-", stdin=GOOD_POOL)
    assert created.returncode == 0, created.stderr
    stored = json.loads(kubectl(kube_apiserver, "get", "ippools.projectcalico.org", "office", "-o", "json").stdout)
    # Calico's defaulting, which a CRD write never gets.
    assert stored["spec"]["blockSize"] == 26
    assert stored["spec"]["allowedUses"] == ["Workload", "Tunnel"]
    assert stored["spec"]["nodeSelector"] == "all()"
    # Kept where calico-node reads it: the v1 CRD.
    assert kubectl(kube_apiserver, "get", "ippools.crd.projectcalico.org", "office").returncode == 0


def test_a_server_side_dry_run_skips_calicos_validation(kube_apiserver: ControlPlane) -> None:
    # Calico validates in its storage layer, which a dry run never reaches: only a real create
    # shows Calico's verdict. (bgpflat's differential test creates and deletes for that reason.)
    dry = kubectl(kube_apiserver, "create", "--dry-run=server", "-f", "-", stdin=BAD_POOL)
    assert dry.returncode == 0, dry.stderr
    assert "created (server dry run)" in dry.stdout


def test_down_removes_the_namespace_and_every_process(tmp_path: Path, control_plane_apiserver: ControlPlane) -> None:
    # A private control plane, so that stopping it leaves the session's server alone.
    state_dir = tmp_path / "cp"
    up = subprocess.run(
        [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())",
         "lab", "control-plane", "up", "--calico-api", "apiserver", "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    link = aggregated.Link(**json.loads((state_dir / "state.json").read_text())["calico_api_link"])
    assert link.netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    pids = [p["pid"] for p in json.loads((state_dir / "state.json").read_text())["processes"]]
    assert len(pids) == 3
    down = subprocess.run(
        [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())",
         "lab", "control-plane", "down", "--state-dir", str(state_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert "calico-apiserver" in down.stdout + down.stderr
    assert link.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(_alive(pid) for pid in pids)
