"""Arista EOS BGP neighbour config (no checker here: golden files, EOS syntax).

``neighbor A ebgp-multihop`` or ``ttl maximum-hops`` (GTSM), ``password 0``, ``prefix-list … in``,
``maximum-routes``, and ``maximum-paths N ecmp N`` for the service ranges every node advertises.
"""

from __future__ import annotations

from bgpflat.core.office.tor.bmp import eos_station_lines
from bgpflat.core.office.tor.ios_style import session_lines
from bgpflat.core.office.tor.router import RouterView, filter_names, header_lines


def render_eos(view: RouterView) -> str:
    inbound, outbound = filter_names(view)
    afi = "ip" if view.version == 4 else "ipv6"
    family = "ipv4" if view.version == 4 else "ipv6"
    out = [f"! {line}" for line in header_lines(view, vendor="eos")]
    out += ["!", f"{afi} prefix-list {inbound}"]
    for seq, prefix in enumerate(view.accepted, start=1):
        out.append(f"   seq {seq * 10} permit {prefix} le {view.host_length}")
    if outbound != inbound:
        any_prefix = "0.0.0.0/0" if view.version == 4 else "::/0"
        out += ["!", f"{afi} prefix-list {outbound}", f"   seq 10 deny {any_prefix} le {view.host_length}"]
    out += ["!", f"router bgp {view.as_number}"]
    out.append(f"   router-id {view.router_id}")
    if view.multipath:
        out.append(f"   maximum-paths {view.multipath} ecmp {view.multipath}")
    if view.mixed_as:
        out.append("   bgp bestpath as-path multipath-relax")
    for n in view.neighbours:
        out += session_lines(n, f"   neighbor {n.address} ", gtsm="ttl maximum-hops")
        if n.password:
            out.append(f"   neighbor {n.address} password 0 {n.password}")
        if view.reflect:
            out.append(f"   neighbor {n.address} route-reflector-client")
        out.append(f"   neighbor {n.address} maximum-routes {view.max_prefixes} warning-only")
    if view.bmp is not None:
        out += eos_station_lines(view.bmp)
    out += ["   !", f"   address-family {family}"]
    for n in view.neighbours:
        out.append(f"      neighbor {n.address} activate")
        out.append(f"      neighbor {n.address} prefix-list {inbound} in")
        out.append(f"      neighbor {n.address} prefix-list {outbound} out")
    out.append("!")
    if view.ports != (179,):
        out.append(f"! The nodes listen on port {', '.join(map(str, view.ports))}; let them open the sessions.")
    return "\n".join(out) + "\n"
