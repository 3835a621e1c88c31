"""apply when things go wrong: concurrent edits, server errors, dropped connections.

bgpflat talks to the real API server through ``faultproxy`` (a plain HTTP proxy on loopback); the
faults are injected there, and a concurrent edit is made by kubectl straight to the server at the
moment bgpflat's write is in flight. What the user must see: their colleague's edit is never lost,
and a stopped apply says what it wrote and how to undo it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from faultproxy import FaultProxy, Rule
from test_plan_apply import SPEC, bgpflat, calico, kubectl

from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

POOL_PATCH = "/ippools/default-pool"


def _apply(proxy: FaultProxy, tmp_path: Path) -> tuple[int, str, str]:
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    run = bgpflat("apply", "-f", SPEC, "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=config)
    return run.code, run.out, run.err


def _backup(tmp_path: Path) -> Path:
    backups = sorted((tmp_path / ".bgpflat" / "backups").glob("*.yaml"))
    assert len(backups) == 1
    return backups[0]


def test_concurrent_edit_of_a_field_bgpflat_changes_is_kept(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    group = "ippools.crd.projectcalico.org"

    def colleague() -> None:
        kubectl(kube_v1, "patch", group, "default-pool", "--type=merge", "-p", '{"spec":{"ipipMode":"CrossSubnet"}}')

    proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, before=colleague))
    code, out, err = _apply(proxy, tmp_path)
    assert code == 2
    assert "edited by someone else" in err and 'spec.ipipMode is now "CrossSubnet"' in err
    assert "their edit was kept" in err
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "CrossSubnet"
    # The earlier stages went through and the report says so, with the way back.
    assert calico(kube_v1, "bgppeers", "peer-switch") is not None
    assert "create   BGPPeer/peer-switch" in out and "written" in out
    assert f"bgpflat rollback {_backup(tmp_path).relative_to(tmp_path)}" in out


def test_concurrent_edit_elsewhere_is_kept_and_the_write_retried(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    kube_v1.seed_scenario("calico-bgp")

    def colleague() -> None:
        kubectl(kube_v1, "label", "ippools.crd.projectcalico.org", "default-pool", "team=netops")

    proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, before=colleague))
    code, out, err = _apply(proxy, tmp_path)
    assert code == 0, err
    assert "after 1 conflict retry" in out
    pool = calico(kube_v1, "ippools", "default-pool")
    assert pool["spec"]["ipipMode"] == "Never"
    assert pool["metadata"]["labels"]["team"] == "netops"
    statuses = [status for method, path, status in proxy.log if method == "PATCH" and POOL_PATCH in path]
    assert statuses == [409, 200]  # the first write really hit the server's precondition


def test_server_error_stops_apply_and_rollback_undoes_the_rest(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, status=500))
    code, out, err = _apply(proxy, tmp_path)
    assert code == 2
    assert "Traceback" not in err
    assert "the API server failed (500" in err
    assert "read back afterwards: this write did not land" in out
    assert "Apply stopped: 3 write(s) made before it stopped." in out
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Always"

    backup = _backup(tmp_path)
    header = yaml.safe_load(backup.read_text())["bgpflat"]
    assert header["complete"] is False
    assert sorted(header["created"]) == ["BGPConfiguration/default", "BGPPeer/peer-switch"]
    undone = bgpflat("rollback", backup, "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert undone.code == 0, undone.err
    assert calico(kube_v1, "bgppeers", "peer-switch") is None
    assert calico(kube_v1, "bgpconfigurations", "default") is None


def test_connection_dropped_after_the_write_is_found_out_by_reading_back(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    kube_v1.seed_scenario("calico-bgp")
    proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, drop_after=True))
    code, out, err = _apply(proxy, tmp_path)
    assert code == 2
    assert "cannot reach the API server" in err
    assert "read back afterwards: this write did land" in out
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Never"


def test_rollback_refuses_to_overwrite_a_later_edit(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    run = bgpflat("apply", "-f", SPEC, "--yes", "--allow-crd-v1", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert run.code == 0, run.err
    kubectl(
        kube_v1,
        "patch",
        "ippools.crd.projectcalico.org",
        "default-pool",
        "--type=merge",
        "-p",
        '{"spec":{"natOutgoing":false}}',
    )
    refused = bgpflat("rollback", _backup(tmp_path), "--yes", cwd=tmp_path, kubeconfig=kube_v1.kubeconfig)
    assert refused.code == 2
    assert "IPPool/default-pool changed after the apply" in refused.err and "nothing was changed" in refused.err
    assert calico(kube_v1, "bgppeers", "peer-switch") is not None
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["natOutgoing"] is False


def test_an_edit_after_the_conflict_verdict_is_not_overwritten_by_the_retry(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The retry after a 409 carries the resourceVersion of the object the verdict was made on: a
    colleague's edit of an owned field landing just after that read makes it conflict again."""
    kube_v1.seed_scenario("calico-bgp")
    group = "ippools.crd.projectcalico.org"

    def colleague_edits_the_owned_field() -> None:
        kubectl(kube_v1, "patch", group, "default-pool", "--type=merge", "-p", '{"spec":{"ipipMode":"CrossSubnet"}}')

    def colleague_labels() -> None:
        kubectl(kube_v1, "label", group, "default-pool", "team=netops")
        # The GET that judges the conflict goes through; the edit lands right after it.
        proxy.add(Rule(method="GET", path_contains=POOL_PATCH, skip=1, before=colleague_edits_the_owned_field))

    proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, before=colleague_labels))
    code, out, err = _apply(proxy, tmp_path)
    pool = calico(kube_v1, "ippools", "default-pool")
    assert pool["spec"]["ipipMode"] == "CrossSubnet", out + err
    assert code == 2
    assert "their edit was kept" in err and 'spec.ipipMode is now "CrossSubnet"' in err
    assert pool["metadata"]["labels"]["team"] == "netops"


def test_throttled_writes_are_sent_again_after_retry_after(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A 429 means the server did not act: apply waits as asked (within a bound) and goes on."""
    kube_v1.seed_scenario("calico-bgp")
    proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, status=429, headers={"Retry-After": "1"}, times=2))
    code, _out, err = _apply(proxy, tmp_path)
    assert code == 0, err
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Never"
    statuses = [status for method, path, status in proxy.log if method == "PATCH" and POOL_PATCH in path]
    assert statuses == [429, 429, 200]


def test_a_failed_read_is_tried_once_not_retried_behind_the_users_back(
    kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path
) -> None:
    """One attempt per request, so a wedged server costs one timeout, not four: the bound a user
    reads in the docs is the one they get."""
    kube_v1.seed_scenario("calico-bgp")
    proxy.add(Rule(method="GET", path_contains="/ippools", drop_before=True, times=10))
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    run = bgpflat("plan", "-f", SPEC, cwd=tmp_path, kubeconfig=config)
    assert run.code == 2
    assert "cannot reach the API server" in run.err and "Traceback" not in run.err
    dropped = [path for method, path, status in proxy.log if status == "dropped before forwarding"]
    assert len(dropped) == 1, dropped


def test_a_write_that_timed_out_is_unknown_not_failed(kube_v1: ControlPlane, proxy: FaultProxy, tmp_path: Path) -> None:
    """The PATCH reaches the server only after bgpflat stopped waiting: "did not land" would be a
    lie two seconds later. The report says unknown, and the write does land."""
    import time

    from bgpflat import workflows
    from bgpflat.adapters.kube import CalicoApi, KubeClient
    from bgpflat.cli.plan_commands import FileBackups, load_desired_files
    from bgpflat.core.plan.report import UNKNOWN

    kube_v1.seed_scenario("calico-bgp")
    config = proxy.write_kubeconfig(tmp_path / "proxied.kubeconfig")
    with KubeClient.connect(kubeconfig=str(config)) as client:
        client.request_timeout = (5.0, 1.5)
        api = CalicoApi(client)
        plan = workflows.plan_cluster(api, load_desired_files([str(SPEC)]))
        proxy.add(Rule(method="PATCH", path_contains=POOL_PATCH, delay=3.0))
        report = workflows.apply_plan(plan, api, backup=FileBackups(str(tmp_path / "b"), "t"), allow_crd_v1=True)
    pool_result = next(r for r in report.results if r.key == "IPPool/default-pool")
    assert pool_result.outcome == UNKNOWN, pool_result
    assert "did not answer in time" in (pool_result.message or "") and "still may" in (pool_result.message or "")
    time.sleep(3)
    assert calico(kube_v1, "ippools", "default-pool")["spec"]["ipipMode"] == "Never"
