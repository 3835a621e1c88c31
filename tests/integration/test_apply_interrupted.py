"""An apply that is killed, interrupted or cancelled midway, and the rollback of what it left.

bgpflat runs as a subprocess talking to the real API server through ``faultproxy``; the signal is
sent from the proxy the moment a chosen write arrives, so the interruption always lands at the same
point of the apply. What the user must see: a backup that says what was really written, a rollback
that deletes only what bgpflat provably created, and, for Ctrl-C/SIGTERM, the usual report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from faultproxy import FaultProxy, Rule
from test_plan_apply import ROOT, SPEC, bgpflat, calico, kubectl

from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

PEERS = "/bgppeers"
CONFIG_PATCH = "/bgpconfigurations/default"


def _start_apply(proxy: FaultProxy, tmp_path: Path) -> subprocess.Popen[str]:
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    command = [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())"]
    args = ["apply", "--kubeconfig", str(config), "-f", str(SPEC), "--yes", "--allow-crd-v1"]
    return subprocess.Popen(
        [*command, *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _backup(tmp_path: Path) -> Path:
    backups = sorted((tmp_path / ".bgpflat" / "backups").glob("*.yaml"))
    assert len(backups) == 1, backups
    return backups[0]


def test_rollback_after_kill_deletes_only_what_the_apply_provably_created(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    running: list[subprocess.Popen[str]] = []

    def kill_mid_create() -> None:
        running[0].send_signal(signal.SIGKILL)
        running[0].wait(timeout=30)

    # Killed while its create of the peer is on the wire; the create never reaches the server.
    proxy.add(Rule(method="POST", path_contains=PEERS, before=kill_mid_create, status=503))
    running.append(_start_apply(proxy, tmp_path))
    running[0].communicate(timeout=120)
    assert running[0].returncode == -signal.SIGKILL
    written = [path for method, path, status in proxy.log if method in ("POST", "PATCH") and status == 201]
    assert written, proxy.log  # something was created before the kill, and rollback must undo it

    # A colleague creates the peer bgpflat was about to create.
    theirs = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BGPPeer",
        "metadata": {"name": "peer-switch"},
        "spec": {"peerIP": "192.0.2.99", "asNumber": 64999},
    }
    (tmp_path / "theirs.json").write_text(json.dumps(theirs))
    kubectl(kube_v1, "create", "-f", str(tmp_path / "theirs.json"))

    backup = _backup(tmp_path)
    undone = bgpflat("rollback", backup, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert undone.code == 2, undone.out + undone.err
    assert "BGPPeer/peer-switch" in undone.err and "may not have written" in undone.err
    assert "not deleted: the apply was interrupted while creating it" in undone.out
    peer = calico(kube_v1, "bgppeers", "peer-switch")
    assert peer is not None and peer["spec"]["peerIP"] == "192.0.2.99"
    # What the killed apply did create is gone again.
    assert calico(kube_v1, "bgpconfigurations", "default") is None
    assert "delete   BGPConfiguration/default" in undone.out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_apply_stops_at_a_safe_point_with_the_report(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path, sig: signal.Signals
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    running: list[subprocess.Popen[str]] = []
    # The signal arrives while stage 3's write is in flight: that write finishes, the pools' stage never starts.
    proxy.add(Rule(method="PATCH", path_contains=CONFIG_PATCH, before=lambda: running[0].send_signal(sig)))
    running.append(_start_apply(proxy, tmp_path))
    out, err = running[0].communicate(timeout=120)
    assert running[0].returncode == 128 + sig.value, err
    assert f"interrupted by {sig.name}" in err
    assert "Traceback" not in err
    assert "update   BGPConfiguration/default" in out
    assert "not attempted" in out
    backup = _backup(tmp_path)
    assert f"bgpflat rollback {backup.relative_to(tmp_path)}" in out
    # A backup holds the objects as the server serves them (BGP passwords' secret references
    # included): readable by its owner only.
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    header = yaml.safe_load(backup.read_text())["bgpflat"]
    assert header["finished"] is True and header["complete"] is False
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"
    assert calico(kube_v1, "bgppeers", "peer-switch") is not None
    undone = bgpflat("rollback", backup, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert undone.code == 0, undone.err
    assert calico(kube_v1, "bgppeers", "peer-switch") is None
    assert calico(kube_v1, "bgpconfigurations", "default") is None
