"""``bgpflat external`` against a real kube-apiserver: the Service and its EndpointSlice as stored.

The CLI runs in-process with stdin not a terminal (so ``--yes`` is required, as in CI); an
independent stdlib client (``raw_api(ControlPlane)``) reads what the API server stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rawapi import raw_api

from bgpflat.cli import main
from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "labs" / "external" / "services.yaml"


@pytest.fixture(autouse=True)
def _backups_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apply writes its backup under ./.bgpflat/backups: keep them out of the repository."""
    monkeypatch.chdir(tmp_path)


def _get(kube: ControlPlane, path: str) -> dict[str, Any]:
    response = raw_api(kube).request("GET", path)
    assert response.ok, (path, response.status, response.body)
    return dict(response.body)


def _run(kube: ControlPlane, *args: str | Path) -> int:
    return main(["external", *map(str, args), "--kubeconfig", str(kube.kubeconfig)])


def test_apply_creates_selectorless_service_and_endpointslice(
    kube_v1: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(kube_v1, "apply", "-f", SERVICES, "--yes") == 0
    out = capsys.readouterr().out
    assert "+ Service/default/external-service" in out
    assert "+ EndpointSlice/default/external-service-ipv4" in out

    service = _get(kube_v1, "/api/v1/namespaces/default/services/external-service")
    assert "selector" not in service["spec"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["ports"] == [
        {"name": "mysql", "protocol": "TCP", "port": 30056, "targetPort": 3306, "appProtocol": "http"}
    ]
    assert service["spec"]["clusterIP"]  # a real cluster IP from the server's service range

    slice_ = _get(kube_v1, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/external-service-ipv4")
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "external-service"
    assert slice_["addressType"] == "IPv4"
    assert [e["addresses"] for e in slice_["endpoints"]] == [["192.168.26.81"], ["192.168.26.82"]]
    assert slice_["ports"] == [{"name": "mysql", "protocol": "TCP", "port": 3306, "appProtocol": "http"}]

    wiki = _get(kube_v1, "/api/v1/namespaces/default/services/office-wiki")
    assert wiki["spec"]["type"] == "ExternalName"
    assert wiki["spec"]["externalName"] == "wiki.office.example.com"
    assert "clusterIP" not in wiki["spec"] or wiki["spec"]["clusterIP"] in ("", None)

    # A second plan finds nothing to do: the server's defaults are not differences.
    assert _run(kube_v1, "plan", "-f", SERVICES, "--detailed-exitcode") == 0
    assert "Plan: 0 to add, 0 to change, 0 to delete." in capsys.readouterr().out


def test_apply_updates_addresses_with_resource_version(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(kube_v1, "apply", "-f", SERVICES, "--yes") == 0
    changed = tmp_path / "services.yaml"
    changed.write_text(SERVICES.read_text().replace("192.168.26.82", "192.168.26.83"))
    capsys.readouterr()
    assert _run(kube_v1, "plan", "-f", changed, "--detailed-exitcode") == 2
    assert "~ EndpointSlice/default/external-service-ipv4 (endpoints)" in capsys.readouterr().out
    assert _run(kube_v1, "apply", "-f", changed, "--yes") == 0
    slice_ = _get(kube_v1, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/external-service-ipv4")
    assert [e["addresses"] for e in slice_["endpoints"]] == [["192.168.26.81"], ["192.168.26.83"]]


def test_legacy_endpoints_form_is_accepted_by_the_server(kube_v1: ControlPlane) -> None:
    assert _run(kube_v1, "apply", "-f", SERVICES, "--yes", "--endpoints", "endpoints") == 0
    endpoints = _get(kube_v1, "/api/v1/namespaces/default/endpoints/external-service")
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == ["192.168.26.81", "192.168.26.82"]
    assert endpoints["subsets"][0]["ports"][0]["port"] == 3306


def test_legacy_endpoints_in_any_address_order_are_no_change(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "services.yaml"
    spec.write_text("services:\n  - name: db\n    ports: [{port: 5432}]\n    addresses: [10.1.2.9, 10.1.2.3]\n")
    assert _run(kube_v1, "apply", "-f", spec, "--yes", "--endpoints", "endpoints") == 0
    endpoints = _get(kube_v1, "/api/v1/namespaces/default/endpoints/db")
    assert sorted(a["ip"] for a in endpoints["subsets"][0]["addresses"]) == ["10.1.2.3", "10.1.2.9"]
    capsys.readouterr()
    assert _run(kube_v1, "plan", "-f", spec, "--endpoints", "endpoints", "--detailed-exitcode") == 0
    assert "Plan: 0 to add, 0 to change, 0 to delete." in capsys.readouterr().out


def test_refuses_to_take_over_a_service_it_does_not_manage(
    kube_v1: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "external-service", "namespace": "default"},
        "spec": {"selector": {"app": "mysql"}, "ports": [{"port": 3306}]},
    }
    assert raw_api(kube_v1).request("POST", "/api/v1/namespaces/default/services", theirs).ok
    assert _run(kube_v1, "apply", "-f", SERVICES, "--yes") == 2
    err = capsys.readouterr().err
    assert "Service/default/external-service exists and is not managed by bgpflat" in err
    service = _get(kube_v1, "/api/v1/namespaces/default/services/external-service")
    assert service["spec"]["selector"] == {"app": "mysql"}


def test_server_dry_run_stores_nothing(kube_v1: ControlPlane) -> None:
    assert _run(kube_v1, "apply", "-f", SERVICES, "--dry-run", "server") == 0
    response = raw_api(kube_v1).request("GET", "/api/v1/namespaces/default/services/external-service")
    assert response.status == 404


def test_switching_between_addresses_and_external_name(kube_v1: ControlPlane, tmp_path: Path) -> None:
    spec = tmp_path / "services.yaml"
    spec.write_text("services:\n  - name: db\n    ports: [{port: 5432}]\n    addresses: [10.1.2.3]\n")
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    assert _get(kube_v1, "/api/v1/namespaces/default/services/db")["spec"]["clusterIP"]
    spec.write_text("services:\n  - name: db\n    ports: [{port: 5432}]\n    externalName: db.example.com\n")
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    service = _get(kube_v1, "/api/v1/namespaces/default/services/db")
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "db.example.com"
    assert not service["spec"].get("clusterIP")
    spec.write_text("services:\n  - name: db\n    ports: [{port: 5432}]\n    addresses: [10.1.2.3]\n")
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    service = _get(kube_v1, "/api/v1/namespaces/default/services/db")
    assert service["spec"]["type"] == "ClusterIP" and "externalName" not in service["spec"]


def test_stale_endpoint_slice_is_deleted_when_a_service_turns_external_name(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "services.yaml"
    spec.write_text("services:\n  - name: db\n    ports: [{port: 5432}]\n    addresses: [10.1.2.3, 'fd00::3']\n")
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    assert _get(kube_v1, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/db-ipv6")["addressType"] == "IPv6"
    spec.write_text("services:\n  - name: db\n    ports: [{port: 5432}]\n    addresses: [10.1.2.3]\n")
    capsys.readouterr()
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    assert "- EndpointSlice/default/db-ipv6" in capsys.readouterr().out
    slices = raw_api(kube_v1).request("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/db-ipv6")
    assert slices.status == 404
    spec.write_text("services:\n  - name: db\n    externalName: db.example.com\n")
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    gone = raw_api(kube_v1).request("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/db-ipv4")
    assert gone.status == 404


def _status(kube: ControlPlane, path: str) -> int:
    return int(raw_api(kube).request("GET", path).status)


def test_saved_plan_is_applied_as_reviewed(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "plan.json"
    assert _run(kube_v1, "plan", "-f", SERVICES, "--out", saved) == 0
    assert _status(kube_v1, "/api/v1/namespaces/default/services/external-service") == 404  # plan writes nothing
    capsys.readouterr()
    assert _run(kube_v1, "apply", saved, "--yes") == 0
    out = capsys.readouterr().out
    assert "Applied: create Service/default/external-service" in out
    assert "Applied: create EndpointSlice/default/external-service-ipv4" in out
    assert _get(kube_v1, "/api/v1/namespaces/default/services/office-wiki")["spec"]["type"] == "ExternalName"


def _edited_plan(saved: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    plan = json.loads(saved.read_text())
    for stage in plan["stages"]:
        for change in stage["changes"]:
            edit(change)
    edited = saved.with_name("edited.json")
    edited.write_text(json.dumps(plan))
    return edited


def test_saved_plan_with_edited_bodies_is_refused_and_nothing_is_written(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside services' bodies are checked field by field like Calico objects': an address or a
    service-name label added by hand to a reviewed plan must not reach the cluster."""
    saved = tmp_path / "plan.json"
    assert _run(kube_v1, "plan", "-f", SERVICES, "--out", saved) == 0

    def extra_address(change: dict[str, Any]) -> None:
        if change["kind"] == "EndpointSlice":
            change["manifest"]["endpoints"].append({"addresses": ["192.0.2.66"], "conditions": {"ready": True}})

    def other_service(change: dict[str, Any]) -> None:
        if change["kind"] == "EndpointSlice":
            change["manifest"]["metadata"]["labels"]["kubernetes.io/service-name"] = "kubernetes"

    for edit, wanted in (
        (extra_address, "EndpointSlice/default/external-service-ipv4: would change endpoints (the plan shows"),
        (other_service, "would change metadata.labels.kubernetes.io/service-name (not among the fields"),
    ):
        capsys.readouterr()
        assert _run(kube_v1, "apply", _edited_plan(saved, edit), "--yes") == 2
        err = capsys.readouterr().err
        assert "the plan's writes do not match the changes it shows" in err and wanted in err, err
        assert _status(kube_v1, "/api/v1/namespaces/default/services/external-service") == 404
    capsys.readouterr()
    assert _run(kube_v1, "apply", saved, "--yes") == 0  # the plan as reviewed still goes through


def test_saved_update_with_an_edited_patch_is_refused(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(kube_v1, "apply", "-f", SERVICES, "--yes") == 0
    changed = tmp_path / "services.yaml"
    changed.write_text(SERVICES.read_text().replace("192.168.26.82", "192.168.26.83"))
    saved = tmp_path / "plan.json"
    assert _run(kube_v1, "plan", "-f", changed, "--out", saved) == 0

    def selector(change: dict[str, Any]) -> None:
        if change["kind"] == "EndpointSlice" and change.get("patch"):
            change["patch"]["endpoints"][0]["addresses"] = ["192.168.26.84"]

    capsys.readouterr()
    assert _run(kube_v1, "apply", _edited_plan(saved, selector), "--yes") == 2
    err = capsys.readouterr().err
    assert "EndpointSlice/default/external-service-ipv4: would change endpoints (the plan shows" in err, err
    stored = _get(kube_v1, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/external-service-ipv4")
    assert [e["addresses"] for e in stored["endpoints"]] == [["192.168.26.81"], ["192.168.26.82"]]


def test_stale_saved_plan_is_refused_and_nothing_is_written(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(kube_v1, "apply", "-f", SERVICES, "--yes") == 0
    changed = tmp_path / "services.yaml"
    changed.write_text(SERVICES.read_text().replace("192.168.26.82", "192.168.26.83"))
    saved = tmp_path / "plan.json"
    assert _run(kube_v1, "plan", "-f", changed, "--out", saved) == 0
    # Someone else changes the slice between plan and apply.
    slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    patch = {"endpoints": [{"addresses": ["192.168.26.99"], "conditions": {"ready": True}}]}
    assert (
        raw_api(kube_v1)
        .request("PATCH", f"{slices}/external-service-ipv4", patch, content_type="application/merge-patch+json")
        .ok
    )
    capsys.readouterr()
    assert _run(kube_v1, "apply", saved, "--yes") == 2
    err = capsys.readouterr().err
    assert "plan is stale" in err and "EndpointSlice/default/external-service-ipv4 resourceVersion" in err
    stored = _get(kube_v1, f"{slices}/external-service-ipv4")
    assert [e["addresses"] for e in stored["endpoints"]] == [["192.168.26.99"]]


def test_saved_plan_is_refused_on_another_cluster(
    kube_v1: ControlPlane, kube_v3: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "plan.json"
    assert _run(kube_v1, "plan", "-f", SERVICES, "--out", saved) == 0
    capsys.readouterr()
    assert _run(kube_v3, "apply", saved, "--yes") == 2
    assert "wrong cluster: the plan was made for" in capsys.readouterr().err
    assert _status(kube_v3, "/api/v1/namespaces/default/services/external-service") == 404


def test_prune_deletes_services_the_file_no_longer_lists_and_nothing_else(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "services.yaml"
    spec.write_text(
        "services:\n"
        "  - {name: db, namespace: default, ports: [{port: 5432}], addresses: [10.1.2.3]}\n"
        "  - {name: ldap, namespace: kube-public, ports: [{port: 389}], addresses: [10.1.2.4, 'fd00::4']}\n"
    )
    assert _run(kube_v1, "apply", "-f", spec, "--yes") == 0
    theirs = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "theirs", "namespace": "kube-public"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]},
    }
    assert raw_api(kube_v1).request("POST", "/api/v1/namespaces/kube-public/services", theirs).ok
    spec.write_text("services:\n  - {name: db, namespace: default, ports: [{port: 5432}], addresses: [10.1.2.3]}\n")
    capsys.readouterr()
    # Without --prune a Service dropped from the file is left alone.
    assert _run(kube_v1, "plan", "-f", spec, "--detailed-exitcode") == 0
    assert _run(kube_v1, "plan", "-f", spec, "--prune", "--detailed-exitcode") == 2
    out = capsys.readouterr().out
    assert out.index("- EndpointSlice/kube-public/ldap-ipv6") < out.index("- Service/kube-public/ldap")
    assert "theirs" not in out and "Service/default/db" in out
    assert _run(kube_v1, "apply", "-f", spec, "--prune", "--yes") == 0
    public = "/api/v1/namespaces/kube-public/services"
    assert _status(kube_v1, f"{public}/ldap") == 404
    for family in ("ipv4", "ipv6"):
        assert _status(kube_v1, f"/apis/discovery.k8s.io/v1/namespaces/kube-public/endpointslices/ldap-{family}") == 404
    assert _status(kube_v1, f"{public}/theirs") == 200
    assert _status(kube_v1, "/api/v1/namespaces/default/services/db") == 200
