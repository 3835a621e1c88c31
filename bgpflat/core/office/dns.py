"""Office DNS for cluster names: ``cluster.local`` forwarding (scenarios A, C and D).

Two shapes:

* the office resolver (dnsmasq, BIND, Unbound) forwards only ``cluster.local`` to ``target`` — the
  cluster DNS itself when service IPs are reachable (BGP, scenario D), or the DNS on an edge or
  forwarding node (scenarios A and C) — and resolves everything else as before. That is also the
  "second-level" refinement of scenario A: public names keep resolving from the office's own
  vantage point;
* a CoreDNS on the edge node (``--coredns``) answers ``cluster.local`` from the cluster DNS and,
  unless ``second_level`` (the office resolver already handles the rest), forwards other names
  to the normal upstream. With ``--to`` and ``--upstream`` the same Corefile is an office
  resolver run on CoreDNS: ``cluster.local`` to the edge node, the rest to the office's upstream.

``cluster.local`` is not delegated from the root, so a validating resolver would call every answer
bogus; each form switches DNSSEC validation off for that zone only.

Reverse lookups go the same way: the ``in-addr.arpa``/``ip6.arpa`` zones of the pod pools and
service ranges (the cluster DNS answers PTR queries for them, CoreDNS's ``kubernetes`` plugin
serves ``in-addr.arpa ip6.arpa`` by default), so ``ping -a``, ``traceroute`` and logs on office
machines show cluster names. A range that does not end on an octet (nibble for IPv6) is split
into the zones inside it (a /18 is 64 /24 zones); one longer than /24 (/124) has no zone of its own
and is left out, said in a comment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from bgpflat.core.office.dhcp import DEFAULT_SEARCH, dhcp_lines, search_domains
from bgpflat.core.office.intent import OfficeIntent, require

DNS_FORMATS = ("coredns", "dnsmasq", "bind", "unbound")
__all__ = ["DEFAULT_SEARCH", "DNS_FORMATS", "DnsOptions", "render_dns"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsOptions:
    target: tuple[str, ...] = ()  # where cluster.local goes; default: the cluster DNS
    port: int = 53
    search_domain: str = DEFAULT_SEARCH
    listen: str | None = None  # the address this resolver answers on (DHCP hint)
    upstream: tuple[str, ...] = ()  # CoreDNS: where other names go (default /etc/resolv.conf)
    second_level: bool = False


def _targets(intent: OfficeIntent, options: DnsOptions) -> tuple[str, ...]:
    targets = options.target or intent.cluster_dns
    require(
        bool(targets),
        "no DNS server to forward cluster.local to",
        path="--to",
        fix="pass --to IP (the cluster DNS, or the edge node's DNS), or use --snapshot/--kubeconfig "
        "so that the kube-system/kube-dns Service is found",
    )
    return targets


def _hints(intent: OfficeIntent, options: DnsOptions, comment: str) -> list[str]:
    """DHCP and resolver hints so that ``curl http://whoami`` works on office machines."""
    search = search_domains(options.search_domain, intent.cluster_domain)
    server = options.listen or "<this-dns-server>"
    dnsmasq = dhcp_lines("dnsmasq", [server], search)
    isc = dhcp_lines("isc-dhcpd", [server], search)
    lines = [
        "Office machines: use this server for DNS with search domain(s) " + " ".join(search) + ".",
        "DHCP hints:",
        f"  dnsmasq:   {dnsmasq[0]}",
        f"             {dnsmasq[1]}",
        f"  ISC dhcpd: {isc[0]}",
        f"             {isc[1]}",
        f"  resolv.conf: nameserver {server} / search {' '.join(search)}",
    ]
    return [f"{comment} {line}".rstrip() for line in lines]


def reverse_zones(intent: OfficeIntent) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the reverse zones of the cluster's ranges, the ranges too small for a zone of their own)."""
    zones: list[str] = []
    skipped: list[str] = []
    for prefix in intent.cluster_prefixes:
        network = ipaddress.ip_network(str(prefix), strict=False)
        step = 8 if network.version == 4 else 4
        zone_length = -(-network.prefixlen // step) * step
        if zone_length > network.max_prefixlen - step:
            skipped.append(str(prefix))
            continue
        for subnet in network.subnets(new_prefix=zone_length) if zone_length > network.prefixlen else [network]:
            pointer = subnet.network_address.reverse_pointer.split(".")
            zones.append(".".join(pointer[(network.max_prefixlen - zone_length) // step :]))
    return tuple(dict.fromkeys(zones)), tuple(skipped)


def _reverse_note(intent: OfficeIntent, comment: str) -> list[str]:
    zones, skipped = reverse_zones(intent)
    lines = [f"{comment} Reverse lookups of pod and service IPs: {len(zones)} zone(s) to the cluster DNS too."]
    if skipped:
        lines.append(f"{comment} No reverse zone for {', '.join(skipped)}: longer than an octet boundary allows.")
    return lines


def render_dns(intent: OfficeIntent, *, fmt: str, options: DnsOptions = DnsOptions()) -> str:
    if fmt == "coredns":
        return _coredns(intent, options)
    targets = _targets(intent, options)
    if fmt == "dnsmasq":
        return _dnsmasq(intent, options, targets)
    if fmt == "bind":
        return _bind(intent, options, targets)
    if fmt == "unbound":
        return _unbound(intent, options, targets)
    raise ValueError(fmt)


def _with_port(address: str, port: int, sep: str) -> str:
    if port == 53:
        return address
    return f"{address}{sep}{port}"


def _dnsmasq(intent: OfficeIntent, options: DnsOptions, targets: Sequence[str]) -> str:
    domain = intent.cluster_domain
    out = [f"# bgpflat render dns --dnsmasq: forward {domain} to {', '.join(targets)}; other names as before"]
    out += _hints(intent, options, "#")
    out += _reverse_note(intent, "#")
    out += [f"server=/{domain}/{_with_port(t, options.port, '#')}" for t in targets]
    # Cluster answers are private addresses; dnsmasq's rebind protection (stop-dns-rebind) would drop them.
    out.append(f"rebind-domain-ok=/{domain}/")
    for zone in reverse_zones(intent)[0]:
        out += [f"server=/{zone}/{_with_port(t, options.port, '#')}" for t in targets]
    return "\n".join(out) + "\n"


def _bind(intent: OfficeIntent, options: DnsOptions, targets: Sequence[str]) -> str:
    domain = intent.cluster_domain
    port = f" port {options.port}" if options.port != 53 else ""
    out = [f"// bgpflat render dns --bind: forward {domain} to {', '.join(targets)}; other names as before"]
    out += _hints(intent, options, "//")
    out += [
        f'// {domain} is not delegated from the root: add validate-except {{ "{domain}"; }}; to your',
        "// options { } block, or validating BIND will answer SERVFAIL for cluster names.",
    ]
    out += _reverse_note(intent, "//")
    forwarders = f"forwarders{port} {{ {' '.join(t + ';' for t in targets)} }};"
    out += [f'zone "{domain}" {{', "\ttype forward;", "\tforward only;", f"\t{forwarders}", "};"]
    # One line per reverse zone: a /18 alone is 64 of them.
    out += [f'zone "{zone}" {{ type forward; forward only; {forwarders} }};' for zone in reverse_zones(intent)[0]]
    return "\n".join(out) + "\n"


def _unbound(intent: OfficeIntent, options: DnsOptions, targets: Sequence[str]) -> str:
    domain = intent.cluster_domain
    out = [f"# bgpflat render dns --unbound: forward {domain} to {', '.join(targets)}; other names as before"]
    out += _hints(intent, options, "#")
    zones = reverse_zones(intent)[0]
    out += _reverse_note(intent, "#")
    out += [
        "server:",
        f'\tdomain-insecure: "{domain}"',
        f'\tprivate-domain: "{domain}"',
    ]
    for zone in zones:
        # Unbound answers private reverse zones itself (RFC 6303); a transparent local zone lets
        # the forward-zone below answer this one.
        out += [f'\tdomain-insecure: "{zone}"', f'\tlocal-zone: "{zone}" transparent']
    if any(t.startswith("127.") or t == "::1" for t in targets):
        out.append("\tdo-not-query-localhost: no")
    for zone in (domain, *zones):
        out += ["", "forward-zone:", f'\tname: "{zone}"']
        out += [f"\tforward-addr: {_with_port(t, options.port, '@')}" for t in targets]
    return "\n".join(out) + "\n"


def _coredns(intent: OfficeIntent, options: DnsOptions) -> str:
    domain = intent.cluster_domain
    targets = _targets(intent, options)
    bind = f"\tbind {options.listen}" if options.listen else None
    forward = " ".join(_with_port(t, options.port, ":") for t in targets)
    if options.target:
        # Forwarding to another resolver (the edge node's, from the office's second-level
        # resolver) is not answering from the cluster DNS: the header says where names go.
        rest = "" if options.second_level else f", other names to {' '.join(options.upstream) or '/etc/resolv.conf'}"
        out = [f"# bgpflat render dns --coredns: forward {domain} to {forward}{rest}"]
    else:
        out = [f"# bgpflat render dns --coredns: the edge node answers {domain} from the cluster DNS"]
    if options.second_level:
        out.append("# Second-level variant: only cluster names; the office resolver keeps the rest.")
    out += _hints(intent, options, "#")
    out += _reverse_note(intent, "#")
    out.append(" ".join(f"{zone}:53" for zone in (domain, *reverse_zones(intent)[0])) + " {")
    if bind:
        out.append(bind)
    out += [f"\tforward . {forward}", "\tcache 30", "\terrors", "}"]
    if not options.second_level:
        upstream = " ".join(options.upstream) or "/etc/resolv.conf"
        out += ["", ".:53 {"]
        if bind:
            out.append(bind)
        out += [f"\tforward . {upstream}", "\tcache 30", "\terrors", "}"]
    return "\n".join(out) + "\n"
