"""The route gate of ``apply --gate``: green when the learned routes equal the state just written,
stopped (with the missing routes by node) when they do not, and the encapsulation check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bgpflat import workflows
from bgpflat.adapters import files
from bgpflat.cli.arguments.learned import FileSource
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.plan.gate import encapsulation_turned_off, undelivered_blocks
from bgpflat.core.plan.layover import lay_over
from bgpflat.core.plan.planner import Plan
from bgpflat.core.plan.report import APPLIED, ApplyReport, ChangeResult
from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.table import RouteTable
from bgpflat.core.state.load import load_desired
from bgpflat.workflows.gate import GateStopped, RouteGate, undo_stage

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
SWITCH = "10.200.20.254"


class Clock:
    """Time that passes only when the gate sleeps, so a 30 s timeout takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def lab_plan() -> tuple[Plan, list[dict[str, Any]]]:
    snapshot = files.load_snapshot(LAB / "cluster.yaml")
    desired = load_desired(files.load_documents(LAB / "bgpflat.yaml"))
    objects = [dict(o) for o in snapshot.objects]
    return workflows.plan_snapshot(objects, desired, header=snapshot.header, file=snapshot.file), objects


def learned_file(tmp_path: Path, table: RouteTable, *, drop_prefix: str | None = None) -> FileSource:
    records = [r for r in table.to_records() if r["prefix"] != drop_prefix]
    path = tmp_path / "learned.json"
    path.write_text(json.dumps({"routes": records}))
    return FileSource(str(path))


def gate_for(plan: Plan, state: list[dict[str, Any]], source: FileSource, clock: Clock) -> RouteGate:
    return RouteGate(
        plan=plan, read_cluster=lambda: state, source=source, peer=SWITCH, timeout=30, clock=clock, sleep=clock.sleep
    )


def test_gate_is_green_when_the_peer_learned_the_state_just_written(tmp_path: Path) -> None:
    plan, objects = lab_plan()
    peers_stage = plan.stages[1]
    state = [dict(o) for o in lay_over(objects, [c for s in plan.stages[:2] for c in s.changes])]
    table = expected_routes(cluster=ClusterState.from_objects(state), peer=SWITCH).table
    clock = Clock()
    gate = gate_for(plan, state, learned_file(tmp_path, table), clock)
    gate(peers_stage, api=None)  # type: ignore[arg-type]  # the gate reads the cluster through read_cluster
    (result,) = gate.results
    assert (result.stage, result.passed, result.matched, result.expected) == ("peers", True, 6, 6)
    assert gate.to_dict()["status"] == "passed"


def test_gate_stops_with_the_missing_routes_by_node(tmp_path: Path) -> None:
    plan, objects = lab_plan()
    state = [dict(o) for o in lay_over(objects, [c for s in plan.stages[:2] for c in s.changes])]
    table = expected_routes(cluster=ClusterState.from_objects(state), peer=SWITCH).table
    clock = Clock()
    gate = gate_for(plan, state, learned_file(tmp_path, table, drop_prefix="10.233.110.0/24"), clock)
    with pytest.raises(GateStopped) as stopped:
        gate(plan.stages[1], api=None)  # type: ignore[arg-type]
    assert stopped.value.stage == "peers"
    text = str(stopped.value)
    assert "did not match the state after stage peers within 30 s" in text
    assert "  node-1: 10.233.110.0/24" in text and "  node-2: 10.233.110.0/24" in text
    assert clock.now == pytest.approx(30)
    assert gate.to_dict()["status"] == "stopped" and gate.results[0].matched == 4


def test_encapsulation_off_needs_every_block_delivered_by_its_node_or_its_subnet() -> None:
    plan, objects = lab_plan()
    assert encapsulation_turned_off(plan.stages[-1]) == ["default-pool"]
    assert encapsulation_turned_off(plan.stages[1]) == []
    after = ClusterState.from_objects(lay_over(objects, plan.changes))
    table = expected_routes(cluster=after, peer=SWITCH).table
    # The ingress nodes re-export node-3's block with themselves as next hop: they share node-3's
    # subnet, so they deliver it without a tunnel.
    assert undelivered_blocks(after, ["default-pool"], table) == {}
    without = RouteTable(r for r in table if str(r.prefix) != "10.233.110.0/24")
    assert undelivered_blocks(after, ["default-pool"], without) == {"node-3": ["10.233.110.0/24"]}


def test_undo_of_a_stage_deletes_what_it_created_and_patches_back_what_it_changed() -> None:
    plan, _ = lab_plan()
    results = tuple(
        ChangeResult(stage=c.stage, action=c.action, key=c.key, outcome=APPLIED, resource_version=f"{i + 10}")
        for i, c in enumerate(plan.changes)
    )
    report = ApplyReport(results=results, dry_run=False)
    (peer_undo,) = undo_stage(plan, report, "peers").changes
    assert (peer_undo.action, peer_undo.key, peer_undo.resource_version) == ("delete", "BGPPeer/peer-switch", "11")
    pool_plan = undo_stage(plan, report, "pools")
    (pool_undo,) = pool_plan.changes
    assert pool_undo.patch == {"spec": {"ipipMode": "Always"}}
    assert pool_plan.observed_versions == {"IPPool/default-pool": "13"}  # stale if anyone wrote since
    service_undo = undo_stage(plan, report, "service-advertisement").changes[0]
    assert service_undo.patch == {"spec": {"serviceClusterIPs": None}}  # absent before: removed again


def test_bad_gate_flags_are_one_line_before_any_cluster_is_contacted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bgpflat.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))  # reading it would fail differently
    spec = str(LAB / "bgpflat.yaml")
    cases = {
        ("--gate", "bgp:10.0.0.1"): "--gate: unknown gate source 'bgp:10.0.0.1' (fix: use peer:STATE_DIR",
        ("--gate", "peer:nowhere"): "nowhere: --gate: no such directory (fix: start `bgpflat peer run --state-dir",
        ("--gate", "bmp:nowhere"): "nowhere: --gate: no such directory (fix: start `bgpflat bmp run --state-dir",
        ("--gate", "peer:.", "--gate-router", "10.0.0.1"): "--gate-router: --gate-router names a router of the BMP",
        ("--gate", "bmp:.", "--gate-router", "tor-1"): "--gate-router:",
        ("--gate", "bmp:."): "--gate: cannot tell which router to check: no bmp station state in",
        ("--gate", "peer:.", "--gate-timeout", "0"): "--gate-timeout must be > 0",
        ("--gate", "peer:.", "--dry-run", "server"): "--gate waits for routes, which a server dry run never changes",
    }
    for flags, wanted in cases.items():
        assert main(["apply", "-f", spec, "--yes", *flags]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("bgpflat: error: ")]
        assert len(errors) == 1 and errors[0].startswith(f"bgpflat: error: {wanted}"), errors


def test_verify_lays_the_spec_over_the_snapshot_before_comparing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from bgpflat.cli import main

    plan, objects = lab_plan()
    after = ClusterState.from_objects(lay_over(objects, plan.changes))
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"routes": expected_routes(cluster=after, peer=SWITCH).table.to_records()}))
    argv = ["verify", "--peer", SWITCH, "--snapshot", str(LAB / "cluster.yaml"), "--learned", str(learned)]
    assert main([*argv, "--no-github-summary"]) == 2  # the snapshot alone has no BGPPeer for the switch
    assert main([*argv, "-f", str(LAB / "bgpflat.yaml"), "--no-github-summary"]) == 0
    assert "8 present, 0 missing, 0 mismatched, 0 unexpected" in capsys.readouterr().out


class StateReader:
    """The cluster as the apply leaves it after each stage, and a peer that learned exactly its routes."""

    def __init__(self, objects: list[dict[str, Any]], plan: Plan, peer: str) -> None:
        self.objects, self.plan, self.peer, self.written = objects, plan, peer, 0

    def cluster(self) -> list[dict[str, Any]]:
        return [
            dict(o) for o in lay_over(self.objects, [c for s in self.plan.stages[: self.written] for c in s.changes])
        ]

    def read(self) -> Any:
        from bgpflat.core.routes.verdict import LearnedState

        state = ClusterState.from_objects(self.cluster())
        return LearnedState(routes=expected_routes(cluster=state, peer=self.peer).table)


def test_gate_stops_before_encapsulation_goes_off_when_a_rack_is_only_reachable_through_another() -> None:
    """ipip-migration with the rack-B peer forgotten: the rack-A ToR learns every block, rack B's
    with a rack-A node as next hop. That matches the model (green), but once IPIP is off a packet
    for rack B's pods would go to rack A and back to the ToR: the gate stops before that stage."""
    import yaml

    lab = LAB.parent / "ipip-migration"
    spec = yaml.safe_load((lab / "bgpflat.yaml").read_text())
    spec["peers"] = [dict(spec["peers"][0], keepOriginalNextHop=False)]
    import bgpflat

    snapshot = files.load_snapshot(lab / "cluster.yaml")
    objects = [dict(o) for o in snapshot.objects]
    plan = workflows.plan_snapshot(objects, bgpflat.load_spec(spec), header=snapshot.header, file=snapshot.file)
    names = [s.name for s in plan.stages]
    assert names[-2:] == ["pools", "pools-final"]  # Always -> CrossSubnet -> Never across two subnets
    reader = StateReader(objects, plan, "10.60.1.1")
    clock = Clock()
    gate = RouteGate(
        plan=plan, read_cluster=reader.cluster, source=reader, peer="10.60.1.1", clock=clock, sleep=clock.sleep
    )
    for number, stage in enumerate(plan.stages[:-1], start=1):
        reader.written = number
        if stage.name != "pools":
            gate(stage, api=None)  # type: ignore[arg-type]
            continue
        with pytest.raises(GateStopped) as stopped:
            gate(stage, api=None)  # type: ignore[arg-type]
        assert stopped.value.stage == "pools"  # the stage just written is the one undone
        assert "stage pools-final turns encapsulation off for default-ipv4-ippool" in str(stopped.value)
        assert "  rack-b-1: 10.244.30.0/26" in str(stopped.value)
    assert [r.passed for r in gate.results] == [True] * (len(names) - 1) + [False]


def test_encapsulation_turned_off_through_the_operators_installation() -> None:
    """An operator-managed pool is changed through Installation.spec.calicoNetwork.ipPools: the
    gate must see that stage as turning encapsulation off for the pool of that entry's name."""
    from bgpflat.core.plan.model import Action, FieldChange, ResourceChange, Stage

    entries = [{"name": "other", "encapsulation": "VXLAN"}, {"name": "pods", "encapsulation": "None"}]
    change = ResourceChange(
        action=Action.UPDATE,
        api_version="operator.tigera.io/v1",
        kind="Installation",
        name="default",
        stage="pools",
        fields=(FieldChange(path="spec.calicoNetwork.ipPools[1].encapsulation", before="IPIP", after="None"),),
        patch={"spec": {"calicoNetwork": {"ipPools": entries}}},
    )
    assert encapsulation_turned_off(Stage(name="pools", title="", changes=(change,))) == ["pods"]
    cross = ResourceChange(
        action=Action.UPDATE,
        api_version="operator.tigera.io/v1",
        kind="Installation",
        name="default",
        stage="pools",
        fields=(
            FieldChange(path="spec.calicoNetwork.ipPools[1].encapsulation", before="IPIP", after="IPIPCrossSubnet"),
        ),
        patch={"spec": {"calicoNetwork": {"ipPools": entries}}},
    )
    assert encapsulation_turned_off(Stage(name="pools", title="", changes=(cross,))) == []


def test_a_single_path_source_matches_any_one_of_the_expected_paths() -> None:
    """A BMP feed without path identifiers shows one path per node and prefix; it is right when it
    is one of the paths expected, and still wrong when it is none of them."""
    from bgpflat.core.routes.table import Route
    from bgpflat.core.routes.verdict import one_path_each

    prefix = Prefix.parse("10.96.0.0/12")
    paths = [Route(prefix, hop, "10.0.0.1", (64512,), "igp", (), ()) for hop in ("10.0.0.1", "10.0.0.2")]
    expected = RouteTable(paths)
    assert list(one_path_each(expected, RouteTable([paths[1]._replace(path_id=7)]))) == [paths[1]]
    other = paths[0]._replace(next_hop="10.0.0.9")
    assert sorted(one_path_each(expected, RouteTable([other]))) == sorted(paths)
    assert sorted(one_path_each(expected, RouteTable())) == sorted(paths)


def test_a_loc_rib_source_matches_the_best_path_whichever_node_sent_it() -> None:
    """A router's Loc-RIB holds one best path per prefix across all its peers: it is right when it is
    one of the paths the nodes were expected to send, and every path stays expected otherwise."""
    from bgpflat.core.routes.table import Route
    from bgpflat.core.routes.verdict import best_path_each

    prefix = Prefix.parse("10.96.0.0/12")
    paths = [Route(prefix, node, node, (64512,), "igp", (), ()) for node in ("10.0.0.1", "10.0.0.2")]
    expected = RouteTable(paths)
    assert list(best_path_each(expected, RouteTable([paths[1]]))) == [paths[1]]
    stranger = Route(prefix, "10.0.0.9", "10.0.0.9", (65001,), "igp", (), ())
    assert sorted(best_path_each(expected, RouteTable([stranger]))) == sorted(paths)
    assert sorted(best_path_each(expected, RouteTable())) == sorted(paths)


def _loc_rib_station(tmp_path: Path, records: list[dict[str, Any]], best: list[dict[str, Any]]) -> str:
    """A BMP station's state for one router (GoBGP's way: pre/post per node, and a Loc-RIB
    instance of peer type 3 holding ``best``); returns its state directory."""
    from bgpflat.bmp.state import StateDir
    from bgpflat.daemon.state import FORMAT_VERSION

    complete = {"paths": 1, "prefixes": 1, "eor": ["ipv4 unicast"], "complete": True}
    sessions = sorted({r["session"] for r in records})
    peers = [
        {"peer": s, "peer_as": 64512, "peer_type": 0, "state": "up", "tables": {"pre": complete, "post": complete}}
        for s in sessions
    ]
    peers.append({"peer": "0.0.0.0", "peer_as": 65200, "peer_type": 3, "state": "up", "tables": {"loc-rib": complete}})

    def tag(rows: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
        return [{**r, "router": SWITCH, "peer": r["session"], "policy": policy} for r in rows]

    state = StateDir(tmp_path / "bmp")
    state.create()
    state.write_snapshot(
        {
            "format_version": FORMAT_VERSION,
            "routers": [{"router": SWITCH, "state": "up", "reason": "", "peers": peers}],
            "routes": tag(records, "pre") + tag(records, "post") + tag(best, "loc-rib"),
        }
    )
    return str(state.path)


def test_gate_on_a_routers_loc_rib_waits_for_a_best_path_a_node_was_expected_to_send(tmp_path: Path) -> None:
    from bgpflat.cli.arguments.learned import BmpSource

    plan, objects = lab_plan()
    state = [dict(o) for o in lay_over(objects, [c for s in plan.stages[:2] for c in s.changes])]
    records = expected_routes(cluster=ClusterState.from_objects(state), peer=SWITCH).table.to_records()
    best = list({r["prefix"]: r for r in records}.values())  # one expected path per prefix, as a router selects
    for wanted, kept in (("passed", best), ("stopped", [r for r in best if r["prefix"] != "10.233.110.0/24"])):
        source = BmpSource(_loc_rib_station(tmp_path / wanted, records, kept), None, router=SWITCH, policy="loc-rib")
        clock = Clock()
        gate = RouteGate(
            plan=plan,
            read_cluster=lambda: state,
            source=source,
            peer=SWITCH,
            timeout=30,
            clock=clock,
            sleep=clock.sleep,
        )
        if wanted == "passed":
            gate(plan.stages[1], api=None)  # type: ignore[arg-type]
        else:
            with pytest.raises(GateStopped) as stopped:
                gate(plan.stages[1], api=None)  # type: ignore[arg-type]
            assert "10.233.110.0/24" in str(stopped.value)
        assert gate.to_dict()["status"] == wanted


def test_gate_policy_takes_every_table_the_station_keeps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from bgpflat.cli import main

    spec = str(LAB / "bgpflat.yaml")
    assert main(["apply", "-f", spec, "--yes", "--gate", "bmp:nowhere", "--gate-policy", "loc-rib"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" not in err and "--gate: no such directory" in err
