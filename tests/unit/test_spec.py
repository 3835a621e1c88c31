"""The two ``-f`` input forms: the flat spec and native Calico manifests, and errors that point at the line."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from bgpflat.adapters.files import parse_documents, split_objects
from bgpflat.core.calico import BGPConfiguration, BGPPeer, IPPool, to_manifest
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.state.documents import SpecDocument
from bgpflat.core.state.flat_spec import render_manifests
from bgpflat.core.state.load import load_desired
from bgpflat.core.state.model import DesiredState
from bgpflat.errors import SpecError, ValidationError

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp" / "bgpflat.yaml"


def load_text(text: str, file: str = "bgpflat.yaml") -> DesiredState:
    return load_desired(parse_documents(textwrap.dedent(text), file=file))


def error_of(text: str, file: str = "bgpflat.yaml") -> SpecError:
    with pytest.raises(SpecError) as caught:
        load_text(text, file)
    return caught.value


def test_scenario_d_flat_spec_renders_the_scenario_objects() -> None:
    desired = load_desired(parse_documents(LAB.read_text(), file=str(LAB)))
    manifests = render_manifests(desired)
    assert manifests == [
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "nodeToNodeMeshEnabled": True,
                "asNumber": 64513,
                "serviceClusterIPs": [{"cidr": "10.233.0.0/18"}],
                "listenPort": 179,
            },
        },
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "IPPool",
            "metadata": {"name": "default-pool"},
            "spec": {
                "cidr": "10.233.64.0/18",
                "blockSize": 24,
                "ipipMode": "Never",
                "vxlanMode": "Never",
                "natOutgoing": True,
                "nodeSelector": "all()",
            },
        },
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "BGPPeer",
            "metadata": {"name": "peer-switch"},
            "spec": {
                "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'",
                "peerIP": "10.200.20.254",
                "asNumber": 65200,
            },
        },
    ]
    assert desired.networks.office == (Prefix.parse("192.168.1.0/24"),)
    assert desired.networks.nodes == (Prefix.parse("10.200.20.0/24"),)
    assert desired.cluster is not None and desired.cluster.name == "calico-bgp"


def test_rendered_manifests_load_back_to_the_same_resources() -> None:
    desired = load_desired(parse_documents(LAB.read_text(), file=str(LAB)))
    again = load_desired([SpecDocument(data=m) for m in render_manifests(desired)])
    assert {to_manifest(r)["metadata"]["name"]: to_manifest(r) for r in again.resources} == {
        to_manifest(r)["metadata"]["name"]: to_manifest(r) for r in desired.resources
    }


def test_flat_spec_full_schema() -> None:
    desired = load_text("""
        version: 1
        cluster: {name: lab, context: kind-lab, environment: test}
        bgp: {asNumber: "1.10", listenPort: 1790, nodeToNodeMesh: false}
        pools:
          - {name: v4, cidr: 10.244.0.0/16, encapsulation: IPIPCrossSubnet, disableBGPExport: false, disabled: false}
          - {name: v6, cidr: "fd00:10::/48", blockSize: 122, encapsulation: VXLAN}
        peers:
          - name: tor
            peerIP: "10.0.0.1:1790"
            asNumber: 65000
            node: node-1
            nextHopMode: Keep
            password: {secret: bgp-passwords, key: tor}
            filters: [no-remote]
            ttlSecurity: 1
            maxRestartTime: 2m
          - {name: rr, peerSelector: has(route-reflector)}
        services:
          clusterIPs: 10.96.0.0/16
          externalIPs: [10.10.0.0/24]
          loadBalancerIPs: []
          clusterIPRange: 10.96.0.0/12
        networks: {nodes: [10.0.0.0/24], office: [192.168.0.0/22], vpn: 10.4.0.0/24}
    """)
    config = desired.get("BGPConfiguration", "default")
    assert isinstance(config, BGPConfiguration)
    assert (config.as_number, config.listen_port, config.mesh_enabled) == (65546, 1790, False)
    assert config.service_cluster_ips == (Prefix.parse("10.96.0.0/16"),)
    assert "serviceLoadBalancerIPs" in config.explicit and config.service_load_balancer_ips == ()
    v4, v6 = desired.get("IPPool", "v4"), desired.get("IPPool", "v6")
    assert isinstance(v4, IPPool) and isinstance(v6, IPPool)
    assert (v4.ipip_mode, v4.vxlan_mode, v6.ipip_mode, v6.vxlan_mode) == ("CrossSubnet", "Never", "Never", "Always")
    tor = desired.get("BGPPeer", "tor")
    assert isinstance(tor, BGPPeer)
    assert (tor.peer_ip, tor.peer_port, tor.node, tor.next_hop_mode) == ("10.0.0.1", 1790, "node-1", "Keep")
    assert tor.password_secret == ("bgp-passwords", "tor")
    assert desired.networks.vpn == (Prefix.parse("10.4.0.0/24"),)
    assert desired.networks.service_cluster_ip_range == (Prefix.parse("10.96.0.0/12"),)
    assert desired.cluster is not None and desired.cluster.context == "kind-lab"


@pytest.mark.parametrize(
    ("text", "message", "line", "path", "fix"),
    [
        (
            "peers:\n  - name: p\n    peerIP: 10.0.0.1\n    asNumber: 65000\n    asnumber: 1\n",
            "unknown field 'asnumber'",
            5,
            "peers[0].asnumber",
            "did you mean 'asNumber'?",
        ),
        (
            "peers:\n  - name: p\n    peerIP: 10.0.0.1\n    asNumber: 4294967296\n",
            "AS number 4294967296 is out of range",
            4,
            "peers[0].asNumber",
            "use 1-4294967295 or dotted a.b with a, b in 0-65535",
        ),
        (
            "peers:\n  - name: p\n    asNumber: 65000\n    peerIP: 10.0.0.1:99999\n",
            "invalid port in peerIP '10.0.0.1:99999'",
            4,
            "peers[0].peerIP",
            "use a port from 1 to 65535",
        ),
        (
            "peers:\n  - name: p\n    peerIP: 10.0.0.1\n",
            "a BGPPeer with a peerIP but no asNumber is taken to be in AS 0, which no session accepts",
            2,
            "peers[0].asNumber",
            "set the peer's AS number",
        ),
        (
            "peers:\n  - name: p\n    peerIP: 10.0.0.1\n    asNumber: 1\n    node: n1\n    nodeSelector: all()\n",
            "node and nodeSelector cannot both be set",
            6,
            "peers[0].nodeSelector",
            "use node for one node or nodeSelector for a set of nodes",
        ),
        (
            "pools:\n  - name: p\n    cidr: 10.0.0.1/16\n",
            "'10.0.0.1/16' has host bits set",
            3,
            "pools[0].cidr",
            "use 10.0.0.0/16",
        ),
        (
            "pools:\n  - name: p\n    cidr: fd00::/48\n    encapsulation: IPIP\n",
            "IPIP is not supported on IPv6 pools",
            4,
            "pools[0].encapsulation",
            "set ipipMode: Never (use vxlanMode to encapsulate IPv6)",
        ),
        (
            "pools:\n  - name: p\n    cidr: 10.0.0.0/16\n    encapsulation: ipip\n",
            "unknown encapsulation 'ipip'",
            4,
            "pools[0].encapsulation",
            "did you mean 'IPIP'? use IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None",
        ),
        (
            "pools:\n  - name: p\n    cidr: 10.0.0.0/16\n    blockSize: 18\n",
            "blockSize 18 is out of range for an IPv4 pool",
            4,
            "pools[0].blockSize",
            "use a blockSize from 20 to 32",
        ),
        (
            "pools:\n  - name: p\n    cidr: 10.0.0.0/16\n    nodeSelector: zone = 'a'\n",
            "invalid nodeSelector: invalid selector \"zone = 'a'\": expected an operator (==, !=, in, not in, "
            "contains, starts with, ends with) at position 6, found \"= 'a'\"",
            4,
            "pools[0].nodeSelector",
            "use Calico selector syntax, e.g. has(k), k == 'v', k in {'a', 'b'}, &&, ||, !, all()",
        ),
        (
            "pools:\n  - cidr: 10.0.0.0/16\n",
            "expected a non-empty string, got None",
            2,
            "pools[0].name",
            "give the pool a name, e.g. default-pool",
        ),
        ("pools:\n  - name: p\n", "a pool needs a cidr", 2, "pools[0].cidr", "set cidr, e.g. 10.244.0.0/16"),
        (
            "pools:\n  - {name: p, cidr: 10.0.0.0/16}\n  - {name: p, cidr: 10.1.0.0/16}\n",
            "IPPool 'p' is defined twice",
            3,
            "pools[1].name",
            "give each one its own name",
        ),
        ("bgp:\n  asNumber: 64513\n  listenPort: 0\n", "0 is out of range", 3, "bgp.listenPort", "use 1-65535"),
        (
            "bgp:\n  nodeToNodeMesh: yes please\n",
            "expected true or false, got 'yes please'",
            2,
            "bgp.nodeToNodeMesh",
            "write true or false, unquoted",
        ),
        (
            "services:\n  clusterIPs: [10.96.0.0/12, 10.300.0.0/16]\n",
            "'10.300.0.0' is not an IP address",
            2,
            "services.clusterIPs[1]",
            "write it as a.b.c.d/n or x::/n",
        ),
        (
            "networks:\n  office: 192.168.1.0/24\n  lan: 10.0.0.0/8\n",
            "unknown field 'lan'",
            3,
            "networks.lan",
            "allowed here: nodes, office, vpn",
        ),
        ("version: 2\n", "unsupported flat spec version 2", 1, "version", "this bgpflat reads version 1"),
        (
            "cluster:\n  environment: qa\n",
            "unknown environment 'qa'",
            2,
            "cluster.environment",
            "use dev, test, staging or prod",
        ),
        (
            "peers:\n  - name: p\n    peerIP: 10.0.0.1\n    asNumber: 1\n    password: {secret: s}\n",
            "expected a non-empty string, got None",
            5,
            "peers[0].password.key",
            "name the key inside the Secret",
        ),
        ("pools: {name: p}\n", "expected a list, got dict", 1, "pools", "write a YAML list"),
    ],
)
def test_flat_spec_errors_name_file_line_path_and_fix(text: str, message: str, line: int, path: str, fix: str) -> None:
    error = error_of(text)
    assert (error.message, error.line, error.path, error.fix, error.file) == (message, line, path, fix, "bgpflat.yaml")


def test_flat_spec_error_text_reads_like_a_compiler_message() -> None:
    error = error_of("peers:\n  - name: p\n    peerIP: 10.0.0.1\n    asNumber: x\n")
    assert str(error) == (
        "bgpflat.yaml:4: peers[0].asNumber: invalid AS number 'x' "
        "(fix: use 1-4294967295 or dotted a.b with a, b in 0-65535)"
    )


def test_cross_field_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        load_text("peers:\n  - {name: p, peerIP: 10.0.0.1, asNumber: 1, node: a, nodeSelector: all()}\n")


MANIFESTS = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-pool
spec:
  cidr: 10.233.64.0/18
  blockSize: 24
  ipipMode: Never
---
apiVersion: projectcalico.org/v3
kind: BGPPeerList
items:
- apiVersion: projectcalico.org/v3
  kind: BGPPeer
  metadata:
    name: peer-switch
    resourceVersion: "4711"
    uid: 0b7c5d2e-0000-4000-8000-000000000000
    creationTimestamp: "2026-11-02T09:14:07Z"
  spec:
    peerIP: 10.200.20.254
    asNumber: 65200
- apiVersion: projectcalico.org/v3
  kind: BGPPeer
  metadata:
    name: peer-switch-2
  spec:
    peerIP: 10.200.20.253
    asNumber: 65200
"""


@pytest.mark.parametrize("split", [False, True])
def test_native_manifests_multi_document_and_list_kinds(split: bool) -> None:
    documents: Any = parse_documents(MANIFESTS, file="calico.yaml")
    if split:
        documents = split_objects(documents)
    desired = load_desired(documents)
    assert sorted(f"{r.kind}/{r.name}" for r in desired.resources) == [
        "BGPPeer/peer-switch",
        "BGPPeer/peer-switch-2",
        "IPPool/default-pool",
    ]
    assert desired.origins["BGPPeer/peer-switch-2"] == "calico.yaml:26"
    assert desired.origins["IPPool/default-pool"] == "calico.yaml:4"


@pytest.mark.parametrize("list_kind", ["BGPPeerList", "List"])
@pytest.mark.parametrize("split", [False, True])
def test_native_manifest_error_points_at_the_line(split: bool, list_kind: str) -> None:
    text = MANIFESTS.replace("    peerIP: 10.200.20.253", "    peerIP: 10.200.20.253\n    peerSelector: has(x)")
    text = text.replace("kind: BGPPeerList", f"kind: {list_kind}")
    documents: Any = parse_documents(text, file="calico.yaml")
    if split:
        documents = split_objects(documents)
    with pytest.raises(ValidationError) as caught:
        load_desired(documents)
    error = caught.value
    assert error.message == "peerIP and peerSelector cannot both be set"
    assert error.line == 29
    assert error.file == "calico.yaml"
    # Split into one document per item, the path is relative to the item.
    expanded = split and list_kind == "List"
    assert error.path == ("spec.peerSelector" if expanded else "items[1].spec.peerSelector")


@pytest.mark.parametrize(
    ("text", "message", "line", "fix"),
    [
        (
            "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: f}\nspec: {}\n",
            "bgpflat reads BGPFilters but does not write them",
            2,
            "apply BGPFilters with calicoctl or kubectl and reference them in BGPPeer spec.filters",
        ),
        (
            "apiVersion: crd.projectcalico.org/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/8}\n",
            "unsupported apiVersion 'crd.projectcalico.org/v1' for IPPool",
            1,
            "use apiVersion: projectcalico.org/v3 (the spec is the same; bgpflat writes projectcalico.org/v3 only)",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n"
            "spec:\n  cidr: 10.0.0.0/8\n  cird: x\n",
            "unknown field 'cird'",
            6,
            "did you mean 'cidr'?",
        ),
        (
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/8}\n---\n"
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16}\n",
            "IPPool/p is defined twice (first at calico.yaml:3)",
            8,
            "keep one definition",
        ),
        (
            "bgp: {asNumber: 1}\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n"
            "spec: {cidr: 10.0.0.0/8}\n",
            "a flat spec must be the only document: do not mix it with other documents or manifests",
            3,
            "put the flat spec in a file of its own, or write everything as Calico manifests",
        ),
    ],
)
def test_native_manifest_errors(text: str, message: str, line: int, fix: str) -> None:
    error = error_of(text, "calico.yaml")
    assert (error.message, error.line, error.fix) == (message, line, fix)


def test_empty_input_is_an_error() -> None:
    with pytest.raises(SpecError, match="no Calico resources and no flat spec found"):
        load_desired([])


def test_documents_without_line_maps_still_give_paths() -> None:
    with pytest.raises(SpecError) as caught:
        load_desired([SpecDocument(data={"peers": [{"name": "p", "peerIP": "x", "asNumber": 1}]}, file="s.yaml")])
    assert caught.value.line is None
    assert str(caught.value) == (
        "s.yaml: peers[0].peerIP: invalid peerIP 'x': 'x' is not an IP address "
        "(fix: use an address, IPv4:port or [IPv6]:port)"
    )
