"""OpenVPN into the cluster network (scenario B), with the routes a whole LAN needs.

Parts:

* ``server``: directives for the server config: a pushed route per pod pool and service range, the
  cluster DNS and search domain, never ``redirect-gateway`` (only cluster traffic uses the tunnel);
  for each office LAN behind a VPN client, a kernel route on the server and ``client-config-dir``;
* ``ccd``: the client-specific file for the client that fronts the office LAN (``iroute``);
* ``lan``: what the office LAN's router needs: cluster ranges via the LAN's VPN client machine.

The VPN server masquerades the VPN subnet and the LAN towards the cluster (``bgpflat render nat``
with ``networks.vpn``), so pods never need a route back.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.office.addresses import netmask
from bgpflat.core.office.dns import DEFAULT_SEARCH
from bgpflat.core.office.intent import OfficeIntent, require


@dataclass(frozen=True, slots=True, kw_only=True)
class VpnOptions:
    lan: tuple[Prefix, ...] = ()  # office LANs behind a VPN client (default: networks.office)
    lan_gateway: str | None = None  # the VPN client's address on the office LAN
    client: str = "office-gateway"  # the common name of that client (its ccd file name)
    search_domain: str = DEFAULT_SEARCH


def _cluster(intent: OfficeIntent) -> tuple[Prefix, ...]:
    prefixes = tuple(p for p in intent.cluster_prefixes if p.version == 4)
    require(
        bool(prefixes),
        "no IPv4 pod pool or service range to route through the VPN",
        path="pools",
        fix="add pools and services.clusterIPRange to the spec (or use --snapshot/--kubeconfig)",
    )
    return prefixes


def _lans(intent: OfficeIntent, options: VpnOptions) -> tuple[Prefix, ...]:
    return tuple(p for p in (options.lan or intent.office) if p.version == 4)


def render_vpn(intent: OfficeIntent, *, part: str = "server", options: VpnOptions = VpnOptions()) -> str:
    if part == "server":
        return _server(intent, options)
    if part == "ccd":
        return _ccd(intent, options)
    if part == "lan":
        return _lan(intent, options)
    raise ValueError(part)


def _server(intent: OfficeIntent, options: VpnOptions) -> str:
    cluster = _cluster(intent)
    vpn = ", ".join(str(p) for p in intent.vpn) or "the VPN subnet"
    out = [
        "# bgpflat render vpn --openvpn --part server: add to the OpenVPN server config",
        f"# Clients ({vpn}) get a route per pod pool and service range; their default route stays as is.",
    ]
    out += [f'push "route {p.network_address} {netmask(p)}"' for p in cluster]
    out += [f'push "dhcp-option DNS {dns}"' for dns in intent.cluster_dns if ":" not in dns]
    # DOMAIN is the suffix for bare names (``curl http://whoami``); DOMAIN-SEARCH adds the parents.
    out.append(f'push "dhcp-option DOMAIN {options.search_domain}"')
    labels = options.search_domain.split(".")
    for index in range(1, len(labels)):
        parent = ".".join(labels[index:])
        if parent.endswith(intent.cluster_domain):
            out.append(f'push "dhcp-option DOMAIN-SEARCH {parent}"')
    lans = _lans(intent, options)
    if lans:
        out.append(f"# Office LAN(s) behind the client {options.client!r}: the server routes them into the tunnel")
        out.append("# and the ccd file (--part ccd) tells OpenVPN which client they sit behind.")
        out.append("client-config-dir ccd")
        out += [f"route {p.network_address} {netmask(p)}" for p in lans]
    return "\n".join(out) + "\n"


def _ccd(intent: OfficeIntent, options: VpnOptions) -> str:
    lans = _lans(intent, options)
    require(
        bool(lans),
        "no office LAN to route through the VPN",
        path="networks.office",
        fix="set networks.office in the spec, or pass --lan CIDR",
    )
    out = [f"# bgpflat render vpn --openvpn --part ccd: save as ccd/{options.client} on the VPN server"]
    out += [f"iroute {p.network_address} {netmask(p)}" for p in lans]
    return "\n".join(out) + "\n"


def _lan(intent: OfficeIntent, options: VpnOptions) -> str:
    cluster = _cluster(intent)
    # A placeholder in a route command would be pasted into a router; ask for the address instead.
    require(
        options.lan_gateway is not None,
        "the LAN routes need the VPN client's address on the office LAN",
        path="--lan-gateway",
        fix="pass --lan-gateway IP (the office-side address of the VPN client that forwards into the cluster)",
    )
    gateway = options.lan_gateway
    out = [
        "# bgpflat render vpn --openvpn --part lan: on the office LAN router, send cluster ranges to the",
        f"# VPN client {options.client!r} ({gateway}); on that client: sysctl -w net.ipv4.ip_forward=1",
        "# and add 'pull' routes as usual (they come from the server's push lines).",
    ]
    out += [f"ip route replace {p} via {gateway}" for p in cluster]
    return "\n".join(out) + "\n"
