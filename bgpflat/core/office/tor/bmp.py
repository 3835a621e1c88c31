"""The BMP station (``bgpflat bmp run``) in a router's config: ``render tor --bmp IP:PORT``.

Every block makes the router connect to the station (``bmp run --listen IP:PORT``) and stream the
Adj-RIB-In of the calico-node sessions, pre- and post-policy, for the view's address family. FRR's
lines are checked with ``vtysh --dryrun``; the others follow each vendor's documentation (named in
the comment they print) and have no checker here, like the rest of their configs.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgpflat.core.net.prefixes import format_address, parse_address
from bgpflat.errors import SpecError

NAME = "bgpflat"  # the station's name where the vendor wants one


@dataclass(frozen=True, slots=True)
class BmpStation:
    address: str
    port: int

    @classmethod
    def parse(cls, text: str) -> BmpStation:
        """``IP:PORT`` or ``[v6]:PORT``; raises ``SpecError`` for ``--bmp``."""
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise SpecError(f"{text!r} is not IP:PORT", path="--bmp", fix="e.g. 10.0.0.100:5000 or [fd00::100]:5000")
        try:
            version, value = parse_address(host.strip("[]"))
        except SpecError as exc:
            raise SpecError(exc.message, path="--bmp", fix="the station's IP address, then :PORT") from None
        return cls(format_address(version, value), int(port))


def frr_station_lines(station: BmpStation, version: int) -> list[str]:
    """Inside ``router bgp``; bgpd must run with the BMP module (``-M bmp``)."""
    family = "ipv4 unicast" if version == 4 else "ipv6 unicast"
    return [
        " !",
        " ! BMP to bgpflat's station. bgpd must load the module (bgpd -M bmp; Debian: bgpd_options in",
        " ! /etc/frr/daemons); soft-reconfiguration inbound keeps refused routes for pre-policy.",
        f" bmp targets {NAME}",
        f"  bmp connect {station.address} port {station.port} min-retry 1000 max-retry 30000",
        f"  bmp monitor {family} pre-policy",
        f"  bmp monitor {family} post-policy",
        " exit",
    ]


def junos_station_lines(station: BmpStation) -> list[str]:
    """``set`` commands for Junos BMP (``routing-options bmp station``)."""
    at = f"set routing-options bmp station {NAME}"
    return [
        "/* BMP to bgpflat's station (Junos: routing-options bmp) */",
        f"{at} connection-mode active",
        f"{at} station-address {station.address}",
        f"{at} station-port {station.port}",
        f"{at} route-monitoring pre-policy",
        f"{at} route-monitoring post-policy",
    ]


def ios_station_lines(station: BmpStation) -> list[str]:
    """Inside ``router bgp`` on IOS-XE (``bmp server``; neighbours need ``bmp-activate``)."""
    return [
        " ! BMP to bgpflat's station (IOS-XE: bmp server); IOS-XE streams the pre-policy Adj-RIB-In",
        " bmp server 1",
        f"  address {station.address} port-number {station.port}",
        f"  description {NAME}",
        "  activate",
        " exit-bmp-server-mode",
    ]


def nxos_station_lines(station: BmpStation) -> list[str]:
    """Inside ``router bgp`` on NX-OS (``bmp-server``; neighbours need ``bmp-activate-server``)."""
    return [
        "  ! BMP to bgpflat's station (NX-OS: bmp-server)",
        "  bmp-server 1",
        f"    address {station.address} port {station.port}",
        f"    description {NAME}",
    ]


def eos_station_lines(station: BmpStation) -> list[str]:
    """Inside ``router bgp`` on EOS (``monitoring station``, ``bgp monitoring`` for all neighbours)."""
    return [
        "   ! BMP to bgpflat's station (EOS: monitoring station)",
        "   bgp monitoring",
        "   monitoring received routes pre-policy",
        "   monitoring received routes post-policy",
        f"   monitoring station {NAME}",
        f"      connection address {station.address}",
        f"      connection mode active port {station.port}",
    ]


def bird_station_lines(station: BmpStation) -> list[str]:
    """BIRD 1.6 has no BMP; BIRD 2.14 and later have an experimental ``protocol bmp``."""
    return [
        "# BMP to bgpflat's station: BIRD 1.6 has no BMP. BIRD 2.14 and later have an experimental",
        "# protocol, e.g.:",
        f"#   protocol bmp {NAME} {{",
        f"#     station address ip {station.address} port {station.port};",
        "#     monitoring rib in pre_policy;",
        "#     monitoring rib in post_policy;",
        "#   }",
        "",
    ]
