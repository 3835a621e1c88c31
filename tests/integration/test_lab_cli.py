"""``bgpflat lab up && bgpflat lab check && bgpflat lab down`` through the command line, as CI runs it.

For each scenario: ``up`` builds the whole lab (a real kube-apiserver seeded with the scenario,
the namespace fabric rendered from it, the follower, the verification peer); ``status`` shows it
healthy; ``check`` applies the flat spec with ``bgpflat apply``, waits for ``bgpflat verify``,
reaches a pod, a cluster IP and ``http://whoami`` from the office host, rolls back and sees routes
and reachability go; ``down`` then leaves no namespace, process or file behind, and a second
``down`` is a no-op. The lab-up time and the apply → verify-green time are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_lab_flat import skip_unless_lab_can_run

from bgpflat.errors import LabError
from bgpflat.lab.controlplane.binaries import ensure_binaries
from bgpflat.lab.controlplane.seed import load_scenario
from bgpflat.lab.fabric.lifecycle import lab_spec
from bgpflat.lab.fabric.netns import NETNS_ETC
from bgpflat.lab.fabric.topology import load_topology
from bgpflat.lab.processes import process_start_time

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
STEPS = [
    "lab healthy",
    "unreachable before",
    "apply",
    "verify",
    "http pod IP",
    "http cluster IP",
    "http name",
    "revert",
    "withdrawn",
    "unreachable after",
]


def bgpflat(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip


def skip_unless_control_plane_can_run() -> None:
    try:
        ensure_binaries()
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"kube-apiserver/etcd unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"kube-apiserver/etcd cannot be had: {exc}")


def _namespaces_with_prefix(prefix: str) -> list[str]:
    run_netns = Path("/run/netns")
    return sorted(p.name for p in run_netns.iterdir() if p.name.startswith(prefix)) if run_netns.is_dir() else []


def _recorded(state_dir: Path) -> dict[str, Any]:
    """Everything the lab's records name: namespaces, PIDs (with start times), paths outside the state dir."""
    fabric = json.loads((state_dir / "fabric" / "lab.json").read_text())
    plane = json.loads((state_dir / "control-plane" / "state.json").read_text())
    return {
        "prefix": f"{fabric['lab']}-{fabric['lab_id']}-",
        "namespaces": fabric["namespaces"],
        "processes": [(p["name"], p["pid"], p["start_time"], p["namespace"]) for p in fabric["processes"]]
        + [(p["name"], p["pid"], p["start_time"], "") for p in plane["processes"]],
        "paths": fabric["paths"],
    }


@pytest.mark.parametrize("scenario", ["calico-bgp", "ipip-migration"])
def test_up_check_down(scenario: str, tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    state_dir = tmp_path / "lab"
    up = bgpflat("lab", "up", scenario, "--state-dir", str(state_dir))
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stderr}"
        assert up.stdout.strip().splitlines()[-1] == str(state_dir / "control-plane" / "kubeconfig")
        assert "curl http://whoami" in up.stderr
        recorded = _recorded(state_dir)
        names = {name for name, *_ in recorded["processes"]}
        assert {"etcd", "kube-apiserver", "follower", "peer", "zebra", "bgpd"} <= names
        assert ("bmp" in names) == (scenario == "calico-bgp")
        assert any(name.startswith("confd:") for name in names), names  # Calico's confd per node
        # Traffic stays inside the lab: every daemon runs in one of the lab's own namespaces. The
        # control plane, the follower and each node's confd run on the host but use loopback only
        # (the API server binds 127.0.0.1; confd reloads BIRD through its control socket).
        root_netns = os.stat("/proc/self/ns/net").st_ino
        for name, pid, _start, namespace in recorded["processes"]:
            if namespace:
                assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{namespace}").st_ino, name
                assert namespace.startswith(recorded["prefix"]), name
            else:
                assert name in {"etcd", "kube-apiserver", "follower"} or name.startswith("confd:"), name
                assert os.stat(f"/proc/{pid}/ns/net").st_ino == root_netns

        status = bgpflat("lab", "status", "--state-dir", str(state_dir), "-o", "json")
        assert status.returncode == 0, status.stdout + status.stderr
        (lab,) = json.loads(status.stdout)["labs"]
        assert lab["scenario"] == scenario and lab["healthy"] and lab["control_plane"]["ready"]

        check = bgpflat("lab", "check", scenario, "--state-dir", str(state_dir), "-o", "json")
        report = json.loads(check.stdout or "{}")
        assert check.returncode == 0, (
            f"lab check failed at {report.get('failed_step')}:\n{check.stdout}\n{check.stderr}"
        )
        # calico-bgp's ToR streams BMP to the lab's station (verifier.bmpPort): two more verify steps.
        bmp = ["verify bmp pre-policy", "verify bmp post-policy"] if scenario == "calico-bgp" else []
        at = STEPS.index("verify") + 1
        assert [s["name"] for s in report["steps"]] == STEPS[:at] + bmp + STEPS[at:]
        assert all(s["ok"] for s in report["steps"])
        verify = next(s for s in report["steps"] if s["name"] == "verify")
        assert "0 missing, 0 mismatched, 0 unexpected" in verify["detail"]
        print(
            f"\n{scenario}: lab up {report['lab_up_seconds']:.1f} s; apply → verify green "
            f"{report['apply_to_verify_green_seconds']:.1f} s; check {report['total_seconds']:.1f} s"
        )
        assert report["apply_to_verify_green_seconds"] <= 60  # the goal for scenario D
    finally:
        down = bgpflat("lab", "down", scenario, "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr

    assert _namespaces_with_prefix(recorded["prefix"]) == []
    alive = [(name, pid) for name, pid, start, _ns in recorded["processes"] if process_start_time(pid) == start]
    assert alive == []
    assert [p for p in recorded["paths"] if Path(p).exists()] == []
    assert not any(Path(p).is_relative_to(NETNS_ETC) and Path(p).exists() for p in recorded["paths"])
    assert not state_dir.exists()
    again = bgpflat("lab", "down", scenario, "--state-dir", str(state_dir))
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_the_lab_spec_is_the_scenarios_plus_a_global_peer_to_the_verifier() -> None:
    scenario = load_scenario("calico-bgp")
    spec, asn = lab_spec(scenario, load_topology(scenario.directory))
    original = yaml.safe_load((scenario.directory / "bgpflat.yaml").read_text())
    assert asn == 64513  # the peer expects the AS the spec gives the cluster
    assert spec["peers"][:-1] == original["peers"]
    assert spec["peers"][-1] == {"name": "bgpflat-verifier", "peerIP": "10.200.20.250", "asNumber": 65000}
    assert {k: v for k, v in spec.items() if k != "peers"} == {k: v for k, v in original.items() if k != "peers"}


def test_commands_on_a_lab_that_does_not_exist(tmp_path: Path) -> None:
    state_dir = tmp_path / "none"
    down = bgpflat("lab", "down", "calico-bgp", "--state-dir", str(state_dir))
    assert down.returncode == 0 and "nothing to do" in down.stderr
    check = bgpflat("lab", "check", "calico-bgp", "--state-dir", str(state_dir))
    assert check.returncode == 2 and "bgpflat lab up" in check.stderr
    status = bgpflat("lab", "status", "--state-dir", str(state_dir))
    assert status.returncode == 2 and "no lab recorded" in status.stderr
