"""Every Calico rule bgpflat enforces before a write: a bad object and its exact message (calico-facts §1)."""

from __future__ import annotations

from typing import Any

import pytest

from bgpflat.core.calico import parse_and_validate, parse_resource, validate
from bgpflat.errors import SpecError, ValidationError

V3 = "projectcalico.org/v3"


def manifest(kind: str, spec: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
    default_name = {"IPPool": "pool", "BGPPeer": "peer", "BGPConfiguration": "default", "BGPFilter": "f"}[kind]
    return {"apiVersion": V3, "kind": kind, "metadata": {"name": name or default_name}, "spec": spec}


POOL = {"cidr": "10.244.0.0/16"}
PEER = {"peerIP": "10.0.0.1", "asNumber": 65000}

# (kind, spec, name, message, path, fix)
CASES: list[tuple[str, dict[str, Any], str | None, str, str, str | None]] = [
    # --- IPPool
    ("IPPool", {"cidr": "10.244.0.1/16"}, None, "'10.244.0.1/16' has host bits set", "spec.cidr", "use 10.244.0.0/16"),
    (
        "IPPool",
        {"cidr": "10.244.0.0/33"},
        None,
        "'10.244.0.0/33' has an invalid prefix length",
        "spec.cidr",
        "use a length from 0 to 32",
    ),
    ("IPPool", {}, None, "IPPool needs a cidr", "spec.cidr", "set spec.cidr, e.g. 10.244.0.0/16"),
    (
        "IPPool",
        {"cidr": "169.254.0.0/24"},
        None,
        "IPPool CIDR 169.254.0.0/24 overlaps the link-local range 169.254.0.0/16",
        "spec.cidr",
        "choose a CIDR outside 169.254.0.0/16",
    ),
    (
        "IPPool",
        {"cidr": "fe80::/64", "blockSize": 122},
        None,
        "IPPool CIDR fe80::/64 overlaps the link-local range fe80::/10",
        "spec.cidr",
        "choose a CIDR outside fe80::/10",
    ),
    (
        "IPPool",
        {**POOL, "blockSize": 19},
        None,
        "blockSize 19 is out of range for an IPv4 pool",
        "spec.blockSize",
        "use a blockSize from 20 to 32",
    ),
    (
        "IPPool",
        {**POOL, "blockSize": 33},
        None,
        "blockSize 33 is out of range for an IPv4 pool",
        "spec.blockSize",
        "use a blockSize from 20 to 32",
    ),
    (
        "IPPool",
        {"cidr": "fd00::/48", "blockSize": 115},
        None,
        "blockSize 115 is out of range for an IPv6 pool",
        "spec.blockSize",
        "use a blockSize from 116 to 128",
    ),
    (
        "IPPool",
        {"cidr": "10.244.0.0/28"},
        None,
        "IPPool CIDR 10.244.0.0/28 is smaller than one block (blockSize 26)",
        "spec.blockSize",
        "use a blockSize of at least 28, or a larger CIDR",
    ),
    (
        "IPPool",
        {**POOL, "ipipMode": "Sometimes"},
        None,
        "invalid ipipMode 'Sometimes'",
        "spec.ipipMode",
        "use Never, Always or CrossSubnet",
    ),
    (
        "IPPool",
        {**POOL, "vxlanMode": "always"},
        None,
        "invalid vxlanMode 'always'",
        "spec.vxlanMode",
        "use Never, Always or CrossSubnet",
    ),
    (
        "IPPool",
        {**POOL, "ipipMode": "Always", "vxlanMode": "CrossSubnet"},
        None,
        "IPIP and VXLAN cannot both be enabled on one IPPool",
        "spec.vxlanMode",
        "set ipipMode or vxlanMode to Never",
    ),
    (
        "IPPool",
        {"cidr": "fd00::/48", "ipipMode": "CrossSubnet"},
        None,
        "IPIP is not supported on IPv6 pools",
        "spec.ipipMode",
        "set ipipMode: Never (use vxlanMode to encapsulate IPv6)",
    ),
    (
        "IPPool",
        {**POOL, "nodeSelector": "role = 'x'"},
        None,
        "invalid nodeSelector: invalid selector \"role = 'x'\": expected an operator (==, !=, in, not in, contains, "
        "starts with, ends with) at position 6, found \"= 'x'\"",
        "spec.nodeSelector",
        None,
    ),
    (
        "IPPool",
        {**POOL, "nodeSelector": "global()"},
        None,
        "nodeSelector global() is not allowed on an IPPool",
        "spec.nodeSelector",
        "use all()",
    ),
    (
        "IPPool",
        {**POOL, "allowedUses": ["Workload", "Pods"]},
        None,
        "invalid allowedUses 'Pods'",
        "spec.allowedUses[1]",
        "use Workload, Tunnel or LoadBalancer",
    ),
    (
        "IPPool",
        {**POOL, "allowedUses": ["LoadBalancer", "Workload"]},
        None,
        "allowedUses LoadBalancer cannot be combined with Workload or Tunnel",
        "spec.allowedUses",
        "use a separate pool for LoadBalancer addresses",
    ),
    (
        "IPPool",
        {**POOL, "allowedUses": ["LoadBalancer"], "vxlanMode": "Always"},
        None,
        "a LoadBalancer pool cannot use IPIP or VXLAN",
        "spec.ipipMode",
        "set ipipMode and vxlanMode to Never",
    ),
    (
        "IPPool",
        {**POOL, "allowedUses": ["LoadBalancer"], "disableBGPExport": True},
        None,
        "a LoadBalancer pool cannot set disableBGPExport",
        "spec.disableBGPExport",
        "remove disableBGPExport",
    ),
    (
        "IPPool",
        {**POOL, "allowedUses": ["LoadBalancer"], "nodeSelector": "has(lb)"},
        None,
        "a LoadBalancer pool needs nodeSelector all()",
        "spec.nodeSelector",
        "set nodeSelector: all()",
    ),
    (
        "IPPool",
        {**POOL, "assignmentMode": "Auto"},
        None,
        "invalid assignmentMode 'Auto'",
        "spec.assignmentMode",
        "use Automatic or Manual",
    ),
    (
        "IPPool",
        {**POOL, "ipip": {"enabled": True}},
        None,
        "ipip is deprecated and refused by Calico",
        "spec.ipip",
        "use ipipMode instead",
    ),
    (
        "IPPool",
        {**POOL, "nat-outgoing": True},
        None,
        "nat-outgoing is deprecated and refused by Calico",
        "spec.nat-outgoing",
        "use natOutgoing instead",
    ),
    (
        "IPPool",
        {**POOL, "natOutgoing": "yes"},
        None,
        "expected true or false, got 'yes'",
        "spec.natOutgoing",
        "write true or false, unquoted",
    ),
    ("IPPool", {**POOL, "cird": "10.0.0.0/8"}, None, "unknown field 'cird'", "spec.cird", "did you mean 'cidr'?"),
    (
        "IPPool",
        POOL,
        "Default_Pool",
        "invalid IPPool name 'Default_Pool'",
        "metadata.name",
        "use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    ),
    (
        "IPPool",
        {**POOL, "namespaceSelector": "env in ('dev')"},
        None,
        "invalid namespaceSelector: invalid selector \"env in ('dev')\": expected '{' at position 8, found \"('dev')\"",
        "spec.namespaceSelector",
        None,
    ),
    # --- BGPFilter (read-only, still checked so that expected routes never guess)
    (
        "BGPFilter",
        {"exportV4": [{"action": "Drop"}]},
        None,
        "invalid action 'Drop'",
        "spec.exportV4[0].action",
        "use Accept or Reject",
    ),
    (
        "BGPFilter",
        {"importV6": [{"action": "Accept", "cidr": "fd00::/8", "matchOperator": "Within"}]},
        None,
        "invalid matchOperator 'Within'",
        "spec.importV6[0].matchOperator",
        "use Equal, NotEqual, In or NotIn",
    ),
    (
        "BGPFilter",
        {"exportV4": [{"action": "Reject", "source": "Mesh"}]},
        None,
        "invalid source 'Mesh'",
        "spec.exportV4[0].source",
        "use RemotePeers",
    ),
    (
        "BGPFilter",
        {"exportV4": [{"action": "Accept", "cidr": "10.0.0.0/8"}]},
        None,
        "a rule with a cidr needs a matchOperator",
        "spec.exportV4[0].matchOperator",
        "use Equal, NotEqual, In or NotIn",
    ),
    # --- BGPPeer
    (
        "BGPPeer",
        {**PEER, "node": "node-1", "nodeSelector": "all()"},
        None,
        "node and nodeSelector cannot both be set",
        "spec.nodeSelector",
        "use node for one node or nodeSelector for a set of nodes",
    ),
    (
        "BGPPeer",
        {**PEER, "node": "Node_1"},
        None,
        "invalid node name 'Node_1'",
        "spec.node",
        "use the Kubernetes node name",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.1", "peerSelector": "has(rr)"},
        None,
        "peerIP and peerSelector cannot both be set",
        "spec.peerSelector",
        "use peerIP for an outside router or peerSelector for Calico nodes",
    ),
    (
        "BGPPeer",
        {"peerSelector": "has(rr)", "asNumber": 64512},
        None,
        "asNumber must be empty when peerSelector is set",
        "spec.asNumber",
        "remove asNumber: the AS of the selected nodes is used",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.300", "asNumber": 65000},
        None,
        "invalid peerIP '10.0.0.300': '10.0.0.300' is not an IP address",
        "spec.peerIP",
        "use an address, IPv4:port or [IPv6]:port",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.1:0", "asNumber": 65000},
        None,
        "invalid port in peerIP '10.0.0.1:0'",
        "spec.peerIP",
        "use a port from 1 to 65535",
    ),
    (
        "BGPPeer",
        {"peerIP": "[fd00::1]:70000", "asNumber": 65000},
        None,
        "invalid port in peerIP '[fd00::1]:70000'",
        "spec.peerIP",
        "use a port from 1 to 65535",
    ),
    (
        "BGPPeer",
        {"peerIP": "1" * 65, "asNumber": 65000},
        None,
        "peerIP is longer than 64 characters",
        "spec.peerIP",
        "use an address, IPv4:port or [IPv6]:port",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.1", "asNumber": 4294967296},
        None,
        "AS number 4294967296 is out of range",
        "spec.asNumber",
        "use 1-4294967295 or dotted a.b with a, b in 0-65535",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.1", "asNumber": "1.65536"},
        None,
        "invalid AS number '1.65536': dotted parts must be 0-65535",
        "spec.asNumber",
        "use 1-4294967295 or dotted a.b with a, b in 0-65535",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.1", "asNumber": "AS65000"},
        None,
        "invalid AS number 'AS65000'",
        "spec.asNumber",
        "use 1-4294967295 or dotted a.b with a, b in 0-65535",
    ),
    (
        "BGPPeer",
        {"peerIP": "10.0.0.1", "asNumber": True},
        None,
        "AS number must be a number, got True",
        "spec.asNumber",
        "use 1-4294967295 or dotted a.b with a, b in 0-65535",
    ),
    (
        "BGPPeer",
        {**PEER, "localASNumber": "x"},
        None,
        "invalid AS number 'x'",
        "spec.localASNumber",
        "use 1-4294967295 or dotted a.b with a, b in 0-65535",
    ),
    (
        "BGPPeer",
        {**PEER, "nextHopMode": "keep"},
        None,
        "invalid nextHopMode 'keep'",
        "spec.nextHopMode",
        "use Auto, Self or Keep",
    ),
    (
        "BGPPeer",
        {**PEER, "nextHopMode": "Keep", "keepOriginalNextHop": True},
        None,
        "nextHopMode cannot be combined with keepOriginalNextHop: true",
        "spec.keepOriginalNextHop",
        "remove keepOriginalNextHop (deprecated) and use nextHopMode: Keep",
    ),
    (
        "BGPPeer",
        {**PEER, "sourceAddress": "NodeIP"},
        None,
        "invalid sourceAddress 'NodeIP'",
        "spec.sourceAddress",
        "use UseNodeIP or None",
    ),
    (
        "BGPPeer",
        {**PEER, "reversePeering": "Yes"},
        None,
        "invalid reversePeering 'Yes'",
        "spec.reversePeering",
        "use Auto or Manual",
    ),
    (
        "BGPPeer",
        {**PEER, "maxRestartTime": "2 minutes"},
        None,
        "invalid duration '2 minutes' for maxRestartTime",
        "spec.maxRestartTime",
        "use a duration such as 120s, 2m or 1m30s",
    ),
    (
        "BGPPeer",
        {**PEER, "keepaliveTime": "30"},
        None,
        "invalid duration '30' for keepaliveTime",
        "spec.keepaliveTime",
        "use a duration such as 120s, 2m or 1m30s",
    ),
    (
        "BGPPeer",
        {**PEER, "ttlSecurity": 256},
        None,
        "ttlSecurity must be 0-255 hops",
        "spec.ttlSecurity",
        "use the hop count to the peer",
    ),
    (
        "BGPPeer",
        {"peerSelector": "has(rr)", "reachableBy": "10.0.0.254"},
        None,
        "reachableBy needs a peerIP",
        "spec.reachableBy",
        "set peerIP or remove reachableBy",
    ),
    (
        "BGPPeer",
        {**PEER, "reachableBy": "fd00::1"},
        None,
        "reachableBy and peerIP must be the same address family",
        "spec.reachableBy",
        "use a gateway of the peer's address family",
    ),
    (
        "BGPPeer",
        {**PEER, "reachableBy": "gateway"},
        None,
        "reachableBy 'gateway' is not an IP address",
        "spec.reachableBy",
        "set the gateway address toward the peer",
    ),
    (
        "BGPPeer",
        {**PEER, "filters": ["Reject_All"]},
        None,
        "invalid BGPFilter name 'Reject_All'",
        "spec.filters[0]",
        "use a BGPFilter's name",
    ),
    (
        "BGPPeer",
        {"localWorkloadSelector": "has(vm)", "peerIP": "10.0.0.1", "asNumber": 65000},
        None,
        "localWorkloadSelector cannot be combined with peerIP or peerSelector",
        "spec.localWorkloadSelector",
        "remove peerIP and peerSelector",
    ),
    (
        "BGPPeer",
        {"localWorkloadSelector": "has(vm)"},
        None,
        "localWorkloadSelector needs an asNumber",
        "spec.asNumber",
        "set the workloads' AS number",
    ),
    (
        "BGPPeer",
        {**PEER, "peerSelector": None, "failureDetectionMode": "BFDIfDirectlyConnected"},
        None,
        "failureDetectionMode is a Calico Enterprise field; Calico Open Source has no such field",
        "spec.failureDetectionMode",
        "remove spec.failureDetectionMode",
    ),
    (
        "BGPPeer",
        {**PEER, "password": {"secretKeyRef": {"name": 7}}},
        None,
        "expected a string, got 7",
        "spec.password.secretKeyRef.name",
        "quote the value",
    ),
    (
        "BGPPeer",
        {**PEER, "peerSelector": "has(rr"},
        None,
        "invalid peerSelector: invalid selector 'has(rr': expected ')' at position 7, found the end",
        "spec.peerSelector",
        None,
    ),
    # --- BGPConfiguration
    (
        "BGPConfiguration",
        {"serviceClusterIPs": [{"cidr": "10.96.0.0/33"}]},
        None,
        "'10.96.0.0/33' has an invalid prefix length",
        "spec.serviceClusterIPs[0].cidr",
        "use a length from 0 to 32",
    ),
    (
        "BGPConfiguration",
        {"serviceClusterIPs": [{"cird": "10.96.0.0/12"}]},
        None,
        "expected a CIDR, got None",
        "spec.serviceClusterIPs[0].cidr",
        "write it as a.b.c.d/n or x::/n",
    ),
    (
        "BGPConfiguration",
        {"logSeverityScreen": "Verbose"},
        None,
        "invalid logSeverityScreen 'Verbose'",
        "spec.logSeverityScreen",
        "use Trace, Debug, Info, Warning, Error or Fatal (spelt exactly so)",
    ),
    (
        "BGPConfiguration",
        {"listenPort": 70000},
        None,
        "listenPort 70000 is out of range",
        "spec.listenPort",
        "use 1-65535",
    ),
    (
        "BGPConfiguration",
        {"listenPort": "bgp"},
        None,
        "listenPort must be a number, got 'bgp'",
        "spec.listenPort",
        "write the number unquoted",
    ),
    ("BGPConfiguration", {"bindMode": "All"}, None, "invalid bindMode 'All'", "spec.bindMode", "use None or NodeIP"),
    (
        "BGPConfiguration",
        {"serviceLoadBalancerAggregation": "On"},
        None,
        "invalid serviceLoadBalancerAggregation 'On'",
        "spec.serviceLoadBalancerAggregation",
        "use Enabled or Disabled",
    ),
    (
        "BGPConfiguration",
        {"programClusterRoutes": "Yes"},
        None,
        "invalid programClusterRoutes 'Yes'",
        "spec.programClusterRoutes",
        "use Enabled or Disabled",
    ),
    (
        "BGPConfiguration",
        {"ipv4NormalRoutePriority": 0},
        None,
        "ipv4NormalRoutePriority 0 is out of range",
        "spec.ipv4NormalRoutePriority",
        "use 1-2147483646",
    ),
    (
        "BGPConfiguration",
        {"localWorkloadPeeringIPV4": "fd00::1"},
        None,
        "localWorkloadPeeringIPV4 'fd00::1' is not an IPv4 address",
        "spec.localWorkloadPeeringIPV4",
        "use an IPv4 address",
    ),
    (
        "BGPConfiguration",
        {"nodeToNodeMeshEnabled": False, "nodeMeshPassword": {"secretKeyRef": {"name": "s", "key": "k"}}},
        None,
        "nodeMeshPassword cannot be set when nodeToNodeMeshEnabled is false",
        "spec.nodeMeshPassword",
        "remove nodeMeshPassword or enable the mesh",
    ),
    (
        "BGPConfiguration",
        {"nodeToNodeMeshEnabled": False, "nodeMeshMaxRestartTime": "120s"},
        None,
        "nodeMeshMaxRestartTime cannot be set when nodeToNodeMeshEnabled is false",
        "spec.nodeMeshMaxRestartTime",
        "remove nodeMeshMaxRestartTime or enable the mesh",
    ),
    (
        "BGPConfiguration",
        {"nodeMeshMaxRestartTime": "soon"},
        None,
        "invalid duration 'soon' for nodeMeshMaxRestartTime",
        "spec.nodeMeshMaxRestartTime",
        "use a duration such as 120s, 2m or 1m30s",
    ),
    (
        "BGPConfiguration",
        {"ignoredInterfaces": [" "]},
        None,
        "invalid ignoredInterfaces entry ' '",
        "spec.ignoredInterfaces[0]",
        "name an interface: 1-15 letters, digits, '_', '.', '-', with '*' as a wildcard (not '*' alone)",
    ),
    (
        "BGPConfiguration",
        {"communities": [{"name": "a b", "value": "65000:1"}]},
        None,
        "invalid community name 'a b'",
        "spec.communities[0].name",
        "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
    ),
    (
        "BGPConfiguration",
        {
            "communities": [{"name": "c", "value": "65536:1"}],
            "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}],
        },
        None,
        "invalid community value '65536:1'",
        "spec.communities[0].value",
        "use aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)",
    ),
    (
        "BGPConfiguration",
        {
            "communities": [{"name": "c", "value": "1:2:4294967296"}],
            "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}],
        },
        None,
        "invalid community value '1:2:4294967296'",
        "spec.communities[0].value",
        "use aa:nn (16-bit parts) or aa:nn:mm (32-bit parts)",
    ),
    (
        "BGPConfiguration",
        {"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["nope"]}]},
        None,
        "community 'nope' is neither a defined community name nor a value aa:nn or aa:nn:mm",
        "spec.prefixAdvertisements[0].communities[0]",
        "define it under spec.communities or write the value",
    ),
    (
        "BGPConfiguration",
        {"prefixAdvertisements": [{"cidr": "10.0.0.0/x"}]},
        None,
        "'10.0.0.0/x' has an invalid prefix length",
        "spec.prefixAdvertisements[0].cidr",
        "use a length from 0 to 32",
    ),
]


@pytest.mark.parametrize(
    ("kind", "spec", "name", "message", "path", "fix"),
    CASES,
    ids=[f"{c[0]}:{c[3][:60]}" for c in CASES],
)
def test_rule_refuses_bad_input_with_exact_message(
    kind: str, spec: dict[str, Any], name: str | None, message: str, path: str, fix: str | None
) -> None:
    with pytest.raises(SpecError) as caught:
        parse_and_validate(manifest(kind, spec, name=name))
    assert caught.value.message == message
    assert caught.value.path == path
    if fix is not None:
        assert caught.value.fix == fix
    else:
        assert caught.value.fix


def test_cross_field_rules_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        parse_and_validate(manifest("IPPool", {**POOL, "ipipMode": "Always", "vxlanMode": "Always"}))


@pytest.mark.parametrize(
    ("old_spec", "new_spec", "message", "path"),
    [
        (POOL, {"cidr": "10.245.0.0/16"}, "IPPool CIDR cannot be modified", "spec.cidr"),
        ({**POOL, "blockSize": 26}, {**POOL, "blockSize": 24}, "IPPool BlockSize cannot be modified", "spec.blockSize"),
        (POOL, {**POOL, "blockSize": 24}, "IPPool BlockSize cannot be modified", "spec.blockSize"),
        (
            {**POOL, "allowedUses": ["LoadBalancer"]},
            {**POOL, "allowedUses": ["Workload"]},
            "allowedUses cannot change from LoadBalancer to Workload or Tunnel",
            "spec.allowedUses",
        ),
    ],
)
def test_immutable_fields_refused_on_update(
    old_spec: dict[str, Any], new_spec: dict[str, Any], message: str, path: str
) -> None:
    old = parse_resource(manifest("IPPool", old_spec))
    with pytest.raises(ValidationError) as caught:
        parse_and_validate(manifest("IPPool", new_spec), old=old)
    assert caught.value.message == message
    assert caught.value.path == path
    assert caught.value.fix == (
        "create a new pool with the new value, move workloads to it, then disable and delete the old pool"
    )


def test_unchanged_immutable_fields_pass_on_update() -> None:
    old = parse_resource(manifest("IPPool", {**POOL, "ipipMode": "Always"}))
    parse_and_validate(manifest("IPPool", {**POOL, "blockSize": 26, "ipipMode": "Never"}), old=old)


@pytest.mark.parametrize(
    ("document", "message", "path", "fix"),
    [
        (
            {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool", "metadata": {"name": "p"}, "spec": POOL},
            "unsupported apiVersion 'crd.projectcalico.org/v1' for IPPool",
            "apiVersion",
            "use apiVersion: projectcalico.org/v3 (the spec is the same; bgpflat writes projectcalico.org/v3 only)",
        ),
        (
            {"apiVersion": V3, "kind": "Node", "metadata": {"name": "n"}},
            "unsupported kind 'Node'",
            "kind",
            "bgpflat handles IPPool, BGPPeer and BGPConfiguration (and reads BGPFilter)",
        ),
        (
            {"apiVersion": V3, "kind": "IPPool", "metadata": {}, "spec": POOL},
            "IPPool has no metadata.name",
            "metadata.name",
            "set metadata.name",
        ),
        (
            {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p", "namespace": "default"}, "spec": POOL},
            "IPPool is cluster-scoped and cannot have a namespace",
            "metadata.namespace",
            "remove metadata.namespace",
        ),
        (
            {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": POOL, "specs": {}},
            "unknown field 'specs'",
            "specs",
            "did you mean 'spec'?",
        ),
        (
            {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p", "labels": {"a": 1}}, "spec": POOL},
            "labels and annotations must map strings to strings, got 'a': 1",
            "metadata.labels.a",
            "quote the value",
        ),
    ],
)
def test_manifest_shape_errors(document: dict[str, Any], message: str, path: str, fix: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_and_validate(document)
    assert (caught.value.message, caught.value.path, caught.value.fix) == (message, path, fix)


def test_validate_names_the_file_and_prefixes_the_path() -> None:
    pool = parse_resource(manifest("IPPool", {**POOL, "ipipMode": "Always", "vxlanMode": "Always"}))
    with pytest.raises(ValidationError) as caught:
        validate(pool, file="pools.yaml", path="items[3]")
    assert caught.value.file == "pools.yaml"
    assert caught.value.path == "items[3].spec.vxlanMode"
    assert str(caught.value) == (
        "pools.yaml: items[3].spec.vxlanMode: IPIP and VXLAN cannot both be enabled on one IPPool "
        "(fix: set ipipMode or vxlanMode to Never)"
    )


def test_observed_objects_breaking_rules_still_parse() -> None:
    # A v1 write on Calico <= 3.31 is not validated; reading it must not fail.
    pool = parse_resource(
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "IPPool",
            "metadata": {"name": "p"},
            "spec": {**POOL, "ipipMode": "Always", "vxlanMode": "Always", "futureField": 1},
        }
    )
    assert pool.ipip_mode == "Always"
    assert pool.vxlan_mode == "Always"


def test_a_disabled_pool_may_be_smaller_than_a_block() -> None:
    parse_and_validate(manifest("IPPool", {"cidr": "10.244.0.0/28", "disabled": True}))


def test_valid_objects_pass() -> None:
    parse_and_validate(manifest("IPPool", {"cidr": "fd00:10::/48", "blockSize": 122, "vxlanMode": "CrossSubnet"}))
    parse_and_validate(manifest("IPPool", {**POOL, "allowedUses": ["LoadBalancer"]}))
    parse_and_validate(
        manifest(
            "BGPPeer",
            {
                "peerIP": "[fd00::1]:1790",
                "asNumber": "4200000000",
                "node": "node-1",
                "nextHopMode": "Keep",
                "ttlSecurity": 1,
                "maxRestartTime": "1m30s",
                "reachableBy": "fd00::fe",
                "filters": ["reject-remote"],
            },
        )
    )
    parse_and_validate(manifest("BGPPeer", {"peerSelector": "has(route-reflector)"}))
    parse_and_validate(
        manifest(
            "BGPConfiguration",
            {
                "asNumber": "1.10",
                "listenPort": 1790,
                "logSeverityScreen": "debug",
                "communities": [{"name": "office", "value": "65000:100"}],
                "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["office", "65000:1:2"]}],
            },
        )
    )
    parse_and_validate(
        manifest("BGPConfiguration", {"listenPort": 1790, "logSeverityScreen": "Info"}, name="node.node-1")
    )
