"""DHCP options for office machines: the DNS server and the cluster search domains (scenario A).

The office's DHCP server already hands out addresses and the router. What a flat network adds is
the resolver that knows ``cluster.local`` (the office's second-level resolver, or the edge node's
DNS) and the search domains, so that ``curl http://whoami`` works from a laptop. ``render dhcp``
prints exactly those lines for dnsmasq or ISC dhcpd, to be added to the server's configuration;
``render dns`` shows the same lines as hints (``dhcp_lines`` is the one place both come from).
"""

from __future__ import annotations

from collections.abc import Sequence

from bgpflat.core.office.intent import OfficeIntent, require

DHCP_FORMATS = ("dnsmasq", "isc-dhcpd")
DEFAULT_SEARCH = "default.svc.cluster.local"


def search_domains(search_domain: str, cluster_domain: str) -> list[str]:
    """``default.svc.cluster.local`` then its parents down to the cluster domain."""
    names = [search_domain]
    labels = search_domain.split(".")
    for index in range(1, len(labels)):
        parent = ".".join(labels[index:])
        if parent.endswith(cluster_domain) and parent not in names:
            names.append(parent)
    return names


def dhcp_lines(fmt: str, servers: Sequence[str], search: Sequence[str]) -> list[str]:
    """The DNS-server and domain-search options in ``fmt``'s syntax (RFC 2132 option 6, RFC 3397 option 119)."""
    if fmt == "dnsmasq":
        return [
            f"dhcp-option=option:dns-server,{','.join(servers)}",
            f"dhcp-option=option:domain-search,{','.join(search)}",
        ]
    if fmt == "isc-dhcpd":
        return [
            f"option domain-name-servers {', '.join(servers)};",
            "option domain-search " + ", ".join(f'"{s}"' for s in search) + ";",
        ]
    raise ValueError(fmt)


def render_dhcp(intent: OfficeIntent, *, fmt: str, servers: Sequence[str], search_domain: str = DEFAULT_SEARCH) -> str:
    require(
        bool(servers),
        "no DNS server to hand out",
        path="--dns-server",
        fix="pass --dns-server IP: the office resolver that forwards cluster.local, or the edge node's DNS",
    )
    search = search_domains(search_domain, intent.cluster_domain)
    out = [
        f"# bgpflat render dhcp --{fmt}: office machines get DNS server {', '.join(servers)} and search domain(s)",
        f"#   {' '.join(search)} (so that `curl http://whoami` works).",
        "# Add these lines to the office DHCP server's configuration; its addresses and router stay as they are.",
        *dhcp_lines(fmt, servers, search),
    ]
    return "\n".join(out) + "\n"
