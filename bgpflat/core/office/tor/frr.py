"""FRR ``frr.conf`` for the router that peers with the calico-nodes (checked with ``vtysh --dryrun``)."""

from __future__ import annotations

from bgpflat.core.office.tor.bmp import frr_station_lines
from bgpflat.core.office.tor.ios_style import multipath_lines, policy_lines, prefix_list_lines, session_lines
from bgpflat.core.office.tor.router import RouterView, filter_names, header_lines


def render_frr(view: RouterView) -> str:
    family = "ipv4 unicast" if view.version == 4 else "ipv6 unicast"
    inbound, outbound = filter_names(view)
    out = [f"! {line}" for line in header_lines(view, vendor="frr")]
    # "traditional" keeps eBGP sessions up without a policy on FRR releases that require one by
    # default ("datacenter"); the prefix lists below are explicit anyway.
    out += ["frr defaults traditional", "!"]
    out += prefix_list_lines(view, inbound, outbound, deny_all="any")
    out.append("!")
    out.append(f"router bgp {view.as_number}")
    out.append(f" bgp router-id {view.router_id}")
    if view.mixed_as:
        out.append(" bgp bestpath as-path multipath-relax")
    for n in view.neighbours:
        out += session_lines(n, f" neighbor {n.address} ")
        if n.peer.node_port != 179:
            out.append(f" neighbor {n.address} port {n.peer.node_port}")
        if n.password:
            out.append(f" neighbor {n.address} password {n.password}")
    out.append(" !")
    out.append(f" address-family {family}")
    out += multipath_lines(view, "  ")
    for n in view.neighbours:
        if view.version == 6:
            out.append(f"  neighbor {n.address} activate")
        out += policy_lines(view, f"  neighbor {n.address} ", inbound, outbound)
        if view.bmp is not None:
            out.append(f"  neighbor {n.address} soft-reconfiguration inbound")
            # FRR's BMP carries no ADD-PATH path identifiers: with ADD-PATH from the nodes, the
            # withdrawal of one of a node's paths reads at the station as the prefix withdrawn.
            # One (best) path per node and prefix keeps BMP exact; the ToR still has a path from
            # every node for ECMP.
            out.append(f"  neighbor {n.address} disable-addpath-rx")
    out.append(" exit-address-family")
    if view.bmp is not None:
        out += frr_station_lines(view.bmp, view.version)
    out += ["exit", "!"]
    return "\n".join(out) + "\n"
