"""Junos BGP group for the calico-nodes (no checker here: golden files, Junos hierarchy syntax).

``route-filter P orlonger`` is Junos for ``le 32``; ``prefix-limit … teardown`` is the
maximum-prefix guard; ``multipath`` (``multiple-as`` when the nodes use several ASes) installs the
service ranges that every node advertises as equal-cost paths; ``multihop ttl`` matches Calico's
multihop sessions.
"""

from __future__ import annotations

from bgpflat.core.office.tor.bmp import junos_station_lines
from bgpflat.core.office.tor.router import RouterView, header_lines


def render_junos(view: RouterView) -> str:
    policy = f"BGPFLAT-{view.ident}-IN"
    group = f"BGPFLAT-{view.ident}"
    family = "inet" if view.version == 4 else "inet6"
    out = [f"/* {line} */" for line in header_lines(view, vendor="junos")]
    out += ["routing-options {", f"    autonomous-system {view.as_number};"]
    out.append(f"    router-id {view.router_id};")
    if view.bmp is not None:
        out += junos_station_lines(view.bmp)
    out += [
        "}",
        "policy-options {",
        f"    policy-statement {policy} {{",
        "        term cluster {",
        "            from {",
    ]
    out += [f"                route-filter {p} orlonger;" for p in view.accepted]
    out += [
        "            }",
        "            then accept;",
        "        }",
        "        term others {",
        "            then reject;",
        "        }",
        "    }",
        "    policy-statement BGPFLAT-NOTHING {",
        "        then reject;",
        "    }",
        "}",
        "protocols {",
        "    bgp {",
        f"        group {group} {{",
    ]
    internal = all(not n.external for n in view.neighbours)
    out.append(f"            type {'internal' if internal else 'external'};")
    if view.reflect:
        # A cluster ID makes the group's neighbours route-reflector clients.
        out.append(f"            cluster {view.router_id};")
    if not internal:
        # With GTSM the nodes accept only packets that left their sender with TTL 255.
        gtsm = view.neighbours[0].peer.ttl_security is not None
        out += ["            multihop {", f"                ttl {255 if gtsm else 64};", "            }"]
    out.append(f"            import {policy};")
    out.append(f"            export {policy if view.reflect else 'BGPFLAT-NOTHING'};")
    out += [
        f"            family {family} {{",
        "                unicast {",
        "                    prefix-limit {",
        f"                        maximum {view.max_prefixes};",
        "                        teardown;",
        "                    }",
        "                }",
        "            }",
    ]
    if view.multipath:
        out.append("            multipath {" if view.mixed_as else "            multipath;")
        if view.mixed_as:
            out += ["                multiple-as;", "            }"]
    same_as = len({n.remote_as for n in view.neighbours}) == 1
    if same_as and not internal:
        out.append(f"            peer-as {view.neighbours[0].remote_as};")
    for n in view.neighbours:
        lines = [f'                description "calico {n.node} (BGPPeer {n.peer.name})";']
        if not same_as:
            lines.append(f"                peer-as {n.remote_as};")
        if n.password:
            lines.append(f'                authentication-key "{n.password}";')
        out += [f"            neighbor {n.address} {{", *lines, "            }"]
    out += ["        }", "    }", "}"]
    if any(n.peer.ttl_security is not None for n in view.neighbours):
        out.append("/* The BGPPeer sets ttlSecurity (GTSM): the nodes send with TTL 255 and drop packets that")
        out.append("   arrive with a lower TTL than 256 minus the hops; add the receive-side TTL check for this")
        out.append("   group as your Junos release documents it. */")
    if view.ports != (179,):
        out.append(f"/* The nodes listen on port {', '.join(map(str, view.ports))}; let them open the sessions. */")
    return "\n".join(out) + "\n"
