"""Fuzzing the ``-f`` parsers: whatever YAML gives them, they raise nothing but bgpflat's own errors."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpflat.core.plan.planner import make_plan
from bgpflat.core.state.documents import SpecDocument
from bgpflat.core.state.flat_spec import render_manifests
from bgpflat.core.state.load import load_desired
from bgpflat.core.state.model import ObservedState
from bgpflat.errors import SpecError

SCENARIO_D: dict[str, Any] = {
    "version": 1,
    "cluster": {"name": "calico-bgp", "environment": "dev"},
    "bgp": {"asNumber": 64513, "listenPort": 179, "nodeToNodeMesh": True},
    "pools": [
        {
            "name": "default-pool",
            "cidr": "10.233.64.0/18",
            "blockSize": 24,
            "encapsulation": "None",
            "natOutgoing": True,
            "nodeSelector": "all()",
        }
    ],
    "peers": [
        {
            "name": "peer-switch",
            "peerIP": "10.200.20.254",
            "asNumber": 65200,
            "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'",
        }
    ],
    "services": {"clusterIPs": ["10.233.0.0/18"]},
    "networks": {"nodes": ["10.200.20.0/24"], "office": ["192.168.1.0/24"]},
}

# What YAML can produce: scalars of every type (dates too), lists, mappings with odd keys.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.dates(),
    st.datetimes(),
    st.sampled_from(
        [
            "10.0.0.0/8",
            "fd00::/48",
            "10.0.0.1",
            "1.10",
            "all()",
            "has(a)",
            "Never",
            "IPIP",
            "",
            "0",
            "10.0.0.1:179",
            "[fd00::1]:179",
            "a == 'b'",
            "None",
            "VXLANCrossSubnet",
            "65000",
        ]
    ),
)
keys = st.one_of(
    st.sampled_from(
        [
            "version",
            "cluster",
            "bgp",
            "pools",
            "peers",
            "services",
            "networks",
            "name",
            "cidr",
            "peerIP",
            "asNumber",
            "encapsulation",
            "nodeSelector",
            "node",
            "password",
            "secret",
            "key",
            "clusterIPs",
            "office",
            "nodes",
            "vpn",
            "apiVersion",
            "kind",
            "spec",
            "metadata",
            "items",
        ]
    ),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            out += _paths(value, (*prefix, index))
    return out


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return data


def _exercise(data: Any) -> None:
    try:
        desired = load_desired([SpecDocument(data=data, file="fuzz.yaml")])
    except SpecError as exc:
        assert exc.message
        assert str(exc).startswith("fuzz.yaml")
        return
    render_manifests(desired)
    make_plan(desired=desired, observed=ObservedState())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_arbitrary_documents_raise_only_spec_errors(data: Any) -> None:
    _exercise(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_scenario_spec_raises_only_spec_errors(data: st.DataObject) -> None:
    spec = copy.deepcopy(SCENARIO_D)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(spec)))
        spec = _replace(spec, path, data.draw(values))
    _exercise(spec)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec", "items", "status"]), values, max_size=5)
)
def test_arbitrary_manifests_raise_only_spec_errors(data: dict[str, Any]) -> None:
    data.setdefault("kind", "IPPool")
    _exercise(data)


def test_the_unmutated_scenario_spec_loads() -> None:
    desired = load_desired([SpecDocument(data=copy.deepcopy(SCENARIO_D), file="fuzz.yaml")])
    assert len(desired.resources) == 3


def test_yaml_dates_are_refused_with_a_message() -> None:
    spec = copy.deepcopy(SCENARIO_D)
    spec["peers"][0]["name"] = dt.date(2026, 1, 1)
    try:
        load_desired([SpecDocument(data=spec, file="fuzz.yaml")])
    except SpecError as exc:
        assert exc.path == "peers[0].name"
    else:
        raise AssertionError("a date is not a peer name")
