"""The containerlab topologies are valid containerlab files and describe the same labs as ``labs/``.

containerlab itself needs a Docker engine, so the files are checked against containerlab's own
JSON schema (vendored in ``tests/data/containerlab/``, with its origin and licence) and against
the namespace lab's data: same addresses, same ToR config, same pod and service ranges. A drift
between the two labs would otherwise only show when someone runs containerlab.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpflat.lab.fabric import tor
from bgpflat.lab.fabric.topology import load_topology

REPO = Path(__file__).resolve().parents[2]
CLAB = REPO / "containerlab"
SCHEMA = REPO / "tests" / "data" / "containerlab" / "clab.schema.json"
SCENARIOS = ("calico-bgp", "ipip-migration")
# The topology that deploys without a registry (images from toolchain/image/build.sh); the tests in
# tests/integration/test_containerlab_peer.py deploy it.
PEER_LAB = "peer-lab"

jsonschema = pytest.importorskip("jsonschema")


def load(scenario: str) -> dict[str, Any]:
    data = yaml.safe_load((CLAB / f"{scenario}.clab.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def addresses(node: dict[str, Any]) -> set[str]:
    """Addresses a node's ``exec`` commands configure (``ip addr add A/L dev X``)."""
    found = set()
    for command in node.get("exec") or ():
        match = re.match(r"ip addr add (\S+)/\d+ dev \S+$", command)
        if match:
            found.add(match.group(1))
    return found


@pytest.mark.parametrize("scenario", (*SCENARIOS, PEER_LAB))
def test_topology_validates_against_the_containerlab_schema(scenario: str, validator: Any) -> None:
    errors = sorted(validator.iter_errors(load(scenario)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_is_not_vacuous(validator: Any) -> None:
    broken = load("calico-bgp")
    broken["topology"]["nodes"]["tor"]["kind"] = "frr-router"  # not a containerlab kind
    broken["topology"]["nodes"]["office"]["bindz"] = []
    assert len(list(validator.iter_errors(broken))) >= 2


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_files_and_links_refer_to_what_exists(scenario: str) -> None:
    data = load(scenario)
    nodes = data["topology"]["nodes"]
    for name, node in nodes.items():
        for bind in node.get("binds") or ():
            host = bind.split(":", 1)[0]
            assert (CLAB / host).exists(), f"{name}: bind source {host} is missing"
        if node.get("startup-config"):
            assert (CLAB / node["startup-config"]).is_file(), f"{name}: startup-config is missing"
    seen: set[str] = set()
    for link in data["topology"]["links"]:
        for endpoint in link["endpoints"]:
            node = endpoint.partition(":")[0]
            assert node in nodes, f"link endpoint {endpoint} names no node"
            assert endpoint not in seen, f"{endpoint} is used twice"
            seen.add(endpoint)
    kind_cluster = next(name for name, node in nodes.items() if node["kind"] == "k8s-kind")
    for name, node in nodes.items():
        if node["kind"] == "ext-container":
            assert name.startswith(f"{kind_cluster}-"), f"{name} is not a node of kind cluster {kind_cluster}"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_addresses_match_the_namespace_lab(scenario: str) -> None:
    topology = load_topology(REPO / "labs" / scenario)
    nodes = load(scenario)["topology"]["nodes"]
    cluster = [d for d in yaml.safe_load_all((REPO / "labs" / scenario / "cluster.yaml").read_text()) if d]
    node_ips = {
        d["metadata"]["annotations"]["projectcalico.org/IPv4Address"].split("/")[0]
        for d in cluster
        if d["kind"] == "Node"
    }
    kind_node_ips = set().union(*(addresses(n) for n in nodes.values() if n["kind"] == "ext-container"))
    assert kind_node_ips == node_ips

    tor_ips = addresses(nodes["tor"])
    assert {s.router for s in topology.segments} | {s.gateway for s in topology.segments} <= tor_ips
    assert topology.office.router in tor_ips
    assert addresses(nodes["office"]) == {topology.office.developer}
    assert addresses(nodes["office-dns"]) == {topology.office.resolver}
    assert topology.verifier is not None and addresses(nodes["verifier"]) == {topology.verifier.address}
    office_resolv = next(c for c in nodes["office"]["exec"] if "resolv.conf" in c)
    assert topology.office.resolver in office_resolv and topology.office.search_domain in office_resolv


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_tor_runs_the_same_bgp_config_as_the_namespace_lab(scenario: str) -> None:
    topology = load_topology(REPO / "labs" / scenario)
    expected = tor.render_bgpd_conf(
        tor.TorConfig(
            hostname=topology.tor_hostname,
            asn=topology.tor_asn,
            router_id=topology.tor_router_id,
            listen_ranges=tuple(s.network for s in topology.segments),
        )
    )
    text = (CLAB / scenario / "frr.conf").read_text()
    body = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("! "))
    assert body == expected


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_kind_cluster_uses_the_scenarios_ranges(scenario: str) -> None:
    kind = yaml.safe_load((CLAB / scenario / "kind.yaml").read_text())
    cluster = [d for d in yaml.safe_load_all((REPO / "labs" / scenario / "cluster.yaml").read_text()) if d]
    pools = {d["spec"]["cidr"] for d in cluster if d["kind"] == "IPPool"}
    scenario_meta = yaml.safe_load((REPO / "labs" / scenario / "scenario.yaml").read_text())
    assert kind["networking"]["podSubnet"] in pools
    assert kind["networking"]["serviceSubnet"] == scenario_meta["serviceClusterIPRange"]
    assert kind["networking"]["disableDefaultCNI"] is True
    installation = next(yaml.safe_load_all((CLAB / scenario / "installation.yaml").read_text()))
    installed_pools = {p["cidr"] for p in installation["spec"]["calicoNetwork"]["ipPools"]}
    assert installed_pools == pools


def test_the_peer_lab_is_scenario_d_as_confd_rendered_it() -> None:
    """Node, peer and ToR addresses of peer-lab.clab.yml agree with the snapshot the peer reads,
    with the BIRD configs the nodes run, and with the namespace lab's topology."""
    topology = load_topology(REPO / "labs" / "calico-bgp")
    assert topology.verifier is not None
    nodes = load(PEER_LAB)["topology"]["nodes"]
    for name, node in nodes.items():
        for bind in node.get("binds") or ():
            assert (CLAB / bind.split(":", 1)[0]).exists(), f"{name}: bind source {bind} is missing"
    snapshot = yaml.safe_load((CLAB / PEER_LAB / "cluster.yaml").read_text())["items"]
    annotated = {
        d["metadata"]["name"]: d["metadata"]["annotations"]["projectcalico.org/IPv4Address"].split("/")[0]
        for d in snapshot
        if d["kind"] == "Node"
    }
    for name, address in annotated.items():
        assert addresses(nodes[name]) == {address}
        bird = (CLAB / PEER_LAB / name / "bird.cfg").read_text()
        assert f"router id {address};" in bird
        # The peer's address is a BGP neighbour of every node's BIRD.
        assert f"neighbor {topology.verifier.address} as {topology.verifier.asn};" in bird
    peers = {d["metadata"]["name"]: d["spec"] for d in snapshot if d["kind"] == "BGPPeer"}
    verifier = peers["bgpflat-verifier"]
    assert (verifier["peerIP"], verifier["asNumber"]) == (topology.verifier.address, topology.verifier.asn)
    assert addresses(nodes["peer"]) == {topology.verifier.address}
    arguments = nodes["peer"]["cmd"].split()
    assert arguments[arguments.index("--listen") + 1] == topology.verifier.address
    assert arguments[arguments.index("--local-as") + 1] == str(topology.verifier.asn)
    tor_ips = addresses(nodes["tor"])
    assert {s.router for s in topology.segments} | {s.gateway for s in topology.segments} <= tor_ips
    assert topology.office.router in tor_ips
    assert addresses(nodes["office"]) == {topology.office.developer}
