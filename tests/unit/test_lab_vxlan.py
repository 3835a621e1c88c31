"""What the lab's Felix programs for VXLAN, per pool mode, from the vxlan-migration scenario's objects."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bgpflat.adapters import files
from bgpflat.lab import vxlan

LAB = Path(__file__).resolve().parents[2] / "labs" / "vxlan-migration"


def objects_with(mode: str) -> list[dict[str, Any]]:
    objects = [copy.deepcopy(dict(o)) for o in files.load_snapshot(LAB / "cluster.yaml").objects]
    for obj in objects:
        if obj.get("kind") == "IPPool":
            obj["spec"]["vxlanMode"] = mode
    return objects


def test_always_routes_every_remote_block_through_its_vtep() -> None:
    wanted = vxlan.node_vxlan(objects_with("Always"), "rack-a-1")
    assert wanted.device is not None and (wanted.device.tunnel, wanted.device.mac) == (
        "10.245.10.0",
        "66:e1:0a:f5:0a:00",
    )
    assert [r.node for r in wanted.remotes] == ["rack-a-2", "rack-b-1", "rack-b-2"]
    assert wanted.routes == {
        "10.245.20.0/26": ("vxlan", "10.245.20.0"),
        "10.245.30.0/26": ("vxlan", "10.245.30.0"),
        "10.245.40.0/26": ("vxlan", "10.245.40.0"),
    }


def test_cross_subnet_routes_the_own_rack_directly() -> None:
    wanted = vxlan.node_vxlan(objects_with("CrossSubnet"), "rack-a-1")
    assert wanted.routes == {
        "10.245.20.0/26": ("direct", "10.70.1.12"),
        "10.245.30.0/26": ("vxlan", "10.245.30.0"),
        "10.245.40.0/26": ("vxlan", "10.245.40.0"),
    }


@pytest.mark.parametrize("node", ["rack-a-1", "rack-b-2"])
def test_never_leaves_every_block_to_bird(node: str) -> None:
    assert vxlan.node_vxlan(objects_with("Never"), node).routes == {}


def test_route_commands_replace_what_is_wanted_and_remove_the_rest() -> None:
    lines = vxlan.route_commands(
        {"10.245.30.0/26": ("vxlan", "10.245.30.0"), "10.245.20.0/26": ("direct", "10.70.1.12")},
        ["10.245.30.0/26", "10.245.40.0/26"],
        "eth0",
    )
    assert lines == [
        "route replace 10.245.20.0/26 via 10.70.1.12 dev eth0 proto kernel",
        "route replace 10.245.30.0/26 via 10.245.30.0 dev vxlan.calico onlink proto kernel",
        "route del 10.245.40.0/26 proto kernel",
    ]


def test_only_routes_with_a_gateway_are_taken_for_ours() -> None:
    shown = '[{"dst":"10.70.1.0/24","dev":"eth0","protocol":"kernel"},{"dst":"10.245.30.0/26","gateway":"10.245.30.0"}]'
    assert vxlan.present_routes(shown) == ["10.245.30.0/26"]
