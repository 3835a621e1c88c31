"""The other side of the flat network, as text: router, DNS, NAT, static-route and VPN configs.

Every renderer is a pure function of an ``OfficeIntent`` (``intent.build_intent``) and a few
options, so the same spec and cluster state always print the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bgpflat.core.office.bird import render_bird
from bgpflat.core.office.bmp import BmpStation
from bgpflat.core.office.cisco import render_ios, render_nxos
from bgpflat.core.office.eos import render_eos
from bgpflat.core.office.frr import render_frr
from bgpflat.core.office.intent import OfficeIntent, build_intent
from bgpflat.core.office.junos import render_junos
from bgpflat.core.office.router import RouterView, router_view

TOR_RENDERERS: dict[str, Callable[[RouterView], str]] = {
    "frr": render_frr,
    "bird": render_bird,
    "cisco-ios": render_ios,
    "nxos": render_nxos,
    "junos": render_junos,
    "eos": render_eos,
}
TOR_VENDORS = tuple(TOR_RENDERERS)


def render_tor(intent: OfficeIntent, *, vendor: str, peer: str | None = None, bmp: BmpStation | None = None) -> str:
    """The neighbour side of the BGPPeers that point at one router (and its BMP station, if given)."""
    return TOR_RENDERERS[vendor](dataclasses.replace(router_view(intent, peer=peer), bmp=bmp))


__all__ = ["TOR_VENDORS", "BmpStation", "OfficeIntent", "build_intent", "render_tor", "router_view"]
