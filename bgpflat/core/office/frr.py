"""FRR ``frr.conf`` for the router that peers with the calico-nodes (checked with ``vtysh --dryrun``)."""

from __future__ import annotations

from bgpflat.core.office.router import RouterView, filter_names, header_lines


def render_frr(view: RouterView) -> str:
    afi = "ip" if view.version == 4 else "ipv6"
    family = "ipv4 unicast" if view.version == 4 else "ipv6 unicast"
    inbound, outbound = filter_names(view)
    out = [f"! {line}" for line in header_lines(view, vendor="frr")]
    # "traditional" keeps eBGP sessions up without a policy on FRR releases that require one by
    # default ("datacenter"); the prefix lists below are explicit anyway.
    out += ["frr defaults traditional", "!"]
    for seq, prefix in enumerate(view.accepted, start=1):
        out.append(f"{afi} prefix-list {inbound} seq {seq * 10} permit {prefix} le {view.host_length}")
    out.append(f"{afi} prefix-list {inbound} seq {(len(view.accepted) + 1) * 10} deny any")
    if outbound != inbound:
        out.append(f"{afi} prefix-list {outbound} seq 10 deny any")
    out.append("!")
    out.append(f"router bgp {view.as_number}")
    out.append(f" bgp router-id {view.router_id}")
    if view.mixed_as:
        out.append(" bgp bestpath as-path multipath-relax")
    for n in view.neighbours:
        out.append(f" neighbor {n.address} remote-as {n.remote_as}")
        out.append(f" neighbor {n.address} description calico {n.node} (BGPPeer {n.peer.name})")
        if n.peer.ttl_security is not None:
            out.append(f" neighbor {n.address} ttl-security hops {n.peer.ttl_security}")
        elif n.multihop_ttl is not None:
            out.append(f" neighbor {n.address} ebgp-multihop {n.multihop_ttl}")
        if n.peer.node_port != 179:
            out.append(f" neighbor {n.address} port {n.peer.node_port}")
        if n.password:
            out.append(f" neighbor {n.address} password {n.password}")
    out.append(" !")
    out.append(f" address-family {family}")
    if view.multipath:
        if any(n.external for n in view.neighbours):
            out.append(f"  maximum-paths {view.multipath}")
        if view.internal_multipath:
            out.append(f"  maximum-paths ibgp {view.multipath}")
    for n in view.neighbours:
        if view.version == 6:
            out.append(f"  neighbor {n.address} activate")
        if view.reflect:
            out.append(f"  neighbor {n.address} route-reflector-client")
        out.append(f"  neighbor {n.address} prefix-list {inbound} in")
        out.append(f"  neighbor {n.address} prefix-list {outbound} out")
        out.append(f"  neighbor {n.address} maximum-prefix {view.max_prefixes}")
    out += [" exit-address-family", "exit", "!"]
    return "\n".join(out) + "\n"
