"""The lab's BMP station: the calico-bgp ToR (FRR, ``bgpd -M bmp``) streams to ``bgpflat bmp run``.

``lab up`` starts the station in the verifier's namespace and records it; ``lab check`` verifies
through the verification peer and through BMP, pre-policy (what each node sent the ToR) and
post-policy (what the ToR kept), and all three agree with one expected-route model. Then the
operator gives node-1's session a prefix list that refuses the service range: the peer and the
pre-policy table still match (node-1 did send it), the post-policy step fails with
``filtered-by-router`` naming the ToR and node-1. With that prefix list in place, ``apply --gate
bmp:DIR`` gated on what the ToR kept stops at the stage that advertises the service range and
undoes it (the gate passing on the ToR's view is ``test_lab_vxlan_migration``'s healthy run). Gating
on the pre-policy table would not help here: FRR reports routes its policy refused only in a new BMP
session's table dump, not as they arrive. ``lab down`` stops the
station with the rest and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_lab_cli import _namespaces_with_prefix, _recorded, bgpflat, skip_unless_control_plane_can_run
from test_lab_flat import skip_unless_lab_can_run

from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.lifecycle import Lab
from bgpflat.lab.processes import process_start_time

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

SCENARIO = "calico-bgp"
TOR, STATION = "10.200.20.254", "10.200.20.250:5000"
NODE1 = "10.200.20.103"
SERVICES = "10.233.0.0/18"
POOL = "10.233.64.0/18"
BMP_STEPS = ["verify bmp pre-policy", "verify bmp post-policy"]


def _steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["steps"]}


def gated_apply(state_dir: Path, tmp_path: Path, *gate: str) -> subprocess.CompletedProcess[str]:
    """The lab's flat spec applied with ``--gate bmp:`` on the lab's station."""
    lab = Lab.attach(state_dir)
    return bgpflat(
        "apply", "-f", str(lab.spec_file), "--yes", "--allow-crd-v1", "--kubeconfig", str(lab.kubeconfig),
        "--backup-dir", str(tmp_path / "backups"), "--gate", f"bmp:{lab.bmp_state}", *gate, "-o", "json",
    )  # fmt: skip


def test_lab_check_through_peer_and_bmp(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    if not list(Path("/usr/lib").glob("*/frr/modules/bgpd_bmp.so")):
        pytest.skip("needs FRR with its BMP module (apt-get install frr)")
    state_dir = tmp_path / "lab"
    up = bgpflat("lab", "up", SCENARIO, "--state-dir", str(state_dir))
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stderr}"
        assert f"BMP station:  {STATION}" in up.stderr
        recorded = _recorded(state_dir)
        [(_name, pid, _start, namespace)] = [p for p in recorded["processes"] if p[0] == "bmp"]
        assert namespace == f"{recorded['prefix']}verifier"
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{namespace}").st_ino

        status = bgpflat("lab", "status", "--state-dir", str(state_dir), "-o", "json")
        (lab,) = json.loads(status.stdout)["labs"]
        assert lab["healthy"] and lab["bmp_station"] == {
            "listen": STATION, "router": TOR, "state_dir": str(state_dir / "bmp"),
        }  # fmt: skip
        assert any(p["name"] == "bmp" and p["running"] for p in lab["processes"])
        text = bgpflat("lab", "status", "--state-dir", str(state_dir))
        assert f"BMP station    {STATION} from ToR {TOR}" in text.stdout

        check = bgpflat("lab", "check", SCENARIO, "--state-dir", str(state_dir), "-o", "json")
        report = json.loads(check.stdout or "{}")
        assert check.returncode == 0, f"lab check failed at {report.get('failed_step')}:\n{check.stdout}"
        steps = _steps(report)
        names = [s["name"] for s in report["steps"]]
        assert names[names.index("verify") + 1 : names.index("verify") + 3] == BMP_STEPS
        for name in ("verify", *BMP_STEPS):
            assert "0 missing, 0 mismatched, 0 unexpected" in steps[name]["detail"], steps[name]
        bmp_seconds = sum(steps[name]["seconds"] for name in BMP_STEPS)
        print(f"\nlab check {report['total_seconds']:.1f} s, of which the BMP steps {bmp_seconds:.1f} s")

        # The operator narrows what the ToR accepts from node-1: everything but the service range.
        FlatLab.attach(state_dir / "fabric").vtysh(
            "configure terminal",
            f"ip prefix-list NODE-1-IN seq 5 deny {SERVICES}",
            f"ip prefix-list NODE-1-IN seq 10 permit {POOL} le 32",
            "router bgp 65200",
            "address-family ipv4 unicast",
            f"neighbor {NODE1} prefix-list NODE-1-IN in",
        )
        check = bgpflat("lab", "check", SCENARIO, "--state-dir", str(state_dir), "-o", "json")
        report = json.loads(check.stdout or "{}")
        assert check.returncode == 1 and report["failed_step"] == "verify bmp post-policy", check.stdout
        steps = _steps(report)
        assert steps["verify"]["ok"] and steps["verify bmp pre-policy"]["ok"], check.stdout
        detail = steps["verify bmp post-policy"]["detail"]
        assert f"filtered-by-router {SERVICES} from node-1 at router {TOR}" in detail, detail
        assert "filtered-by-router" not in steps["verify bmp pre-policy"]["detail"]
        assert steps["revert (cleanup)"]["ok"]  # the lab is left unflattened

        # The flat spec applied stage by stage, gated on the ToR's own view through BMP.
        post = gated_apply(state_dir, tmp_path, "--gate-router", TOR, "--gate-timeout", "20")
        gate = json.loads(post.stdout or "{}").get("gate")
        assert gate is not None, post.stderr
        assert post.returncode == 1 and gate["status"] == "stopped", post.stderr
        assert gate["peer"] == TOR and gate["undo"]["error"] is None, gate
        stopped = {s["stage"]: s for s in gate["stages"]}[gate["stopped_at"]]
        assert stopped["matched"] < stopped["expected"], stopped
        assert f"routes router {TOR} reports (post-policy) for peer {TOR}" in post.stderr
        assert f"{SERVICES}" in post.stderr  # the route the ToR refused, by node
    finally:
        # `lab check` restarted the station (a new PID): `down` must stop the one recorded now.
        final = _recorded(state_dir) if (state_dir / "fabric" / "lab.json").is_file() else recorded
        down = bgpflat("lab", "down", SCENARIO, "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    [station_pid] = [p for name, p, _start, _ns in final["processes"] if name == "bmp"]
    assert f"bmp (pid {station_pid})" in down.stderr
    everything = recorded["processes"] + final["processes"]
    alive = [(name, p) for name, p, start, _ns in everything if process_start_time(p) == start]
    assert alive == []
    assert _namespaces_with_prefix(recorded["prefix"]) == []
    assert not state_dir.exists()
