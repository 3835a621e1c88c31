"""Cisco IOS / IOS-XE and NX-OS BGP neighbour configs (no checker here: golden files, vendor syntax).

IOS: ``neighbor A remote-as``, ``ebgp-multihop`` or ``ttl-security hops`` (IOS refuses both on one
neighbour), ``password``, and per address family ``prefix-list … in``, ``maximum-prefix``,
``maximum-paths`` (``maximum-paths ibgp`` for iBGP). NX-OS: the same settings in neighbour
sub-mode, ``bestpath as-path multipath-relax`` when the nodes sit in different ASes.
"""

from __future__ import annotations

from bgpflat.core.office.tor.bmp import ios_station_lines, nxos_station_lines
from bgpflat.core.office.tor.ios_style import multipath_lines, policy_lines, prefix_list_lines, session_lines
from bgpflat.core.office.tor.router import RouterView, filter_names, header_lines


def _prefix_lists(view: RouterView) -> list[str]:
    inbound, outbound = filter_names(view)
    any_prefix = "0.0.0.0/0" if view.version == 4 else "::/0"
    return prefix_list_lines(view, inbound, outbound, deny_all=f"{any_prefix} le {view.host_length}")


def render_ios(view: RouterView) -> str:
    inbound, outbound = filter_names(view)
    family = "ipv4" if view.version == 4 else "ipv6"
    out = [f"! {line}" for line in header_lines(view, vendor="cisco-ios")]
    out += ["!", *_prefix_lists(view), "!"]
    out.append(f"router bgp {view.as_number}")
    out.append(f" bgp router-id {view.router_id}")
    out.append(" bgp log-neighbor-changes")
    for n in view.neighbours:
        out += session_lines(n, f" neighbor {n.address} ")
        if n.password:
            out.append(f" neighbor {n.address} password {n.password}")
    if view.bmp is not None:
        out += ios_station_lines(view.bmp)
        out += [f" neighbor {n.address} bmp-activate server 1" for n in view.neighbours]
    out += [" !", f" address-family {family} unicast"]
    out += multipath_lines(view, "  ")
    for n in view.neighbours:
        out.append(f"  neighbor {n.address} activate")
        out += policy_lines(view, f"  neighbor {n.address} ", inbound, outbound)
    out += [" exit-address-family", "!"]
    if view.mixed_as:
        out.append("! The nodes use different AS numbers: equal-cost paths from different neighbouring")
        out.append("! ASes need as-path multipath relaxation, which IOS does not document; check your release.")
    if view.ports != (179,):
        out.append(f"! The nodes listen on port {', '.join(map(str, view.ports))}; IOS connects to 179 only,")
        out.append("! so let the nodes open the sessions (they always try).")
    return "\n".join(out) + "\n"


def render_nxos(view: RouterView) -> str:
    inbound, outbound = filter_names(view)
    family = "ipv4 unicast" if view.version == 4 else "ipv6 unicast"
    out = [f"! {line}" for line in header_lines(view, vendor="nxos")]
    out += ["feature bgp", "!", *_prefix_lists(view), "!"]
    out.append(f"router bgp {view.as_number}")
    out.append(f"  router-id {view.router_id}")
    out.append("  log-neighbor-changes")
    if view.mixed_as:
        out.append("  bestpath as-path multipath-relax")
    if view.bmp is not None:
        out += nxos_station_lines(view.bmp)
    out.append(f"  address-family {family}")
    out += multipath_lines(view, "    ")
    for n in view.neighbours:
        out.append(f"  neighbor {n.address}")
        out += session_lines(n, "    ")
        if n.password:
            out.append(f"    password 0 {n.password}")
        if view.bmp is not None:
            out.append("    bmp-activate-server 1")
        out.append(f"    address-family {family}")
        out += policy_lines(view, "      ", inbound, outbound)
    if view.ports != (179,):
        out.append(f"! The nodes listen on port {', '.join(map(str, view.ports))}; let them open the sessions.")
    return "\n".join(out) + "\n"
