"""Which nodes a BGPPeer pointing at the verification peer selects (calico-facts §1.2, §2.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bgpflat.core.net.selector import parse_selector
from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.errors import SpecError
from bgpflat.peer.cluster import load_objects, select_neighbors


def node(
    name: str, ip: str | None, labels: dict[str, str] | None = None, asn: str | None = None, ipv6: str | None = None
) -> dict[str, Any]:
    annotations = {}
    if ip:
        annotations["projectcalico.org/IPv4Address"] = ip
    if ipv6:
        annotations["projectcalico.org/IPv6Address"] = ipv6
    if asn:
        annotations["projectcalico.org/ASNumber"] = asn
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations},
    }


def bgppeer(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}


NODES = [
    node("n1", "10.0.0.1/24", {"rack": "a", "bgp": "yes"}),
    node("n2", "10.0.0.2/24", {"rack": "b"}, asn="64600"),
    node("n3", "10.0.0.3/24", {"rack": "a"}, ipv6="fd00::3/64"),
]


def addresses(objects: list[dict[str, Any]], local: tuple[str, ...] = ("10.0.0.100",)) -> list[tuple[str, int, str]]:
    result = select_neighbors(objects=objects, local_addresses=local)
    return [(n.address, n.peer_as, n.description) for n in result.neighbors]


def test_global_peer_selects_every_node_with_its_own_as() -> None:
    objects = [*NODES, bgppeer("verifier", peerIP="10.0.0.100", asNumber=65000)]
    assert addresses(objects) == [("10.0.0.1", 64512, "n1"), ("10.0.0.2", 64600, "n2"), ("10.0.0.3", 64512, "n3")]
    assert select_neighbors(objects=objects, local_addresses=["10.0.0.100"]).local_as == 65000


def test_node_selector_and_default_as_from_bgpconfiguration() -> None:
    objects = [
        *NODES,
        bgppeer("verifier", peerIP="10.0.0.100:179", asNumber=65000, nodeSelector="rack == 'a'"),
        {"kind": "BGPConfiguration", "metadata": {"name": "default"}, "spec": {"asNumber": 64700}},
    ]
    assert addresses(objects) == [("10.0.0.1", 64700, "n1"), ("10.0.0.3", 64700, "n3")]


def test_named_node_and_local_as_number_override() -> None:
    objects = [*NODES, bgppeer("verifier", peerIP="10.0.0.100", asNumber=65000, node="n2", localASNumber=64999)]
    assert addresses(objects) == [("10.0.0.2", 64999, "n2")]


def test_peers_pointing_elsewhere_and_peer_selectors_are_ignored() -> None:
    objects = [*NODES, bgppeer("tor", peerIP="10.0.1.254", asNumber=65100), bgppeer("mesh", peerSelector="all()")]
    result = select_neighbors(objects=objects, local_addresses=["10.0.0.100"])
    assert result.neighbors == () and result.bgp_peers == ()


def test_ipv6_peer_uses_the_nodes_ipv6_address_and_reports_nodes_without_one() -> None:
    objects = [*NODES, bgppeer("v6", peerIP="[fd00::100]:179", asNumber=65000)]
    result = select_neighbors(objects=objects, local_addresses=["fd00::100"])
    assert [n.address for n in result.neighbors] == ["fd00::3"]
    assert len(result.skipped) == 2 and "n1" in result.skipped[0]


def test_peer_as_override() -> None:
    objects = [*NODES, bgppeer("verifier", peerIP="10.0.0.100", asNumber=65000)]
    result = select_neighbors(objects=objects, local_addresses=["10.0.0.100"], peer_as=64512)
    assert {n.peer_as for n in result.neighbors} == {64512}


def test_disagreeing_as_numbers_are_an_error() -> None:
    objects = [
        *NODES,
        bgppeer("a", peerIP="10.0.0.100", asNumber=65000, node="n1"),
        bgppeer("b", peerIP="10.0.0.100", asNumber=65001, node="n2"),
    ]
    with pytest.raises(SpecError, match="different AS numbers"):
        select_neighbors(objects=objects, local_addresses=["10.0.0.100"])


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("all()", True),
        ("rack == 'a'", True),
        ('rack == "b"', False),
        ("rack != 'b'", True),
        ("has(bgp)", True),
        ("!has(bgp)", False),
        ("rack in {'a', 'c'}", True),
        ("rack not in {'a'}", False),
        ("rack == 'b' || has(bgp)", True),
        ("(rack == 'b' || has(bgp)) && zone == 'x'", False),
        ("zone contains 'x'", False),
        ("rack starts with 'a'", True),
        ("kubernetes.io/hostname ends with '1'", True),
    ],
)
def test_calico_selectors(selector: str, expected: bool) -> None:
    labels = {"rack": "a", "bgp": "yes", "kubernetes.io/hostname": "n1"}
    assert parse_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("selector", ["rack ==", "rack === 'a'", "(has(a)", "rack ~ 'a'"])
def test_bad_selectors_are_spec_errors(selector: str) -> None:
    with pytest.raises(SpecError):
        parse_selector(selector).matches({"rack": "a"})


def test_load_objects_from_list_and_multidoc(tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text(
        "kind: List\nitems:\n- kind: Node\n  metadata: {name: n1}\n"
        "- kind: BGPPeerList\n  items:\n  - kind: BGPPeer\n    metadata: {name: p}\n"
    )
    multi = tmp_path / "multi.yaml"
    multi.write_text("kind: Node\nmetadata: {name: n1}\n---\nkind: BGPPeer\nmetadata: {name: p}\n---\n")
    assert [o["kind"] for o in load_objects(listing)] == ["Node", "BGPPeer"]
    assert [o["kind"] for o in load_objects(multi)] == ["Node", "BGPPeer"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [\n")
    with pytest.raises(SpecError, match=r"bad\.yaml"):
        load_objects(bad)


def test_the_peer_expects_the_sessions_the_route_model_predicts_when_a_global_peer_shadows_a_node_peer() -> None:
    # Calico renders the global BGPPeer on every node and drops a node-specific one to the same
    # address (confd client.go updatePeersV1): n2 connects with its own AS, not 65099. A peer
    # that expected 65099 from n2 would refuse the session the nodes really open.
    objects: list[dict[str, Any]] = [
        *NODES,
        bgppeer("verifier", peerIP="10.0.0.100", asNumber=65000),
        bgppeer("n2-local-as", peerIP="10.0.0.100", asNumber=65000, node="n2", localASNumber=65099),
    ]
    peering = select_neighbors(objects=objects, local_addresses=["10.0.0.100"])
    model = expected_routes(cluster=ClusterState.from_objects(objects), peer="10.0.0.100")
    predicted = {s.session: s.local_as for s in model.sessions.values()}
    assert {n.address: n.peer_as for n in peering.neighbors} == predicted
    assert predicted == {"10.0.0.1": 64512, "10.0.0.2": 64600, "10.0.0.3": 64512}
    assert peering.local_as == 65000


def test_a_dropped_node_peer_with_another_as_number_does_not_change_the_peers_as() -> None:
    # Calico never renders the node-specific BGPPeer here, so its asNumber asks nothing of the peer.
    objects = [
        *NODES,
        bgppeer("verifier", peerIP="10.0.0.100", asNumber=65000),
        bgppeer("n2-other-as", peerIP="10.0.0.100", asNumber=65001, node="n2"),
    ]
    peering = select_neighbors(objects=objects, local_addresses=["10.0.0.100"])
    assert peering.local_as == 65000
    assert any("n2-other-as is dropped by Calico" in reason for reason in peering.skipped)


@pytest.mark.parametrize(
    "peers",
    [
        [bgppeer("rack-a", peerIP="10.0.0.100", asNumber=65000, nodeSelector="rack == 'a'")],
        [
            bgppeer("rack-a", peerIP="10.0.0.100", asNumber=65000, nodeSelector="rack == 'a'"),
            bgppeer("n2", peerIP="10.0.0.100", asNumber=65000, node="n2", localASNumber=65099),
            bgppeer("n1", peerIP="10.0.0.100", asNumber=65000, node="n1", localASNumber=65098),
        ],
        [bgppeer("all", peerIP="10.0.0.100", asNumber=65000, localASNumber=64999)],
        [bgppeer("to-n1", peerIP="10.0.0.1", asNumber=65000)],
    ],
    ids=["selector", "selector-and-node-peers", "global-local-as", "node-address"],
)
def test_the_peer_expects_every_session_the_route_model_predicts(peers: list[dict[str, Any]]) -> None:
    address = str(peers[0]["spec"]["peerIP"])
    objects = [*NODES, *peers]
    peering = select_neighbors(objects=objects, local_addresses=[address])
    model = expected_routes(cluster=ClusterState.from_objects(objects), peer=address)
    assert {n.address: n.peer_as for n in peering.neighbors} == {s.session: s.local_as for s in model.sessions.values()}
    assert peering.neighbors
