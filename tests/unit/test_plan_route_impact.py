"""Route impact in ``plan``: what each outside peer learns before and after, from the one route model."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpflat import workflows
from bgpflat.adapters import files
from bgpflat.cli import main
from bgpflat.core.plan.layover import lay_over
from bgpflat.core.plan.planner import Plan
from bgpflat.core.state.load import load_desired

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
SPEC = LAB / "bgpflat.yaml"
CLUSTER = LAB / "cluster.yaml"


def snapshot_objects() -> list[dict[str, Any]]:
    return [dict(o) for o in files.load_snapshot(CLUSTER).objects]


def plan_of(spec: dict[str, Any] | Path, objects: list[dict[str, Any]]) -> Plan:
    documents = files.load_documents(spec) if isinstance(spec, Path) else spec
    desired = load_desired(documents) if isinstance(spec, Path) else workflows_desired(spec)
    return workflows.plan_snapshot(objects, desired, header={}, file="<objects>")


def workflows_desired(spec: dict[str, Any]) -> Any:
    import bgpflat

    return bgpflat.load_spec(spec)


def flat_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


def applied(objects: list[dict[str, Any]], plan: Plan) -> list[dict[str, Any]]:
    return [dict(o) for o in lay_over(objects, plan.changes)]


def test_quick_start_plan_shows_the_routes_the_switch_will_learn(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "-f", str(SPEC), "--snapshot", str(CLUSTER)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Routes to 10.200.20.254 (AS 65200): +8 to be advertised, -0 withdrawn, ~0 changed" in out
    # Each prefix with the node that sends it, its next hop and why.
    assert "  + 10.233.110.0/24 from node-1 via 10.200.20.103\n" in out
    assert "block of node-3, expected through mesh re-export (eBGP peer, next hop self)" in out
    # Below the object diff, above the findings and the summary.
    assert out.index("Stage 4/4") < out.index("Routes to") < out.index("Findings:") < out.index("Plan: 2 to add")


def test_next_hop_keep_is_a_change_of_next_hop_per_route() -> None:
    objects = applied(snapshot_objects(), plan_of(SPEC, snapshot_objects()))
    spec = flat_spec()
    spec["peers"][0]["keepOriginalNextHop"] = True
    plan = plan_of(spec, objects)
    (impact,) = plan.route_impact
    # Two ingress nodes re-export the two blocks of the others (2 × 2 next hops change) and the
    # service range's mesh copies (ADD-PATH: its path set changes); their own blocks stay as they are.
    assert (impact.added, impact.withdrawn, impact.changed) == (0, 0, 6)
    changed = {(r.node, r.prefix): (r.next_hop_before, r.next_hop) for r in impact.routes}
    assert changed[("node-1", "10.233.110.0/24")] == ("10.200.20.103", "10.200.20.105")
    assert changed[("node-2", "10.233.65.0/24")] == ("10.200.20.104", "10.200.20.103")
    assert ("node-1", "10.233.65.0/24") not in changed  # its own block: next hop itself either way
    assert impact.headline().endswith("-0 withdrawn, ~6 changed")


def test_a_narrower_node_selector_withdraws_that_nodes_routes() -> None:
    objects = applied(snapshot_objects(), plan_of(SPEC, snapshot_objects()))
    spec = flat_spec()
    spec["peers"][0]["nodeSelector"] = None
    spec["peers"][0]["node"] = "node-1"
    (impact,) = plan_of(spec, objects).route_impact
    assert (impact.added, impact.withdrawn, impact.changed) == (0, 4, 0)
    assert {r.node for r in impact.routes} == {"node-2"}
    assert {r.change for r in impact.routes} == {"-"}


def test_no_change_no_route_impact_counts() -> None:
    objects = applied(snapshot_objects(), plan_of(SPEC, snapshot_objects()))
    plan = plan_of(SPEC, objects)
    assert not plan.has_changes
    (impact,) = plan.route_impact
    assert (impact.total, impact.before_total, impact.after_total) == (0, 8, 8)


def test_saved_plan_keeps_its_route_impact_and_old_plans_still_load() -> None:
    plan = plan_of(SPEC, snapshot_objects())
    again = Plan.from_json(plan.to_json())
    assert again.route_impact == plan.route_impact
    assert again.to_json() == plan.to_json()
    old = json.loads(plan.to_json())
    del old["route_impact"]  # a plan saved before route impact existed
    assert Plan.from_dict(old).route_impact == ()


def test_route_impact_in_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-f", str(SPEC), "--snapshot", str(CLUSTER), "--peer", "10.200.20.1", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_peer = {i["peer"]: i for i in data["route_impact"]}
    assert by_peer["10.200.20.1"]["added"] == 0  # named with --peer; no BGPPeer points at it
    switch = by_peer["10.200.20.254"]
    assert (switch["added"], switch["withdrawn"], switch["changed"], switch["as_number"]) == (8, 0, 0, 65200)
    assert {"change", "prefix", "session", "node", "next_hop", "reason"} <= switch["routes"][0].keys()


def test_lay_over_patches_creates_and_deletes_without_touching_the_rest() -> None:
    objects = snapshot_objects()
    before = copy.deepcopy(objects)
    plan = plan_of(SPEC, objects)
    after = lay_over(objects, plan.changes)
    assert objects == before  # the observed objects are not modified
    pools = [o for o in after if o["kind"] == "IPPool"]
    assert [p["spec"]["ipipMode"] for p in pools] == ["Never"]
    assert any(o["kind"] == "BGPPeer" and o["metadata"]["name"] == "peer-switch" for o in after)
    untouched = [o for o in objects if o["kind"] == "Node"]
    assert all(any(o is n for o in after) for n in untouched)


def test_routes_expected_lays_a_spec_over_the_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["routes", "expected", "--peer", "10.200.20.254", "--snapshot", str(CLUSTER), "-o", "json"]
    assert main(argv) == 2  # no BGPPeer for the switch yet: nothing to expect
    assert json.loads(capsys.readouterr().out)["routes"] == []
    assert main([*argv, "-f", str(SPEC)]) == 0
    routes = json.loads(capsys.readouterr().out)["routes"]
    assert len(routes) == 8
    assert {r["node"] for r in routes} == {"node-1", "node-2"}
