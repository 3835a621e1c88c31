"""OpenVPN into the cluster network (scenario B), with the routes a whole LAN needs.

Parts:

* ``server``: the whole server config: the VPN subnet (``networks.vpn``), the certificate files
  it reads beside it, a pushed route per pod pool and service range, the cluster DNS and search
  domain, never ``redirect-gateway`` (only cluster traffic uses the tunnel); for each office LAN
  behind a VPN client, a kernel route on the server and ``client-config-dir``;
* ``client``: a client's profile: the server's public address, its certificate files, and the
  ``client-dns`` script as up/down script;
* ``client-dns``: that script. Linux ignores pushed ``dhcp-option``s; the script sends only the
  pushed (cluster) domains to the pushed DNS server and every other name to the resolvers the
  machine had, so public names keep resolving from the client's own vantage point;
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
    client: str = "office-gateway"  # the common name of that client (its ccd file name; --part client: the profile's)
    search_domain: str = DEFAULT_SEARCH
    remote: str | None = None  # the server's public address (--part client; default: the forwarding node's)


PORT = 1194
DNS_SCRIPT = "vpn-dns"
PARTS = ("server", "client", "client-dns", "ccd", "lan")


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
    if part == "client":
        return _client(intent, options)
    if part == "client-dns":
        return _CLIENT_DNS
    if part == "ccd":
        return _ccd(intent, options)
    if part == "lan":
        return _lan(intent, options)
    raise ValueError(part)


def _server(intent: OfficeIntent, options: VpnOptions) -> str:
    cluster = _cluster(intent)
    subnets = [p for p in intent.vpn if p.version == 4]
    require(
        len(subnets) == 1,
        "the OpenVPN server needs exactly one IPv4 VPN subnet",
        path="networks.vpn",
        fix="set networks.vpn to one subnet that collides with nothing, e.g. [10.4.0.0/24] (or --vpn-network CIDR)",
    )
    vpn = subnets[0]
    node = f" ({intent.forwarding.name})" if intent.forwarding else ""
    out = [
        f"# bgpflat render vpn --openvpn --part server: the OpenVPN server on a cluster node{node}",
        "# Start it with: openvpn --config server.conf --cd DIR, where DIR holds ca.crt, server.crt and",
        "# server.key (a certificate with extendedKeyUsage serverAuth; clients need clientAuth).",
        "# The node must forward and masquerade the VPN subnet into the cluster: bgpflat render nat.",
        f"port {PORT}",
        "proto udp",
        "dev tun",
        "topology subnet",
        f"server {vpn.network_address} {netmask(vpn)}",
        "ca ca.crt",
        "cert server.crt",
        "key server.key",
        "dh none",
        "remote-cert-tls client",
        "keepalive 10 60",
        "persist-key",
        "persist-tun",
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


def _client(intent: OfficeIntent, options: VpnOptions) -> str:
    remote = options.remote or (intent.forwarding.address if intent.forwarding else None)
    require(
        remote is not None,
        "the client profile needs the VPN server's public address",
        path="--remote",
        fix="pass --remote ADDRESS (or --via NODE, the node the server runs on)",
    )
    name = options.client
    return "\n".join([
        f"# bgpflat render vpn --openvpn --part client: the profile of VPN client {name!r}",
        f"# Start it with: openvpn --config client.conf --cd DIR, where DIR holds ca.crt, {name}.crt,",
        f"# {name}.key and {DNS_SCRIPT} (bgpflat render vpn --openvpn --part client-dns; chmod 755 it).",
        "# Routes and the cluster DNS come from the server; the default route stays as it is.",
        "client",
        "dev tun",
        "proto udp",
        f"remote {remote} {PORT}",
        "nobind",
        "persist-key",
        "remote-cert-tls server",
        "ca ca.crt",
        f"cert {name}.crt",
        f"key {name}.key",
        "# Linux applies no pushed dhcp-option by itself: the script sends the cluster's domains to the",
        "# pushed DNS server and every other name to the resolvers this machine already has.",
        "script-security 2",
        f"up ./{DNS_SCRIPT}",
        f"down ./{DNS_SCRIPT}",
    ]) + "\n"  # fmt: skip


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


# OpenVPN hands a script the pushed options as foreign_option_1, _2, …; dev is the tunnel device
# and script_type says up or down. Without systemd-resolved a glibc resolver cannot send one domain
# to one server and the rest elsewhere, hence the small dnsmasq (as NetworkManager does it).
_CLIENT_DNS = """\
#!/bin/sh
# bgpflat render vpn --openvpn --part client-dns: save as vpn-dns beside the client profile, chmod 755.
# OpenVPN runs it as the profile's up and down script. Only the pushed domains (DOMAIN and
# DOMAIN-SEARCH: the cluster's) go to the pushed DNS server; every other name keeps going to the
# resolvers the machine had, so public names (CDNs) resolve as they did before the tunnel.
#   systemd-resolved (resolv.conf names 127.0.0.53): per-link DNS server and domains on the tunnel;
#   otherwise: a dnsmasq on 127.0.0.1 forwards those domains into the tunnel and the rest to the
#   old nameservers, and /etc/resolv.conf points at it with the domains as search list.
# down undoes it: dnsmasq stopped, the old /etc/resolv.conf back (kept in vpn-dns.<dev>/ meanwhile).
set -eu
state="$PWD/vpn-dns.$dev"
dns=""
domains=""
i=1
while :; do
	eval "option=\\${foreign_option_$i:-}"
	[ -n "$option" ] || break
	case "$option" in
	"dhcp-option DNS "*) dns="$dns ${option#dhcp-option DNS }" ;;
	"dhcp-option DOMAIN "*) domains="$domains ${option#dhcp-option DOMAIN }" ;;
	"dhcp-option DOMAIN-SEARCH "*) domains="$domains ${option#dhcp-option DOMAIN-SEARCH }" ;;
	esac
	i=$((i + 1))
done
case "$script_type" in
up)
	[ -n "$dns" ] || exit 0
	if grep -q '^nameserver 127\\.0\\.0\\.53' /etc/resolv.conf; then
		resolvectl dns "$dev" $dns
		resolvectl domain "$dev" $domains
		exit 0
	fi
	mkdir -p "$state"
	cp /etc/resolv.conf "$state/resolv.conf"
	zones=""
	for domain in $domains; do zones="$zones/$domain"; done
	set --
	for server in $dns; do
		if [ -n "$zones" ]; then set -- "$@" "--server=$zones/$server"; else set -- "$@" "--server=$server"; fi
	done
	for server in $(sed -n 's/^nameserver[[:space:]]*//p' "$state/resolv.conf"); do
		set -- "$@" "--server=$server"
	done
	dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --listen-address=127.0.0.1 --bind-interfaces \\
		--pid-file="$state/dnsmasq.pid" "$@"
	{
		echo "# vpn-dns ($dev): cluster names through the tunnel; the file before is $state/resolv.conf"
		echo "nameserver 127.0.0.1"
		echo "search$domains $(sed -n 's/^search[[:space:]]*//p' "$state/resolv.conf")"
		grep '^options' "$state/resolv.conf" || true
	} >/etc/resolv.conf
	;;
down)
	if [ ! -d "$state" ]; then
		resolvectl revert "$dev" 2>/dev/null || true
		exit 0
	fi
	[ ! -f "$state/dnsmasq.pid" ] || kill "$(cat "$state/dnsmasq.pid")" 2>/dev/null || true
	cat "$state/resolv.conf" >/etc/resolv.conf
	rm -rf "$state"
	;;
esac
"""
