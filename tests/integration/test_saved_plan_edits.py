"""A saved plan applies only what it shows.

``bgpflat plan --out`` stores the bodies apply sends next to the field changes people review; a
plan file edited by hand (or by a script) must not get a change past the review. Each test edits a
real saved plan of scenario D and applies it to the real API server: apply refuses before any
write, with one line saying what does not match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_plan_apply import SPEC, bgpflat, calico, kubectl

from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration


def _saved_plan(kube: ControlPlane, tmp_path: Path) -> dict[str, Any]:
    made = bgpflat("plan", "-f", SPEC, "--out", "plan.json", cwd=tmp_path, kubeconfig=kube.kubeconfig)
    assert made.code == 0, made.err
    plan: dict[str, Any] = json.loads((tmp_path / "plan.json").read_text())
    return plan


def _apply_edited(kube: ControlPlane, tmp_path: Path, plan: dict[str, Any]) -> tuple[int, str]:
    (tmp_path / "edited.json").write_text(json.dumps(plan))
    run = bgpflat("apply", "edited.json", "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube.kubeconfig)
    return run.code, run.err


def _change(plan: dict[str, Any], key: str) -> Any:
    for stage in plan["stages"]:
        for change in stage["changes"]:
            if f"{change['kind']}/{change['name']}" == key:
                return change  # the plan's own entry: edits to it go to the file
    raise AssertionError(f"{key} not in the plan")


def _nothing_written(kube: ControlPlane) -> None:
    assert calico(kube, "bgppeers", "peer-switch") is None
    assert calico(kube, "bgpconfigurations", "default") is None
    pool = calico(kube, "ippools", "default-pool")["spec"]
    assert pool["ipipMode"] == "Always" and pool["natOutgoing"] is True
    assert pool.get("nodeSelector", "all()") == "all()"


def test_a_patch_edited_beyond_its_shown_fields_is_refused(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    plan = _saved_plan(kube_v1, tmp_path)
    pool = _change(plan, "IPPool/default-pool")
    pool["patch"]["spec"].update({"natOutgoing": False, "nodeSelector": "!all()"})
    code, err = _apply_edited(kube_v1, tmp_path, plan)
    assert code == 2
    assert "the plan's writes do not match the changes it shows" in err
    assert "IPPool/default-pool: would change spec.natOutgoing" in err and "spec.nodeSelector" in err
    _nothing_written(kube_v1)


def test_a_patch_that_sends_another_value_than_shown_is_refused(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    plan = _saved_plan(kube_v1, tmp_path)
    _change(plan, "IPPool/default-pool")["patch"]["spec"]["ipipMode"] = "CrossSubnet"
    code, err = _apply_edited(kube_v1, tmp_path, plan)
    assert code == 2
    assert 'would change spec.ipipMode (the plan shows "Never")' in err
    _nothing_written(kube_v1)


def test_a_delete_of_an_object_bgpflat_does_not_manage_is_refused(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    theirs = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BGPPeer",
        "metadata": {"name": "theirs"},
        "spec": {"peerIP": "192.0.2.99", "asNumber": 64999},
    }
    (tmp_path / "theirs.json").write_text(json.dumps(theirs))
    kubectl(kube_v1, "create", "-f", str(tmp_path / "theirs.json"))
    rv = calico(kube_v1, "bgppeers", "theirs")["metadata"]["resourceVersion"]
    plan = _saved_plan(kube_v1, tmp_path)
    delete = {**_change(plan, "BGPPeer/peer-switch"), "action": "delete", "name": "theirs", "resource_version": rv}
    delete.update(fields=[], patch=None, manifest=None)
    plan["stages"].append({"name": "prune", "title": "Deletions", "changes": [delete]})
    plan["observed_versions"]["BGPPeer/theirs"] = rv
    code, err = _apply_edited(kube_v1, tmp_path, plan)
    assert code == 2
    assert "BGPPeer/theirs: would be deleted but bgpflat does not manage it" in err
    assert calico(kube_v1, "bgppeers", "theirs") is not None
    _nothing_written(kube_v1)


def test_a_plan_that_would_stop_midway_is_refused_on_load(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    plan = _saved_plan(kube_v1, tmp_path)
    _change(plan, "IPPool/default-pool")["patch"] = None
    code, err = _apply_edited(kube_v1, tmp_path, plan)
    assert code == 2
    assert 'an update needs its "patch"' in err, err
    assert "Traceback" not in err
    _nothing_written(kube_v1)


LATE = {
    "IPPool": {"cidr": "10.233.0.0/24", "ipipMode": "Never", "vxlanMode": "Never", "natOutgoing": True},
    "BGPFilter": {"exportV4": [{"action": "Reject", "matchOperator": "In", "cidr": "10.233.64.0/18"}]},
}


@pytest.mark.parametrize("kind", sorted(LATE))
def test_an_object_created_after_the_plan_makes_it_stale(kube_v1: ControlPlane, tmp_path: Path, kind: str) -> None:
    """The plan's checks never saw it (a pool overlapping the service range, a filter on the peers'
    routes): apply must not go ahead."""
    kube_v1.seed_scenario("calico-bgp")
    _saved_plan(kube_v1, tmp_path)
    late = {"apiVersion": "crd.projectcalico.org/v1", "kind": kind, "metadata": {"name": "late"}, "spec": LATE[kind]}
    (tmp_path / "late.json").write_text(json.dumps(late))
    kubectl(kube_v1, "create", "-f", str(tmp_path / "late.json"))
    run = bgpflat("apply", "plan.json", "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 2
    assert "plan is stale" in run.err and f"{kind}/late was created since the plan" in run.err
    _nothing_written(kube_v1)


def test_a_node_that_moved_or_joined_after_the_plan_makes_it_stale(kube_v1: ControlPlane, tmp_path: Path) -> None:
    """Nodes' addresses decide the address-plan and mesh findings; a Node's resourceVersion moves
    with every heartbeat, so what the checks read of it is what a saved plan records."""
    kube_v1.seed_scenario("calico-bgp")
    _saved_plan(kube_v1, tmp_path)
    # An annotation the checks do not read, as kubelet and controllers write them all day long.
    kubectl(kube_v1, "annotate", "node", "node-1", "node.alpha.kubernetes.io/ttl=0", "--overwrite")
    kubectl(kube_v1, "annotate", "node", "node-2", "projectcalico.org/IPv4Address=10.200.30.104/24", "--overwrite")
    joined = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-4", "annotations": {"projectcalico.org/IPv4Address": "10.200.20.106/24"}},
    }
    (tmp_path / "node-4.json").write_text(json.dumps(joined))
    kubectl(kube_v1, "create", "-f", str(tmp_path / "node-4.json"))
    run = bgpflat("apply", "plan.json", "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 2
    assert "plan is stale" in run.err
    assert "Node/node-2 changed: was ipv4=10.200.20.104/24 " in run.err
    assert "is now ipv4=10.200.30.104/24 " in run.err
    assert "Node/node-4 was created since the plan: ipv4=10.200.20.106/24" in run.err
    assert "node-1" not in run.err  # an annotation the checks do not read is no change
    _nothing_written(kube_v1)


def test_a_plan_whose_nodes_are_as_planned_applies(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    plan = _saved_plan(kube_v1, tmp_path)
    assert sorted(plan["observed_nodes"]) == ["node-1", "node-2", "node-3"]
    kubectl(kube_v1, "annotate", "node", "node-3", "node.alpha.kubernetes.io/ttl=0", "--overwrite")
    run = bgpflat("apply", "plan.json", "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 0, run.err
    assert calico(kube_v1, "bgppeers", "peer-switch") is not None
