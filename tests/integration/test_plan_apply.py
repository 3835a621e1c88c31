"""plan / apply / rollback / snapshot against a real kube-apiserver, checked with an independent client.

The cluster is scenario D (labs/calico-bgp) still on IPIP with no peer. bgpflat runs as the
installed CLI in a subprocess whose stdin is not a terminal, as in CI; kubectl reads the result.
On the v1 flavour (no Calico API server) apply needs --allow-crd-v1, which is part of what the
v1 tests show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "labs" / "calico-bgp" / "bgpflat.yaml"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
GROUP = {"v1": "crd.projectcalico.org", "v3": "projectcalico.org", "apiserver": "projectcalico.org"}


@dataclass
class Run:
    code: int
    out: str
    err: str


def bgpflat(*args: str | Path, cwd: Path, kubeconfig: Path | None = None) -> Run:
    env_args = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    argv = [str(a) for a in args]
    # Targeting flags belong to the sub-command, so they go after it.
    command = [
        sys.executable,
        "-c",
        "import sys; from bgpflat.cli import main; sys.exit(main())",
        argv[0],
        *env_args,
        *argv[1:],
    ]
    # This checkout's bgpflat, not whichever one the interpreter has installed.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def kubectl_json(plane: ControlPlane, *args: str) -> Any:
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(plane.kubeconfig), *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        if "NotFound" in proc.stderr or "not found" in proc.stderr:
            return None
        raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
    return json.loads(proc.stdout)


def kubectl(plane: ControlPlane, *args: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(plane.kubeconfig), *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def calico(plane: ControlPlane, plural: str, name: str) -> Any:
    return kubectl_json(plane, "get", f"{plural}.{GROUP[plane.flavour]}", name)


def write_flags(plane: ControlPlane) -> list[str]:
    return ["--allow-crd-v1"] if plane.flavour == "v1" else []


def plan_changes(plan: dict[str, Any]) -> list[tuple[str, str, str, list[tuple[str, Any, Any]]]]:
    return [
        (
            stage["name"],
            change["action"],
            f"{change['kind']}/{change['name']}",
            [(f["path"], f["before"], f["after"]) for f in change["fields"]],
        )
        for stage in plan["stages"]
        for change in stage["changes"]
    ]


EXPECTED_CHANGES = [
    (
        "bgp-configuration",
        "create",
        "BGPConfiguration/default",
        [("spec.nodeToNodeMeshEnabled", None, True), ("spec.asNumber", None, 64513), ("spec.listenPort", None, 179)],
    ),
    (
        "peers",
        "create",
        "BGPPeer/peer-switch",
        [
            ("spec.nodeSelector", None, "node-role.kubernetes.io/ingress == 'ingress'"),
            ("spec.peerIP", None, "10.200.20.254"),
            ("spec.asNumber", None, 65200),
        ],
    ),
    (
        "service-advertisement",
        "update",
        "BGPConfiguration/default",
        [("spec.serviceClusterIPs", None, [{"cidr": "10.233.0.0/18"}])],
    ),
    ("pools", "update", "IPPool/default-pool", [("spec.ipipMode", "Always", "Never")]),
]


def test_plan_apply_verify_replan_and_rollback(kube_writes: ControlPlane, tmp_path: Path) -> None:
    kube = kube_writes  # v1 and v3 CRDs, and Calico's own API server
    kube.seed_scenario("calico-bgp")
    cfg = kube.kubeconfig

    first = bgpflat(
        "plan", "-f", SPEC, "--detailed-exitcode", "-o", "json", "--out", "before.json", cwd=tmp_path, kubeconfig=cfg
    )
    assert first.code == 2, first.err
    plan = json.loads(first.out)
    assert plan["format_version"] == 1
    assert plan_changes(plan) == EXPECTED_CHANGES
    assert plan["summary"] == {"add": 2, "change": 1, "delete": 0, "writes": 4}  # BGPConfiguration twice
    assert plan["identity"]["server"] == kube.server
    assert plan["identity"]["clusterID"]
    assert "Planning against context 'bgpflat-lab'" in first.err

    applied = bgpflat("apply", "-f", SPEC, "--yes", *write_flags(kube), cwd=tmp_path, kubeconfig=cfg)
    assert applied.code == 0, applied.err
    assert "Apply complete: 4 write(s)." in applied.out
    backups = sorted((tmp_path / ".bgpflat" / "backups").glob("*.yaml"))
    assert len(backups) == 1 and str(backups[0].relative_to(tmp_path)) in applied.out

    # What an independent client sees.
    pool = calico(kube, "ippools", "default-pool")
    assert pool["spec"]["ipipMode"] == "Never"
    assert pool["spec"]["natOutgoing"] is True  # a field bgpflat did not change is untouched
    peer = calico(kube, "bgppeers", "peer-switch")
    assert peer["spec"]["peerIP"] == "10.200.20.254" and peer["spec"]["asNumber"] == 65200
    config = calico(kube, "bgpconfigurations", "default")
    assert config["spec"]["serviceClusterIPs"] == [{"cidr": "10.233.0.0/18"}]
    managers = kubectl_json(kube, "get", f"ippools.{GROUP[kube.flavour]}", "default-pool", "--show-managed-fields")
    if kube.flavour == "apiserver":
        # Calico's API server stores through libcalico-go, which keeps no managedFields.
        assert not managers["metadata"].get("managedFields")
    else:
        assert "bgpflat" in {entry["manager"] for entry in managers["metadata"]["managedFields"]}
    assert config["spec"]["asNumber"] == 64513

    again = bgpflat("plan", "-f", SPEC, "--detailed-exitcode", cwd=tmp_path, kubeconfig=cfg)
    assert again.code == 0, again.out + again.err
    assert "No changes." in again.out

    stale = bgpflat("apply", "before.json", *write_flags(kube), cwd=tmp_path, kubeconfig=cfg)
    assert stale.code == 2
    assert "stale" in stale.err
    assert "IPPool/default-pool resourceVersion" in stale.err and 'is now "Never"' in stale.err
    assert calico(kube, "ippools", "default-pool")["spec"]["ipipMode"] == "Never"

    undone = bgpflat("rollback", backups[0], "--yes", cwd=tmp_path, kubeconfig=cfg)
    assert undone.code == 0, undone.err
    assert calico(kube, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"
    assert calico(kube, "bgppeers", "peer-switch") is None
    assert calico(kube, "bgpconfigurations", "default") is None
    assert bgpflat("plan", "-f", SPEC, "--detailed-exitcode", cwd=tmp_path, kubeconfig=cfg).code == 2


def test_non_interactive_apply_without_yes_fails_fast_and_changes_nothing(
    kube_v1: ControlPlane, tmp_path: Path
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    run = bgpflat("apply", "-f", SPEC, "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 2
    assert "pass --yes" in run.err
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"


def test_v1_only_cluster_refuses_writes_without_allow_flag(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    run = bgpflat("apply", "-f", SPEC, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 2
    assert "--allow-crd-v1" in run.err
    assert calico(kube_v1, "bgppeers", "peer-switch") is None


def test_v1_write_keeps_foreign_metadata_in_calicos_annotation(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    run = bgpflat("apply", "-f", SPEC, "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 0, run.err
    stored = calico(kube_v1, "bgppeers", "peer-switch")["metadata"]
    # As Calico's KDD backend stores it: non-Calico labels inside projectcalico.org/metadata.
    assert "app.kubernetes.io/managed-by" not in (stored.get("labels") or {})
    assert json.loads(stored["annotations"]["projectcalico.org/metadata"]) == {
        "labels": {"app.kubernetes.io/managed-by": "bgpflat"}
    }


def test_a_bad_label_is_refused_before_anything_is_written(kube: ControlPlane, tmp_path: Path) -> None:
    kube.seed_scenario("calico-bgp")
    manifest = tmp_path / "peer.yaml"
    manifest.write_text(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-switch\n  labels:\n"
        "    projectcalico.org/rack: rack 1\nspec:\n  peerIP: 10.200.20.254\n  asNumber: 65200\n"
    )
    run = bgpflat("apply", "-f", manifest, "--yes", *write_flags(kube), cwd=tmp_path, kubeconfig=kube.kubeconfig)
    assert run.code == 2
    errors = [line for line in run.err.splitlines() if line.startswith("bgpflat: error:")]
    assert errors == [
        f"bgpflat: error: {manifest}:6: metadata.labels[\"projectcalico.org/rack\"]: invalid label value 'rack 1': "
        "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit "
        "(fix: use at most 63 letters, digits, '-', '_', '.')"
    ]
    assert calico(kube, "bgppeers", "peer-switch") is None


def test_server_422_is_one_clear_line(kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    # What only the server can know: Calico refuses a peer naming a BGPFilter the cluster lacks.
    kube = kube_apiserver
    kube.seed_scenario("calico-bgp")
    manifest = tmp_path / "peer.yaml"
    manifest.write_text(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: peer-switch\n"
        "spec:\n  peerIP: 10.200.20.254\n  asNumber: 65200\n  filters: [no-such-filter]\n"
    )
    run = bgpflat("apply", "-f", manifest, "--yes", cwd=tmp_path, kubeconfig=kube.kubeconfig)
    assert run.code == 2
    errors = [line for line in run.err.splitlines() if line.startswith("bgpflat: error:")]
    assert len(errors) == 1
    assert "create BGPPeer/peer-switch: the API server refused it:" in errors[0]
    assert "BGPFilter(s) not found" in errors[0]
    assert "Traceback" not in run.err + run.out
    assert "FAILED" in run.out and "bgpflat rollback" in run.out  # what was written before is reported


def test_snapshot_then_plan_without_cluster(kube: ControlPlane, tmp_path: Path) -> None:
    kube.seed_scenario("calico-bgp")
    snap = bgpflat("snapshot", "--output-file", "cluster.yaml", cwd=tmp_path, kubeconfig=kube.kubeconfig)
    assert snap.code == 0, snap.err
    from bgpflat.adapters.files import load_snapshot

    loaded = load_snapshot(tmp_path / "cluster.yaml")
    kinds = {o["kind"] for o in loaded.objects}
    assert {"IPPool", "Node", "BlockAffinity", "IPAMBlock", "Service", "EndpointSlice", "ClusterInformation"} <= kinds
    assert loaded.header["calicoVersion"] == "v3.30.7"
    assert loaded.header["clusterUID"]
    assert "managedFields" not in (tmp_path / "cluster.yaml").read_text()

    offline = bgpflat(
        "plan", "-f", SPEC, "--snapshot", "cluster.yaml", "--detailed-exitcode", "-o", "json", cwd=tmp_path
    )
    assert offline.code == 2, offline.err
    assert plan_changes(json.loads(offline.out)) == EXPECTED_CHANGES
    # A plan made from a snapshot can never be applied.
    bgpflat("plan", "-f", SPEC, "--snapshot", "cluster.yaml", "--out", "offline.json", cwd=tmp_path)
    refused = bgpflat("apply", "offline.json", *write_flags(kube), cwd=tmp_path, kubeconfig=kube.kubeconfig)
    assert refused.code == 2 and "made from the snapshot" in refused.err


def test_saved_plan_is_refused_on_another_cluster(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    assert bgpflat("plan", "-f", SPEC, "--out", "p.json", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig).code == 0
    data = json.loads((tmp_path / "p.json").read_text())
    data["identity"]["clusterID"] = "00000000-0000-0000-0000-000000000000"
    (tmp_path / "other.json").write_text(json.dumps(data))
    run = bgpflat("apply", "other.json", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 2
    assert "wrong cluster" in run.err
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"


def test_server_dry_run_changes_nothing(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    run = bgpflat(
        "apply", "-f", SPEC, "--dry-run=server", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig
    )
    assert run.code == 0, run.err
    assert "Apply (server dry run)" in run.out and "nothing stored" in run.out
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"
    assert calico(kube_v1, "bgppeers", "peer-switch") is None
    assert not (tmp_path / ".bgpflat").exists()  # no backup: nothing to undo


def test_prune_deletes_only_what_bgpflat_manages(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    peers = tmp_path / "peers.yaml"
    peers.write_text(
        "apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata:\n  name: old-switch\n  annotations:\n"
        '    projectcalico.org/metadata: \'{"labels":{"app.kubernetes.io/managed-by":"bgpflat"}}\'\n'
        "spec:\n  peerIP: 10.200.20.253\n  asNumber: 65200\n---\n"
        "apiVersion: crd.projectcalico.org/v1\nkind: BGPPeer\nmetadata:\n  name: hand-made\n"
        "spec:\n  peerIP: 10.200.20.252\n  asNumber: 65201\n"
    )
    kubectl(kube_v1, "create", "-f", str(peers))
    without = bgpflat("plan", "-f", SPEC, "-o", "json", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert all(c["action"] != "delete" for s in json.loads(without.out)["stages"] for c in s["changes"])

    run = bgpflat(
        "apply", "-f", SPEC, "--prune", "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig
    )
    assert run.code == 0, run.err
    assert "delete   BGPPeer/old-switch" in run.out
    assert calico(kube_v1, "bgppeers", "old-switch") is None
    assert calico(kube_v1, "bgppeers", "hand-made") is not None


def test_operator_managed_pool_is_changed_through_the_installation(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    kubectl(
        kube_v1,
        "label",
        "ippools.crd.projectcalico.org",
        "default-pool",
        "app.kubernetes.io/managed-by=tigera-operator",
    )
    installation = tmp_path / "installation.yaml"
    installation.write_text(
        "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n"
        "  calicoNetwork:\n    ipPools:\n    - name: default-pool\n      cidr: 10.233.64.0/18\n"
        "      blockSize: 24\n      encapsulation: IPIP\n      natOutgoing: Enabled\n      nodeSelector: all()\n"
    )
    kubectl(kube_v1, "create", "-f", str(installation))
    plan = bgpflat("plan", "-f", SPEC, "-o", "json", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    changes = plan_changes(json.loads(plan.out))
    assert (
        "pools",
        "update",
        "Installation/default",
        [("spec.calicoNetwork.ipPools[0].encapsulation", "IPIP", "None")],
    ) in changes
    assert not any(key == "IPPool/default-pool" for _, _, key, _ in changes)

    run = bgpflat("apply", "-f", SPEC, "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 0, run.err
    live = kubectl_json(kube_v1, "get", "installations.operator.tigera.io", "default")
    assert live["spec"]["calicoNetwork"]["ipPools"][0]["encapsulation"] == "None"
    assert live["spec"]["calicoNetwork"]["ipPools"][0]["natOutgoing"] == "Enabled"
    # The pool itself is the operator's to change; bgpflat did not touch it.
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"
