"""Static routes for every pod pool and service range via a forwarding node (scenario C).

Without BGP the office router needs one static route per cluster range, pointing at the node that
forwards (and usually masquerades) office traffic into the cluster.
"""

from __future__ import annotations

from bgpflat.core.net.prefixes import address_version
from bgpflat.core.office.addresses import netmask
from bgpflat.core.office.intent import OfficeIntent, require

STATIC_FORMATS = ("linux", "frr", "cisco-ios", "nxos", "junos", "eos")


def render_static_routes(intent: OfficeIntent, *, fmt: str = "linux") -> str:
    require(
        intent.forwarding is not None,
        "static routes need the node that forwards office traffic",
        path="--via",
        fix="pass --via NODE (a node name from the cluster), --via NAME=IP or --via IP",
    )
    assert intent.forwarding is not None
    via = intent.forwarding.address
    version = address_version(via)
    prefixes = tuple(p for p in intent.cluster_prefixes if p.version == version)
    require(
        bool(prefixes),
        f"no IPv{version} pod pool or service range to route",
        path="pools",
        fix="add pools and services.clusterIPRange to the spec (or use --snapshot/--kubeconfig)",
    )
    comment = "#" if fmt == "linux" else ("/*" if fmt == "junos" else "!")
    head = (
        f"bgpflat render static-routes --format {fmt}: every pod pool and service range via {intent.forwarding.label}"
    )
    out = [f"/* {head} */" if fmt == "junos" else f"{comment} {head}"]
    if fmt == "linux":
        out += [f"ip route replace {p} via {via}" for p in prefixes]
    elif fmt in ("frr", "eos"):
        afi = "ip" if version == 4 else "ipv6"
        out += [f"{afi} route {p} {via}" for p in prefixes]
    elif fmt == "cisco-ios":
        if version == 4:
            out += [f"ip route {p.network_address} {netmask(p)} {via}" for p in prefixes]
        else:
            out += [f"ipv6 route {p} {via}" for p in prefixes]
    elif fmt == "nxos":
        afi = "ip" if version == 4 else "ipv6"
        out += [f"{afi} route {p} {via}" for p in prefixes]
    elif fmt == "junos":
        table = "" if version == 4 else "rib inet6.0 "
        out += [f"set routing-options {table}static route {p} next-hop {via}" for p in prefixes]
    else:
        raise ValueError(fmt)
    return "\n".join(out) + "\n"
