"""Junos BGP group for the calico-nodes, as ``set`` commands (``load set terminal``), the same style
as ``render static-routes --format junos``; no checker here: golden files.

``route-filter P orlonger`` is Junos for ``le 32``; ``prefix-limit maximum`` without ``teardown``
is the maximum-prefix guard in warning-only form (logged, the sessions stay up); ``multipath``
(``multiple-as`` when the nodes use several ASes) installs the service ranges that every node
advertises as equal-cost paths; ``multihop ttl`` matches Calico's multihop sessions.
"""

from __future__ import annotations

from bgpflat.core.office.tor.bmp import junos_station_lines
from bgpflat.core.office.tor.router import RouterView, header_lines


def render_junos(view: RouterView) -> str:
    policy = f"BGPFLAT-{view.ident}-IN"
    group = f"set protocols bgp group BGPFLAT-{view.ident}"
    family = "inet" if view.version == 4 else "inet6"
    out = [f"/* {line} */" for line in header_lines(view, vendor="junos")]
    out += [
        f"set routing-options autonomous-system {view.as_number}",
        f"set routing-options router-id {view.router_id}",
    ]
    if view.bmp is not None:
        out += junos_station_lines(view.bmp)
    term = f"set policy-options policy-statement {policy} term"
    out += [f"{term} cluster from route-filter {p} orlonger" for p in view.accepted]
    out += [f"{term} cluster then accept", f"{term} others then reject"]
    out.append("set policy-options policy-statement BGPFLAT-NOTHING then reject")
    internal = all(not n.external for n in view.neighbours)
    out.append(f"{group} type {'internal' if internal else 'external'}")
    if view.reflect:
        # A cluster ID makes the group's neighbours route-reflector clients.
        out.append(f"{group} cluster {view.router_id}")
    if not internal:
        # With GTSM the nodes accept only packets that left their sender with TTL 255.
        gtsm = view.neighbours[0].peer.ttl_security is not None
        out.append(f"{group} multihop ttl {255 if gtsm else 64}")
    out.append(f"{group} import {policy}")
    out.append(f"{group} export {policy if view.reflect else 'BGPFLAT-NOTHING'}")
    out.append(f"{group} family {family} unicast prefix-limit maximum {view.max_prefixes}")
    if view.multipath:
        out.append(f"{group} multipath" + (" multiple-as" if view.mixed_as else ""))
    same_as = len({n.remote_as for n in view.neighbours}) == 1
    if same_as and not internal:
        out.append(f"{group} peer-as {view.neighbours[0].remote_as}")
    for n in view.neighbours:
        neighbor = f"{group} neighbor {n.address}"
        out.append(f'{neighbor} description "calico {n.node} (BGPPeer {n.peer.name})"')
        if not same_as:
            out.append(f"{neighbor} peer-as {n.remote_as}")
        if n.password:
            out.append(f'{neighbor} authentication-key "{n.password}"')
    if any(n.peer.ttl_security is not None for n in view.neighbours):
        out.append("/* The BGPPeer sets ttlSecurity (GTSM): the nodes send with TTL 255 and drop packets that")
        out.append("   arrive with a lower TTL than 256 minus the hops; add the receive-side TTL check for this")
        out.append("   group as your Junos release documents it. */")
    if view.ports != (179,):
        out.append(f"/* The nodes listen on port {', '.join(map(str, view.ports))}; let them open the sessions. */")
    return "\n".join(out) + "\n"
