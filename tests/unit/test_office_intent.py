"""How the renderers' input is built from a spec and the cluster, and the errors a user can hit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_office_golden import GOLDEN, INPUTS, ROOT, intent, scenario_c, scenario_d, tor_options

from bgpflat.adapters import files
from bgpflat.cli import main
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.office import render_tor
from bgpflat.core.office.dns import DnsOptions, render_dns
from bgpflat.core.office.intent import build_intent
from bgpflat.core.office.nat import render_nat
from bgpflat.core.office.static_routes import render_static_routes
from bgpflat.core.office.vpn import VpnOptions, render_vpn
from bgpflat.core.state.load import load_desired
from bgpflat.core.state.model import ObservedState
from bgpflat.errors import SpecError

LAB = ROOT / "labs" / "calico-bgp"


def test_peer_selects_only_the_nodes_its_selector_matches() -> None:
    (peer,) = scenario_d().peers
    assert [(s.node, s.address, s.as_number) for s in peer.sessions] == [
        ("node-1", "10.200.20.103", 64513),
        ("node-2", "10.200.20.104", 64513),
    ]  # node-3 has no ingress label


def test_node_at_the_peer_address_is_skipped_and_node_as_annotation_wins() -> None:
    (peer,) = tor_options().peers
    assert [(s.node, s.as_number) for s in peer.sessions] == [
        ("rack7-a", 64601),
        ("rack7-b", 64602),
        ("rack7-c", 64513),
    ]
    assert peer.ttl_security == 2
    assert peer.node_port == 1790
    assert peer.password_placeholder == "CHANGE-ME-bgp-secrets-tor-a"


def test_spec_is_laid_over_the_cluster() -> None:
    """cluster.yaml has no peer and no service advertisement; the spec adds both."""
    snapshot = files.load_snapshot(LAB / "cluster.yaml")
    observed = ObservedState.from_objects(list(snapshot.objects))
    only_cluster = build_intent(desired=None, observed=observed, objects=snapshot.objects)
    assert only_cluster.peers == ()
    assert only_cluster.advertised_services == ()
    assert only_cluster.cluster_dns == ("10.233.0.3",)  # kube-system/kube-dns
    with pytest.raises(SpecError, match="no BGPPeer") as caught:
        render_tor(only_cluster, vendor="frr")
    assert "fix:" in str(caught.value)
    assert [str(p) for p in scenario_d().accepted_prefixes] == ["10.233.64.0/18", "10.233.0.0/18"]


def test_maximum_prefix_leaves_room_for_every_block() -> None:
    # 10.233.64.0/18 in /24 blocks is 64 blocks; two accepted ranges.
    assert "maximum-prefix 328" in render_tor(scenario_d(), vendor="frr")


def test_pool_without_bgp_export_is_not_accepted(tmp_path: Path) -> None:
    spec = (
        (LAB / "bgpflat.yaml")
        .read_text()
        .replace("    natOutgoing: true\n", "    natOutgoing: true\n    disableBGPExport: true\n")
    )
    (tmp_path / "spec.yaml").write_text(spec)
    built = intent(str(tmp_path / "spec.yaml"), str(LAB / "cluster.yaml"))
    assert [str(p) for p in built.accepted_prefixes] == ["10.233.0.0/18"]


def test_several_routers_need_peer(tmp_path: Path) -> None:
    spec = (
        (LAB / "bgpflat.yaml")
        .read_text()
        .replace(
            "peers:\n",
            "peers:\n  - name: peer-other\n    peerIP: 10.200.20.253\n    asNumber: 65201\n",
        )
    )
    (tmp_path / "spec.yaml").write_text(spec)
    built = intent(str(tmp_path / "spec.yaml"), str(LAB / "cluster.yaml"))
    with pytest.raises(SpecError, match="2 routers") as caught:
        render_tor(built, vendor="frr")
    assert "peer-other (10.200.20.253)" in str(caught.value) and "--peer" in str(caught.value)
    assert "router bgp 65201" in render_tor(built, vendor="frr", peer="peer-other")
    with pytest.raises(SpecError, match="no BGPPeer named 'nope'"):
        render_tor(built, vendor="frr", peer="nope")


def test_peer_that_selects_no_node_is_an_error(tmp_path: Path) -> None:
    spec = (LAB / "bgpflat.yaml").read_text().replace("== 'ingress'", "== 'nobody'")
    (tmp_path / "spec.yaml").write_text(spec)
    built = intent(str(tmp_path / "spec.yaml"), str(LAB / "cluster.yaml"))
    with pytest.raises(SpecError, match="selects no node"):
        render_tor(built, vendor="bird")


def test_ipv6_peer_uses_ipv6_filters() -> None:
    built = tor_options()
    (peer,) = built.peers
    v6 = dataclasses.replace(
        built,
        pools=(*built.pools, *_prefixes("fd00:10::/56")),
        block_sizes={**(built.block_sizes or {}), **dict.fromkeys(_prefixes("fd00:10::/56"), 122)},
        peers=(
            dataclasses.replace(
                peer,
                peer_ip="fd00:20::1",
                version=6,
                sessions=tuple(
                    dataclasses.replace(s, address=f"fd00:20::{i + 11}") for i, s in enumerate(peer.sessions)
                ),
            ),
        ),
    )
    text = render_tor(v6, vendor="frr")
    assert "ipv6 prefix-list BGPFLAT-TOR-A-IN seq 10 permit fd00:10::/56 le 128" in text
    assert "  neighbor fd00:20::11 activate" in text
    assert "10.10.0.0/16" not in text


def _prefixes(*texts: str) -> tuple[Prefix, ...]:
    return tuple(Prefix.parse(t) for t in texts)


def test_static_routes_and_nat_need_their_inputs() -> None:
    no_via = dataclasses.replace(scenario_c(), forwarding=None)
    with pytest.raises(SpecError, match="--via"):
        render_static_routes(no_via)
    no_office = dataclasses.replace(scenario_c(), office=())
    with pytest.raises(SpecError) as caught:
        render_nat(no_office)
    assert caught.value.path == "networks.office"
    with pytest.raises(SpecError, match="no DNS server"):
        render_dns(scenario_c(), fmt="dnsmasq")
    assert "server=/cluster.local/10.233.0.3" in render_dns(scenario_d(), fmt="dnsmasq")
    # A whole server config: without the VPN subnet there is no `server` line to write.
    with pytest.raises(SpecError) as caught:
        render_vpn(scenario_c())
    assert caught.value.path == "networks.vpn"
    with_vpn = dataclasses.replace(scenario_c(), vpn=_prefixes("10.4.0.0/24"))
    server = render_vpn(with_vpn)
    assert "server 10.4.0.0 255.255.255.0" in server.splitlines()
    assert 'push "route 10.244.0.0 255.255.255.0"' in server


def test_the_client_profile_connects_to_the_server_node_unless_told_otherwise() -> None:
    built = dataclasses.replace(scenario_c(), vpn=_prefixes("10.4.0.0/24"))
    profile = render_vpn(built, part="client", options=VpnOptions(client="developer")).splitlines()
    assert "remote 10.60.20.30 1194" in profile  # --via node-30
    assert {"cert developer.crt", "key developer.key", "up ./vpn-dns", "down ./vpn-dns"} <= set(profile)
    public = render_vpn(built, part="client", options=VpnOptions(remote="203.0.113.10"))
    assert "remote 203.0.113.10 1194" in public.splitlines()
    with pytest.raises(SpecError) as caught:
        render_vpn(dataclasses.replace(built, forwarding=None), part="client")
    assert caught.value.path == "--remote"


def test_dns_port_and_search_domain() -> None:
    text = render_dns(
        scenario_c(),
        fmt="unbound",
        options=DnsOptions(target=("10.60.20.30",), port=5353, search_domain="a.svc.cluster.local"),
    )
    assert "forward-addr: 10.60.20.30@5353" in text
    assert "search a.svc.cluster.local svc.cluster.local cluster.local" in text


def test_nat_uses_the_vpn_range_too() -> None:
    built = dataclasses.replace(scenario_c(), vpn=_prefixes("10.4.0.0/24"))
    assert "elements = { 192.168.0.0/22, 10.4.0.0/24 }" in render_nat(built)


# --- the command line ------------------------------------------------------------------------------


def test_cli_render_tor_from_a_scenario_matches_the_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "tor", "--vendor", "frr", "--scenario", str(LAB)]) == 0
    assert capsys.readouterr().out == (GOLDEN / "tor-d.frr").read_text()


def test_cli_render_static_routes_via_a_named_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "static-routes", "--scenario", str(LAB), "--via", "node-3", "--format", "cisco-ios"]) == 0
    out = capsys.readouterr().out
    assert "ip route 10.233.64.0 255.255.192.0 10.200.20.105" in out
    assert "ip route 10.233.0.0 255.255.192.0 10.200.20.105" in out


def test_cli_errors_name_the_flag_and_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "static-routes", "-f", str(INPUTS / "scenario-c.yaml")]) == 2
    err = capsys.readouterr().err
    assert "--via" in err and "fix:" in err
    assert main(["render", "nat", "--scenario", str(LAB), "--via", "node-9"]) == 2
    assert "known: node-1, node-2, node-3" in capsys.readouterr().err
    assert main(["render", "dns", "--bind", "--scenario", str(LAB), "--to", "10.0.0.300"]) == 2
    assert "--to" in capsys.readouterr().err
    assert main(["render", "tor", "--vendor", "eos"]) == 2
    assert "--scenario" in capsys.readouterr().err


def test_cli_bad_spec_points_at_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bgpflat.yaml"
    bad.write_text((INPUTS / "scenario-c.yaml").read_text().replace("10.244.0.0/24", "10.244.0.1/24"))
    assert main(["render", "nat", "-f", str(bad), "--via", "10.60.20.30"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "pools[0].cidr" in err and "10.244.0.0/24" in err


def test_cli_output_file(tmp_path: Path) -> None:
    target = tmp_path / "Corefile"  # in a directory that exists: bgpflat creates none
    assert main(["render", "dns", "--coredns", "--scenario", str(LAB), "--output-file", str(target)]) == 0
    assert "forward . 10.233.0.3" in target.read_text()


def test_load_desired_reads_the_scenario_inputs() -> None:
    # The input specs themselves are valid flat specs (guards the fixtures).
    for name in ("scenario-a.yaml", "scenario-b.yaml", "scenario-c.yaml", "tor-options.yaml", "tor-ibgp.yaml"):
        assert load_desired(list(files.load_documents(INPUTS / name))).pools
