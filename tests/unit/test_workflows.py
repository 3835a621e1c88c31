"""The pure decisions inside plan/apply/rollback: what is stale, what is a conflict, what gets restored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bgpflat import workflows
from bgpflat.adapters import files
from bgpflat.core.plan.planner import ClusterIdentity, FieldChange, Plan, ResourceChange
from bgpflat.core.state.load import load_desired
from bgpflat.errors import PlanError, StalePlanError
from bgpflat.workflows import apply as apply_flow
from bgpflat.workflows import restore as rollback_flow

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"


def lab_plan() -> Plan:
    snapshot = files.load_snapshot(LAB / "cluster.yaml")
    desired = load_desired(files.load_documents(LAB / "bgpflat.yaml"))
    return workflows.plan_snapshot(snapshot.objects, desired, header=snapshot.header, file=snapshot.file)


def test_readme_first_command_plans_scenario_d_from_the_snapshot() -> None:
    plan = lab_plan()
    keys = [(s.name, c.action, c.key) for s in plan.stages for c in s.changes]
    assert keys == [
        ("bgp-configuration", "create", "BGPConfiguration/default"),
        ("peers", "create", "BGPPeer/peer-switch"),
        ("service-advertisement", "update", "BGPConfiguration/default"),
        ("pools", "update", "IPPool/default-pool"),
    ]
    pool = plan.stages[-1].changes[0]
    assert [(f.path, f.before, f.after) for f in pool.fields] == [("spec.ipipMode", "Always", "Never")]
    assert plan.identity.snapshot.endswith("cluster.yaml")
    assert plan.identity.calico_version == "v3.30.7"


def test_plan_text_says_where_it_was_made() -> None:
    from bgpflat.views.plan import plan_text

    text = plan_text(lab_plan())
    assert text.splitlines()[0].startswith("Source:  snapshot ")
    assert "Calico:  v3.30.7 via projectcalico.org/v3" in text
    assert text.rstrip().endswith("Plan: 2 to add, 1 to change, 0 to delete (4 writes).")


def test_a_snapshot_plan_can_never_be_applied() -> None:
    with pytest.raises(PlanError, match="made from the snapshot"):
        workflows.check_plan_target(lab_plan(), ClusterIdentity(context="lab", server="https://x", cluster_id="u"))


def _plan(identity: dict[str, str], **cluster: str) -> Plan:
    return Plan(identity=ClusterIdentity.from_dict(identity), cluster=dict(cluster))


def test_wrong_cluster_is_refused_by_uid_even_with_the_same_server() -> None:
    plan = _plan({"context": "a", "server": "https://1.2.3.4:6443", "clusterID": "uid-a"})
    with pytest.raises(PlanError) as err:
        workflows.check_plan_target(
            plan, ClusterIdentity(context="a", server="https://1.2.3.4:6443", cluster_id="uid-b")
        )
    assert "wrong cluster" in str(err.value) and "uid-a" in str(err.value) and "uid-b" in str(err.value)


def test_same_cluster_through_another_url_is_accepted() -> None:
    plan = _plan({"context": "a", "server": "https://1.2.3.4:6443", "clusterID": "uid-a"})
    workflows.check_plan_target(plan, ClusterIdentity(context="b", server="http://127.0.0.1:8001", cluster_id="uid-a"))


def test_cluster_identity_keeps_its_keys_in_plans_and_in_backup_headers() -> None:
    identity = ClusterIdentity(context="a", server="https://x", cluster_id="uid-a", api_group="projectcalico.org/v3")
    assert identity.to_dict() == {
        "context": "a",
        "server": "https://x",
        "clusterID": "uid-a",
        "apiGroup": "projectcalico.org/v3",
        "apiFlavour": "",
        "calicoVersion": "",
    }
    assert identity.to_header()["clusterUID"] == "uid-a"
    assert ClusterIdentity.from_dict(identity.to_dict()) == identity
    assert ClusterIdentity.from_header(identity.to_header()) == identity
    snapshot = ClusterIdentity.from_header(identity.to_header(), snapshot="cluster.yaml")
    assert snapshot.to_dict()["snapshot"] == "cluster.yaml"
    assert snapshot.same_cluster(identity)


def test_without_uids_the_server_decides() -> None:
    plan = _plan({"context": "a", "server": "https://1.2.3.4:6443", "clusterID": ""})
    with pytest.raises(PlanError, match="wrong cluster"):
        workflows.check_plan_target(plan, ClusterIdentity(context="a", server="https://5.6.7.8:6443", cluster_id=""))


def test_a_plan_made_through_another_calico_api_is_stale() -> None:
    plan = _plan({"server": "s", "clusterID": "u", "apiGroup": "projectcalico.org/v3"})
    with pytest.raises(StalePlanError, match="plan is stale"):
        workflows.check_plan_target(
            plan, ClusterIdentity(server="s", cluster_id="u", api_group="crd.projectcalico.org/v1")
        )


def test_v1_writes_need_the_flag() -> None:
    with pytest.raises(PlanError, match="--allow-crd-v1"):
        workflows.check_writable(ClusterIdentity(api_group="crd.projectcalico.org/v1"), allow_crd_v1=False)
    workflows.check_writable(ClusterIdentity(api_group="crd.projectcalico.org/v1"), allow_crd_v1=True)
    workflows.check_writable(ClusterIdentity(api_group="projectcalico.org/v3"), allow_crd_v1=False)


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"spec": {"ipipMode": "Always", "natOutgoing": True, "list": [1, 2]}, "keep": 1}
    patch = {"spec": {"ipipMode": "Never", "natOutgoing": None, "list": [3]}}
    assert workflows.merge_patch(target, patch) == {"spec": {"ipipMode": "Never", "list": [3]}, "keep": 1}
    assert target["spec"]["ipipMode"] == "Always"  # the input is not modified


def _pool_change(before: Any, after: Any) -> ResourceChange:
    return ResourceChange(
        action="update",
        api_version="projectcalico.org/v3",
        kind="IPPool",
        name="p",
        stage="pools",
        fields=(FieldChange(path="spec.ipipMode", before=before, after=after),),
        patch={"spec": {"ipipMode": after}},
        resource_version="1",
    )


def _pool(mode: str | None, **spec: Any) -> dict[str, Any]:
    body = {"cidr": "10.0.0.0/16", **spec}
    if mode is not None:
        body["ipipMode"] = mode
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}, "spec": body}


@pytest.mark.parametrize(
    ("current", "verdict"),
    [
        (_pool("Always", natOutgoing=False), "retry"),  # someone edited another field: safe to retry
        (_pool("Never"), "done"),  # someone made the same change
        (_pool(None), "done"),  # absent ipipMode is Never, as Calico reads it
        (_pool("CrossSubnet"), "moved"),  # someone changed what we change: stop
    ],
)
def test_conflict_verdict(current: dict[str, Any], verdict: str) -> None:
    assert apply_flow._conflict_verdict(_pool_change("Always", "Never"), current) == verdict


def test_installation_conflict_retries_only_if_no_other_pool_entry_moved() -> None:
    pools = [{"cidr": "10.0.0.0/16", "encapsulation": "IPIP"}, {"cidr": "10.1.0.0/16", "encapsulation": "IPIP"}]
    wanted = [{"cidr": "10.0.0.0/16", "encapsulation": "None"}, pools[1]]
    change = ResourceChange(
        action="update",
        api_version="operator.tigera.io/v1",
        kind="Installation",
        name="default",
        stage="pools",
        fields=(FieldChange(path="spec.calicoNetwork.ipPools[0].encapsulation", before="IPIP", after="None"),),
        patch={"spec": {"calicoNetwork": {"ipPools": wanted}}},
        resource_version="1",
    )

    def installation(entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": "Installation",
            "metadata": {"name": "default"},
            "spec": {"calicoNetwork": {"ipPools": entries}},
        }

    assert apply_flow._conflict_verdict(change, installation(pools)) == "retry"
    assert apply_flow._conflict_verdict(change, installation(wanted)) == "done"
    other = [pools[0], {"cidr": "10.1.0.0/16", "encapsulation": "VXLAN"}]
    assert apply_flow._conflict_verdict(change, installation(other)) == "moved"


def test_moved_objects_say_what_changed() -> None:
    moved = workflows.Moved(
        key="IPPool/p",
        planned_version="5",
        current_version="9",
        fields=('spec.ipipMode was "Always" when planned, is now "CrossSubnet"',),
    )
    assert (
        str(moved) == 'IPPool/p resourceVersion 5 -> 9: spec.ipipMode was "Always" when planned, is now "CrossSubnet"'
    )
    assert str(workflows.Moved(key="BGPPeer/x", planned_version=None, current_version="3")) == (
        "BGPPeer/x was created since the plan"
    )


def test_restore_patch_nulls_fields_the_backup_did_not_have() -> None:
    saved = _pool("Always", natOutgoing=True)
    current = _pool("Never", natOutgoing=True, disableBGPExport=True)
    assert rollback_flow._restore_patch("IPPool", saved, current) == {
        "spec": {"ipipMode": "Always", "disableBGPExport": None}
    }
    assert rollback_flow._restore_patch("IPPool", saved, saved) == {}


def test_recreated_objects_lose_server_metadata() -> None:
    saved = _pool("Always")
    saved["metadata"].update(resourceVersion="7", uid="u", creationTimestamp="t", labels={"a": "b"})
    assert rollback_flow._recreate_manifest(saved)["metadata"] == {"name": "p", "labels": {"a": "b"}}
