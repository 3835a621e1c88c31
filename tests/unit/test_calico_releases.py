"""Calico's rules release by release, and the line between a refusal and a warning.

A manifest Calico accepts is never refused: bgpflat's stricter opinions come back as warnings
(``Advice``). Where releases differ, the release asked for decides.
"""

from __future__ import annotations

from typing import Any

import pytest

import bgpflat
from bgpflat.core.calico import check_manifest, release_for
from bgpflat.errors import SpecError

V3 = "projectcalico.org/v3"
POOL = {"cidr": "10.244.0.0/16"}
PEER = {"peerIP": "10.0.0.1", "asNumber": 65000}


def manifest(kind: str, spec: dict[str, Any], *, name: str | None = None, **metadata: Any) -> dict[str, Any]:
    default_name = {"IPPool": "pool", "BGPPeer": "peer", "BGPConfiguration": "default", "BGPFilter": "f"}[kind]
    return {"apiVersion": V3, "kind": kind, "metadata": {"name": name or default_name, **metadata}, "spec": spec}


def refusal(document: dict[str, Any], version: str | None = None) -> tuple[str, str | None]:
    with pytest.raises(SpecError) as caught:
        check_manifest(document, release=release_for(version))
    return caught.value.message, caught.value.path


def warnings(document: dict[str, Any], version: str | None = None) -> list[str]:
    _, notes = check_manifest(document, release=release_for(version))
    return [str(note) for note in notes]


# Objects Calico's validator accepts and bgpflat used to refuse: now warnings, with the path and fix.
ACCEPTED_WITH_ADVICE = [
    (
        manifest("BGPPeer", {**PEER, "password": {"secretKeyRef": {"name": "bgp"}}}),
        "spec.password.secretKeyRef: the secretKeyRef lacks a name or a key: calico-node finds no secret and sets "
        "no password (fix: password: {secretKeyRef: {name: <secret>, key: <key>}})",
    ),
    (
        manifest("BGPPeer", {"asNumber": 65000}),
        "spec.peerIP: a BGPPeer with neither peerIP nor peerSelector peers with nothing "
        "(fix: set peerIP to the router's address (or peerSelector to select Calico nodes))",
    ),
    (
        manifest("BGPPeer", {"peerIP": "10.0.0.1"}),
        "spec.asNumber: a BGPPeer with a peerIP but no asNumber is taken to be in AS 0, which no session accepts "
        "(fix: set the peer's AS number)",
    ),
    (
        manifest("BGPConfiguration", {"listenPort": 1790}, name="global"),
        "metadata.name: BGPConfiguration name 'global' is neither 'default' nor 'node.<nodename>'; calico-node "
        "ignores it (fix: name it default (global) or node.<nodename> (one node))",
    ),
    (
        manifest(
            "BGPConfiguration",
            {
                "communities": [{"name": "used", "value": "65000:1"}, {"name": "spare", "value": "65000:2"}],
                "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["used"]}],
            },
        ),
        "spec.communities[1].name: community 'spare' is defined but not used in prefixAdvertisements "
        "(fix: reference it in prefixAdvertisements[].communities or remove it)",
    ),
    (
        manifest(
            "BGPFilter",
            {
                "exportV4": [
                    {
                        "action": "Accept",
                        "cidr": "10.0.0.0/8",
                        "matchOperator": "In",
                        "prefixLength": {"min": 24, "max": 16},
                    }
                ]
            },
        ),
        "spec.exportV4[0].prefixLength: prefixLength min 24 is above max 16: the rule matches nothing (fix: swap them)",
    ),
]


@pytest.mark.parametrize(("document", "warning"), ACCEPTED_WITH_ADVICE, ids=[w[:50] for _, w in ACCEPTED_WITH_ADVICE])
def test_what_calico_accepts_is_a_warning_never_a_refusal(document: dict[str, Any], warning: str) -> None:
    assert warning in warnings(document, "v3.31.0")
    bgpflat.validate_manifest(document, calico_version="v3.31.0")  # accepted


# Objects bgpflat used to accept and Calico refuses (the kinds of misses calico#… tables showed).
REFUSED = [
    (manifest("IPPool", {**POOL, "namespaceSelector": "all()"}), "spec.namespaceSelector"),  # default uses: Tunnel
    (manifest("IPPool", {**POOL, "nodeSelector": "global() && has(a)"}), "spec.nodeSelector"),
    (
        manifest("IPPool", {**POOL, "allowedUses": ["Workload"], "namespaceSelector": "global()"}),
        "spec.namespaceSelector",
    ),
    (manifest("IPPool", {**POOL, "allowedUses": ["LoadBalancer"], "nodeSelector": " all()"}), "spec.nodeSelector"),
    (manifest("IPPool", POOL, labels={"bad key!": "x"}), 'metadata.labels["bad key!"]'),
    (manifest("IPPool", POOL, labels={"role": "-edge"}), "metadata.labels.role"),
    (manifest("IPPool", POOL, annotations={"example.com/a/b": "x"}), 'metadata.annotations["example.com/a/b"]'),
    (manifest("BGPConfiguration", {"asNumber": 0}, name="node.node-1"), "spec.asNumber"),  # set, if only to 0
    (manifest("BGPConfiguration", {"nodeToNodeMeshEnabled": True}, name="node.node-1"), "spec.nodeToNodeMeshEnabled"),
    (
        manifest("BGPConfiguration", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}, name="global"),
        "spec.serviceClusterIPs",
    ),
    (manifest("BGPPeer", {**PEER, "reversePeering": "Yes"}), "spec.reversePeering"),  # the v1 CRD's enum
    (manifest("BGPConfiguration", {"serviceLoadBalancerAggregation": "On"}), "spec.serviceLoadBalancerAggregation"),
    (manifest("IPPool", {**POOL, "blockSize": "26"}), "spec.blockSize"),  # Go decodes no string into an int
    (manifest("BGPPeer", {**PEER, "peerIP": " 10.0.0.1"}), "spec.peerIP"),  # Go's net.ParseIP takes no spaces
    (manifest("BGPPeer", {**PEER, "peerIP": "fe80::1%eth0"}), "spec.peerIP"),  # ...and no zone
    (manifest("BGPConfiguration", {"localWorkloadPeeringIPV6": "::ffff:1.2.3.4"}), "spec.localWorkloadPeeringIPV6"),
    (manifest("BGPPeer", {**PEER, "ttlSecurity": "1"}), "spec.ttlSecurity"),
    (manifest("BGPConfiguration", {"ignoredInterfaces": ["*"]}), "spec.ignoredInterfaces[0]"),
    (manifest("BGPConfiguration", {"ignoredInterfaces": ["a-very-long-interface"]}), "spec.ignoredInterfaces[0]"),
    (manifest("BGPConfiguration", {"logSeverityScreen": "info"}), "spec.logSeverityScreen"),
    (
        manifest(
            "BGPConfiguration",
            {
                "communities": [{"name": "Office", "value": "1:1"}],
                "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["Office"]}],
            },
        ),
        "spec.communities[0].name",
    ),
    (manifest("BGPConfiguration", {"communities": [{"name": "a", "value": "1:1"}]}), "spec.communities"),
    (
        manifest("BGPConfiguration", {"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["1:70000"]}]}),
        "spec.prefixAdvertisements[0].communities[0]",
    ),
    (
        manifest("BGPConfiguration", {"prefixAdvertisements": [{"cidr": "10.0.0.0/8"}]}),
        "spec.prefixAdvertisements[0].communities",
    ),
    (manifest("BGPConfiguration", {"serviceClusterIPs": [{"cidr": "10.96.0.1/12"}]}), "spec.serviceClusterIPs[0].cidr"),
    (manifest("BGPFilter", {"exportV4": [{"action": "Accept", "matchOperator": "In"}]}), "spec.exportV4[0].cidr"),
    (manifest("BGPFilter", {"exportV4": [{"action": "Accept", "prefixLength": {"min": 8}}]}), "spec.exportV4[0].cidr"),
    (
        manifest("BGPFilter", {"importV6": [{"action": "Reject", "cidr": "10.0.0.0/8", "matchOperator": "In"}]}),
        "spec.importV6[0].cidr",
    ),
    (
        manifest(
            "BGPFilter",
            {
                "exportV4": [
                    {"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "In", "prefixLength": {"max": 33}}
                ]
            },
        ),
        "spec.exportV4[0].prefixLength.max",
    ),
    (manifest("BGPFilter", {"exportV4": [{"action": "Accept", "interface": "eth0 "}]}), "spec.exportV4[0].interface"),
    (manifest("BGPFilter", {"exportV4": [{"cidr": "10.0.0.0/8", "matchOperator": "In"}]}), "spec.exportV4[0].action"),
    (
        manifest("BGPFilter", {"exportV4": [{"action": "Accept", "cidr": "10.0.0.1/8", "matchOperator": "In"}]}),
        "spec.exportV4[0].cidr",
    ),
    (manifest("BGPFilter", {"exportV4": [{"action": "Accept", "peer": "x"}]}), "spec.exportV4[0].peer"),
]


@pytest.mark.parametrize(("document", "path"), REFUSED, ids=[p for _, p in REFUSED])
def test_what_calico_refuses_is_refused_at_the_field(document: dict[str, Any], path: str) -> None:
    assert refusal(document, "v3.31.0")[1] == path


def test_as_number_zero_is_unset_however_written() -> None:
    for written in (0, "0", "0.0"):
        peer = bgpflat.validate_manifest(manifest("BGPPeer", {"peerIP": "10.0.0.1", "asNumber": written}))
        assert isinstance(peer, bgpflat.core.calico.BGPPeer) and peer.as_number is None


def test_block_size_zero_is_calicos_default() -> None:
    pool, notes = check_manifest(manifest("IPPool", {**POOL, "blockSize": 0}), release=release_for("3.31"))
    assert isinstance(pool, bgpflat.core.calico.IPPool)
    assert pool.effective_block_size == 26
    assert notes == ()


def test_fields_follow_the_release_that_added_them() -> None:
    peer = manifest("BGPPeer", {**PEER, "keepaliveTime": "30s"})
    assert refusal(peer, "v3.31.0") == (
        "spec.keepaliveTime does not exist in Calico v3.31 (added in Calico v3.32)",
        "spec.keepaliveTime",
    )
    assert warnings(peer, "v3.32.1") == []
    pool = manifest("IPPool", {**POOL, "allowedUses": ["Workload"], "namespaceSelector": "all()"})
    assert refusal(pool, "v3.30.1")[1] == "spec.namespaceSelector"
    assert warnings(pool, "v3.31.0") == []


def test_schema_enums_are_refused_only_where_a_schema_enforces_them() -> None:
    # v3.31's CRDs carry no enum for bindMode (v3.32's do): Calico stores any value there.
    config = manifest("BGPConfiguration", {"bindMode": "All"})
    assert warnings(config, "v3.31.0") == [
        "spec.bindMode: bindMode 'All' is not one Calico knows; calico-node treats it as unset "
        "(fix: use None or NodeIP)"
    ]
    assert refusal(config, "v3.32.0") == ("invalid bindMode 'All'", "spec.bindMode")
    assert refusal(manifest("BGPPeer", {**PEER, "nextHopMode": "keep"}), "v3.31.0")[1] == "spec.nextHopMode"


def test_log_severity_spelling_changed_with_the_v3_crds() -> None:
    config = manifest("BGPConfiguration", {"logSeverityScreen": "debug"})
    assert refusal(config, "v3.31.0") == ("invalid logSeverityScreen 'debug'", "spec.logSeverityScreen")
    assert warnings(config, "v3.32.0") == [
        "spec.logSeverityScreen: logSeverityScreen 'debug' is accepted by the API server but refused by calicoctl "
        "(fix: write Debug)"
    ]


def test_release_for_names_what_it_assumed() -> None:
    assert release_for("v3.31.0").describe() == "Calico v3.31 validation rules"
    assert (
        release_for("v3.29.3").describe()
        == "Calico v3.30 validation rules (v3.29.3 is older than v3.30; its rules are used)"
    )
    assert release_for(None).describe() == (
        "Calico v3.32 validation rules (Calico version not known; assuming v3.32.0)"
    )


CLUSTER_V3_31 = [
    {
        "apiVersion": "projectcalico.org/v3",
        "kind": "ClusterInformation",
        "metadata": {"name": "default"},
        "spec": {"calicoVersion": "v3.31.0", "datastoreReady": True},
    }
]


def test_plan_follows_the_clusters_release_and_says_so() -> None:
    desired = bgpflat.load_spec(manifest("BGPPeer", {"peerIP": "10.0.0.1"}, name="tor"))
    plan = bgpflat.plan(desired, CLUSTER_V3_31)
    findings = {(f.code, f.severity, f.message) for f in plan.findings}
    assert ("validation-rules", "info", "objects checked with Calico v3.31 validation rules") in findings
    assert (
        "calico-accepts",
        "warning",
        "spec.asNumber: a BGPPeer with a peerIP but no asNumber is taken to be in AS 0, which no session accepts",
    ) in findings


def test_plan_refuses_a_field_the_clusters_release_lacks() -> None:
    desired = bgpflat.load_spec(manifest("BGPPeer", {**PEER, "keepaliveTime": "30s"}, name="tor"))
    with pytest.raises(bgpflat.ValidationError) as caught:
        bgpflat.plan(desired, CLUSTER_V3_31)
    assert str(caught.value) == (
        "spec.keepaliveTime: BGPPeer/tor: spec.keepaliveTime does not exist in Calico v3.31 (added in Calico v3.32) "
        "(fix: remove spec.keepaliveTime, or give the Calico version the cluster runs)"
    )


def test_a_stored_filter_field_without_a_model_is_an_error_not_a_catch_all() -> None:
    from bgpflat.core.calico import parse_resource
    from bgpflat.core.calico.bgpfilter import export_rules

    stored = manifest(
        "BGPFilter",
        {"exportV4": [{"action": "Accept", "operations": [{"addCommunity": {"value": "65000:1"}}]}]},
        name="tag-office",
    )
    bgp_filter = parse_resource(stored)  # reading a cluster's object does not refuse it...
    assert isinstance(bgp_filter, bgpflat.core.calico.BGPFilter)
    with pytest.raises(SpecError) as caught:  # ...but routes are never guessed from it
        export_rules([bgp_filter], version=4, calico=(3, 32, 1))
    assert caught.value.path == "spec.exportV4[0].operations"
    assert "BGPFilter tag-office exportV4[0] has operations, which bgpflat cannot model" in caught.value.message


@pytest.mark.parametrize("text", ["a notin {'x'}", "a startswith 'x'", "a endswith 'x'", "a in {'x',}"])
def test_selector_spellings_calicos_parser_takes(text: str) -> None:
    bgpflat.validate_manifest(manifest("IPPool", {**POOL, "allowedUses": ["Workload"], "nodeSelector": text}))


def test_an_ipv4_mapped_address_is_ipv4_as_go_reads_it() -> None:
    bgpflat.validate_manifest(manifest("BGPConfiguration", {"localWorkloadPeeringIPV4": "::ffff:169.254.0.1"}))
    bgpflat.validate_manifest(manifest("BGPPeer", {**PEER, "reachableBy": "::ffff:10.0.0.254"}))
