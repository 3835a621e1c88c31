"""Which nodes open a session to an outside address, with which AS and next hop (calico-facts §1.2).

The rule is confd's (client.go ``updatePeersV1``, ``buildPeerFromData``); the cluster: nodes a, b, c
(10.0.0.1-3, a and b in rack r1) in the default AS 64512, and an outside router at 10.0.0.254.
"""

from __future__ import annotations

from typing import Any

import pytest

from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import OutsidePeer
from bgpflat.core.routes.sessions import Session, sessions
from bgpflat.errors import SpecError

V3 = "projectcalico.org/v3"
PEER = "10.0.0.254"


def node(name: str, last: int, *, labels: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    notes = {"projectcalico.org/IPv4Address": f"10.0.0.{last}/24"}
    notes.update({f"projectcalico.org/{key}": value for key, value in annotations.items()})
    meta = {"name": name, "labels": labels or {}, "annotations": notes}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta}


def bgp_peer(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("peerIP", PEER)
    spec.setdefault("asNumber", 65000)
    return {"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": name}, "spec": spec}


def bgp_configuration(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": V3, "kind": "BGPConfiguration", "metadata": {"name": "default"}, "spec": spec}


NODES = [node("a", 1, labels={"rack": "r1"}), node("b", 2, labels={"rack": "r1"}), node("c", 3)]


def run(
    *objects: dict[str, Any], peer: str | OutsidePeer = PEER, calico: str = "v3.31.0"
) -> tuple[dict[str, Session], tuple[str, ...]]:
    found, notes = sessions(ClusterState.from_objects([*NODES, *objects]), peer, calico=calico)
    return {s.node.name: s for s in found}, notes


def test_a_global_peer_wins_over_a_node_specific_one_to_the_same_address() -> None:
    # The conformance matrix's global-and-node-peer row: confd emits global peerings first and
    # drops a node-specific one to the same IP, so b connects with the cluster AS, not 65099.
    found, notes = run(bgp_peer("tor"), bgp_peer("b-only", node="b", localASNumber=65099, nextHopMode="Keep"))
    assert {name: (s.bgp_peer.name, s.local_as) for name, s in found.items()} == {
        "a": ("tor", 64512),
        "b": ("tor", 64512),
        "c": ("tor", 64512),
    }
    assert found["b"].shadowed == ("b-only",) and "b-only" in found["b"].why
    assert not found["b"].next_hop_keep  # the dropped BGPPeer's nextHopMode Keep does not apply
    assert any("BGPPeer b-only is dropped by Calico: global BGPPeer tor" in note for note in notes)


def test_a_node_specific_peer_on_another_port_is_a_second_session_not_a_dropped_one() -> None:
    # confd keys peerings by (IP, port): both are rendered on b; the model follows the global one.
    found, notes = run(bgp_peer("tor"), bgp_peer("b-alt", node="b", peerIP=f"{PEER}:1790"))
    assert found["b"].bgp_peer.name == "tor" and found["b"].shadowed == ()
    assert any("b runs 2 sessions to 10.0.0.254 on different ports (BGPPeer tor, b-alt)" in n for n in notes)


def test_without_a_global_peer_node_specific_and_selector_peers_select_their_nodes() -> None:
    found, _ = run(bgp_peer("rack-r1", nodeSelector="rack == 'r1'"), bgp_peer("c-only", node="c", asNumber=65001))
    assert {name: (s.bgp_peer.name, s.peer_as) for name, s in found.items()} == {
        "a": ("rack-r1", 65000),
        "b": ("rack-r1", 65000),
        "c": ("c-only", 65001),
    }
    assert found["c"].why == "BGPPeer c-only (node c)"


def test_two_node_specific_peers_for_one_node_keep_the_first_by_name_and_say_calico_may_not() -> None:
    found, notes = run(bgp_peer("rack-r1", nodeSelector="rack == 'r1'"), bgp_peer("a-only", node="a", asNumber=65001))
    assert found["a"].bgp_peer.name == "a-only" and found["b"].bgp_peer.name == "rack-r1"
    assert any("a-only and rack-r1 both make 1 node(s)" in note and "no fixed order" in note for note in notes)


def test_local_as_number_overrides_the_node_as_from_v3_31_and_is_ignored_before() -> None:
    found, _ = run(bgp_peer("tor", localASNumber=64600))
    assert {s.local_as for s in found.values()} == {64600}
    old, notes = run(bgp_peer("tor", localASNumber=64600), calico="v3.30.7")
    assert {s.local_as for s in old.values()} == {64512}
    assert any("localASNumber is ignored before Calico v3.31" in note for note in notes)


def test_local_as_comes_from_the_node_then_the_default_bgpconfiguration_then_64512() -> None:
    annotated = node("b", 2, ASNumber="64601")
    calicoctl_node = {
        "apiVersion": V3,
        "kind": "Node",
        "metadata": {"name": "c"},
        "spec": {"bgp": {"ipv4Address": "10.0.0.3/24", "asNumber": 64602}},
    }
    cluster = ClusterState.from_objects([NODES[0], annotated, calicoctl_node, bgp_peer("tor")])
    found = {s.node.name: s.local_as for s in sessions(cluster, PEER)[0]}
    assert found == {"a": 64512, "b": 64601, "c": 64602}
    cluster = ClusterState.from_objects([NODES[0], annotated, bgp_peer("tor"), bgp_configuration(asNumber=64700)])
    assert {s.node.name: s.local_as for s in sessions(cluster, PEER)[0]} == {"a": 64700, "b": 64601}


@pytest.mark.parametrize("mesh", [True, False])
def test_the_node_to_node_mesh_does_not_change_who_peers_with_an_outside_address(mesh: bool) -> None:
    found, _ = run(bgp_peer("tor"), bgp_configuration(nodeToNodeMeshEnabled=mesh))
    assert {name: (s.address, s.local_as, s.ebgp) for name, s in found.items()} == {
        "a": ("10.0.0.1", 64512, True),
        "b": ("10.0.0.2", 64512, True),
        "c": ("10.0.0.3", 64512, True),
    }


def test_ipv6_peer_sessions_come_from_the_nodes_ipv6_addresses() -> None:
    dual = node("a", 1, IPv6Address="fd00::1/64")
    cluster = ClusterState.from_objects([dual, NODES[1], bgp_peer("v6", peerIP="[fd00::fe]:179")])
    found, notes = sessions(cluster, "fd00:0::fe")
    assert [(s.node.name, s.address, s.peer_address) for s in found] == [("a", "fd00::1", "fd00::fe")]
    assert any("b has no IPv6 BGP address" in note for note in notes)


def test_a_node_skips_a_peer_address_that_is_its_own() -> None:
    found, _ = run(bgp_peer("to-a", peerIP="10.0.0.1"), peer="10.0.0.1")
    assert set(found) == {"b", "c"}


def test_peer_selector_peers_make_no_session_with_an_outside_address() -> None:
    found, notes = run(
        {"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": "mesh"}, "spec": {"peerSelector": "all()"}}
    )
    assert found == {} and any("no BGPPeer has peerIP 10.0.0.254" in note for note in notes)


def test_reachable_by_of_the_other_family_makes_calico_drop_the_peer() -> None:
    found, notes = run(bgp_peer("tor", reachableBy="fd00::1"))
    assert found == {} and any("reachableBy is not an IPv4 address" in note for note in notes)


def test_an_as_given_for_the_peer_assumes_a_global_peer_when_no_bgppeer_exists_yet() -> None:
    found, notes = run(peer=OutsidePeer(address=PEER, as_number=64512))
    assert set(found) == {"a", "b", "c"} and not any(s.ebgp for s in found.values())
    assert any("assuming a global peer with AS 64512" in note for note in notes)


def test_next_hop_keep_follows_keep_original_next_hop_only_toward_ebgp_and_next_hop_mode_always() -> None:
    ebgp, _ = run(bgp_peer("tor", keepOriginalNextHop=True))
    ibgp, _ = run(bgp_peer("tor", keepOriginalNextHop=True, asNumber=64512))
    assert ebgp["a"].next_hop_keep and ibgp["a"].next_hop_keep  # iBGP keeps by BIRD's default
    self_mode, _ = run(bgp_peer("tor", asNumber=64512, nextHopMode="Self"))
    assert not self_mode["a"].next_hop_keep
    keep_mode, _ = run(bgp_peer("tor", nextHopMode="Keep"))
    assert keep_mode["a"].next_hop_keep
    old, notes = run(bgp_peer("tor", nextHopMode="Keep"), calico="v3.30.7")
    assert not old["a"].next_hop_keep and any("nextHopMode is ignored" in note for note in notes)


def test_a_route_reflector_reflects_to_an_ibgp_peer_only() -> None:
    reflector = node("a", 1, RouteReflectorClusterID="1.0.0.1")
    cluster = ClusterState.from_objects([reflector, bgp_peer("tor", asNumber=64512)])
    assert sessions(cluster, PEER)[0][0].reflects
    cluster = ClusterState.from_objects([reflector, bgp_peer("tor")])
    assert not sessions(cluster, PEER)[0][0].reflects


def test_a_bgppeer_without_as_number_gives_sessions_whose_ebgp_question_names_the_field() -> None:
    found, _ = run({"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": "tor"}, "spec": {"peerIP": PEER}})
    assert found["a"].peer_as is None
    with pytest.raises(SpecError, match=r"AS number of peer 10\.0\.0\.254 is unknown") as error:
        _ = found["a"].ebgp
    assert error.value.path == "BGPPeer tor.spec.asNumber"
