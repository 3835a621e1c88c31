"""Plans on small clusters: ownership, staging, operator pools, pruning, findings, serialisation.

Helpers first: observed states from manifests, and a plan applied to objects.

``apply_to_objects`` does what the Kubernetes API does with each change (create, RFC 7386 merge
patch, delete), so a test can check that re-planning after an apply finds nothing left to do.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from bgpflat.core.plan.layover import merge_patch
from bgpflat.core.plan.planner import Plan
from bgpflat.core.state.documents import SpecDocument
from bgpflat.core.state.load import load_desired
from bgpflat.core.state.model import DesiredState, ObservedState

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
V3 = "projectcalico.org/v3"


def lab_objects() -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all((LAB / "cluster.yaml").read_text()) if o]


def lab_desired() -> DesiredState:
    return load_desired([SpecDocument(data=yaml.safe_load((LAB / "bgpflat.yaml").read_text()), file="bgpflat.yaml")])


def flat(data: Mapping[str, Any]) -> DesiredState:
    return load_desired([SpecDocument(data=copy.deepcopy(dict(data)), file="bgpflat.yaml")])


def obj(
    kind: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    rv: str = "1",
    api: str = V3,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "resourceVersion": rv}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": api, "kind": kind, "metadata": metadata, "spec": copy.deepcopy(dict(spec))}


def node(name: str, address: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"projectcalico.org/IPv4Address": address}},
    }


def apply_to_objects(plan: Plan, objects: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    store = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(dict(o)) for o in objects}
    for change in plan.changes:
        key = (change.kind, change.name)
        if change.action == "create":
            assert key not in store, f"{key} exists"
            created = copy.deepcopy(dict(change.manifest or {}))
            created["metadata"]["resourceVersion"] = "100"
            store[key] = created
        elif change.action == "update":
            current = store[key]
            if not change.chained:
                assert str(current["metadata"].get("resourceVersion")) == str(change.resource_version), "stale"
            store[key] = merge_patch(current, change.patch)
            store[key]["metadata"]["resourceVersion"] = str(int(store[key]["metadata"].get("resourceVersion", 0)) + 1)
        elif change.action == "delete":
            del store[key]
    return list(store.values())


def observed(objects: Iterable[Mapping[str, Any]], **identity: str) -> ObservedState:
    return ObservedState.from_objects(list(objects), identity=identity)


# --- tests -------------------------------------------------------------------------------------

import pytest  # noqa: E402

from bgpflat.core.plan.planner import make_plan, render_plan_text  # noqa: E402
from bgpflat.errors import PlanError, ValidationError  # noqa: E402

POOL_SPEC = {"cidr": "10.244.0.0/16", "blockSize": 26, "ipipMode": "Always", "vxlanMode": "Never", "natOutgoing": True}
TWO_SUBNET_NODES = [node("a1", "10.0.1.10/24", rack="a"), node("b1", "10.0.2.10/24", rack="b")]
ONE_SUBNET_NODES = [node("a1", "10.0.1.10/24", rack="a"), node("a2", "10.0.1.11/24", rack="a")]
DEFAULT_CONFIG = obj("BGPConfiguration", "default", {"asNumber": 64512}, rv="7")


def pool_spec(encapsulation: str = "None", **extra: Any) -> dict[str, Any]:
    return {"pools": [{"name": "pods", "cidr": "10.244.0.0/16", "encapsulation": encapsulation, **extra}]}


def replan_is_empty(desired: DesiredState, objects: list[dict[str, Any]], plan: Plan) -> None:
    after = apply_to_objects(plan, objects)
    again = make_plan(desired=desired, observed=observed(after))
    assert again.stages == (), render_plan_text(again)
    assert str(again.summary) == "Plan: 0 to add, 0 to change, 0 to delete."


def test_no_changes_when_the_cluster_matches() -> None:
    objects = [
        DEFAULT_CONFIG,
        obj("IPPool", "pods", {"cidr": "10.244.0.0/16", "ipipMode": "", "natOutgoing": True}),
        *ONE_SUBNET_NODES,
    ]
    plan = make_plan(desired=flat(pool_spec(natOutgoing=True)), observed=observed(objects))
    assert plan.stages == ()
    assert [c.key for c in plan.unchanged] == ["IPPool/pods"]
    assert (
        render_plan_text(plan)
        == "No changes. The cluster matches the spec.\n\nFindings:\n  info: [validation-rules] objects checked with "
        "Calico v3.32 validation rules (Calico version not\n      known; assuming v3.32.0)\n\n"
        "Plan: 0 to add, 0 to change, 0 to delete.\n"
    )


def test_update_touches_only_owned_fields_and_keeps_the_rest() -> None:
    observed_pool = obj(
        "IPPool",
        "pods",
        {**POOL_SPEC, "futureField": {"x": 1}, "allowedUses": ["Workload"]},
        labels={"team": "net"},
        rv="42",
    )
    objects = [DEFAULT_CONFIG, observed_pool, *ONE_SUBNET_NODES]
    desired = flat(pool_spec())
    plan = make_plan(desired=desired, observed=observed(objects))
    [change] = plan.changes
    assert (change.action, change.kind, change.name, change.stage) == ("update", "IPPool", "pods", "pools")
    assert change.patch == {"spec": {"ipipMode": "Never"}}
    assert [(f.path, f.before, f.after) for f in change.fields] == [("spec.ipipMode", "Always", "Never")]
    assert change.resource_version == "42"
    assert plan.observed_versions["IPPool/pods"] == "42"
    after = apply_to_objects(plan, objects)
    pool = next(o for o in after if o["kind"] == "IPPool")
    assert pool["spec"]["futureField"] == {"x": 1}
    assert pool["spec"]["allowedUses"] == ["Workload"]
    assert pool["metadata"]["labels"] == {"team": "net"}
    replan_is_empty(desired, objects, plan)


def test_fields_the_spec_does_not_set_are_left_alone() -> None:
    config = obj(
        "BGPConfiguration",
        "default",
        {"asNumber": 64512, "logSeverityScreen": "Debug", "serviceExternalIPs": [{"cidr": "10.10.0.0/24"}]},
    )
    plan = make_plan(desired=flat({"bgp": {"asNumber": 64512}}), observed=observed([config]))
    assert plan.stages == ()


def test_create_carries_the_full_manifest_labelled_as_managed() -> None:
    desired = flat({"peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": "64512"}]})
    plan = make_plan(desired=desired, observed=observed([DEFAULT_CONFIG]))
    [change] = plan.changes
    assert change.action == "create"
    assert change.manifest == {
        "apiVersion": "projectcalico.org/v3",
        "kind": "BGPPeer",
        "metadata": {"name": "tor", "labels": {"app.kubernetes.io/managed-by": "bgpflat"}},
        "spec": {"peerIP": "10.0.1.1", "asNumber": 64512},
    }
    assert change.resource_version is None
    assert str(plan.summary) == "Plan: 1 to add, 0 to change, 0 to delete."


def test_no_empty_default_bgpconfiguration_nobody_asked_for() -> None:
    # confd runs without one (AS 64512, the mesh on): creating an empty one is a change nobody asked
    # for, and a plan of a spec the cluster already matches would never be empty.
    desired = flat({"peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": 64512}]})
    plan = make_plan(desired=desired, observed=observed([]))
    assert [(s.name, [c.key for c in s.changes]) for s in plan.stages] == [("peers", ["BGPPeer/tor"])]
    peer = obj("BGPPeer", "tor", {"peerIP": "10.0.1.1", "asNumber": 64512})
    assert not make_plan(desired=desired, observed=observed([peer])).has_changes


def test_exclusive_partner_fields_are_cleared() -> None:
    peer = obj("BGPPeer", "tor", {"node": "a1", "peerIP": "10.0.1.1", "asNumber": 64512, "keepOriginalNextHop": True})
    desired = flat(
        {
            "peers": [
                {
                    "name": "tor",
                    "peerIP": "10.0.1.1",
                    "asNumber": 64512,
                    "nodeSelector": "rack == 'a'",
                    "nextHopMode": "Keep",
                }
            ]
        }
    )
    objects = [DEFAULT_CONFIG, peer, *ONE_SUBNET_NODES]
    plan = make_plan(desired=desired, observed=observed(objects))
    [change] = plan.changes
    assert change.patch == {
        "spec": {"node": None, "nodeSelector": "rack == 'a'", "keepOriginalNextHop": None, "nextHopMode": "Keep"}
    }
    replan_is_empty(desired, objects, plan)


def test_a_peer_selector_removed_from_the_spec_is_removed_from_the_cluster() -> None:
    peer = obj("BGPPeer", "tor", {"nodeSelector": "rack == 'a'", "peerIP": "10.0.1.1", "asNumber": 64512})
    desired = flat({"peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": 64512}]})
    plan = make_plan(desired=desired, observed=observed([DEFAULT_CONFIG, peer]))
    assert plan.changes[0].patch == {"spec": {"nodeSelector": None}}


def test_always_to_never_across_subnets_is_staged_through_crosssubnet() -> None:
    peers = [
        {"name": f"tor-{r}", "peerIP": f"10.0.{i}.1", "asNumber": 64512, "nodeSelector": f"rack == '{r}'"}
        for i, r in ((1, "a"), (2, "b"))
    ]
    desired = flat({**pool_spec(), "peers": peers})
    objects = [DEFAULT_CONFIG, obj("IPPool", "pods", POOL_SPEC, rv="5"), *TWO_SUBNET_NODES]
    plan = make_plan(desired=desired, observed=observed(objects))
    assert [s.name for s in plan.stages] == ["peers", "pools", "pools-final"]
    step1, step2 = plan.stages[1].changes[0], plan.stages[2].changes[0]
    assert [(f.path, f.before, f.after) for f in step1.fields] == [("spec.ipipMode", "Always", "CrossSubnet")]
    assert [(f.path, f.before, f.after) for f in step2.fields] == [("spec.ipipMode", "CrossSubnet", "Never")]
    assert (step1.chained, step2.chained) == (False, True)
    assert step1.patch == {"spec": {"ipipMode": "CrossSubnet"}}
    assert step2.patch == {"spec": {"ipipMode": "Never"}}
    assert "encapsulation-staged-cross-subnet" in [f.code for f in plan.findings]
    assert str(plan.summary) == "Plan: 2 to add, 1 to change, 0 to delete (4 writes)."
    replan_is_empty(desired, objects, plan)


def test_always_to_never_on_one_subnet_is_direct() -> None:
    objects = [DEFAULT_CONFIG, obj("IPPool", "pods", POOL_SPEC), *ONE_SUBNET_NODES]
    plan = make_plan(desired=flat(pool_spec()), observed=observed(objects))
    assert [s.name for s in plan.stages] == ["pools"]


def test_stage_order_config_peers_services_pools_mesh() -> None:
    objects = [
        obj("BGPConfiguration", "default", {"asNumber": 64512}, rv="3"),
        obj("IPPool", "pods", POOL_SPEC),
        *ONE_SUBNET_NODES,
    ]
    desired = flat(
        {
            **pool_spec(),
            "bgp": {"asNumber": 64513, "nodeToNodeMesh": False},
            "peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": 64513}],
            "services": {"clusterIPs": ["10.96.0.0/12"]},
        }
    )
    plan = make_plan(desired=desired, observed=observed(objects))
    assert [(s.name, [(c.action, c.key, tuple(f.path for f in c.fields)) for c in s.changes]) for s in plan.stages] == [
        ("bgp-configuration", [("update", "BGPConfiguration/default", ("spec.asNumber",))]),
        ("peers", [("create", "BGPPeer/tor", ("spec.peerIP", "spec.asNumber"))]),
        ("service-advertisement", [("update", "BGPConfiguration/default", ("spec.serviceClusterIPs",))]),
        ("pools", [("update", "IPPool/pods", ("spec.ipipMode",))]),
        ("mesh", [("update", "BGPConfiguration/default", ("spec.nodeToNodeMeshEnabled",))]),
    ]
    config_changes = [c for c in plan.changes if c.kind == "BGPConfiguration"]
    assert [c.chained for c in config_changes] == [False, True, True]
    assert all(c.resource_version == "3" for c in config_changes)
    assert "mesh-disabled-after-new-peers" in [f.code for f in plan.findings]
    assert str(plan.summary) == "Plan: 1 to add, 2 to change, 0 to delete (5 writes)."
    replan_is_empty(desired, objects, plan)


def test_mesh_off_without_any_peer_blocks_apply() -> None:
    plan = make_plan(desired=flat({"bgp": {"nodeToNodeMesh": False}}), observed=observed([DEFAULT_CONFIG]))
    assert [f.code for f in plan.blocking] == ["mesh-disabled-without-peers"]
    with pytest.raises(PlanError, match=r"the plan cannot be applied: \[mesh-disabled-without-peers\]"):
        plan.ensure_applicable()
    assert render_plan_text(plan).endswith(
        "Plan: 0 to add, 1 to change, 0 to delete.\nBlocked: 1 error finding(s) must be fixed before apply.\n"
    )


def test_address_overlap_blocks_apply() -> None:
    desired = flat({**pool_spec(), "networks": {"office": ["10.244.10.0/24"]}})
    plan = make_plan(desired=desired, observed=observed([DEFAULT_CONFIG, *ONE_SUBNET_NODES]))
    [blocking] = plan.blocking
    assert blocking.message == (
        "pod pool 10.244.0.0/16 (IPPool/pods) overlaps office network 10.244.10.0/24 (networks.office[0])"
    )


def test_node_annotations_count_as_the_node_network() -> None:
    desired = flat({**pool_spec(), "networks": {"office": ["10.0.0.0/16"]}})
    plan = make_plan(desired=desired, observed=observed([DEFAULT_CONFIG, *ONE_SUBNET_NODES]))
    assert [f.message for f in plan.blocking] == [
        "office network 10.0.0.0/16 (networks.office[0]) overlaps node network 10.0.1.0/24 (Node/a1 (+1))"
    ]


def test_cidr_change_is_refused() -> None:
    objects = [DEFAULT_CONFIG, obj("IPPool", "pods", {"cidr": "10.245.0.0/16"})]
    with pytest.raises(ValidationError) as caught:
        make_plan(desired=flat(pool_spec()), observed=observed(objects))
    assert caught.value.message == "IPPool/pods after this change: IPPool CIDR cannot be modified"
    assert caught.value.path == "spec.cidr"


def test_merged_object_is_validated() -> None:
    # The observed pool uses VXLAN; the spec only says IPIP: together they would break Calico's rule.
    objects = [DEFAULT_CONFIG, obj("IPPool", "pods", {"cidr": "10.244.0.0/16", "vxlanMode": "Always"})]
    desired = load_desired(
        [
            SpecDocument(
                data={
                    "apiVersion": V3,
                    "kind": "IPPool",
                    "metadata": {"name": "pods"},
                    "spec": {"cidr": "10.244.0.0/16", "ipipMode": "Always"},
                }
            )
        ]
    )
    with pytest.raises(ValidationError, match="IPPool/pods after this change: IPIP and VXLAN cannot both be enabled"):
        make_plan(desired=desired, observed=observed(objects))


def test_v1_objects_compare_equal_to_their_v3_form() -> None:
    objects = [
        obj("BGPConfiguration", "default", {"asNumber": 64513}, api="crd.projectcalico.org/v1"),
        obj("BGPPeer", "tor", {"peerIP": "10.0.1.1", "asNumber": "64513"}, api="crd.projectcalico.org/v1"),
    ]
    desired = flat(
        {"bgp": {"asNumber": "0.64513"}, "peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": 64513}]}
    )
    assert make_plan(desired=desired, observed=observed(objects)).stages == ()


# --- pruning -----------------------------------------------------------------------------------

MANAGED = {"app.kubernetes.io/managed-by": "bgpflat"}


def prune_objects() -> list[dict[str, Any]]:
    return [
        obj("BGPConfiguration", "default", {"asNumber": 64512}, labels=MANAGED),
        obj("BGPPeer", "old-tor", {"peerIP": "10.0.1.2", "asNumber": 64512}, labels=MANAGED, rv="9"),
        obj("BGPPeer", "someone-elses", {"peerIP": "10.0.1.3", "asNumber": 64512}),
        obj("IPPool", "old-pool", {"cidr": "10.250.0.0/16"}, labels=MANAGED),
    ]


def test_objects_gone_from_the_spec_are_kept_without_prune() -> None:
    plan = make_plan(desired=flat({"bgp": {"asNumber": 64512}}), observed=observed(prune_objects()))
    assert plan.stages == ()
    assert [(f.code, f.subjects) for f in plan.findings] == [
        ("not-in-spec", ("BGPPeer/old-tor",)),
        ("not-in-spec", ("IPPool/old-pool",)),
        ("validation-rules", ()),
    ]


def test_v1_objects_carry_the_managed_label_in_an_annotation() -> None:
    v1 = obj("BGPPeer", "old-tor", {"peerIP": "10.0.1.2", "asNumber": 64512}, api="crd.projectcalico.org/v1")
    v1["metadata"]["annotations"] = {
        "projectcalico.org/metadata": '{"labels": {"app.kubernetes.io/managed-by": "bgpflat"}}'
    }
    plan = make_plan(desired=flat({"peers": []}), observed=observed([DEFAULT_CONFIG, v1]), prune=True)
    assert [(c.action, c.key) for c in plan.changes] == [("delete", "BGPPeer/old-tor")]


def test_prune_deletes_only_bgpflat_objects_and_never_the_default_configuration() -> None:
    plan = make_plan(desired=flat({"peers": []}), observed=observed(prune_objects()), prune=True)
    [stage] = plan.stages
    assert stage.name == "prune"
    assert [(c.action, c.key, c.resource_version) for c in stage.changes] == [
        ("delete", "BGPPeer/old-tor", "9"),
        ("delete", "IPPool/old-pool", "1"),
    ]
    assert str(plan.summary) == "Plan: 0 to add, 0 to change, 2 to delete."
    assert {f.code for f in plan.findings} >= {"pool-deletion", "not-in-spec"}


# --- operator-managed pools ----------------------------------------------------------------------

OPERATOR = {"app.kubernetes.io/managed-by": "tigera-operator"}


def installation(*pools: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "operator.tigera.io/v1",
        "kind": "Installation",
        "metadata": {"name": "default", "resourceVersion": "77"},
        "spec": {"calicoNetwork": {"ipPools": list(pools), "mtu": 1440}},
    }


def test_operator_pool_encapsulation_goes_through_the_installation() -> None:
    entry = {
        "name": "pods",
        "cidr": "10.244.0.0/16",
        "encapsulation": "IPIP",
        "natOutgoing": "Enabled",
        "blockSize": 26,
    }
    objects = [
        DEFAULT_CONFIG,
        obj("IPPool", "pods", POOL_SPEC, labels=OPERATOR),
        installation(entry),
        *ONE_SUBNET_NODES,
    ]
    plan = make_plan(desired=flat(pool_spec(natOutgoing=True)), observed=observed(objects))
    [change] = plan.changes
    assert (change.api_version, change.kind, change.name, change.resource_version) == (
        "operator.tigera.io/v1",
        "Installation",
        "default",
        "77",
    )
    assert [(f.path, f.before, f.after) for f in change.fields] == [
        ("spec.calicoNetwork.ipPools[0].encapsulation", "IPIP", "None")
    ]
    assert change.patch == {"spec": {"calicoNetwork": {"ipPools": [{**entry, "encapsulation": "None"}]}}}
    assert "operator-managed-pool" in [f.code for f in plan.findings]
    assert plan.observed_versions["Installation/default"] == "77"


def test_operator_pool_across_subnets_steps_through_ipipcrosssubnet() -> None:
    entry = {"cidr": "10.244.0.0/16", "encapsulation": "IPIP"}
    objects = [
        DEFAULT_CONFIG,
        obj("IPPool", "pods", POOL_SPEC, labels=OPERATOR),
        installation(entry),
        *TWO_SUBNET_NODES,
    ]
    plan = make_plan(desired=flat(pool_spec(natOutgoing=True)), observed=observed(objects))
    assert [(s.name, [f.after for c in s.changes for f in c.fields]) for s in plan.stages] == [
        ("pools", ["IPIPCrossSubnet"]),
        ("pools-final", ["None"]),
    ]
    assert plan.stages[1].changes[0].chained is True


def test_operator_pool_without_installation_entry_is_refused() -> None:
    objects = [DEFAULT_CONFIG, obj("IPPool", "pods", POOL_SPEC, labels=OPERATOR), installation()]
    plan = make_plan(desired=flat(pool_spec()), observed=observed(objects))
    assert plan.stages == ()
    [blocking] = plan.blocking
    assert blocking.message == (
        "IPPool/pods is managed by the tigera-operator and the Installation lists no ipPools entry with cidr "
        "10.244.0.0/16; bgpflat will not edit it directly because the operator reverts such edits"
    )


def test_operator_pool_field_without_installation_equivalent_is_refused() -> None:
    objects = [
        DEFAULT_CONFIG,
        obj("IPPool", "pods", POOL_SPEC, labels=OPERATOR),
        installation({"cidr": "10.244.0.0/16"}),
    ]
    plan = make_plan(
        desired=flat({"pools": [{"name": "pods", "cidr": "10.244.0.0/16", "disabled": True}]}),
        observed=observed(objects),
    )
    assert "the Installation has no field for spec.disabled" in plan.blocking[0].message


# --- serialisation and rendering -----------------------------------------------------------------


def test_plan_json_round_trip_is_byte_identical() -> None:
    objects = [obj("IPPool", "pods", POOL_SPEC), *TWO_SUBNET_NODES]
    plan = make_plan(
        desired=flat({**pool_spec(), "peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": 65000}]}),
        observed=observed(objects, context="lab", server="https://127.0.0.1:6443"),
    )
    text = plan.to_json()
    again = Plan.from_json(text)
    assert again == plan
    assert again.to_json() == text
    assert (
        text
        == make_plan(
            desired=flat({**pool_spec(), "peers": [{"name": "tor", "peerIP": "10.0.1.1", "asNumber": 65000}]}),
            observed=observed(objects, context="lab", server="https://127.0.0.1:6443"),
        ).to_json()
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a bgpflat plan: invalid JSON (Expecting property name enclosed in double quotes at line 1)"),
        ("[]", "not a bgpflat plan: expected a JSON object"),
        (
            '{"format_version": 99}',
            "format_version 99 is not supported (this bgpflat reads 1) "
            "(fix: make the plan again with `bgpflat plan --out`)",
        ),
        (
            '{"format_version": 1, "stages": [{"name": "peers", "changes": [{"action": "explode"}]}]}',
            'stages[0].changes[0]: unknown action "explode" (bgpflat knows create, update, delete, no-op)',
        ),
    ],
)
def test_bad_plan_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        Plan.from_json(text)
    assert str(caught.value) == message
