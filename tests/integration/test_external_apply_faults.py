"""``bgpflat external apply`` when someone else writes at the same time, and ``rollback`` of it.

Outside services go through the same apply engine as Calico objects, so they get the same
guarantees: a 409 is re-planned (retried when the fields bgpflat owns are untouched, stopped when a
colleague changed them: their edit is kept), and every apply leaves a backup that
``bgpflat rollback`` puts back. bgpflat talks to the real API server through ``faultproxy``; the
colleague's edit goes straight to the server while bgpflat's write is in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from faultproxy import FaultProxy, Rule
from rawapi import raw_api
from test_plan_apply import Run, bgpflat

from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "labs" / "external" / "services.yaml"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
SLICE = f"{SLICES}/external-service-ipv4"
SERVICE = "/api/v1/namespaces/default/services/external-service"


def _get(kube: ControlPlane, path: str) -> dict[str, Any] | None:
    response = raw_api(kube).request("GET", path)
    if response.status == 404:
        return None
    assert response.ok, (path, response.status, response.body)
    return dict(response.body)


def _merge_patch(kube: ControlPlane, path: str, patch: dict[str, Any]) -> None:
    response = raw_api(kube).request("PATCH", path, patch, content_type="application/merge-patch+json")
    assert response.ok, (path, response.status, response.body)


def _addresses(kube: ControlPlane) -> list[list[str]]:
    slice_ = _get(kube, SLICE)
    assert slice_ is not None
    return [e["addresses"] for e in slice_["endpoints"]]


def _changed_file(tmp_path: Path) -> Path:
    changed = tmp_path / "services.yaml"
    changed.write_text(SERVICES.read_text().replace("192.168.26.82", "192.168.26.83"))
    return changed


def external(*args: str | Path, cwd: Path, kubeconfig: Path) -> Run:
    """``bgpflat external VERB ...``: the targeting flags go after the verb."""
    return bgpflat("external", *args, "--kubeconfig", kubeconfig, cwd=cwd)


def _backups(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".bgpflat" / "backups").glob("*.yaml"))


def test_conflict_on_an_untouched_owned_field_is_replanned_and_retried(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    assert external("apply", "-f", SERVICES, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig).code == 0

    def colleague() -> None:  # a label: nothing bgpflat owns
        _merge_patch(kube_v1, SLICE, {"metadata": {"labels": {"team": "netops"}}})

    proxy.add(Rule(method="PATCH", path_contains="/endpointslices/external-service-ipv4", before=colleague))
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    run = external("apply", "-f", _changed_file(tmp_path), "--yes", cwd=tmp_path, kubeconfig=config)
    assert run.code == 0, run.err
    assert "Applied: update EndpointSlice/default/external-service-ipv4" in run.out
    assert "changed meanwhile (fields bgpflat owns did not); retrying" in run.err
    statuses = [s for method, path, s in proxy.log if method == "PATCH" and "external-service-ipv4" in path]
    assert statuses == [409, 200]  # the first write really hit the resourceVersion precondition
    assert _addresses(kube_v1) == [["192.168.26.81"], ["192.168.26.83"]]
    slice_ = _get(kube_v1, SLICE)
    assert slice_ is not None and slice_["metadata"]["labels"]["team"] == "netops"


def test_conflict_on_a_field_a_colleague_changed_keeps_their_edit(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    assert external("apply", "-f", SERVICES, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig).code == 0
    theirs = [{"addresses": ["192.168.26.99"], "conditions": {"ready": True}}]

    def colleague() -> None:
        _merge_patch(kube_v1, SLICE, {"endpoints": theirs})

    proxy.add(Rule(method="PATCH", path_contains="/endpointslices/external-service-ipv4", before=colleague))
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    run = external("apply", "-f", _changed_file(tmp_path), "--yes", cwd=tmp_path, kubeconfig=config)
    assert run.code == 2
    assert "EndpointSlice/default/external-service-ipv4 was edited by someone else" in run.err
    assert "their edit was kept" in run.err and "bgpflat external plan" in run.err
    assert _addresses(kube_v1) == [["192.168.26.99"]]


def test_rollback_puts_back_an_update_and_deletes_what_apply_created(kube_v1: ControlPlane, tmp_path: Path) -> None:
    first = external("apply", "-f", SERVICES, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert first.code == 0, first.err
    (created_backup,) = _backups(tmp_path)
    header = yaml.safe_load(created_backup.read_text())["bgpflat"]
    assert header["complete"] is True
    assert "Service/default/external-service" in header["created"]
    assert "EndpointSlice/default/external-service-ipv4" in header["created"]

    second = external("apply", "-f", _changed_file(tmp_path), "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert second.code == 0, second.err
    assert _addresses(kube_v1) == [["192.168.26.81"], ["192.168.26.83"]]
    update_backup = next(b for b in _backups(tmp_path) if b != created_backup)
    assert f"bgpflat rollback {update_backup.relative_to(tmp_path)}" in second.err

    undone = bgpflat("rollback", update_backup, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert undone.code == 0, undone.err
    assert _addresses(kube_v1) == [["192.168.26.81"], ["192.168.26.82"]]
    # Back where the first apply left it: the next plan has nothing to do.
    plan = external("plan", "-f", SERVICES, "--detailed-exitcode", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert plan.code == 0, plan.out + plan.err

    # The first backup was taken before anything existed: rolling it back deletes what apply made.
    # The slice changed since that apply (the second apply, then its rollback), so it is refused...
    refused = bgpflat("rollback", created_backup, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert refused.code == 2
    assert "EndpointSlice/default/external-service-ipv4 changed after the apply" in refused.err
    assert _get(kube_v1, SLICE) is not None
    # ...unless forced.
    forced = bgpflat("rollback", created_backup, "--yes", "--force", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert forced.code == 0, forced.err
    assert _get(kube_v1, SLICE) is None and _get(kube_v1, SERVICE) is None
    # Endpoint objects go before their Service.
    assert forced.err.index("delete EndpointSlice/default/external-service-ipv4: ") < forced.err.index(
        "delete Service/default/external-service: "
    )


def test_a_saved_plan_takes_a_backup_and_rollback_recreates_a_pruned_service(
    kube_v1: ControlPlane, tmp_path: Path
) -> None:
    spec = tmp_path / "services.yaml"
    spec.write_text(
        "services:\n"
        "  - {name: db, namespace: default, ports: [{port: 5432}], addresses: [10.1.2.3]}\n"
        "  - {name: ldap, namespace: default, ports: [{port: 389}], addresses: [10.1.2.4]}\n"
    )
    assert external("apply", "-f", spec, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig).code == 0
    spec.write_text("services:\n  - {name: db, namespace: default, ports: [{port: 5432}], addresses: [10.1.2.3]}\n")
    saved = tmp_path / "plan.json"
    made = external("plan", "-f", spec, "--prune", "--out", saved, cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert made.code == 0, made.err
    assert "- EndpointSlice/default/ldap-ipv4" in made.out and "- Service/default/ldap" in made.out
    before = set(_backups(tmp_path))
    applied = external("apply", saved, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert applied.code == 0, applied.err
    assert _get(kube_v1, "/api/v1/namespaces/default/services/ldap") is None
    (backup,) = set(_backups(tmp_path)) - before

    undone = bgpflat("rollback", backup, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert undone.code == 0, undone.err
    ldap = _get(kube_v1, "/api/v1/namespaces/default/services/ldap")
    assert ldap is not None and ldap["spec"]["ports"][0]["port"] == 389
    slice_ = _get(kube_v1, f"{SLICES}/ldap-ipv4")
    assert slice_ is not None and [e["addresses"] for e in slice_["endpoints"]] == [["10.1.2.4"]]


def test_a_server_error_midway_reports_what_was_written_and_rollback_undoes_it(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The third create fails with a 500: the two made before it are named, with the backup that
    undoes them, as for Calico objects."""
    proxy.add(Rule(method="POST", path_contains="/api", skip=2, status=500))
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    run = external("apply", "-f", SERVICES, "--yes", cwd=tmp_path, kubeconfig=config)
    assert run.code == 2
    assert "the API server failed (500" in run.err and "Traceback" not in run.err
    posts = [(path, status) for method, path, status in proxy.log if method == "POST"]
    assert [status for _, status in posts] == [201, 201, 500], posts
    assert run.out.count("Applied: create ") == 2, run.out
    backups = _backups(tmp_path)
    assert len(backups) == 1
    assert f"bgpflat rollback {backups[0].relative_to(tmp_path)}" in run.err
    undone = bgpflat("rollback", backups[0], "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert undone.code == 0, undone.err
    assert _get(kube_v1, SERVICE) is None
    assert _get(kube_v1, "/api/v1/namespaces/default/services/office-wiki") is None
