"""``bgpflat lab check vxlan-migration``: VXLAN turned off, gated on the ToR's BMP view, under probes.

The lab's nodes carry Calico's VXLAN data plane as Felix programs it (``vxlan.calico``, a route
per remote block via the remote VTEP, static neighbour and FDB entries), so the encapsulation
change really moves packets: the test looks at the route a rack-A node uses toward a rack-B pod
before (through ``vxlan.calico``) and checks the probes: at least 100, none failed.

Healthy: the gate passes every stage (peers, pools -> CrossSubnet, pools-final -> Never), the
probes never fail, the rollback returns the lab to VXLAN. Faulty ToR (an inbound prefix list
refusing rack B's blocks): the gate stops at the first stage, before encapsulation goes off, and
undoes it; no probe fails, and the API server holds the objects it held before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rawapi import raw_api
from test_lab_cli import _namespaces_with_prefix, _recorded, bgpflat, skip_unless_control_plane_can_run
from test_lab_flat import skip_unless_lab_can_run

from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.processes import process_start_time

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

SCENARIO = "vxlan-migration"
CALICO = ("ippools", "bgppeers", "bgpconfigurations")


def calico_objects(state_dir: Path) -> dict[str, Any]:
    api = raw_api(ControlPlane.attach(state_dir / "control-plane"))
    found: dict[str, Any] = {}
    for plural in CALICO:
        for item in api.request("GET", f"/apis/crd.projectcalico.org/v1/{plural}").body.get("items", []):
            found[f"{plural}/{item['metadata']['name']}"] = item.get("spec")
    return found


def check(state_dir: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    run = bgpflat("lab", "check", SCENARIO, "--state-dir", str(state_dir), *flags, "-o", "json", timeout=600)
    return run.returncode, json.loads(run.stdout or "{}")


def steps(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in report["steps"]}


def test_vxlan_migration_gated_on_the_tor_with_probes(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    if not list(Path("/usr/lib").glob("*/frr/modules/bgpd_bmp.so")):
        pytest.skip("needs FRR with its BMP module (apt-get install frr)")
    state_dir = tmp_path / "lab"
    up = bgpflat("lab", "up", SCENARIO, "--state-dir", str(state_dir))
    recorded = _recorded(state_dir) if up.returncode == 0 else {"prefix": "none-", "processes": []}
    try:
        assert up.returncode == 0, up.stderr
        before = calico_objects(state_dir)
        assert before["ippools/default-ipv4-ippool"]["vxlanMode"] == "Always"

        code, report = check(state_dir)
        assert code == 0, json.dumps(report, indent=2)
        assert report["gate"] == "passed" and report["probes"]["failed"] == 0, report["probes"]
        assert report["probes"]["sent"] >= 100 and report["probes"]["excluded"] == []
        done = steps(report)
        assert "gate green at every stage (peers" in done["apply (gated)"]["detail"]
        assert "pools-final" in done["apply (gated)"]["detail"]
        # Flat, a rack-A node sends a rack-B pod's packets unencapsulated to the ToR; reverted,
        # through vxlan.calico again.
        assert "via 10.70.1.1 dev eth0" in done["settle"]["detail"], done["settle"]
        assert "dev vxlan.calico" in done["settle after revert"]["detail"], done["settle after revert"]
        assert all(s["probes"]["failed"] == 0 for s in report["steps"] if "probes" in s)
        assert calico_objects(state_dir) == before

        code, report = check(state_dir, "--fault", "tor-drops-rack")
        assert code == 0, json.dumps(report, indent=2)
        assert report["gate"] == "stopped" and report["probes"]["failed"] == 0, report["probes"]
        assert report["probes"]["sent"] >= 100
        # Under the fault the office never reached rack B: those probes are left out, and said so.
        assert report["probes"]["excluded"] == ["developer -> http://10.245.30.5/", "developer -> http://10.245.40.5/"]
        done = steps(report)
        assert "gate stopped at peers and undid it; encapsulation untouched" in done["apply (gated)"]["detail"]
        assert "dev vxlan.calico" in done["settle"]["detail"]
        assert done["fault removed"]["ok"]
        assert calico_objects(state_dir) == before  # nothing left half-applied
    finally:
        down = bgpflat("lab", "down", SCENARIO, "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    alive = [(name, p) for name, p, start, _ns in recorded["processes"] if process_start_time(p) == start]
    assert alive == []
    assert _namespaces_with_prefix(recorded["prefix"]) == []
    assert not state_dir.exists()
