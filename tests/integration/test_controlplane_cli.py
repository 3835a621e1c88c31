"""``bgpflat lab control-plane up|status|down`` as a user runs them, checked with kubectl."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgpflat.errors import LabError
from bgpflat.lab.controlplane.binaries import find_cached

pytestmark = pytest.mark.integration

POOL = """\
apiVersion: crd.projectcalico.org/v1
kind: IPPool
metadata:
  name: office-pool
spec:
  cidr: 10.70.0.0/16
  blockSize: 26
  ipipMode: Never
  natOutgoing: true
"""


def _bgpflat(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def cached_binaries() -> None:
    try:
        found = find_cached()
    except LabError as exc:
        found, reason = None, str(exc)
    else:
        reason = "no cached kube-apiserver/etcd (run `bgpflat lab control-plane build`)"
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def test_up_status_down(cached_binaries: None, tmp_path: Path) -> None:
    state_dir = tmp_path / "cp"
    up = _bgpflat("lab", "control-plane", "up", "--state-dir", str(state_dir), "--scenario", "calico-bgp")
    assert up.returncode == 0, up.stderr
    kubeconfig = up.stdout.strip().splitlines()[-1]
    assert kubeconfig == str(state_dir / "kubeconfig")
    pids: list[int] = []
    try:
        status = _bgpflat("lab", "control-plane", "status", "--state-dir", str(state_dir), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert report["ready"] is True
        assert report["service_cluster_ip_range"] == "10.233.0.0/18"  # taken from the scenario
        pids = [p["pid"] for p in report["processes"]]
        assert sorted(p["name"] for p in report["processes"]) == ["etcd", "kube-apiserver"]
        assert all(_alive(pid) for pid in pids)

        again = _bgpflat("lab", "control-plane", "up", "--state-dir", str(state_dir))
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == kubeconfig

        kubectl = shutil.which("kubectl")
        if kubectl is not None:
            k = [kubectl, "--kubeconfig", kubeconfig]
            got = subprocess.run([*k, "get", "crd", "ippools.crd.projectcalico.org"], capture_output=True, text=True)
            assert got.returncode == 0, got.stderr
            created = subprocess.run([*k, "create", "-f", "-"], input=POOL, capture_output=True, text=True)
            assert created.returncode == 0, created.stderr
            read = subprocess.run(
                [*k, "get", "ippools.crd.projectcalico.org", "-o", "json"], capture_output=True, text=True
            )
            pools = {p["metadata"]["name"]: p["spec"]["cidr"] for p in json.loads(read.stdout)["items"]}
            assert pools == {"default-pool": "10.233.64.0/18", "office-pool": "10.70.0.0/16"}
    finally:
        down = _bgpflat("lab", "control-plane", "down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    assert pids and not any(_alive(pid) for pid in pids)
    after = _bgpflat("lab", "control-plane", "status", "--state-dir", str(state_dir))
    assert after.returncode == 0  # reported: a status command exits 0 whatever it reports
    assert "not running" in after.stdout


def test_up_refuses_a_state_dir_with_foreign_files(cached_binaries: None, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    up = _bgpflat("lab", "control-plane", "up", "--state-dir", str(tmp_path))
    assert up.returncode == 2
    assert "is not empty" in up.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


_TIED_RUN = """\
import sys, time
from pathlib import Path
from bgpflat.lab.controlplane.server import ControlPlane
plane = ControlPlane.start(state_dir=Path(sys.argv[1]), flavour="v1", tied_to_caller=True)
print(" ".join(str(p.pid) for p in plane.state.processes), flush=True)
time.sleep(600)
"""


def test_a_run_killed_before_its_teardown_leaves_no_server_running(cached_binaries: None, tmp_path: Path) -> None:
    """A test session or private run that is SIGKILLed cannot stop its servers; the kernel must."""
    run = subprocess.Popen([sys.executable, "-c", _TIED_RUN, str(tmp_path / "cp")], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert run.stdout is not None
        pids = [int(p) for p in run.stdout.readline().split()]
        assert len(pids) == 2 and all(_alive(p) for p in pids), "etcd and kube-apiserver should be running"
        run.kill()
        run.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids), "etcd/kube-apiserver outlived the run that started them"
    finally:
        run.kill()
        for pid in pids:  # only if the assertion above failed: stop them by PID
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
