"""Scenario D (docs/scenarios.md): the lab cluster still on IPIP, flattened by labs/calico-bgp/bgpflat.yaml."""

from __future__ import annotations

import copy
from typing import Any

from test_plan import apply_to_objects, lab_desired, lab_objects, observed

from bgpflat.core.plan.planner import Plan, make_plan, render_plan_text

GOLDEN = """\
Target: context calico-bgp

Stage 1/4: bgp-configuration — BGP configuration (the default BGPConfiguration first)
  + BGPConfiguration default
      + spec.nodeToNodeMeshEnabled: true
      + spec.asNumber: 64513
      + spec.listenPort: 179

Stage 2/4: peers — BGP peers
  + BGPPeer peer-switch
      + spec.nodeSelector: "node-role.kubernetes.io/ingress == 'ingress'"
      + spec.peerIP: "10.200.20.254"
      + spec.asNumber: 65200

Stage 3/4: service-advertisement — Service advertisement
  ~ BGPConfiguration default  (after the earlier write)
      + spec.serviceClusterIPs: [{"cidr": "10.233.0.0/18"}]

Stage 4/4: pools — IP pools and encapsulation
  ~ IPPool default-pool
      ~ spec.ipipMode: "Always" -> "Never"

Findings:
  warning: [as-number-change] the cluster AS changes from 64512 to 64513: every node restarts its
      BGP sessions (mesh included), so routes flap while they re-establish
      fix: apply in a maintenance window, or keep the AS the cluster already uses
  warning: [ebgp-mesh-next-hop] BGPPeer peer-switch is eBGP (peer AS 65200, local AS 64513) while
      the node-to-node mesh is on and nothing handles next hops: every selected node re-advertises
      the routes it learned over the mesh with itself as next hop, so the peer learns every pod
      block and service route from each of those nodes and return paths are asymmetric
      fix: set nextHopMode: Keep (Calico 3.31+) or keepOriginalNextHop: true on the peer, or attach
           a BGPFilter that rejects source RemotePeers
  info: [encapsulation-mtu] IPPool/default-pool: existing pods keep the smaller tunnel MTU until
      they are recreated, and Felix restarts once no encapsulated pool is left
      fix: roll the workloads after the change to get the full MTU
  info: [validation-rules] objects checked with Calico v3.32 validation rules (Calico version not
      known; assuming v3.32.0)

Plan: 2 to add, 1 to change, 0 to delete (4 writes).
"""


def scenario_plan(objects: list[dict[str, Any]] | None = None) -> Plan:
    return make_plan(
        desired=lab_desired(), observed=observed(lab_objects() if objects is None else objects, context="calico-bgp")
    )


def test_scenario_d_plan_text() -> None:
    assert render_plan_text(scenario_plan()) == GOLDEN


def test_scenario_d_writes() -> None:
    plan = scenario_plan()
    create_config, create_peer, services, pool = plan.changes
    assert create_config.manifest == {
        "apiVersion": "projectcalico.org/v3",
        "kind": "BGPConfiguration",
        "metadata": {"name": "default", "labels": {"app.kubernetes.io/managed-by": "bgpflat"}},
        "spec": {"nodeToNodeMeshEnabled": True, "asNumber": 64513, "listenPort": 179},
    }
    assert create_peer.manifest == {
        "apiVersion": "projectcalico.org/v3",
        "kind": "BGPPeer",
        "metadata": {"name": "peer-switch", "labels": {"app.kubernetes.io/managed-by": "bgpflat"}},
        "spec": {
            "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'",
            "peerIP": "10.200.20.254",
            "asNumber": 65200,
        },
    }
    assert (services.action, services.chained, services.patch) == (
        "update",
        True,
        {"spec": {"serviceClusterIPs": [{"cidr": "10.233.0.0/18"}]}},
    )
    assert (pool.action, pool.chained, pool.patch) == ("update", False, {"spec": {"ipipMode": "Never"}})
    assert plan.blocking == ()


def test_scenario_d_after_apply_nothing_is_left_to_do() -> None:
    objects = lab_objects()
    after = apply_to_objects(scenario_plan(objects), objects)
    again = make_plan(desired=lab_desired(), observed=observed(after))
    assert again.stages == ()
    assert str(again.summary) == "Plan: 0 to add, 0 to change, 0 to delete."
    pool = next(o for o in after if o["kind"] == "IPPool")
    # Fields bgpflat does not own survive: allowedUses was never in the spec.
    assert pool["spec"]["allowedUses"] == ["Workload", "Tunnel"]


def test_scenario_d_plan_survives_json() -> None:
    plan = scenario_plan()
    assert render_plan_text(Plan.from_json(plan.to_json())) == GOLDEN


def test_scenario_d_with_a_node_on_another_subnet() -> None:
    objects = copy.deepcopy(lab_objects())
    node3 = next(o for o in objects if o["kind"] == "Node" and o["metadata"]["name"] == "node-3")
    node3["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "10.200.30.105/24"
    plan = scenario_plan(objects)
    assert [s.name for s in plan.stages] == [
        "bgp-configuration",
        "peers",
        "service-advertisement",
        "pools",
        "pools-final",
    ]
    assert [f.after for f in plan.stages[3].changes[0].fields] == ["CrossSubnet"]
    assert [f.after for f in plan.stages[4].changes[0].fields] == ["Never"]
    codes = [f.code for f in plan.findings]
    assert "encapsulation-staged-cross-subnet" in codes
    # node-3 is not an ingress node, so nothing outside learns its subnet's pod routes.
    off = next(f for f in plan.findings if f.code == "encapsulation-off-multi-subnet")
    assert "learns the pod routes of 10.200.30.0/24:" in off.message
