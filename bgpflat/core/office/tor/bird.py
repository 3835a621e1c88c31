"""BIRD 1.6 ``bird.conf`` for the router that peers with the calico-nodes (checked with ``bird -p``).

BIRD 1.6 is the generation Calico itself runs, and the config keeps to its syntax: one protocol
per node, an import filter with prefix patterns ``{len,max}``, ``import limit … action warn`` for the
maximum-prefix guard, and ``merge paths`` in the kernel protocol for ECMP towards the nodes.
"""

from __future__ import annotations

from bgpflat.core.office.tor.bmp import bird_station_lines
from bgpflat.core.office.tor.router import RouterView, header_lines


def render_bird(view: RouterView) -> str:
    ident = view.ident.lower().replace("-", "_")
    filter_name = f"bgpflat_{ident}_in"
    out = [f"# {line}" for line in header_lines(view, vendor="bird")]
    if view.version == 6:
        out.append("# BIRD 1.6 reads IPv6 configs with bird6.")
    out.append(f"router id {view.router_id};")
    out.append("")
    patterns = ", ".join(f"{p}{{{p.length},{view.host_length}}}" for p in view.accepted)
    out.append(f"filter {filter_name} {{")
    if patterns:
        out.append(f"  if net ~ [ {patterns} ] then accept;")
    out += ["  reject;", "}", ""]
    out += ["protocol device {", "  scan time 10;", "}", ""]
    out.append("protocol kernel bgpflat_kernel {")
    out += ["  persist;", "  scan time 20;", "  import none;", "  export all;"]
    if view.multipath:
        # The service ranges come from every node: install them as ECMP routes.
        out.append(f"  merge paths on limit {view.multipath};")
    out += ["}", ""]
    for n in view.neighbours:
        name = "calico_" + "".join(c if c.isalnum() else "_" for c in n.node)
        out.append(f"# calico node {n.node}, BGPPeer {n.peer.name}")
        out.append(f"protocol bgp {name} {{")
        out.append(f"  local as {view.as_number};")
        port = f" port {n.peer.node_port}" if n.peer.node_port != 179 else ""
        out.append(f"  neighbor {n.address}{port} as {n.remote_as};")
        if n.peer.ttl_security is not None:
            out.append("  ttl security on;")
            out.append(f"  multihop {n.peer.ttl_security};")
        else:
            out.append("  multihop;")
        if n.password:
            out.append(f'  password "{n.password}";')
        out.append("  graceful restart;")
        out.append(f"  import limit {view.max_prefixes} action warn;")
        out.append(f"  import filter {filter_name};")
        if view.reflect:
            out.append("  rr client;")
            out.append(f"  export filter {filter_name};")
        else:
            out.append("  export none;")
        out += ["}", ""]
    if view.bmp is not None:
        out += bird_station_lines(view.bmp)
    return "\n".join(out)
