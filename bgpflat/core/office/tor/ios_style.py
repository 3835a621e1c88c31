"""Lines that the IOS-style configs (Cisco IOS and NX-OS, Arista EOS, FRR) word the same way.

Each helper takes a ``lead``: what every line starts with, which is where the dialects differ —
``" neighbor 10.0.0.1 "`` where a neighbour's settings are lines of the ``router bgp`` block,
only indentation where they sit in a neighbour sub-mode (NX-OS).
"""

from __future__ import annotations

from bgpflat.core.office.tor.router import Neighbour, RouterView


def prefix_list_lines(view: RouterView, inbound: str, outbound: str, *, deny_all: str) -> list[str]:
    """Permit the accepted prefixes inbound, then deny ``deny_all``; outbound denies everything."""
    afi = "ip" if view.version == 4 else "ipv6"
    lines = [
        f"{afi} prefix-list {inbound} seq {seq * 10} permit {prefix} le {view.host_length}"
        for seq, prefix in enumerate(view.accepted, start=1)
    ]
    lines.append(f"{afi} prefix-list {inbound} seq {(len(view.accepted) + 1) * 10} deny {deny_all}")
    if outbound != inbound:
        lines.append(f"{afi} prefix-list {outbound} seq 10 deny {deny_all}")
    return lines


def session_lines(n: Neighbour, lead: str, *, gtsm: str = "ttl-security hops") -> list[str]:
    """remote-as, description, then GTSM (``gtsm`` is the dialect's keyword) or eBGP multihop.

    A neighbour gets one of the two, never both: IOS refuses them together, and Calico sets
    multihop only where no GTSM is configured (``Neighbour.multihop_ttl``).
    """
    lines = [f"{lead}remote-as {n.remote_as}", f"{lead}description calico {n.node} (BGPPeer {n.peer.name})"]
    if n.peer.ttl_security is not None:
        lines.append(f"{lead}{gtsm} {n.peer.ttl_security}")
    elif n.multihop_ttl is not None:
        lines.append(f"{lead}ebgp-multihop {n.multihop_ttl}")
    return lines


def multipath_lines(view: RouterView, indent: str) -> list[str]:
    """``maximum-paths`` for eBGP and ``maximum-paths ibgp`` for iBGP neighbours, when there are several."""
    lines = []
    if view.multipath:
        if any(n.external for n in view.neighbours):
            lines.append(f"{indent}maximum-paths {view.multipath}")
        if view.internal_multipath:
            lines.append(f"{indent}maximum-paths ibgp {view.multipath}")
    return lines


def policy_lines(view: RouterView, lead: str, inbound: str, outbound: str) -> list[str]:
    """A neighbour's address-family settings: reflection, the prefix lists both ways, the prefix limit."""
    lines = [f"{lead}route-reflector-client"] if view.reflect else []
    lines += [f"{lead}prefix-list {inbound} in", f"{lead}prefix-list {outbound} out"]
    lines.append(f"{lead}maximum-prefix {view.max_prefixes} warning-only")
    return lines
