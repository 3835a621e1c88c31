"""labs/openvpn read as the lab reads it, and rendered as its check renders it (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpflat.cli import main
from bgpflat.errors import LabError
from bgpflat.lab.fabric.topology import load_topology
from bgpflat.lab.setups import openvpn

LABS = Path(__file__).resolve().parents[2] / "labs"


def test_the_openvpn_lab_runs_its_server_on_node_2_and_fronts_the_office_lan_with_one_client() -> None:
    topology = load_topology(LABS / "openvpn")
    assert (topology.mode, topology.forwarding_node) == (openvpn.MODE, "node-2")
    site = openvpn.load_site(topology)
    assert (site.lan_network, site.vpn_client, site.vpn_client_name) == (
        "172.16.10.0/24",
        "172.16.10.2",
        "office-gateway",
    )
    assert openvpn.client_roles(site) == {"developer": "developer", "office-gateway": "office-vpn"}


def test_a_topology_without_the_openvpn_section_is_refused_naming_the_file() -> None:
    topology = load_topology(LABS / "forwarding-node")
    with pytest.raises(LabError, match=r"forwarding-node/topology.yaml: the openvpn section needs"):
        openvpn.load_site(topology)


def test_the_scenario_renders_a_server_that_pushes_both_ranges_and_the_cluster_dns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["render", "vpn", "--openvpn", "--scenario", str(LABS / "openvpn"), "--via", "node-2"]
    assert main(args) == 0
    server = capsys.readouterr().out.splitlines()
    assert {
        "server 10.4.0.0 255.255.255.0",
        'push "route 192.168.0.0 255.255.0.0"',
        'push "route 10.96.0.0 255.240.0.0"',
        'push "dhcp-option DNS 10.96.0.10"',
        "route 172.16.10.0 255.255.255.0",
    } <= set(server)
    assert main([*args, "--part", "client", "--client", "developer"]) == 0
    assert "remote 10.1.0.12 1194" in capsys.readouterr().out.splitlines()
