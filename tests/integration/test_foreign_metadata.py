"""A Calico object with malformed foreign metadata, on a cluster without Calico's API server.

On ``crd.projectcalico.org/v1`` storage Calico keeps an object's own labels and annotations as JSON
in the ``projectcalico.org/metadata`` annotation; anyone with write access can put anything there.
One such object must not break plan, apply and snapshot for everyone: it is named in a finding,
and the rest of the cluster is planned as usual.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plan_apply import SPEC, bgpflat, calico, kubectl

from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("stored", ['{"labels":"oops"}', "not json", '{"labels":{"team":7}}', "[1,2]"])
def test_malformed_calico_metadata_is_a_finding_not_a_crash(kube_v1: ControlPlane, tmp_path: Path, stored: str) -> None:
    kube_v1.seed_scenario("calico-bgp")
    odd = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BGPPeer",
        "metadata": {"name": "odd", "annotations": {"projectcalico.org/metadata": stored}},
        "spec": {"peerIP": "192.0.2.7", "asNumber": 64999},
    }
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    kubectl(kube_v1, "create", "-f", str(tmp_path / "odd.json"))
    cfg = kube_v1.kubeconfig

    plan = bgpflat("plan", "-f", SPEC, "-o", "json", cwd=tmp_path, kubeconfig=cfg)
    assert plan.code == 0, plan.err
    findings = [f for f in json.loads(plan.out)["findings"] if f["code"] == "unreadable-calico-metadata"]
    assert [f["subjects"] for f in findings] == [["BGPPeer/odd"]], plan.out
    assert "BGPPeer/odd: its projectcalico.org/metadata annotation is not the JSON" in findings[0]["message"]

    snapshot = bgpflat("snapshot", "--output-file", "cluster.yaml", cwd=tmp_path, kubeconfig=cfg)
    assert snapshot.code == 0, snapshot.err
    assert "odd" in (tmp_path / "cluster.yaml").read_text()

    applied = bgpflat("apply", "-f", SPEC, "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=cfg)
    assert applied.code == 0, applied.err
    assert "Traceback" not in plan.err + snapshot.err + applied.err
    assert calico(kube_v1, "bgppeers", "peer-switch") is not None
    # The odd object itself is left exactly as it was.
    assert calico(kube_v1, "bgppeers", "odd")["metadata"]["annotations"]["projectcalico.org/metadata"] == stored
