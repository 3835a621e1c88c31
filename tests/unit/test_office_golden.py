"""Every office-side renderer against a golden file, for scenarios A–E of docs/scenarios.md.

Outputs that a real checker can read (FRR, BIRD, dnsmasq, BIND, Unbound, OpenVPN, nft,
iptables-restore) are also fed to it by ``tests/integration/test_render_checkers.py``, which uses
the same ``CASES``. The Cisco IOS, NX-OS, Junos and EOS goldens have no checker here and were
reviewed against the vendors' documented syntax.

Refresh after an intended change: ``BGPFLAT_UPDATE_GOLDENS=1 pytest tests/unit/test_office_golden.py``
and review the diff.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest

from bgpflat.adapters import files
from bgpflat.core.external import desired_manifests, parse_external
from bgpflat.core.office import BmpStation, render_tor
from bgpflat.core.office.dhcp import DHCP_FORMATS, render_dhcp
from bgpflat.core.office.dns import DnsOptions, render_dns
from bgpflat.core.office.intent import OfficeIntent, build_intent
from bgpflat.core.office.nat import render_nat
from bgpflat.core.office.static_routes import render_static_routes
from bgpflat.core.office.vpn import VpnOptions, render_vpn
from bgpflat.core.state.load import load_desired
from bgpflat.core.state.model import ObservedState

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
INPUTS = GOLDEN / "inputs"
UPDATE = os.environ.get("BGPFLAT_UPDATE_GOLDENS") == "1"


@cache
def intent(
    spec: str, snapshot: str | None = None, *, via: str | None = None, dns: tuple[str, ...] = ()
) -> OfficeIntent:
    """The renderers' input from a spec (and snapshot), as ``bgpflat render`` builds it."""
    desired = load_desired(list(files.load_documents(spec)))
    objects: list[Mapping[str, Any]] = list(files.load_snapshot(snapshot).objects) if snapshot else []
    return build_intent(
        desired=desired,
        observed=ObservedState.from_objects(objects),
        objects=objects,
        cluster_dns=dns,
        forwarding_node=via,
    )


def scenario_a() -> OfficeIntent:
    return intent(str(INPUTS / "scenario-a.yaml"), via="node1=10.2.1.4", dns=("10.3.254.107",))


def scenario_b() -> OfficeIntent:
    return intent(str(INPUTS / "scenario-b.yaml"), dns=("10.96.0.10",))


def scenario_c() -> OfficeIntent:
    return intent(str(INPUTS / "scenario-c.yaml"), via="node-30=10.60.20.30")


def scenario_d() -> OfficeIntent:
    lab = ROOT / "labs" / "calico-bgp"
    return intent(str(lab / "bgpflat.yaml"), str(lab / "cluster.yaml"))


def tor_options() -> OfficeIntent:
    return intent(str(INPUTS / "tor-options.yaml"), str(INPUTS / "tor-options-cluster.yaml"))


def tor_ibgp() -> OfficeIntent:
    return intent(str(INPUTS / "tor-ibgp.yaml"), str(INPUTS / "tor-ibgp-cluster.yaml"))


def tor_v6() -> OfficeIntent:
    return intent(str(INPUTS / "tor-v6.yaml"), str(INPUTS / "tor-v6-cluster.yaml"))


def external_manifests() -> str:
    (document,) = files.load_documents(ROOT / "labs" / "external" / "services.yaml")
    return files.dump_yaml_documents(desired_manifests(parse_external(document)))


# golden file name -> how to render it
CASES: dict[str, Callable[[], str]] = {}


def _tor(build: Callable[[], OfficeIntent], vendor: str) -> str:
    return render_tor(build(), vendor=vendor)


def _tor_bmp(build: Callable[[], OfficeIntent], vendor: str) -> str:
    """``render tor --bmp 10.0.9.100:5000``: the same config with the BMP station added."""
    return render_tor(build(), vendor=vendor, bmp=BmpStation.parse("10.0.9.100:5000"))


def _dns(build: Callable[[], OfficeIntent], fmt: str, options: DnsOptions) -> str:
    return render_dns(build(), fmt=fmt, options=options)


def _vpn(part: str) -> str:
    # The client profile is the LAN client's (office-gateway); the server's public address is given.
    options = VpnOptions(lan_gateway="172.16.10.2", remote="203.0.113.10")
    return render_vpn(scenario_b(), part=part, options=options)


for _vendor in ("frr", "bird", "cisco-ios", "nxos", "junos", "eos"):
    for _name, _build in (("d", scenario_d), ("options", tor_options), ("ibgp", tor_ibgp)):
        CASES[f"tor-{_name}.{_vendor}"] = partial(_tor, _build, _vendor)
    # BIRD 1.6 reads IPv6 configs with its separate bird6 binary, hence the suffix.
    CASES[f"tor-v6.{'bird6' if _vendor == 'bird' else _vendor}"] = partial(_tor, tor_v6, _vendor)
    CASES[f"tor-bmp.{_vendor}"] = partial(_tor_bmp, scenario_d, _vendor)
CASES["tor-v6-bmp.frr"] = partial(_tor_bmp, tor_v6, "frr")
for _fmt in ("linux", "frr", "cisco-ios", "nxos", "junos", "eos"):
    CASES[f"static-routes-c.{_fmt}"] = partial(lambda f: render_static_routes(scenario_c(), fmt=f), _fmt)
CASES["static-routes-a.linux"] = partial(lambda: render_static_routes(scenario_a(), fmt="linux"))
for _fmt in ("nftables", "iptables", "sysctl"):
    CASES[f"nat-c.{_fmt}"] = partial(lambda f: render_nat(scenario_c(), fmt=f), _fmt)
    CASES[f"nat-a.{_fmt}"] = partial(lambda f: render_nat(scenario_a(), fmt=f), _fmt)
for _part in ("server", "client", "client-dns", "ccd", "lan"):
    CASES[f"vpn-b.{_part}"] = partial(_vpn, _part)
CASES["dns-a.coredns"] = partial(_dns, scenario_a, "coredns", DnsOptions(listen="10.2.1.4"))
CASES["dns-a-second-level.coredns"] = partial(
    _dns, scenario_a, "coredns", DnsOptions(listen="10.2.1.4", second_level=True)
)
for _fmt in ("dnsmasq", "bind", "unbound"):
    # The office resolver sends cluster.local to the edge node (scenario A's second-level form).
    CASES[f"dns-a.{_fmt}"] = partial(_dns, scenario_a, _fmt, DnsOptions(target=("10.2.1.4",)))
    CASES[f"dns-c.{_fmt}"] = partial(_dns, scenario_c, _fmt, DnsOptions(target=("10.60.20.30",), listen="10.60.20.1"))
    CASES[f"dns-d.{_fmt}"] = partial(_dns, scenario_d, _fmt, DnsOptions())
# The office's second-level resolver on CoreDNS (the edge-node lab runs it): cluster.local to
# the edge node, other names to the office's own upstream.
CASES["dns-a-office.coredns"] = partial(
    _dns, scenario_a, "coredns", DnsOptions(target=("10.2.1.4",), upstream=("192.168.1.1",), listen="192.168.1.53")
)
for _fmt in DHCP_FORMATS:
    CASES[f"dhcp-a.{_fmt}"] = partial(lambda f: render_dhcp(scenario_a(), fmt=f, servers=("192.168.1.53",)), _fmt)
CASES["external-e.yaml"] = external_manifests


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    text = CASES[name]()
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"no golden {path.name}; run with BGPFLAT_UPDATE_GOLDENS=1 and review it"
    assert text == path.read_text(), f"{name} changed; if intended, refresh with BGPFLAT_UPDATE_GOLDENS=1"


def test_renders_are_deterministic() -> None:
    assert all(CASES[name]() == CASES[name]() for name in CASES)
