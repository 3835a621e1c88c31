"""bgpflat's client-side verdict against Calico's own, on thousands of generated manifests.

Each manifest (IPPool, BGPPeer, BGPConfiguration, BGPFilter; valid, near-valid and hostile values,
drawn by hypothesis from a fixed seed) goes to Calico's API server of the pinned release as a real
create with strict field validation, and is deleted again when Calico accepts it. (A server-side
dry run would not do: Calico validates in its storage layer, which a dry run never reaches; see
test_calico_apiserver.) bgpflat's ``validate_manifest`` for the same release must give the same
verdict, accept or refuse, on every case. The test prints the agreement and every disagreement with
both messages.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rawapi import RawApi, raw_api

import bgpflat
from bgpflat.lab.controlplane.binaries import CALICO_APISERVER_VERSION
from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

CASES_PER_KIND = 520  # four kinds: more than 2,000 cases per run
V3 = "projectcalico.org/v3"
PLURALS = {
    "IPPool": "ippools",
    "BGPPeer": "bgppeers",
    "BGPConfiguration": "bgpconfigurations",
    "BGPFilter": "bgpfilters",
}
EXISTING_FILTERS = ("f-accept", "f-reject")
"""BGPFilters created before the run: Calico refuses a peer naming a filter that does not exist, a
fact about the cluster that no client-side check of one manifest can know."""

# Each field: (values Calico should take, values it should not). A case is "valid" (good values
# only), "near-valid" (good values and one bad one) or "hostile" (anything), so that the verdicts
# are spread over both answers and every bad value meets otherwise good objects.
Pool = tuple[list[Any], list[Any]]
SELECTORS: Pool = (
    ["all()", "has(edge)", "role == 'edge'", "!has(x)", "rack in {'a', 'b'}", "a notin {'x'}", "a in {'x',}",
     "a startswith 'x'", "has(a)&&!has(b)", "a == 'x' || b contains \"y\""],
    ["bad ==", "has(edge", "role = 'x'", "a in {,}", "a in {'x' 'y'}", "has(a)has(b)", "a nota in {'x'}"],
)  # fmt: skip
DURATIONS: Pool = (["120s", "2m", "1m30s", "0", "1.5h"], ["2 minutes", "soon", "30"])
SECRET = {"secretKeyRef": {"name": "bgp-secret", "key": "password"}}

NAMES: Pool = (["obj-a", "obj.b", "x"], ["Obj_A", "-bad", "a" * 254])
LABELS: Pool = ([{"role": "edge"}, {"example.com/team": "net"}], [{"bad key!": "x"}, {"role": "-edge"}, {"a/b/c": "x"}])
ANNOTATIONS: Pool = ([{"note": "x"}, {"Example.com/Note": "x"}], [{"bad key": "x"}, {"-x": "y"}])

POOL_FIELDS: dict[str, Pool] = {
    "blockSize": ([0, 24, 26, 28, 32, 122, 128], [19, 33, 115, 129, "26"]),
    "ipipMode": (["Never", "Always", "CrossSubnet"], ["always", "Sometimes"]),
    "vxlanMode": (["Never", "Always", "CrossSubnet"], ["Sometimes", "never"]),
    "natOutgoing": ([True, False], ["yes"]),
    "disabled": ([True, False], ["no"]),
    "disableBGPExport": ([True, False], [1]),
    "nodeSelector": ([*SELECTORS[0], "all()"], [*SELECTORS[1], " all()", "global()", "all() && global()"]),
    "namespaceSelector": (SELECTORS[0], [*SELECTORS[1], "global()"]),
    "allowedUses": (
        [["Workload"], ["Tunnel"], ["Workload", "Tunnel"], ["LoadBalancer"]],
        [["LoadBalancer", "Workload"], ["Pods"]],
    ),
    "assignmentMode": (["Automatic", "Manual"], ["Auto"]),
    "nat-outgoing": ([False], [True]),
    "ipip": ([], [{"enabled": True}, {"enabled": False}]),
    "cird": ([], ["10.0.0.0/8"]),
}
POOL_CIDRS: Pool = (
    ["10.244.0.0/16", "10.70.0.0/24", "192.168.0.0/20", "fd00:10::/48", "fd00::/120", "10.0.0.0/26"],
    ["10.0.0.0/28", "169.254.0.0/24", "fe80::/64", "10.244.0.1/16", "10.0.0.0/33", "not-a-cidr"],
)

PEER_FIELDS: dict[str, Pool] = {
    "node": (["node-1", "rack1.node-2"], ["Node_1"]),
    "nodeSelector": SELECTORS,
    "peerIP": (
        ["10.0.0.1", "10.0.0.1:1790", "[fd00::1]:179", "fd00::1", "[10.0.0.1]:179"],
        ["10.0.0.300", "10.0.0.1:0", "[fd00::1]", " 10.0.0.1", "fe80::1%eth0"],
    ),
    "asNumber": ([65000, "65000", "1.10", 4200000000], [4294967296, "AS65000", -1, " 65000"]),
    "localASNumber": ([65001, "2.5"], ["x"]),
    "peerSelector": SELECTORS,
    "keepOriginalNextHop": ([True, False], ["true"]),
    "nextHopMode": (["Auto", "Self", "Keep"], ["keep"]),
    "sourceAddress": (["UseNodeIP", "None"], ["NodeIP"]),
    "password": ([SECRET, {"secretKeyRef": {"name": "bgp-secret"}}, {}], [{"secretKeyRef": "s"}]),
    "maxRestartTime": DURATIONS,
    "numAllowedLocalASNumbers": ([1, 0, 3], [2**31]),
    "ttlSecurity": ([0, 1, 255], [256, -1, "1"]),
    "reachableBy": (["10.0.0.254"], ["gateway"]),
    "filters": ([["f-accept"], ["f-accept", "f-reject"]], [["Reject_All"]]),
    "localWorkloadSelector": SELECTORS,
    "reversePeering": (["Auto", "Manual"], ["Yes"]),
    "keepaliveTime": ([], ["30s"]),  # v3.32
    "failureDetectionMode": ([], ["BFDIfDirectlyConnected"]),  # Calico Enterprise
}

CONFIG_FIELDS: dict[str, Pool] = {
    "logSeverityScreen": (["Info", "Debug", "Fatal"], ["info", "Verbose"]),
    "nodeToNodeMeshEnabled": ([True, False], ["off"]),
    "asNumber": ([64512, "1.10", "0"], ["AS1"]),
    "listenPort": ([179, 1790, 0], [70000, -1, "179"]),
    "serviceClusterIPs": (
        [[{"cidr": "10.96.0.0/12"}], [{"cidr": "fd00:96::/112"}]],
        [[{"cidr": "10.96.0.1/12"}], [{"cidr": "10.96.0.0/12 "}]],
    ),
    "serviceExternalIPs": ([[{"cidr": "192.0.2.0/24"}]], [[{"cidr": "192.0.2.1/24"}]]),
    "serviceLoadBalancerIPs": ([[{"cidr": "198.51.100.0/24"}]], [[{"cidr": "not-a-cidr"}]]),
    "serviceLoadBalancerAggregation": (["Enabled", "Disabled"], ["On"]),
    "bindMode": (["None", "NodeIP"], ["All"]),
    "communities": (
        [[{"name": "office", "value": "65000:100"}], [{"name": "big", "value": "1:2:3"}]],
        [[{"name": "Office", "value": "65000:1"}], [{"name": "c", "value": "65536:1"}], [{"name": "c", "value": "x"}]],
    ),
    "prefixAdvertisements": (
        [
            [{"cidr": "10.0.0.0/8", "communities": ["office"]}],
            [{"cidr": "10.0.0.0/8", "communities": ["65000:1", "1:2:3"]}],
        ],
        [
            [{"cidr": "10.0.0.0/8", "communities": ["nope"]}],
            [{"cidr": "10.0.0.0/8", "communities": ["1:70000"]}],
            [{"cidr": "10.0.0.0/8"}],
            [{"cidr": "10.0.0.1/8", "communities": ["1:1"]}],
        ],
    ),
    "ignoredInterfaces": ([["eth0"], ["eth*", "cali*"]], [["*"], ["a-very-long-interface"], [" "]]),
    "nodeMeshPassword": ([SECRET], [{"secretKeyRef": []}]),
    "nodeMeshMaxRestartTime": DURATIONS,
    "localWorkloadPeeringIPV4": (["169.254.0.1", "::ffff:169.254.0.1"], ["fd00::1"]),
    "localWorkloadPeeringIPV6": (["fd00::1"], ["10.0.0.1", "::ffff:10.0.0.1"]),
    "programClusterRoutes": ([], ["Enabled"]),  # v3.32
}

RULE_FIELDS: dict[str, Pool] = {
    "matchOperator": (["Equal", "NotEqual", "In", "NotIn"], ["Within"]),
    "prefixLength": ([{"min": 8}, {"max": 24}, {"min": 24, "max": 16}, {}], [{"max": 33}, {"max": 129}, {"min": -1}]),
    "source": (["RemotePeers"], ["Mesh"]),
    "interface": (["eth0", "eth*", "*"], ["eth0 ", "a-very-long-interface"]),
    "peer": ([], ["x"]),
}
RULE_CIDRS: dict[int, Pool] = {
    4: (["10.0.0.0/8", "192.168.1.0/24"], ["10.0.0.1/8", "10.0.0.0/33", "fd00::/8"]),
    6: (["fd00::/8", "2001:db8::/32"], ["fd00::1/8", "10.0.0.0/8"]),
}
MODES = ("valid", "valid", "near-valid", "near-valid", "hostile")


@st.composite
def _value(draw: st.DrawFn, pool: Pool, mode: str, bad_budget: list[int]) -> Any:
    good, bad = pool
    want_bad = bool(bad) and (
        (mode == "hostile" and draw(st.booleans()))
        or (mode == "near-valid" and bad_budget[0] > 0 and draw(st.floats(0, 1)) < 0.3)
    )
    if want_bad or not good:
        bad_budget[0] -= 1
        return copy.deepcopy(draw(st.sampled_from(bad)))
    return copy.deepcopy(draw(st.sampled_from(good)))


@st.composite
def _fields(draw: st.DrawFn, pools: dict[str, Pool], mode: str, budget: list[int], *, density: float) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key, pool in pools.items():
        if not pool[0] and mode == "valid":
            continue
        if draw(st.floats(0, 1)) < density:
            spec[key] = draw(_value(pool, mode, budget))
    return spec


@st.composite
def _metadata(draw: st.DrawFn, names: Pool, mode: str, budget: list[int]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": draw(_value(names, mode, budget))}
    if draw(st.floats(0, 1)) < 0.15:
        meta["labels"] = draw(_value(LABELS, mode, budget))
    if draw(st.floats(0, 1)) < 0.1:
        meta["annotations"] = draw(_value(ANNOTATIONS, mode, budget))
    return meta


def _coherent_peer(draw: st.DrawFn, spec: dict[str, Any]) -> None:
    """A valid peer is one of three shapes; keep the fields of one and what goes with it."""
    shape = draw(st.sampled_from(["peerIP", "peerSelector", "localWorkloadSelector"]))
    for key in {"peerIP", "peerSelector", "localWorkloadSelector"} - {shape}:
        spec.pop(key, None)
    if shape == "peerSelector":
        spec.pop("asNumber", None)
    elif "asNumber" not in spec:
        spec["asNumber"] = 65000
    if shape != "peerIP":
        spec.pop("reachableBy", None)
    if "nodeSelector" in spec:
        spec.pop("node", None)
    if "nextHopMode" in spec:
        spec.pop("keepOriginalNextHop", None)


@st.composite
def manifests(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    mode = draw(st.sampled_from(MODES))
    budget = [1]  # a near-valid case gets at most one bad value
    if kind == "IPPool":
        spec = draw(_fields(POOL_FIELDS, mode, budget, density=0.2))
        spec["cidr"] = draw(_value(POOL_CIDRS, mode, budget))
        meta = draw(_metadata(NAMES, mode, budget))
    elif kind == "BGPPeer":
        spec = draw(_fields(PEER_FIELDS, mode, budget, density=0.15))
        if mode == "valid":
            _coherent_peer(draw, spec)
        meta = draw(_metadata(NAMES, mode, budget))
    elif kind == "BGPConfiguration":
        spec = draw(_fields(CONFIG_FIELDS, mode, budget, density=0.15))
        meta = draw(_metadata((["default", "default", "node.node-1", "global"], ["Default"]), mode, budget))
    else:
        spec = {}
        for key, version in (("exportV4", 4), ("importV4", 4), ("exportV6", 6), ("importV6", 6)):
            if draw(st.floats(0, 1)) < 0.4:
                rules = []
                for _ in range(draw(st.integers(1, 2))):
                    rule = draw(_fields(RULE_FIELDS, mode, budget, density=0.25))
                    if draw(st.floats(0, 1)) < 0.6:
                        rule["cidr"] = draw(_value(RULE_CIDRS[version], mode, budget))
                        if mode == "valid":
                            rule.setdefault("matchOperator", draw(st.sampled_from(RULE_FIELDS["matchOperator"][0])))
                    elif mode == "valid":
                        # cidr, matchOperator and prefixLength go together in a valid rule.
                        rule.pop("matchOperator", None)
                        rule.pop("prefixLength", None)
                    rule["action"] = draw(_value((["Accept", "Reject"], ["Drop", ""]), mode, budget))
                    rules.append(rule)
                spec[key] = rules
        meta = draw(_metadata(NAMES, mode, budget))
    return {"apiVersion": V3, "kind": kind, "metadata": meta, "spec": spec}


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    message: str


def calico_verdict(api: RawApi, manifest: dict[str, Any]) -> Verdict:
    plural = PLURALS[manifest["kind"]]
    answer = api.request("POST", f"/apis/{V3}/{plural}?fieldValidation=Strict", manifest)
    if answer.ok:
        name = answer.body["metadata"]["name"]
        gone = api.request("DELETE", f"/apis/{V3}/{plural}/{name}")
        assert gone.ok, f"could not delete {plural}/{name}: {gone.message()}"
        return Verdict(True, "")
    if answer.status >= 500:
        raise AssertionError(f"Calico's API server failed ({answer.status}) on {manifest}: {answer.message()}")
    return Verdict(False, answer.message())


def bgpflat_verdict(manifest: dict[str, Any]) -> Verdict:
    try:
        bgpflat.validate_manifest(manifest, calico_version=CALICO_APISERVER_VERSION)
    except bgpflat.SpecError as exc:
        return Verdict(False, str(exc))
    return Verdict(True, "")


@pytest.fixture(scope="module")
def calico_api(control_plane_apiserver: ControlPlane) -> RawApi:
    api = raw_api(control_plane_apiserver)
    for name in EXISTING_FILTERS:
        body = {"apiVersion": V3, "kind": "BGPFilter", "metadata": {"name": name}, "spec": {}}
        answer = api.request("POST", f"/apis/{V3}/bgpfilters", body)
        assert answer.ok or answer.status == 409, answer.message()
    return api


@pytest.mark.parametrize("kind", list(PLURALS))
def test_bgpflat_agrees_with_calico_on_every_generated_manifest(
    kind: str, calico_api: RawApi, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[dict[str, Any], Verdict, Verdict]] = []

    @settings(
        max_examples=CASES_PER_KIND,
        derandomize=True,  # the same cases every run: a disagreement is reproducible
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(manifests(kind))
    def check(manifest: dict[str, Any]) -> None:
        seen.append((manifest, calico_verdict(calico_api, manifest), bgpflat_verdict(manifest)))

    check()
    disagreements = [(m, c, b) for m, c, b in seen if c.accepted != b.accepted]
    accepted = sum(c.accepted for _, c, _ in seen)
    with capsys.disabled():
        print(
            f"\n{kind}: {len(seen) - len(disagreements)}/{len(seen)} verdicts agree with Calico "
            f"{CALICO_APISERVER_VERSION} ({accepted} accepted by Calico, {len(seen) - accepted} refused)"
        )
        for manifest, calico, ours in disagreements:
            print(f"  DISAGREE {manifest}")
            print(f"    Calico:  {'accepted' if calico.accepted else 'refused: ' + calico.message}")
            print(f"    bgpflat: {'accepted' if ours.accepted else 'refused: ' + ours.message}")
    assert len(seen) >= CASES_PER_KIND * 0.9  # hypothesis may drop a few duplicates
    assert not disagreements, (
        f"{len(disagreements)} of {len(seen)} {kind} verdicts differ from Calico's (printed above)"
    )
