"""Calico manifests <-> models: both API groups, value forms, defaults, and round trips."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bgpflat.core.calico import (
    BGPConfiguration,
    BGPFilter,
    BGPPeer,
    IPPool,
    PeerAddress,
    format_path,
    managed_by,
    normalize_spec_value,
    parse_and_validate,
    parse_as_number,
    parse_path,
    parse_peer_ip,
    parse_resource,
    to_manifest,
)
from bgpflat.core.net.prefixes import Prefix
from bgpflat.errors import SpecError

V3 = "projectcalico.org/v3"
V1 = "crd.projectcalico.org/v1"


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (64512, 64512),
        ("64513", 64513),
        ("1.10", 65546),
        ("0.1", 1),
        (4294967295, 4294967295),
        ("65535.65535", 4294967295),
    ],
)
def test_as_numbers_two_four_byte_and_dotted(value: object, number: int) -> None:
    assert parse_as_number(value) == number


@pytest.mark.parametrize("value", [0, -1, "0.0", 4294967296, "1.2.3", "", None, 1.5, True])
def test_bad_as_numbers(value: object) -> None:
    with pytest.raises(SpecError):
        parse_as_number(value)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("10.200.20.254", PeerAddress("10.200.20.254", None)),
        ("10.200.20.254:1790", PeerAddress("10.200.20.254", 1790)),
        ("fd00::1", PeerAddress("fd00::1", None)),
        ("FD00:0::1", PeerAddress("fd00::1", None)),
        ("[fd00::1]:179", PeerAddress("fd00::1", 179)),
    ],
)
def test_peer_ip_forms(text: str, address: PeerAddress) -> None:
    assert parse_peer_ip(text) == address
    assert parse_peer_ip(str(address)) == address


def test_paths_round_trip_including_odd_keys() -> None:
    path = ("metadata", "labels", "app.kubernetes.io/managed-by")
    assert format_path(path) == 'metadata.labels["app.kubernetes.io/managed-by"]'
    assert parse_path(format_path(path)) == path
    assert format_path(("peers", 2, "asNumber")) == "peers[2].asNumber"
    assert parse_path("items[0].spec.cidr") == ("items", 0, "spec", "cidr")
    assert parse_path('a["x\\"y"]') == ("a", 'x"y')


def test_ippool_defaults_and_fields() -> None:
    pool = parse_resource(
        {
            "apiVersion": V3,
            "kind": "IPPool",
            "metadata": {"name": "p"},
            "spec": {"cidr": "10.233.64.0/18", "ipipMode": ""},
        }
    )
    assert isinstance(pool, IPPool)
    assert pool.cidr == Prefix.parse("10.233.64.0/18")
    assert (pool.ipip_mode, pool.vxlan_mode, pool.node_selector) == ("Never", "Never", "all()")
    assert pool.effective_block_size == 26
    assert pool.allowed_uses == ("Workload", "Tunnel")
    v6 = parse_resource({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p6"}, "spec": {"cidr": "fd00::/48"}})
    assert isinstance(v6, IPPool) and v6.effective_block_size == 122


def test_v1_objects_read_like_v3_with_labels_from_the_metadata_annotation() -> None:
    obj = {
        "apiVersion": V1,
        "kind": "BGPPeer",
        "metadata": {
            "name": "peer-switch",
            "labels": {"projectcalico.org/x": "1"},
            "annotations": {
                "projectcalico.org/metadata": json.dumps(
                    {"labels": {"app.kubernetes.io/managed-by": "bgpflat"}, "annotations": {"note": "n"}}
                )
            },
        },
        "spec": {"peerIP": "10.200.20.254", "asNumber": 65200},
    }
    peer = parse_resource(obj)
    assert isinstance(peer, BGPPeer)
    assert managed_by(peer) == "bgpflat"
    assert dict(peer.labels) == {"app.kubernetes.io/managed-by": "bgpflat", "projectcalico.org/x": "1"}
    assert dict(peer.annotations) == {"note": "n"}


def test_legacy_v1_pool_fields_are_converted_on_read() -> None:
    pool = parse_resource(
        {
            "apiVersion": V1,
            "kind": "IPPool",
            "metadata": {"name": "old"},
            "spec": {"cidr": "192.168.0.0/16", "ipip": {"enabled": True, "mode": "cross-subnet"}, "nat-outgoing": True},
        }
    )
    assert isinstance(pool, IPPool)
    assert (pool.ipip_mode, pool.nat_outgoing) == ("CrossSubnet", True)


def test_bgpfilter_is_read() -> None:
    bgp_filter = parse_resource(
        {
            "apiVersion": V3,
            "kind": "BGPFilter",
            "metadata": {"name": "no-remote"},
            "spec": {
                "exportV4": [
                    {"action": "Reject", "source": "RemotePeers"},
                    {
                        "action": "Accept",
                        "cidr": "10.0.0.0/8",
                        "matchOperator": "In",
                        "prefixLength": {"min": 24, "max": 32},
                    },
                ]
            },
        }
    )
    assert isinstance(bgp_filter, BGPFilter)
    assert bgp_filter.export_v4[0].source == "RemotePeers"
    rule = bgp_filter.export_v4[1]
    assert (rule.cidr, rule.prefix_length_min, rule.prefix_length_max) == (Prefix.parse("10.0.0.0/8"), 24, 32)


def test_bgpconfiguration_fields_and_defaults() -> None:
    config = parse_resource(
        {
            "apiVersion": V3,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "serviceClusterIPs": [{"cidr": "10.233.0.0/18"}],
                "communities": [{"name": "c", "value": "65000:1"}],
                "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}],
            },
        }
    )
    assert isinstance(config, BGPConfiguration)
    assert config.mesh_enabled is True
    assert config.effective_as_number == 64512
    assert config.effective_listen_port == 179
    assert config.service_cluster_ips == (Prefix.parse("10.233.0.0/18"),)
    assert config.communities[0] == ("c", "65000:1")
    assert config.prefix_advertisements[0] == (Prefix.parse("10.0.0.0/8"), ("c",))


@pytest.mark.parametrize(
    "spec_kind",
    [
        (
            "IPPool",
            {
                "cidr": "10.233.64.0/18",
                "blockSize": 24,
                "ipipMode": "Never",
                "vxlanMode": "Never",
                "natOutgoing": True,
                "nodeSelector": "all()",
            },
        ),
        (
            "BGPPeer",
            {
                "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'",
                "peerIP": "10.200.20.254",
                "asNumber": 65200,
                "password": {"secretKeyRef": {"name": "s", "key": "k"}},
                "filters": ["f"],
            },
        ),
        (
            "BGPConfiguration",
            {
                "nodeToNodeMeshEnabled": True,
                "asNumber": 64513,
                "serviceClusterIPs": [{"cidr": "10.233.0.0/18"}],
                "listenPort": 179,
            },
        ),
    ],
)
def test_to_manifest_round_trips_and_keeps_only_set_fields(spec_kind: tuple[str, dict[str, Any]]) -> None:
    kind, spec = spec_kind
    name = "default" if kind == "BGPConfiguration" else "x"
    resource = parse_and_validate({"apiVersion": V3, "kind": kind, "metadata": {"name": name}, "spec": spec})
    manifest = to_manifest(resource)
    assert manifest == {"apiVersion": V3, "kind": kind, "metadata": {"name": name}, "spec": spec}
    assert parse_resource(manifest) == resource


def test_to_manifest_of_a_model_built_in_code_leaves_defaults_out() -> None:
    pool = IPPool(name="p", cidr=Prefix.parse("10.0.0.0/16"), nat_outgoing=True)
    assert to_manifest(pool)["spec"] == {"cidr": "10.0.0.0/16", "natOutgoing": True}
    assert to_manifest(BGPConfiguration(name="default"))["spec"] == {}


@pytest.mark.parametrize(
    ("kind", "key", "a", "b"),
    [
        ("IPPool", "ipipMode", None, "Never"),
        ("IPPool", "ipipMode", "", "Never"),
        ("IPPool", "nodeSelector", None, "all()"),
        ("IPPool", "allowedUses", ["Tunnel", "Workload"], None),
        ("BGPPeer", "asNumber", "1.10", 65546),
        ("BGPPeer", "peerIP", "FD00::1", "fd00::1"),
        ("BGPPeer", "nodeSelector", 'a == "x"', "a == 'x'"),
        ("BGPConfiguration", "nodeToNodeMeshEnabled", None, True),
        ("BGPConfiguration", "asNumber", None, 64512),
        ("BGPConfiguration", "listenPort", None, 179),
        (
            "BGPConfiguration",
            "serviceClusterIPs",
            [{"cidr": "10.0.0.0/8"}, {"cidr": "10.1.0.0/16"}],
            [{"cidr": "10.1.0.0/16"}, {"cidr": "10.0.0.0/8"}],
        ),
    ],
)
def test_values_calico_treats_alike_normalize_alike(kind: str, key: str, a: object, b: object) -> None:
    assert normalize_spec_value(kind, key, a) == normalize_spec_value(kind, key, b)


def test_block_size_default_depends_on_family() -> None:
    assert normalize_spec_value("IPPool", "blockSize", None, spec={"cidr": "10.0.0.0/8"}) == 26
    assert normalize_spec_value("IPPool", "blockSize", None, spec={"cidr": "fd00::/48"}) == 122
    assert normalize_spec_value("IPPool", "blockSize", 26, spec={"cidr": "10.0.0.0/8"}) == 26
