"""deploy/kubernetes: the ClusterRole grants exactly what bgpflat reads, read-only, and the
Deployment's commands are ones bgpflat accepts (tests/integration/test_deploy.py applies them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bgpflat.adapters.kube.calico import READ_VERBS, read_rules
from bgpflat.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def cluster_role() -> dict[str, Any]:
    (role,) = [d for d in documents("rbac.yaml") if d["kind"] == "ClusterRole"]
    return role


def test_cluster_role_is_exactly_what_bgpflat_reads() -> None:
    granted: dict[str, set[str]] = {}
    for rule in cluster_role()["rules"]:
        assert set(rule["verbs"]) <= set(READ_VERBS), rule  # nothing that writes
        for group in rule["apiGroups"]:
            granted.setdefault(group, set()).update(rule["resources"])
    assert granted == read_rules()


def test_the_binding_names_the_deployments_service_account() -> None:
    docs = documents("rbac.yaml")
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    (binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == cluster_role()["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    (deployment,) = [d for d in documents("verify.yaml") if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_the_deployment_runs_commands_bgpflat_accepts() -> None:
    docs = documents("verify.yaml")
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    parser = build_parser()
    parsed = {}
    ports = set()
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert container["command"] == ["bgpflat"]
        # Kubernetes expands $(NAME) from the container's environment (here: the ConfigMap).
        argv = [re.sub(r"\$\((\w+)\)", lambda m: str(config["data"][m.group(1)]), a) for a in container["args"]]
        args = parsed[container["name"]] = parser.parse_args(argv)
        (port,) = container["ports"]
        assert args.metrics_listen == f"0.0.0.0:{port['containerPort']}"
        ports.add(port["name"])
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    verify, station = parsed["verify"], parsed["bmp"]
    assert verify.watch == float(config["data"]["INTERVAL"])
    # The verifier reads the station of the same pod, for the router the station dials.
    assert verify.source == f"bmp:{station.state_dir}" and verify.router == verify.peer == config["data"]["ROUTER"]
    assert station.connect == [f"{config['data']['ROUTER']}:{config['data']['BMP_PORT']}"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} == ports
