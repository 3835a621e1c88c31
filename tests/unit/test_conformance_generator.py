"""The random conformance situations: deterministic per seed, valid for Calico, broad, replayable.

The lab run itself (``bgpflat lab conformance --random N``) is in the integration tests; here the
draws are checked without any daemon.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bgpflat.cli import main
from bgpflat.core.calico.manifest import parse_and_validate
from bgpflat.core.calico.releases import release_for
from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import OutsidePeer
from bgpflat.lab.conformance import cases, generator

SEEDS = range(30)
PER_SEED = 4


def _drawn() -> list[cases.Situation]:
    return [s for seed in SEEDS for s in generator.generate(seed, PER_SEED)]


def _cluster(situation: cases.Situation) -> list[dict[str, Any]]:
    return cases.build_objects(situation, service_range="10.96.0.0/16")


def test_a_seed_gives_the_same_situations_and_each_can_be_drawn_alone() -> None:
    first = generator.generate(1234, 5)
    assert first == generator.generate(1234, 5)
    assert generator.draw(1234, 3) == first[3]
    assert first[3].name == "random-1234-3"
    assert generator.generate(1235, 5) != first


def test_every_calico_object_drawn_passes_calicos_validation() -> None:
    release = release_for(cases.CALICO_VERSION)
    checked = Counter[str]()
    for situation in _drawn():
        for obj in _cluster(situation):
            if obj["apiVersion"] == cases.V3 and obj["kind"] != "ClusterInformation":
                parse_and_validate(obj, release=release)
                checked[obj["kind"]] += 1
    assert {"IPPool", "BGPConfiguration", "BGPPeer", "BGPFilter"} <= set(checked)


def test_every_situation_is_a_cluster_the_model_reads_with_one_peer_as() -> None:
    for situation in _drawn():
        objects = _cluster(situation)
        assert 3 <= len(situation.nodes) <= 8
        assert {o["metadata"]["name"] for o in objects if o["kind"] == "Node"} == {n.name for n in situation.nodes}
        outside = [o for o in objects if o["kind"] == "BGPPeer" and o["spec"].get("peerIP") == cases.PEER_ADDRESS]
        assert outside, situation.name
        assert {o["spec"]["asNumber"] for o in outside} == {situation.peer_as}
        # The one peer AS is what makes the verification peer's single ``--local-as`` right.
        expected = expected_routes(
            cluster=ClusterState.from_objects(objects), peer=OutsidePeer(address=cases.PEER_ADDRESS)
        )
        # Where two BGPPeers tie on a node (Calico keeps either), they render the same.
        settings = {
            o["metadata"]["name"]: {k: v for k, v in o["spec"].items() if k not in ("node", "nodeSelector")}
            for o in outside
        }
        for note in expected.notes:
            if "in no fixed order" in note:
                kept, lost = note.removeprefix("BGPPeers ").split(" both make")[0].split(" and ")
                assert settings[kept] == settings[lost], (situation.name, note)


def test_the_draws_cover_every_feature_the_generator_promises() -> None:
    seen = Counter[str]()
    for situation in _drawn():
        borrowed = {w.address for w in situation.workloads}
        for obj in situation.objects:
            kind, spec = obj["kind"], obj.get("spec") or {}
            if kind == "BlockAffinity":
                seen[f"affinity {spec['state']}"] += 1
            elif kind == "IPPool":
                seen.update(f"pool {flag}" for flag in ("disabled", "disableBGPExport") if spec.get(flag))
                seen[f"ipip {spec['ipipMode']}"] += 1
                seen[f"vxlan {spec['vxlanMode']}"] += 1
                seen[f"block size {spec['blockSize']}"] += 1
            elif kind == "Service":
                seen[f"service {spec['type']} {spec.get('externalTrafficPolicy', '-')}"] += 1
            elif kind == "BGPPeer":
                seen.update(
                    f"peer {key}" for key in ("node", "nodeSelector", "localASNumber", "nextHopMode", "filters")
                )
                seen["peer global"] += not (spec.get("node") or spec.get("nodeSelector"))
                seen["route reflection"] += "peerSelector" in spec
            elif kind == "BGPConfiguration":
                seen["mesh on" if spec.get("nodeToNodeMeshEnabled", True) else "mesh off"] += 1
                seen["communities"] += "prefixAdvertisements" in spec
            elif kind == "IPAMBlock":
                owner = (spec.get("affinity") or "host:").removeprefix("host:")
                nodes = {a["secondary"]["node"] for a in spec["attributes"]}
                seen["borrowed address"] += bool(nodes - {owner}) and bool(borrowed)
                seen["block without affinity"] += not owner
        seen["several AS"] += len({a[cases.AS_ANNOTATION] for a in situation.node_annotations.values()}) > 1
    wanted = [
        "affinity confirmed", "affinity pending", "affinity pendingDeletion", "pool disabled",
        "pool disableBGPExport", "ipip Always", "ipip CrossSubnet", "vxlan Always", "vxlan CrossSubnet",
        "block size 24", "block size 29", "service ClusterIP -", "service NodePort Local",
        "service LoadBalancer Local", "service LoadBalancer Cluster", "peer global", "peer node",
        "peer nodeSelector", "peer localASNumber", "peer nextHopMode", "peer filters", "route reflection",
        "mesh on", "mesh off", "communities", "borrowed address", "block without affinity", "several AS",
    ]  # fmt: skip
    assert [w for w in wanted if not seen[w]] == []


def test_a_snapshot_replays_the_same_situation(tmp_path: Path) -> None:
    situation = generator.draw(77, 2)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(generator.snapshot(situation, seed=77, index=2)))
    replayed = generator.from_snapshot(json.loads(path.read_text()), source=str(path))
    assert dataclasses.replace(replayed, behaviour=situation.behaviour) == situation
    assert _cluster(replayed) == _cluster(situation)


def test_a_file_that_is_no_snapshot_is_named_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"kind": "List", "items": []}))
    assert main(["lab", "conformance", "--situation-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "kind/format_version" in err and "--random" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "5"], "--seed goes with --random N"),
        (["--random", "0"], "--random 0: give the number of situations to draw"),
        (
            ["--calico-version", "v3.29.0"],
            "--calico-version v3.29.0: no confd recipe for it; use one of v3.30.1, v3.31.0",
        ),
    ],
)
def test_conformance_flags_that_cannot_work_fail_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", "conformance", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_mismatch_is_written_with_its_seed_and_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bgpflat.cli.conformance_commands import _keep_mismatches
    from bgpflat.lab.conformance.results import CellResult, ConformanceReport

    drawn = generator.draw(4242, 7)
    cells = (CellResult(situation=drawn, match=False, seconds=1.0, error="10.244.0.0/26 missing"),)
    _keep_mismatches(
        ConformanceReport(cells=cells, seconds=1.0, setup_seconds=0.0), argparse.Namespace(mismatch_dir=tmp_path)
    )
    err = capsys.readouterr().err
    path = tmp_path / "random-4242-7.json"
    assert "MISMATCH random-4242-7" in err and "seed 4242" in err and "10.244.0.0/26 missing" in err
    assert f"--situation-file {path}" in err
    replayed = generator.from_snapshot(json.loads(path.read_text()), source=str(path))
    assert _cluster(replayed) == _cluster(drawn)
