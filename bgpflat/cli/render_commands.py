"""``bgpflat render …``: the other side of the flat network as config text, on stdout.

Inputs are the same as ``plan``'s: a spec (``-f``) laid over the cluster (``--kubeconfig``/
``--context``) or a snapshot (``--snapshot``), or a lab scenario directory (``--scenario DIR``:
its ``bgpflat.yaml``, ``cluster.yaml`` and ``scenario.yaml``). The output is a pure function of
those inputs. Exit codes: 0 printed, 2 error (the message names the file, field and fix).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.arguments.common import (
    add_calico_api,
    add_context,
    add_kubeconfig,
    refuse_cluster_flags_with_snapshot,
)
from bgpflat.cli.output import EXIT_OK, info
from bgpflat.errors import SpecError

if TYPE_CHECKING:
    from bgpflat.core.net.prefixes import Prefix
    from bgpflat.core.office.intent import OfficeIntent

TOR_VENDORS = ("frr", "bird", "cisco-ios", "nxos", "junos", "eos")
STATIC_FORMATS = ("linux", "frr", "cisco-ios", "nxos", "junos", "eos")
NAT_FORMATS = ("nftables", "iptables", "sysctl")
DNS_FORMATS = ("coredns", "dnsmasq", "bind", "unbound")
DHCP_FORMATS = ("dnsmasq", "isc-dhcpd")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RenderInputs:
    intent: OfficeIntent
    scenario: Mapping[str, Any]


def _inputs(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs")
    group.add_argument("--scenario", metavar="DIR", help="a lab scenario directory (bgpflat.yaml, cluster.yaml)")
    group.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        metavar="FILE",
        help="flat spec or Calico manifests (- reads stdin, a directory its manifests)",
    )
    group.add_argument("--snapshot", metavar="FILE", help="cluster state from a snapshot instead of a live cluster")
    # Without --kubeconfig or --context, render reads no cluster at all: no default to mention.
    add_kubeconfig(group, help_text="read the live cluster with this kubeconfig")
    add_context(group)
    add_calico_api(group, hidden=True)
    group.add_argument(
        "--office", action="append", metavar="CIDR", help="office network(s); default: networks.office of the spec"
    )
    group.add_argument("--vpn-network", action="append", metavar="CIDR", help="VPN subnet(s); default: networks.vpn")
    group.add_argument(
        "--service-range",
        action="append",
        metavar="CIDR",
        help="service range(s) to add (default: the spec's services and the cluster's BGPConfiguration)",
    )
    group.add_argument(
        "--via", metavar="NODE|NAME=IP|IP", help="the forwarding/edge node (a node name, NAME=IP, or an IP)"
    )
    group.add_argument("--cluster-dns", action="append", metavar="IP", help="the cluster DNS (default: kube-dns)")
    parser.add_argument("--output-file", metavar="FILE", help="write here instead of stdout")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``render tor|static-routes|nat|vpn|dns|dhcp``."""
    render = sub.add_parser(
        "render",
        help="print configs for the office side: ToR BGP, static routes, NAT, VPN, DNS",
        description="Print the other side of the flat network as config text, from a spec and the cluster.",
    )
    kinds = render.add_subparsers(dest="render_kind", metavar="KIND")
    kinds.required = True

    tor = kinds.add_parser("tor", help="BGP neighbours for the router the BGPPeers point at")
    tor.add_argument("--vendor", required=True, choices=TOR_VENDORS, help="the router's config language")
    tor.add_argument("--peer", metavar="NAME|IP", help="which BGPPeer's router (needed when there are several)")
    tor.add_argument(
        "--bmp",
        metavar="IP:PORT",
        help="also stream the nodes' routes over BMP to `bgpflat bmp run --listen IP:PORT` (pre- and post-policy)",
    )
    _inputs(tor)
    tor.set_defaults(func=_cmd_tor)

    static = kinds.add_parser("static-routes", help="every pool and service range via a forwarding node")
    static.add_argument(
        "--format",
        dest="fmt",
        choices=STATIC_FORMATS,
        default="linux",
        help="ip route lines (default) or a router's config",
    )
    _inputs(static)
    static.set_defaults(func=_cmd_static)

    nat = kinds.add_parser("nat", help="edge-node masquerade for office traffic (nftables or iptables)")
    nat.add_argument(
        "--format",
        dest="fmt",
        choices=NAT_FORMATS,
        default="nftables",
        help="an nftables table (default), iptables rules, or the sysctl lines forwarding needs",
    )
    _inputs(nat)
    nat.set_defaults(func=_cmd_nat)

    vpn = kinds.add_parser("vpn", help="OpenVPN routes, DNS and LAN routes into the cluster")
    vpn.add_argument("--openvpn", action="store_true", required=True, help="OpenVPN (the only VPN supported)")
    vpn.add_argument(
        "--part",
        choices=("server", "client", "client-dns", "ccd", "lan"),
        default="server",
        help="server config, a client profile, the client's DNS up/down script, the LAN client's ccd "
        "file, or the office LAN router's routes (default: server)",
    )
    vpn.add_argument("--lan", action="append", metavar="CIDR", help="office LAN(s) behind a VPN client")
    vpn.add_argument("--lan-gateway", metavar="IP", help="that client's address on the office LAN")
    vpn.add_argument(
        "--client",
        default="office-gateway",
        metavar="CN",
        help="that client's common name (--part client: the profile's)",
    )
    vpn.add_argument("--remote", metavar="ADDRESS", help="the VPN server's public address (default: the --via node's)")
    vpn.add_argument("--search-domain", metavar="NAME", help="DNS search domain pushed to clients")
    _inputs(vpn)
    vpn.set_defaults(func=_cmd_vpn)

    dns = kinds.add_parser("dns", help="forward cluster.local from the office resolver")
    which = dns.add_mutually_exclusive_group(required=True)
    helps = {
        "coredns": "a Corefile for the edge node (cluster.local to the cluster DNS, the rest upstream)",
        "dnsmasq": "dnsmasq lines for the office resolver",
        "bind": "a BIND forward zone for the office resolver",
        "unbound": "an Unbound forward-zone for the office resolver",
    }
    for name in DNS_FORMATS:
        which.add_argument(f"--{name}", dest="dns_format", action="store_const", const=name, help=helps[name])
    dns.add_argument("--to", action="append", metavar="IP", help="where cluster.local goes (default: cluster DNS)")
    dns.add_argument("--port", type=int, default=53, help="the port of --to (default 53)")
    dns.add_argument("--search-domain", metavar="NAME", help="DNS search domain for the DHCP hints")
    dns.add_argument("--listen", metavar="IP", help="this resolver's address (for the DHCP hints)")
    dns.add_argument("--upstream", action="append", metavar="IP", help="CoreDNS: where other names go")
    dns.add_argument(
        "--second-level", action="store_true", help="CoreDNS answers cluster.local only (the office DNS keeps the rest)"
    )
    _inputs(dns)
    dns.set_defaults(func=_cmd_dns)

    dhcp = kinds.add_parser("dhcp", help="DHCP options: the office's DNS server and the cluster search domains")
    dhcp_which = dhcp.add_mutually_exclusive_group(required=True)
    dhcp_helps = {"dnsmasq": "dnsmasq dhcp-option lines", "isc-dhcpd": "ISC dhcpd option statements"}
    for name in DHCP_FORMATS:
        dhcp_which.add_argument(
            f"--{name}", dest="dhcp_format", action="store_const", const=name, help=dhcp_helps[name]
        )
    dhcp.add_argument(
        "--dns-server",
        action="append",
        metavar="IP",
        help="the resolver office machines get: one that forwards cluster.local (required)",
    )
    dhcp.add_argument(
        "--search-domain", metavar="NAME", help="the search domain handed out first (default: the spec's or scenario's)"
    )
    _inputs(dhcp)
    dhcp.set_defaults(func=_cmd_dhcp)


# --- inputs --------------------------------------------------------------------------------------


def _prefixes(values: Sequence[str] | None, flag: str) -> tuple[Prefix, ...]:
    from bgpflat.core.net.prefixes import Prefix

    out = []
    for value in values or ():
        try:
            out.append(Prefix.parse(value))
        except SpecError as exc:
            raise SpecError(exc.message, path=flag, fix=exc.fix or "write a.b.c.d/n") from None
    return tuple(out)


def _addresses(values: Sequence[str] | None, flag: str) -> tuple[str, ...]:
    from bgpflat.core.net.prefixes import canonical_address

    out = []
    for value in values or ():
        try:
            out.append(canonical_address(value))
        except SpecError:
            raise SpecError(f"{value!r} is not an IP address", path=flag, fix="write an IPv4 or IPv6 address") from None
    return tuple(out)


def _read_live(args: argparse.Namespace) -> list[dict[str, Any]]:
    from bgpflat.adapters.kube import CalicoApi

    api = CalicoApi.connect(kubeconfig=args.kubeconfig, context=args.context, calico_api=args.calico_api)
    try:
        info(f"Reading context {api.target.context!r} at {api.target.server}")
        objects = api.read_state()
        dns = api.client.get_object("v1", "Service", "kube-dns", namespace="kube-system")
        if dns:
            objects.append(dns)
        return objects
    finally:
        api.close()


def load_inputs(args: argparse.Namespace) -> RenderInputs:
    """Spec + cluster objects -> the renderers' intent (all file and API reading happens here)."""
    from bgpflat.adapters import files
    from bgpflat.core.office.intent import build_intent
    from bgpflat.core.state.load import load_desired
    from bgpflat.core.state.model import ObservedState

    refuse_cluster_flags_with_snapshot(args)
    spec_files = list(args.files or [])
    snapshot = args.snapshot
    scenario: Mapping[str, Any] = {}
    if args.scenario:
        directory = Path(args.scenario)
        if not directory.is_dir():
            problem = "a file, not a scenario directory" if directory.exists() else "no such scenario directory"
            raise SpecError(problem, file=str(directory), fix="pass a directory like labs/calico-bgp")
        if not any((directory / name).is_file() for name in ("bgpflat.yaml", "cluster.yaml", "scenario.yaml")):
            raise SpecError(
                "not a scenario directory: no bgpflat.yaml, cluster.yaml or scenario.yaml in it",
                file=str(directory),
                fix="pass a directory like labs/calico-bgp",
            )
        if not spec_files and (directory / "bgpflat.yaml").is_file():
            spec_files = [str(directory / "bgpflat.yaml")]
        if (
            snapshot is None
            and args.kubeconfig is None
            and args.context is None
            and (directory / "cluster.yaml").is_file()
        ):
            snapshot = str(directory / "cluster.yaml")
        if (directory / "scenario.yaml").is_file():
            docs = files.load_documents(directory / "scenario.yaml")
            if docs and isinstance(docs[0].data, Mapping):
                scenario = docs[0].data
    if not spec_files and snapshot is None and args.kubeconfig is None:
        raise SpecError(
            "nothing to render from",
            path="inputs",
            fix="pass --scenario DIR, or -f bgpflat.yaml with --snapshot FILE or --kubeconfig FILE",
        )
    desired = (
        load_desired([doc for path in files.input_paths(spec_files) for doc in files.load_documents(path)])
        if spec_files
        else None
    )
    if snapshot is not None:
        objects: list[Mapping[str, Any]] = list(files.load_snapshot(snapshot).objects)
    elif args.kubeconfig is not None or args.context is not None:
        objects = list(_read_live(args))
    else:
        objects = []
    observed = ObservedState.from_objects(objects)
    intent = build_intent(
        desired=desired,
        observed=observed,
        objects=objects,
        cluster_dns=_addresses(args.cluster_dns, "--cluster-dns"),
        forwarding_node=args.via,
    )
    extra_services = _prefixes(args.service_range, "--service-range")
    intent = dataclasses.replace(
        intent,
        office=_prefixes(args.office, "--office") or intent.office or _scenario_office(scenario),
        vpn=_prefixes(args.vpn_network, "--vpn-network") or intent.vpn,
        service_ranges=tuple(dict.fromkeys((*intent.service_ranges, *extra_services))),
    )
    return RenderInputs(intent=intent, scenario=scenario)


def _scenario_office(scenario: Mapping[str, Any]) -> tuple[Prefix, ...]:
    office = scenario.get("office")
    network = office.get("network") if isinstance(office, Mapping) else None
    return _prefixes([network], "scenario.yaml: office.network") if isinstance(network, str) else ()


def _search_domain(args: argparse.Namespace, scenario: Mapping[str, Any]) -> str:
    from bgpflat.core.office.dns import DEFAULT_SEARCH

    if args.search_domain:
        return _dns_name(str(args.search_domain), "--search-domain")
    office = scenario.get("office")
    if isinstance(office, Mapping) and isinstance(office.get("searchDomain"), str):
        return _dns_name(str(office["searchDomain"]), "scenario.yaml: office.searchDomain")
    return DEFAULT_SEARCH


_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.IGNORECASE)


def _dns_name(text: str, where: str) -> str:
    # The name is written verbatim into resolver, DHCP and OpenVPN configs, where a space or a
    # quote would break (or change) the file.
    name = text.strip().rstrip(".")
    if len(name) > 253 or not _DNS_NAME.fullmatch(name):
        raise SpecError(f"{text!r} is not a DNS name", path=where, fix="write a domain like default.svc.cluster.local")
    return name


def _emit(args: argparse.Namespace, text: str) -> int:
    if args.output_file:
        from bgpflat.adapters.files import write_text_atomic

        write_text_atomic(args.output_file, text)
        info(f"Wrote {args.output_file}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


# --- commands ------------------------------------------------------------------------------------


def _cmd_tor(args: argparse.Namespace) -> int:
    from bgpflat.core.office import BmpStation, render_tor

    station = BmpStation.parse(args.bmp) if args.bmp else None  # a typo fails before the cluster is read
    inputs = load_inputs(args)
    return _emit(args, render_tor(inputs.intent, vendor=args.vendor, peer=args.peer, bmp=station))


def _cmd_static(args: argparse.Namespace) -> int:
    from bgpflat.core.office.static_routes import render_static_routes

    return _emit(args, render_static_routes(load_inputs(args).intent, fmt=args.fmt))


def _cmd_nat(args: argparse.Namespace) -> int:
    from bgpflat.core.office.nat import render_nat

    return _emit(args, render_nat(load_inputs(args).intent, fmt=args.fmt))


def _cmd_vpn(args: argparse.Namespace) -> int:
    from bgpflat.core.office.vpn import VpnOptions, render_vpn

    inputs = load_inputs(args)
    gateway = _addresses([args.lan_gateway], "--lan-gateway")[0] if args.lan_gateway else None
    options = VpnOptions(
        lan=_prefixes(args.lan, "--lan"),
        lan_gateway=gateway,
        client=_dns_name(args.client, "--client"),
        search_domain=_search_domain(args, inputs.scenario),
        remote=_remote(args.remote),
    )
    return _emit(args, render_vpn(inputs.intent, part=args.part, options=options))


def _remote(text: str | None) -> str | None:
    # Written verbatim into the client profile's ``remote`` line: an address or a host name only.
    if text is None:
        return None
    try:
        return _addresses([text], "--remote")[0]
    except SpecError:
        return _dns_name(text, "--remote")


def _cmd_dns(args: argparse.Namespace) -> int:
    from bgpflat.core.office.dns import DnsOptions, render_dns

    inputs = load_inputs(args)
    if not 1 <= args.port <= 65535:
        raise SpecError(f"port {args.port} is out of range", path="--port", fix="use 1-65535")
    listen = _addresses([args.listen], "--listen")[0] if args.listen else None
    options = DnsOptions(
        target=_addresses(args.to, "--to"),
        port=args.port,
        search_domain=_search_domain(args, inputs.scenario),
        listen=listen,
        upstream=_addresses(args.upstream, "--upstream"),
        second_level=args.second_level,
    )
    return _emit(args, render_dns(inputs.intent, fmt=args.dns_format, options=options))


def _cmd_dhcp(args: argparse.Namespace) -> int:
    from bgpflat.core.office.dhcp import render_dhcp

    servers = _addresses(args.dns_server, "--dns-server")  # a typo fails before the cluster is read
    inputs = load_inputs(args)
    text = render_dhcp(
        inputs.intent, fmt=args.dhcp_format, servers=servers, search_domain=_search_domain(args, inputs.scenario)
    )
    return _emit(args, text)
