"""Address-plan conflicts and risk findings (the checks bgpflat runs before any change)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpflat.core.calico import BGPConfiguration, BGPFilter, BGPFilterRule, BGPPeer, IPPool
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.state.checks import (
    ROLE_TITLES,
    AddressRange,
    Finding,
    check_address_plan,
    risk_findings,
    sort_findings,
)
from bgpflat.core.state.model import ObservedNode

P = Prefix.parse


def rng(role: str, prefix: str, source: str) -> AddressRange:
    return AddressRange(role=role, prefix=P(prefix), source=source)


def test_scenario_d_address_plan_is_clean() -> None:
    assert (
        check_address_plan(
            [
                rng("pool", "10.233.64.0/18", "IPPool/default-pool"),
                rng("service", "10.233.0.0/18", "services.clusterIPs[0]"),
                rng("node", "10.200.20.0/24", "networks.nodes[0]"),
                rng("node", "10.200.20.0/24", "Node/node-1"),
                rng("office", "192.168.1.0/24", "networks.office[0]"),
            ]
        )
        == ()
    )


def test_office_overlapping_the_pod_pool_is_an_error_naming_both() -> None:
    findings = check_address_plan(
        [
            rng("pool", "192.168.0.0/16", "IPPool/default-ipv4-ippool"),
            rng("office", "192.168.1.0/24", "networks.office[0]"),
        ]
    )
    assert findings == (
        Finding(
            code="address-overlap",
            severity="error",
            message="pod pool 192.168.0.0/16 (IPPool/default-ipv4-ippool) overlaps office network 192.168.1.0/24 "
            "(networks.office[0])",
            fix="renumber one of them: office, node, pod, service and VPN ranges must not overlap",
            subjects=("IPPool/default-ipv4-ippool", "networks.office[0]"),
        ),
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("pool", "10.3.0.0/16"), ("service", "10.3.254.0/24")),
        (("pool", "10.3.0.0/16"), ("node", "10.3.1.0/24")),
        (("pool", "10.3.0.0/16"), ("pool", "10.3.128.0/17")),
        (("service", "10.96.0.0/12"), ("vpn", "10.100.0.0/24")),
        (("node", "10.2.0.0/16"), ("office", "10.2.1.0/24")),
        (("vpn", "10.4.0.0/24"), ("office", "10.4.0.0/23")),
        (("external-ips", "10.96.5.0/24"), ("service", "10.96.0.0/12")),
    ],
)
def test_every_pair_of_roles_must_be_disjoint(first: tuple[str, str], second: tuple[str, str]) -> None:
    findings = check_address_plan([rng(first[0], first[1], "a"), rng(second[0], second[1], "b")])
    assert [f.severity for f in findings] == ["error"]


@pytest.mark.parametrize(
    ("role", "a", "b"),
    [
        ("node", "10.0.0.0/24", "10.0.0.0/24"),
        ("office", "192.168.0.0/22", "192.168.1.0/24"),
        ("service", "10.96.0.0/12", "10.96.0.0/16"),
    ],
)
def test_ranges_may_nest_within_their_own_role(role: str, a: str, b: str) -> None:
    assert check_address_plan([rng(role, a, "x"), rng(role, b, "y")]) == ()


def test_load_balancer_range_inside_node_network_is_only_a_warning() -> None:
    findings = check_address_plan(
        [rng("load-balancer-ips", "10.200.20.192/26", "lb"), rng("node", "10.200.20.0/24", "nodes")]
    )
    assert [(f.code, f.severity) for f in findings] == [("address-overlap", "warning")]


def node(name: str, address: str | None, **labels: str) -> ObservedNode:
    return ObservedNode(name=name, labels=labels, ipv4_address=address)


TWO_SUBNETS = (
    node("a1", "10.0.1.10/24", rack="a"),
    node("a2", "10.0.1.11/24", rack="a"),
    node("b1", "10.0.2.10/24", rack="b"),
)
FLAT_POOL = IPPool(name="pods", cidr=P("10.244.0.0/16"))


def codes(findings: tuple[Finding, ...]) -> list[str]:
    return [f.code for f in findings]


def test_encapsulation_off_across_subnets_without_peers_is_flagged() -> None:
    findings = risk_findings(pools=[FLAT_POOL], peers=[], config=None, nodes=TWO_SUBNETS)
    assert codes(findings) == ["encapsulation-off-multi-subnet"]
    assert findings[0].message == (
        "IPPool pods has encapsulation off (ipipMode Never, vxlanMode Never) while the nodes span 2 subnets "
        "(10.0.1.0/24, 10.0.2.0/24) and no BGP peer outside the cluster learns the pod routes of 10.0.1.0/24, "
        "10.0.2.0/24: pod traffic between subnets leaves unencapsulated for a router with no route back"
    )


def test_a_peer_per_subnet_covers_them() -> None:
    peers = [
        BGPPeer(name="tor-a", peer_ip="10.0.1.1", as_number=64512, node_selector="rack == 'a'"),
        BGPPeer(name="tor-b", peer_ip="10.0.2.1", as_number=64512, node_selector="rack == 'b'"),
    ]
    assert risk_findings(pools=[FLAT_POOL], peers=peers, config=None, nodes=TWO_SUBNETS) == ()


def test_a_peer_on_one_subnet_leaves_the_other_uncovered() -> None:
    peers = [BGPPeer(name="tor-a", peer_ip="10.0.1.1", as_number=64512, node_selector="rack == 'a'")]
    findings = risk_findings(pools=[FLAT_POOL], peers=peers, config=None, nodes=TWO_SUBNETS)
    assert codes(findings) == ["encapsulation-off-multi-subnet"]
    assert "learns the pod routes of 10.0.2.0/24:" in findings[0].message


def test_crosssubnet_or_a_single_subnet_is_fine() -> None:
    cross = IPPool(name="pods", cidr=P("10.244.0.0/16"), ipip_mode="CrossSubnet")
    assert risk_findings(pools=[cross], peers=[], config=None, nodes=TWO_SUBNETS) == ()
    assert risk_findings(pools=[FLAT_POOL], peers=[], config=None, nodes=TWO_SUBNETS[:2]) == ()


def test_disable_bgp_export_on_a_pod_pool() -> None:
    pool = IPPool(name="pods", cidr=P("10.244.0.0/16"), disable_bgp_export=True)
    findings = risk_findings(pools=[pool], peers=[], config=None, nodes=TWO_SUBNETS[:1])
    assert codes(findings) == ["disable-bgp-export-pod-pool"]
    assert findings[0].message == (
        "IPPool pods sets disableBGPExport: its routes are withheld from every BGP peer, the node-to-node mesh "
        "included, so nodes stop learning each other's pod blocks"
    )
    lb = IPPool(name="lb", cidr=P("10.10.0.0/24"), allowed_uses=("LoadBalancer",), disable_bgp_export=True)
    assert risk_findings(pools=[lb], peers=[], config=None, nodes=()) == ()


SWITCH = BGPPeer(
    name="peer-switch",
    peer_ip="10.200.20.254",
    as_number=65200,
    node_selector="node-role.kubernetes.io/ingress == 'ingress'",
)
D_NODES = (
    node("node-1", "10.200.20.103/24", **{"node-role.kubernetes.io/ingress": "ingress"}),
    node("node-3", "10.200.20.105/24"),
)
D_CONFIG = BGPConfiguration(name="default", as_number=64513)


def test_ebgp_peer_with_the_mesh_and_no_next_hop_handling() -> None:
    findings = risk_findings(pools=[], peers=[SWITCH], config=D_CONFIG, nodes=D_NODES)
    assert codes(findings) == ["ebgp-mesh-next-hop"]
    assert findings[0].message.startswith("BGPPeer peer-switch is eBGP (peer AS 65200, local AS 64513)")
    assert findings[0].subjects == ("BGPPeer/peer-switch",)


@pytest.mark.parametrize(
    "peer",
    [
        BGPPeer(name="p", peer_ip="10.200.20.254", as_number=65200, next_hop_mode="Keep"),
        BGPPeer(name="p", peer_ip="10.200.20.254", as_number=65200, keep_original_next_hop=True),
        BGPPeer(name="p", peer_ip="10.200.20.254", as_number=65200, filters=("no-remote",)),
        BGPPeer(name="p", peer_ip="10.200.20.254", as_number=64513),  # iBGP
        BGPPeer(name="p", peer_ip="10.200.20.105", as_number=65200),  # a Calico node, not a router
    ],
)
def test_next_hop_handled_or_not_ebgp(peer: BGPPeer) -> None:
    no_remote = BGPFilter(name="no-remote", export_v4=(BGPFilterRule(action="Reject", source="RemotePeers"),))
    assert risk_findings(pools=[], peers=[peer], config=D_CONFIG, nodes=D_NODES, filters=[no_remote]) == ()


def test_no_next_hop_risk_without_the_mesh() -> None:
    config = BGPConfiguration(name="default", as_number=64513, node_to_node_mesh_enabled=False)
    assert "ebgp-mesh-next-hop" not in codes(
        risk_findings(pools=[], peers=[SWITCH], config=config, nodes=D_NODES, mesh_before=False)
    )


def test_node_as_annotation_decides_ebgp() -> None:
    nodes = (
        ObservedNode(
            name="n",
            labels={"node-role.kubernetes.io/ingress": "ingress"},
            ipv4_address="10.200.20.103/24",
            as_number=65200,
        ),
    )
    assert risk_findings(pools=[], peers=[SWITCH], config=D_CONFIG, nodes=nodes) == ()


def test_mesh_off_without_replacement_peers_is_an_error() -> None:
    config = BGPConfiguration(name="default", node_to_node_mesh_enabled=False)
    findings = risk_findings(pools=[], peers=[], config=config, nodes=D_NODES, mesh_before=True)
    assert [(f.code, f.severity) for f in findings] == [("mesh-disabled-without-peers", "error")]


def test_mesh_off_with_new_peers_warns_to_wait_for_established() -> None:
    config = BGPConfiguration(name="default", as_number=64513, node_to_node_mesh_enabled=False)
    tor = BGPPeer(name="tor", peer_ip="10.200.20.254", as_number=64513)
    findings = risk_findings(pools=[], peers=[tor], config=config, nodes=D_NODES, mesh_before=True, new_peers=["tor"])
    assert [(f.code, f.severity) for f in findings] == [("mesh-disabled-after-new-peers", "warning")]
    assert risk_findings(pools=[], peers=[tor], config=config, nodes=D_NODES, mesh_before=True) == ()


def test_nodes_without_a_usable_address_annotation() -> None:
    findings = risk_findings(pools=[], peers=[], config=None, nodes=[node("n", None), node("m", "10.0.0.1")])
    assert codes(findings) == ["node-address-missing", "node-address-missing"]
    assert findings[0].message.startswith("node m has no usable projectcalico.org/IPv4Address annotation (10.0.0.1)")


def _pairwise_address_plan(ranges: list[AddressRange]) -> tuple[Finding, ...]:
    """The address-plan check as its definition reads: every pair of merged ranges compared."""
    merged: dict[tuple[str, Prefix], list[str]] = {}
    for item in ranges:
        merged.setdefault((item.role, item.prefix), []).append(item.source)
    unique = sorted(
        (AddressRange(role=r, prefix=p, source=", ".join(sorted(set(s)))) for (r, p), s in merged.items()),
        key=lambda r: (r.prefix, r.role),
    )
    soft_pairs = {frozenset({"external-ips", "node"}), frozenset({"load-balancer-ips", "node"})}
    findings = []
    for i, first in enumerate(unique):
        for second in unique[i + 1 :]:
            if not first.prefix.overlaps(second.prefix):
                continue
            if first.role == second.role and first.role in {"node", "office", "vpn", "service"}:
                continue
            soft = frozenset({first.role, second.role}) in soft_pairs
            findings.append(
                Finding(
                    code="address-overlap",
                    severity="warning" if soft else "error",
                    message=f"{first.describe()} overlaps {second.describe()}",
                    fix=(
                        "make sure those addresses are not assigned to hosts on the node network"
                        if soft
                        else "renumber one of them: office, node, pod, service and VPN ranges must not overlap"
                    ),
                    subjects=(first.source, second.source),
                )
            )
    return sort_findings(findings)


def _small_prefix(version: int, bits: int, length: int) -> Prefix:
    # A few high bits only, so that random prefixes often nest, repeat and touch.
    width = 32 if version == 4 else 128
    length = min(length, width)
    value = (bits << (width - 6)) & ~((1 << (width - length)) - 1) if length else 0
    return Prefix(version, value, length)


_ranges = st.lists(
    st.builds(
        lambda role, version, bits, length, source: AddressRange(
            role=role, prefix=_small_prefix(version, bits, length), source=f"s{source}"
        ),
        st.sampled_from(sorted(ROLE_TITLES)),
        st.sampled_from([4, 4, 4, 6]),
        st.integers(0, 63),
        st.integers(0, 8),
        st.integers(0, 3),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(_ranges)
def test_address_plan_sweep_finds_exactly_the_pairwise_findings(ranges: list[AddressRange]) -> None:
    assert check_address_plan(ranges) == _pairwise_address_plan(ranges)
