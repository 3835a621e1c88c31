"""Cisco IOS / IOS-XE and NX-OS BGP neighbour configs (no checker here: golden files, vendor syntax).

IOS: ``neighbor A remote-as``, ``ebgp-multihop`` or ``ttl-security hops`` (IOS refuses both on one
neighbour), ``password``, and per address family ``prefix-list … in``, ``maximum-prefix``,
``maximum-paths`` (``maximum-paths ibgp`` for iBGP). NX-OS: the same settings in neighbour
sub-mode, ``bestpath as-path multipath-relax`` when the nodes sit in different ASes.
"""

from __future__ import annotations

from bgpflat.core.office.router import RouterView, filter_names, header_lines


def _prefix_lists(view: RouterView) -> list[str]:
    afi = "ip" if view.version == 4 else "ipv6"
    inbound, outbound = filter_names(view)
    lines = [
        f"{afi} prefix-list {inbound} seq {seq * 10} permit {prefix} le {view.host_length}"
        for seq, prefix in enumerate(view.accepted, start=1)
    ]
    any_prefix = "0.0.0.0/0" if view.version == 4 else "::/0"
    lines.append(
        f"{afi} prefix-list {inbound} seq {(len(view.accepted) + 1) * 10} deny {any_prefix} le {view.host_length}"
    )
    if outbound != inbound:
        lines.append(f"{afi} prefix-list {outbound} seq 10 deny {any_prefix} le {view.host_length}")
    return lines


def render_ios(view: RouterView) -> str:
    inbound, outbound = filter_names(view)
    family = "ipv4" if view.version == 4 else "ipv6"
    out = [f"! {line}" for line in header_lines(view, vendor="cisco-ios")]
    out += ["!", *_prefix_lists(view), "!"]
    out.append(f"router bgp {view.as_number}")
    out.append(f" bgp router-id {view.router_id}")
    out.append(" bgp log-neighbor-changes")
    for n in view.neighbours:
        out.append(f" neighbor {n.address} remote-as {n.remote_as}")
        out.append(f" neighbor {n.address} description calico {n.node} (BGPPeer {n.peer.name})")
        if n.peer.ttl_security is not None:
            out.append(f" neighbor {n.address} ttl-security hops {n.peer.ttl_security}")
        elif n.multihop_ttl is not None:
            out.append(f" neighbor {n.address} ebgp-multihop {n.multihop_ttl}")
        if n.password:
            out.append(f" neighbor {n.address} password {n.password}")
    out += [" !", f" address-family {family} unicast"]
    if view.multipath:
        if any(n.external for n in view.neighbours):
            out.append(f"  maximum-paths {view.multipath}")
        if view.internal_multipath:
            out.append(f"  maximum-paths ibgp {view.multipath}")
    for n in view.neighbours:
        out.append(f"  neighbor {n.address} activate")
        if view.reflect:
            out.append(f"  neighbor {n.address} route-reflector-client")
        out.append(f"  neighbor {n.address} prefix-list {inbound} in")
        out.append(f"  neighbor {n.address} prefix-list {outbound} out")
        out.append(f"  neighbor {n.address} maximum-prefix {view.max_prefixes}")
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
    out.append(f"  address-family {family}")
    if view.multipath:
        if any(n.external for n in view.neighbours):
            out.append(f"    maximum-paths {view.multipath}")
        if view.internal_multipath:
            out.append(f"    maximum-paths ibgp {view.multipath}")
    for n in view.neighbours:
        out.append(f"  neighbor {n.address}")
        out.append(f"    remote-as {n.remote_as}")
        out.append(f"    description calico {n.node} (BGPPeer {n.peer.name})")
        if n.peer.ttl_security is not None:
            out.append(f"    ttl-security hops {n.peer.ttl_security}")
        elif n.multihop_ttl is not None:
            out.append(f"    ebgp-multihop {n.multihop_ttl}")
        if n.password:
            out.append(f"    password 0 {n.password}")
        out.append(f"    address-family {family}")
        if view.reflect:
            out.append("      route-reflector-client")
        out.append(f"      prefix-list {inbound} in")
        out.append(f"      prefix-list {outbound} out")
        out.append(f"      maximum-prefix {view.max_prefixes}")
    if view.ports != (179,):
        out.append(f"! The nodes listen on port {', '.join(map(str, view.ports))}; let them open the sessions.")
    return "\n".join(out) + "\n"
