"""deploy/kubernetes against a real kube-apiserver: applied (server-side dry run, then for real),
RBAC checked with ``kubectl auth can-i`` as the ServiceAccount, and bgpflat's read path run with a
token of that ServiceAccount (TokenRequest) to prove the ClusterRole is enough.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from netns import REPO, bgpflat_argv, bgpflat_env

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy" / "kubernetes"
NAMESPACE, ACCOUNT = "bgpflat", "bgpflat-verify"
AS_ACCOUNT = f"--as=system:serviceaccount:{NAMESPACE}:{ACCOUNT}"
PEER = "10.200.20.254"
SPEC = str(REPO / "labs" / "calico-bgp" / "bgpflat.yaml")
# What the v1 control plane serves of the ClusterRole's resources, as kubectl names them.
READ = (
    "nodes",
    "services",
    "endpointslices.discovery.k8s.io",
    "ippools.crd.projectcalico.org",
    "bgppeers.crd.projectcalico.org",
    "bgpconfigurations.crd.projectcalico.org",
    "bgpfilters.crd.projectcalico.org",
    "clusterinformations.crd.projectcalico.org",
    "ipamblocks.crd.projectcalico.org",
    "blockaffinities.crd.projectcalico.org",
    "ipamconfigs.crd.projectcalico.org",
    "installations.operator.tigera.io",
)
WRITES = ("create", "update", "patch", "delete", "deletecollection")
OTHERS = ("secrets", "configmaps", "pods", "deployments.apps", "clusterroles.rbac.authorization.k8s.io")


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60
    )
    if check:
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result


def can_i(kubeconfig: Path, verb: str, resource: str, *extra: str) -> str:
    result = kubectl(kubeconfig, "auth", "can-i", verb, resource, AS_ACCOUNT, *extra, check=False)
    return result.stdout.strip()


def bgpflat(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bgpflat_argv(*args), env=bgpflat_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def applied(kube_v1: Any) -> Any:
    if shutil.which("kubectl") is None:
        pytest.skip("needs kubectl (.ci/run installs Debian's kubernetes-client)")
    config = kube_v1.kubeconfig
    # The server-side dry run goes through admission and validation, then stores nothing. The
    # namespaced objects need their namespace to exist first, so the namespace goes in first.
    kubectl(config, "apply", "--dry-run=server", "-f", str(DEPLOY / "namespace.yaml"))
    assert kubectl(config, "get", "namespace", NAMESPACE, check=False).returncode != 0
    kubectl(config, "create", "-f", str(DEPLOY / "namespace.yaml"))
    for name in ("rbac.yaml", "verify.yaml"):
        kubectl(config, "apply", "--dry-run=server", "-f", str(DEPLOY / name))
    assert kubectl(config, "get", "clusterrole", "bgpflat-read", check=False).returncode != 0
    created = kubectl(config, "create", "-f", str(DEPLOY / "rbac.yaml"), "-f", str(DEPLOY / "verify.yaml"))
    assert "deployment.apps/bgpflat-verify created" in created.stdout
    return kube_v1


# Every authenticated user may ask the API about itself (system:basic-user); nothing else writes.
SELF_REVIEWS = {
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
    "selfsubjectreviews.authentication.k8s.io",
}


def test_the_service_account_reads_everything_and_writes_nothing(applied: Any) -> None:
    config = applied.kubeconfig
    # Everything the account may do, in one table: reads only, apart from asking about itself.
    listed = kubectl(config, "auth", "can-i", "--list", AS_ACCOUNT).stdout.splitlines()[1:]
    rules = {}
    for line in listed:
        resource, _, rest = line.partition(" ")
        verbs = set(rest[rest.rindex("[") + 1 : rest.rindex("]")].split())
        if resource and not resource.startswith("[") and resource not in SELF_REVIEWS:
            rules[resource] = verbs
            assert verbs <= {"get", "list", "watch"}, line
    assert {resource: rules.get(resource) for resource in READ} == {key: {"get", "list", "watch"} for key in READ}
    for resource in ("nodes", "endpointslices.discovery.k8s.io", "ipamblocks.crd.projectcalico.org"):
        assert can_i(config, "watch", resource) == "yes", resource
    for resource in ("ippools.crd.projectcalico.org", "nodes"):
        for verb in WRITES:
            assert can_i(config, verb, resource) == "no", (verb, resource)
    for resource in OTHERS:
        assert can_i(config, "create", resource) == "no", resource
    assert can_i(config, "get", "secrets", f"--namespace={NAMESPACE}") == "no"
    assert can_i(config, "get", "apiservices.apiregistration.k8s.io/v3.projectcalico.org") == "yes"
    assert can_i(config, "list", "apiservices.apiregistration.k8s.io") == "no"
    deployment = json.loads(kubectl(config, "get", "deployment", "-n", NAMESPACE, ACCOUNT, "-o", "json").stdout)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == ACCOUNT


def _token_kubeconfig(plane: Any, directory: Path) -> Path:
    token = kubectl(plane.kubeconfig, "create", "token", ACCOUNT, "-n", NAMESPACE, "--duration=10m").stdout.strip()
    assert token.count(".") == 2  # a JWT from the TokenRequest API
    path = directory / "service-account.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "lab",
                        "cluster": {"server": plane.server, "certificate-authority": str(plane.credentials.ca_cert)},
                    }
                ],
                "users": [{"name": ACCOUNT, "user": {"token": token}}],
                "contexts": [{"name": "verify", "context": {"cluster": "lab", "user": ACCOUNT}}],
                "current-context": "verify",
            }
        )
    )
    return path


def test_the_cluster_role_is_enough_for_bgpflat(applied: Any, tmp_path: Path) -> None:
    applied.seed_scenario("calico-bgp")
    account = _token_kubeconfig(applied, tmp_path)
    # The token really is the ServiceAccount's: it may not write.
    denied = kubectl(account, "create", "namespace", "bgpflat-test", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    expected_args = ("routes", "expected", "--peer", PEER, "-f", SPEC, "-o", "json")
    as_account = bgpflat(*expected_args, "--kubeconfig", str(account))
    assert as_account.returncode == 0, as_account.stderr
    as_admin = bgpflat(*expected_args, "--kubeconfig", str(applied.kubeconfig))
    assert as_admin.returncode == 0, as_admin.stderr
    routes = json.loads(as_account.stdout)["routes"]
    assert len(routes) >= 6 and routes == json.loads(as_admin.stdout)["routes"]

    snapshot = tmp_path / "cluster.json"
    made = bgpflat("snapshot", "-o", str(snapshot), "--kubeconfig", str(account))
    assert made.returncode == 0, made.stderr
    kinds = {item["kind"] for item in json.loads(snapshot.read_text())["items"]}
    assert {"Node", "IPAMBlock", "BlockAffinity", "Service", "EndpointSlice"} <= kinds

    # What the Deployment runs: list and watch, with this token, until SIGTERM.
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"routes": routes}))
    log = tmp_path / "watch.log"
    with log.open("w") as sink:
        watch = subprocess.Popen(
            bgpflat_argv(
                "verify",
                "--peer",
                PEER,
                "-f",
                SPEC,
                "--learned",
                str(learned),
                "--kubeconfig",
                str(account),
                "--watch",
                "1",
            ),
            env=bgpflat_env(),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + 60
            while "verify: " not in log.read_text() and time.monotonic() < deadline and watch.poll() is None:
                time.sleep(0.2)
        finally:
            watch.send_signal(signal.SIGTERM)
            try:
                watch.wait(timeout=20)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
                pytest.fail(f"verify --watch did not stop on SIGTERM: {log.read_text()}")
    text = log.read_text()
    assert watch.returncode == 0, text
    assert "verify: match" in text and "forbidden" not in text.lower(), text
