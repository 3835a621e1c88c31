"""Scenario A without a lab: ``bgpflat render dhcp`` from the CLI, and what ``labs/edge-node`` declares.

The lab itself runs in ``tests/integration/test_lab_edge_node.py``; these check the parts a typo
would break first: the DHCP lines the office server gets (from the scenario's search domain), one
clear error line for a missing or bad ``--dns-server``, and the topology the edge-node setup reads
(the developer by DHCP, the edge node, the outside name).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpflat.cli import main
from bgpflat.errors import LabError
from bgpflat.lab.fabric.topology import MODE_EDGE_NODE, load_topology

LAB = Path(__file__).resolve().parents[2] / "labs" / "edge-node"


def _render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["render", "dhcp", "--scenario", str(LAB), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_dhcp_hands_out_the_resolver_and_the_scenarios_search_domains(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _err = _render(capsys, "--dnsmasq", "--dns-server", "192.168.1.53")
    assert code == 0
    assert [line for line in out.splitlines() if not line.startswith("#")] == [
        "dhcp-option=option:dns-server,192.168.1.53",
        "dhcp-option=option:domain-search,default.svc.cluster.local,svc.cluster.local,cluster.local",
    ]
    code, out, _err = _render(
        capsys, "--isc-dhcpd", "--dns-server", "192.168.1.53", "--search-domain", "dev.svc.cluster.local"
    )
    assert code == 0
    assert 'option domain-search "dev.svc.cluster.local", "svc.cluster.local", "cluster.local";' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--dns-server: no DNS server to hand out"),
        (("--dns-server", "192.168.1"), "--dns-server: '192.168.1' is not an IP address"),
    ],
)
def test_render_dhcp_refuses_without_a_usable_dns_server(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _render(capsys, "--dnsmasq", *args)
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("bgpflat: error: ")]
    assert len(errors) == 1 and message in errors[0] and "(fix: " in errors[0], err


def test_the_edge_node_topology() -> None:
    topology = load_topology(LAB)
    assert topology.mode == MODE_EDGE_NODE
    assert topology.forwarding_node == "node1" and topology.dns_forward == "10.2.1.4"
    assert topology.office.dhcp and topology.office.developer == "192.168.1.2"
    assert topology.office.search_domain == "default.svc.cluster.local"


def test_an_edge_node_topology_needs_its_forwarding_node(tmp_path: Path) -> None:
    text = (LAB / "topology.yaml").read_text().replace("forwardingNode: node1\n", "")
    (tmp_path / "topology.yaml").write_text(text)
    with pytest.raises(LabError, match="mode edge-node needs forwardingNode"):
        load_topology(tmp_path)
